import type { AccessLogRecord } from '../../proxy/core/access-log-record.js'
import type { ExchangeRecord } from '../../proxy/core/events.js'
import type { Defect } from '../../validators/defects.js'

/**
 * One ordinary access-log record (a 200 relayed from an instance), for tests that need a record and
 * change a few fields with a spread. Tests that assert exact lines build their own from the AWS
 * examples (test/proxy/observers/access-log-format.test.ts).
 */
export const SAMPLE_RECORD: AccessLogRecord = Object.freeze({
  receivedAtMicros: 1_431_560_383_945_958,
  elbName: 'clb-proxy',
  clientAddress: '127.0.0.1',
  clientPort: 50000,
  backend: Object.freeze({ address: '127.0.0.1', port: 8081 }),
  requestProcessingSeconds: 0.000073,
  backendProcessingSeconds: 0.001048,
  responseProcessingSeconds: 0.000057,
  elbStatusCode: 200,
  backendStatusCode: 200,
  receivedBytes: 0,
  sentBytes: 29,
  method: 'GET',
  scheme: 'http',
  host: 'localhost',
  listenerPort: 8080,
  target: '/',
  httpVersion: 'HTTP/1.1',
  userAgent: 'curl/8.0.0',
  sslCipher: null,
  sslProtocol: null
})

const CL_ABC: Defect = Object.freeze({ code: 'CL_NOT_INTEGER', offset: 33, message: 'Content-Length value "abc" is not an integer' })

/**
 * An exchange record as the proxy emits it, for observer tests: by default a 502 for a response
 * whose Content-Length is "abc"; `log` fields and any other field override.
 */
export function sampleExchangeRecord (overrides: Partial<Omit<ExchangeRecord, 'log'>> & { log?: Partial<AccessLogRecord> } = {}): ExchangeRecord {
  const { log, ...rest } = overrides
  return {
    outcome: 'rejected',
    cutReason: null,
    elbGenerated: true,
    log: { ...SAMPLE_RECORD, elbStatusCode: 502, backendStatusCode: 'rejected', ...log },
    defects: [CL_ABC],
    defectCounts: { CL_NOT_INTEGER: 1 },
    instance: '127.0.0.1:8081',
    instanceId: 'i-0a1b2c3d4e5f60718',
    backendError: null,
    primaryDefect: CL_ABC,
    responseBytes: Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello', 'latin1'),
    requestHead: null,
    ...rest
  }
}
