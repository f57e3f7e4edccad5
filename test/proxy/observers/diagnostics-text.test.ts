import t from 'tap'
import { Writable } from 'node:stream'
import { formatDiagnosticText, textLogger } from '../../../proxy/observers/diagnostics-text.js'

const TIME = Date.UTC(2026, 10, 25, 9, 30, 40)

t.test('a rejected response: status, request, instance, defect, reason and the bytes around it', async (t) => {
  t.equal(formatDiagnosticText({
    level: 40,
    time: TIME,
    outcome: 'rejected',
    elbStatus: 502,
    request: 'GET /orders',
    backend: '127.0.0.1:3000',
    defect: 'CL_NOT_INTEGER',
    offset: 60,
    source: 'aws-documented',
    excerpt: 'Content-Length: 5x\\r\\n',
    excerptOffset: 44,
    msg: '502 from the load balancer: Content-Length value "5x" is not an integer'
  }),
  '09:30:40 502 GET /orders from 127.0.0.1:3000: CL_NOT_INTEGER at byte 60 (aws-documented)\n' +
  '         Content-Length value "5x" is not an integer\n' +
  '         bytes 44-: Content-Length: 5x\\r\\n\n')
})

t.test('an outcome without a defect, and a relayed response with warnings', async (t) => {
  t.equal(formatDiagnosticText({ time: TIME, outcome: 'backend-timeout', elbStatus: 504, request: 'GET /slow', backend: null, msg: '504 from the load balancer: the instance did not answer within the idle timeout' }),
    '09:30:40 504 GET /slow\n         the instance did not answer within the idle timeout\n')
  t.equal(formatDiagnosticText({ time: TIME, outcome: 'relayed', elbStatus: 200, request: 'GET /', backend: '127.0.0.1:3000', warnings: [{ code: 'LINE_BARE_LF', offset: 15, message: 'line ends in LF without CR' }], msg: '200 relayed with 1 warning(s)' }),
    '09:30:40 200 GET / from 127.0.0.1:3000\n         200 relayed with 1 warning(s)\n         warning LINE_BARE_LF at byte 15: line ends in LF without CR\n')
})

t.test('other records print their message', async (t) => {
  t.equal(formatDiagnosticText({ time: TIME, msg: 'instance 127.0.0.1:3000 closed a kept-alive connection' }), '09:30:40 instance 127.0.0.1:3000 closed a kept-alive connection\n')
})

t.test('the logger turns pino records into text on the given stream', async (t) => {
  let written = ''
  const out = new Writable({ write (chunk, _encoding, done) { written += String(chunk); done() } })
  const logger = textLogger(out)
  // pino writes each record to its stream synchronously.
  logger.warn({ outcome: 'backend-closed', elbStatus: 504, request: 'GET /x', backend: null }, '504 from the load balancer: the instance closed the connection')
  t.match(written, /^\d\d:\d\d:\d\d 504 GET \/x\n {9}the instance closed the connection\n$/)
})
