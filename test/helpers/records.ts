import type { AccessLogRecord } from '../../proxy/core/access-log-record.js'

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
