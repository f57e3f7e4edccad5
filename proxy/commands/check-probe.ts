/**
 * `clb-proxy check`, the socket work: one request goes straight to the instance over a raw `net`
 * socket, as AWS's troubleshooting step does ("curl -vko /dev/null server_instance_IP", KC-502);
 * its response is read with our own ResponseParser, the bytes worth showing are kept, and after a
 * complete reusable response the idle connection is watched to see when the instance closes it
 * (the keep-alive race behind intermittent 504s: CLB-HTTPERR 504 cause 2, CLB-IDLE, CLB-BACKEND).
 * The verdict itself is check-report.ts's.
 */
import net from 'node:net'
import { ResponseParser } from '../../validators/response-parser.js'
import type { Clock } from '../core/clock.js'
import { buildCheckRequest, type ResolvedCheckOptions } from './check-options.js'
import {
  formatSeconds,
  hostPort,
  judgeReading,
  withKeepAlive,
  type CapturedBytes,
  type CheckEnding,
  type CheckReport,
  type KeepAliveReport
} from './check-report.js'

/** The instance could not be connected to: a connection error, not a verdict. */
export class CheckConnectionError extends Error {
  readonly code: string
  constructor (readonly address: string, code: string, detail: string) {
    super(`cannot connect to ${address}: ${code}${detail === '' ? '' : ` (${detail})`}`)
    this.name = 'CheckConnectionError'
    this.code = code
  }
}

/** Bytes kept from the start of the response for display (the rest is parsed, not kept). */
export const CAPTURE_PREFIX_BYTES = 64 * 1024
/** Bytes kept on each side of a defect found past the prefix. */
const DEFECT_WINDOW_BYTES = 256
/** Bytes of an unexpected write on the idle connection kept for display. */
const EXTRA_EXCERPT_BYTES = 64

export interface ProbeHooks {
  /** Measures how long the instance kept the idle connection open. */
  readonly clock: Clock
  /** Called exactly once, with the report as judged before any keep-alive wait (CheckOptions.onResponseJudged). */
  readonly onResponseJudged?: ((report: CheckReport) => void) | undefined
}

/**
 * Sends the request and reads the response until it is complete, invalid, the instance closes,
 * nothing arrives for `timeoutSeconds`, or bytes still arrive after `maxTimeSeconds`; then, after a complete reusable response, waits up to
 * `keepaliveWaitSeconds` for the instance to close the idle connection. Rejects with
 * CheckConnectionError when the instance cannot be connected to.
 */
export async function probeBackend (options: ResolvedCheckOptions, hooks: ProbeHooks): Promise<CheckReport> {
  const socket = await connect(options)
  return new CheckRun(socket, options, hooks).done
}

function connect (options: ResolvedCheckOptions): Promise<net.Socket> {
  const address = hostPort(options.host, options.port)
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: options.host, port: options.port })
    const fail = (code: string, detail: string): void => {
      socket.destroy()
      reject(new CheckConnectionError(address, code, detail))
    }
    const onTimeout = (): void => fail('ETIMEDOUT', `no connection within ${formatSeconds(options.timeoutSeconds)} s`)
    const onError = (error: NodeJS.ErrnoException): void => fail(error.code ?? 'ERROR', CONNECT_ERROR_TEXT[error.code ?? ''] ?? error.message)
    socket.setTimeout(options.timeoutSeconds * 1000)
    socket.once('timeout', onTimeout)
    socket.once('error', onError)
    socket.once('connect', () => {
      socket.off('timeout', onTimeout).off('error', onError)
      resolve(socket)
    })
  })
}

const CONNECT_ERROR_TEXT: Readonly<Record<string, string>> = Object.freeze({
  ECONNREFUSED: 'connection refused: nothing listens on that port',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name was not found',
  EAI_AGAIN: 'the host name could not be resolved right now',
  EADDRNOTAVAIL: 'the address is not available'
})

/** One check on one connected socket: reading the response, then the keep-alive wait. */
class CheckRun {
  readonly done: Promise<CheckReport>
  private resolveDone: (report: CheckReport) => void = () => undefined
  private phase: 'reading' | 'waiting' | 'finished' = 'reading'
  private readonly parser: ResponseParser
  private readonly captured: CapturedBytes[] = []
  private prefixBytes = 0
  private report: CheckReport | null = null
  private completedAtMicros = 0
  private waitTimer: NodeJS.Timeout | null = null
  private maxTimeTimer: NodeJS.Timeout | null = null
  private maxTimePassed = false

  constructor (
    private readonly socket: net.Socket,
    private readonly options: ResolvedCheckOptions,
    private readonly hooks: ProbeHooks
  ) {
    this.done = new Promise((resolve) => { this.resolveDone = resolve })
    this.parser = new ResponseParser({ requestMethod: options.method, maxHeadBytes: options.maxHeadBytes })
    // CLB-IDLE: the idle timer restarts with every byte; a silent instance gets 504 (CLB-HTTPERR 504 cause 1).
    socket.setTimeout(options.timeoutSeconds * 1000)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('timeout', () => this.onTimeout())
    // 'end' is the instance's FIN; 'close' without it is a reset (or a failed write). Both are a close.
    socket.on('end', () => this.onClosed())
    socket.on('close', () => this.onClosed())
    socket.on('error', () => undefined)
    socket.write(buildCheckRequest(options))
    // The deadline only marks the moment: the first read after it ends reading (onData), so a
    // silence is never cut short and stays judged by the idle timer above (CLB-IDLE).
    this.maxTimeTimer = setTimeout(() => { this.maxTimePassed = true }, options.maxTimeSeconds * 1000)
  }

  private onData (chunk: Buffer): void {
    if (this.phase === 'waiting') return this.onIdleBytes(chunk)
    if (this.phase !== 'reading') return
    const chunkStart = this.parser.bytesReceived
    const defectsBefore = this.parser.defects.length
    this.parser.push(chunk)
    this.keep(chunk, chunkStart, defectsBefore)
    if (this.parser.state === 'invalid') return this.judged('invalid')
    if (this.parser.state === 'complete') return this.judged('complete')
    if (this.maxTimePassed) return this.judged('deadline')
  }

  private onTimeout (): void {
    if (this.phase === 'reading') this.judged('timeout')
  }

  private onClosed (): void {
    if (this.phase === 'waiting') {
      const seconds = this.secondsSinceResponse()
      return this.finish({ measured: true, closedAfterSeconds: seconds, waitedSeconds: seconds, outcome: 'closed', note: null, extraBytes: 0, extraExcerpt: null })
    }
    if (this.phase !== 'reading') return
    const defectsBefore = this.parser.defects.length
    this.parser.finish()
    this.keep(Buffer.alloc(0), this.parser.bytesReceived, defectsBefore)
    this.judged(this.parser.state === 'complete' ? 'complete' : 'closed')
  }

  private onIdleBytes (chunk: Buffer): void {
    const seconds = this.secondsSinceResponse()
    this.finish({
      measured: true,
      closedAfterSeconds: null,
      waitedSeconds: seconds,
      outcome: 'extra-bytes',
      note: null,
      extraBytes: chunk.length,
      extraExcerpt: Buffer.from(chunk.subarray(0, EXTRA_EXCERPT_BYTES))
    })
  }

  /** Keeps the prefix for display, and a window around any new defect past it. */
  private keep (chunk: Buffer, chunkStart: number, defectsBefore: number): void {
    if (this.prefixBytes < CAPTURE_PREFIX_BYTES && chunk.length > 0) {
      const part = Buffer.from(chunk.subarray(0, CAPTURE_PREFIX_BYTES - this.prefixBytes))
      const last = this.captured[0]
      this.captured[0] = { start: 0, bytes: last === undefined ? part : Buffer.concat([last.bytes, part]) }
      this.prefixBytes += part.length
    }
    for (const found of this.parser.defects.slice(defectsBefore)) {
      if (found.offset < this.prefixBytes) continue
      const from = Math.max(chunkStart, found.offset - DEFECT_WINDOW_BYTES)
      const to = Math.min(chunkStart + chunk.length, found.offset + DEFECT_WINDOW_BYTES)
      if (to <= from || this.captured.some((kept) => kept.start <= from && kept.start + kept.bytes.length >= to)) continue
      this.captured.push({ start: from, bytes: Buffer.from(chunk.subarray(from - chunkStart, to - chunkStart)) })
    }
  }

  private judged (ending: CheckEnding): void {
    this.completedAtMicros = this.hooks.clock.nowMicros()
    this.stopMaxTimeTimer()
    this.report = judgeReading({
      ending,
      bytesReceived: this.parser.bytesReceived,
      head: this.parser.head,
      interimResponses: this.parser.interimResponses,
      defects: this.parser.defects,
      captured: this.captured
    }, this.options)
    if (this.report.keepAlive.outcome !== 'waiting') return this.finish(this.report.keepAlive)
    this.phase = 'waiting'
    this.socket.setTimeout(0)
    this.hooks.onResponseJudged?.(this.report)
    const waitSeconds = this.options.keepaliveWaitSeconds
    this.waitTimer = setTimeout(() => {
      this.finish({ measured: true, closedAfterSeconds: null, waitedSeconds: waitSeconds, outcome: 'stayed-open', note: null, extraBytes: 0, extraExcerpt: null })
    }, waitSeconds * 1000)
  }

  private stopMaxTimeTimer (): void {
    if (this.maxTimeTimer !== null) clearTimeout(this.maxTimeTimer)
    this.maxTimeTimer = null
  }

  private secondsSinceResponse (): number {
    return Math.round(Math.max(0, this.hooks.clock.nowMicros() - this.completedAtMicros) / 1000) / 1000
  }

  private finish (keepAlive: KeepAliveReport): void {
    if (this.phase === 'finished') return
    const wasWaiting = this.phase === 'waiting'
    this.phase = 'finished'
    if (this.waitTimer !== null) clearTimeout(this.waitTimer)
    this.stopMaxTimeTimer()
    this.socket.destroy()
    const report = withKeepAlive(this.report as CheckReport, keepAlive)
    if (!wasWaiting) this.hooks.onResponseJudged?.(report)
    this.resolveDone(report)
  }
}
