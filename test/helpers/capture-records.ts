/**
 * Records and options for the capture writer's tests (test/proxy/observers/captures*.test.ts):
 * a rejected exchange as the proxy emits it, at a frozen time, and a logger whose lines are kept.
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { CaptureOptions } from '../../proxy/observers/capture-format.js'
import type { ExchangeRecord } from '../../proxy/core/events.js'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'

export const CL_NOT_INTEGER_RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello', 'latin1')
// 2026-11-25T08:30:40.212590Z, the frozen time of every request in these tests.
export const FROZEN_MICROS = Date.UTC(2026, 10, 25, 8, 30, 40) * 1000 + 212590

/** A pino logger whose JSON lines are kept in `lines`. */
export function recordingLogger (): { logger: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      callback()
    }
  })
  return { logger: pino({ level: 'info' }, sink), lines }
}

/** A 'rejected' record as the proxy emits it, for the writer tests that need no sockets. */
export function rejectedRecord (overrides: { micros?: number, response?: Buffer } = {}): ExchangeRecord {
  const defect = { code: 'CL_NOT_INTEGER' as const, offset: 33, message: 'Content-Length "abc" is not an integer' }
  return {
    outcome: 'rejected', cutReason: null,
    elbGenerated: true,
    log: {
      receivedAtMicros: overrides.micros ?? FROZEN_MICROS,
      elbName: 'capture-test',
      clientAddress: '127.0.0.1',
      clientPort: 50000,
      backend: { address: '127.0.0.1', port: 8081 },
      requestProcessingSeconds: 0.00001,
      backendProcessingSeconds: 0.0002,
      responseProcessingSeconds: 0.00003,
      elbStatusCode: 502,
      backendStatusCode: 'rejected',
      receivedBytes: 0,
      sentBytes: 0,
      method: 'GET',
      scheme: 'http',
      host: 'capture.test',
      listenerPort: 8080,
      target: '/cap',
      httpVersion: 'HTTP/1.1',
      userAgent: 'capture-test',
      sslCipher: null,
      sslProtocol: null
    },
    defects: [defect],
    defectCounts: { [defect.code]: 1 },
    instance: '127.0.0.1:3000',
    instanceId: 'i-0a1b2c3d4e5f60718',
    backendError: null,
    primaryDefect: defect,
    responseBytes: overrides.response ?? CL_NOT_INTEGER_RESPONSE,
    requestHead: Buffer.from('GET /cap HTTP/1.1\r\nHost: capture.test\r\n\r\n', 'latin1')
  }
}

export function writerOptions (captureDir: string | null, maxCaptures: number): CaptureOptions {
  return {
    captureDir,
    maxCaptures,
    captureBytes: CLB_DEFAULTS.captureBytes,
    profile: CLB_DEFAULTS.profile,
    idleTimeoutSeconds: CLB_DEFAULTS.idleTimeoutSeconds,
    maxHeadBytes: CLB_DEFAULTS.maxHeadBytes,
    responseBufferBytes: CLB_DEFAULTS.responseBufferBytes,
    responseHoldMs: CLB_DEFAULTS.responseHoldMs
  }
}
