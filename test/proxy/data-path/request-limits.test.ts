/**
 * The request limits through a real proxy (stage "read request", docs/architecture.md):
 * maxRequestLineBytes, maxHeaderLineBytes and maxHeaderCount. Past each, the client gets CLB's
 * exact 400 and a lingering close as soon as the byte that crosses the limit arrives, one
 * access-log line is written, and nothing reaches the instance; exactly at each, the request is
 * forwarded. CLB's own limits are undocumented (clb-behavior.md section 5.9): the defaults are
 * our choice (docs/clb-choices.md).
 */
import t from 'tap'
import { CLB_DEFAULTS } from '../../../proxy/core/options.js'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture, type RawClient } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

const BAD_REQUEST = SYNTHETIC_RESPONSES[400].toString('latin1')
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
const HOST = 'Host: example.test\r\n'

/** A request line of exactly `length` bytes, CRLF excluded, for `path` followed by filler. */
function requestLineOf (length: number, path = '/'): string {
  return `GET ${path}${'a'.repeat(length - path.length - 13)} HTTP/1.1`
}

/** A header field line of exactly `length` bytes, CRLF excluded. */
function fieldLineOf (length: number): string {
  return `X-Big: ${'b'.repeat(length - 7)}`
}

/** `count` header fields, each with its CRLF. */
function fields (count: number): string {
  return Array.from({ length: count }, (_, i) => `X-H${i}: ${i}\r\n`).join('')
}

/** The access-log line of a request the load balancer answered itself (no instance, CLB-LOGS sentinels). */
function refusedLine (clientPort: number, request: string): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} - -1 -1 -1 400 0 0 0 ${request} "-" - -`
}

/** The access-log line of a request relayed from the raw backend. */
function relayedLine (f: ProxyFixture, clientPort: number, path: string): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} ${f.backendField} 0 0 0 200 200 0 2 "GET http://example.test:${f.port}${path} HTTP/1.1" "-" - -`
}

/** The request field of a refused request whose request line was read (the head was not: Host is the listener's address). */
function requestField (f: ProxyFixture, path: string): string {
  return `"GET http://127.0.0.1:${f.port}${path} HTTP/1.1"`
}

/**
 * Writes `bytes` in pieces cut before each offset of `cuts`, each piece only once the proxy has
 * read every byte before it, so the proxy sees at least that many reads (waits on the proxy's
 * socket, never on time).
 */
async function writeInPieces (f: ProxyFixture, client: RawClient, bytes: Buffer, cuts: readonly number[]): Promise<void> {
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    client.write(bytes.subarray(from, cut))
    from = cut
    if (from < bytes.length) await f.until(() => client.proxyBytesRead() >= from)
  }
}

interface OverLimit {
  readonly what: string
  readonly bytes: Buffer
  /** The offset of the byte that crosses the limit. */
  readonly crossing: number
  readonly code: string
  /** The request field of the access-log line. */
  readonly request: (f: ProxyFixture) => string
}

const LINE_PATH = '/long-line'
const HEADER_PATH = '/long-header'
const COUNT_PATH = '/many-headers'
const HEADER_START = `GET ${HEADER_PATH} HTTP/1.1\r\n${HOST}`
const COUNT_START = `GET ${COUNT_PATH} HTTP/1.1\r\n`

/** One byte over each default limit (docs/options.md): 16 KiB request line, 16 KiB header line, 100 fields. */
const OVER_DEFAULT_LIMITS: readonly OverLimit[] = [
  {
    what: `a request line of maxRequestLineBytes + 1 (${CLB_DEFAULTS.maxRequestLineBytes + 1}) bytes`,
    bytes: Buffer.from(requestLineOf(CLB_DEFAULTS.maxRequestLineBytes + 1, LINE_PATH) + '\r\n' + HOST + '\r\n', 'latin1'),
    crossing: CLB_DEFAULTS.maxRequestLineBytes,
    code: 'REQUEST_LINE_TOO_LONG',
    // The request line was never read: CLB's "- - - " (docs/access-log.md choice 7).
    request: () => '"- - - "'
  },
  {
    what: `a header line of maxHeaderLineBytes + 1 (${CLB_DEFAULTS.maxHeaderLineBytes + 1}) bytes`,
    bytes: Buffer.from(HEADER_START + fieldLineOf(CLB_DEFAULTS.maxHeaderLineBytes + 1) + '\r\n\r\n', 'latin1'),
    crossing: HEADER_START.length + CLB_DEFAULTS.maxHeaderLineBytes,
    code: 'REQUEST_HEADER_LINE_TOO_LONG',
    request: (f) => requestField(f, HEADER_PATH)
  },
  {
    what: `maxHeaderCount + 1 (${CLB_DEFAULTS.maxHeaderCount + 1}) header fields`,
    bytes: Buffer.from(COUNT_START + fields(CLB_DEFAULTS.maxHeaderCount + 1) + '\r\n', 'latin1'),
    crossing: COUNT_START.length + fields(CLB_DEFAULTS.maxHeaderCount).length,
    code: 'REQUEST_TOO_MANY_HEADERS',
    request: (f) => requestField(f, COUNT_PATH)
  }
]

t.test('past each default limit: CLB\'s exact 400, one access-log line, nothing reaches the instance (whole, and in 3 reads)', async (t) => {
  const f = await startProxyFixture(t)
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const c of OVER_DEFAULT_LIMITS) {
    // In one write, and in three reads whose last one brings the byte that crosses the limit.
    for (const cuts of [[], [1, c.crossing]]) {
      const label = `${c.what}, ${cuts.length === 0 ? 'one write' : `cut at ${cuts.join(', ')}`}`
      const client = await f.connect()
      await writeInPieces(f, client, c.bytes, cuts)
      const response = await client.response()
      const record = response.records[0]
      observed.push([label, response.bytes.toString('latin1'), response.closedByProxy, record?.outcome, record?.primaryDefect?.code, record?.primaryDefect?.offset, f.logLines.at(-1)])
      expected.push([label, BAD_REQUEST, true, 'bad-request', c.code, c.crossing, refusedLine(response.clientPort, c.request(f))])
    }
  }
  t.strictSame(observed, expected)
  t.equal(f.logLines.length, OVER_DEFAULT_LIMITS.length * 2, 'one line per request')
  t.equal(f.backend.accepted, 0, 'no connection to the instance')
  await f.close(t)
})

t.test('a line over its limit gets the 400 as soon as the crossing byte arrives, before any CRLF', async (t) => {
  const f = await startProxyFixture(t)
  const unterminated = [
    { bytes: 'GET /' + 'a'.repeat(CLB_DEFAULTS.maxRequestLineBytes), code: 'REQUEST_LINE_TOO_LONG', request: '"- - - "' },
    { bytes: HEADER_START + fieldLineOf(CLB_DEFAULTS.maxHeaderLineBytes + 1), code: 'REQUEST_HEADER_LINE_TOO_LONG', request: requestField(f, HEADER_PATH) }
  ]
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const c of unterminated) {
    const client = await f.connect()
    // No CRLF ever comes: without the limit, the proxy would wait for the idle timeout (408).
    client.write(c.bytes)
    const response = await client.response()
    observed.push([response.bytes.toString('latin1'), response.records[0]?.primaryDefect?.code, f.logLines.at(-1)])
    expected.push([BAD_REQUEST, c.code, refusedLine(response.clientPort, c.request)])
  }
  t.strictSame(observed, expected)
  t.equal(f.backend.accepted, 0, 'no connection to the instance')
  await f.close(t)
})

t.test('exactly at each default limit, the request is forwarded', async (t) => {
  const f = await startProxyFixture(t)
  const atLimits = [
    { path: LINE_PATH, request: requestLineOf(CLB_DEFAULTS.maxRequestLineBytes, LINE_PATH) + '\r\n' + HOST + '\r\n' },
    { path: HEADER_PATH, request: HEADER_START + fieldLineOf(CLB_DEFAULTS.maxHeaderLineBytes) + '\r\n\r\n' },
    { path: COUNT_PATH, request: COUNT_START + HOST + fields(CLB_DEFAULTS.maxHeaderCount - 1) + '\r\n' }
  ]
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const { path, request } of atLimits) {
    f.replies.push(reply([OK]))
    const response = await f.request(request)
    const logPath = path === LINE_PATH ? request.slice(4, request.indexOf(' HTTP/1.1')) : path
    observed.push([response.bytes.toString('latin1'), f.logLines.at(-1)])
    expected.push([OK, relayedLine(f, response.clientPort, logPath)])
  }
  t.strictSame(observed, expected)
  t.equal(f.backend.requests.length, atLimits.length, 'each request reached the instance')
  await f.close(t)
})

t.test('a request refused for a limit leaves another client connection at the same time unaffected', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]))
  const calm = await f.connect()
  const calmHead = `GET /calm HTTP/1.1\r\n${HOST}`
  calm.write(calmHead)
  await f.until(() => calm.proxyBytesRead() >= calmHead.length)
  const over = OVER_DEFAULT_LIMITS[1] as OverLimit
  const refused = await f.connect()
  refused.write(over.bytes)
  const refusal = await refused.response()
  t.strictSame([refusal.bytes.toString('latin1'), refusal.closedByProxy], [BAD_REQUEST, true])
  t.equal(f.backend.accepted, 0, 'the calm request is not complete yet, and the refused one never reaches the instance')
  calm.write('\r\n')
  const relayed = await calm.response()
  t.strictSame([relayed.bytes.toString('latin1'), relayed.closedByProxy], [OK, false], 'the calm connection gets its answer and stays open')
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1').split('\r\n')[0]), ['GET /calm HTTP/1.1'], 'only the calm request reached the instance')
  t.strictSame(f.logLines, [
    refusedLine(refusal.clientPort, over.request(f)),
    relayedLine(f, relayed.clientPort, '/calm')
  ])
  calm.end()
  await calm.whenClosed()
  await f.close(t)
})

t.test('a proxy started with custom limits applies them (maxHeaderCount 5, maxRequestLineBytes 256, maxHeaderLineBytes 300)', async (t) => {
  const f = await startProxyFixture(t, { proxy: { maxHeaderCount: 5, maxRequestLineBytes: 256, maxHeaderLineBytes: 300 } })
  const cases = [
    { what: '5 fields', request: `GET /five HTTP/1.1\r\n${HOST}${fields(4)}\r\n`, answer: 'forwarded', path: '/five' },
    { what: '6 fields', request: `GET /six HTTP/1.1\r\n${HOST}${fields(5)}\r\n`, answer: 'refused', path: '/six' },
    { what: 'a 256-byte request line', request: requestLineOf(256, '/line') + '\r\n' + HOST + '\r\n', answer: 'forwarded', path: requestLineOf(256, '/line').slice(4, -9) },
    { what: 'a 257-byte request line', request: requestLineOf(257, '/line') + '\r\n' + HOST + '\r\n', answer: 'refused', path: null },
    { what: 'a 300-byte header line', request: `GET /h300 HTTP/1.1\r\n${HOST}${fieldLineOf(300)}\r\n\r\n`, answer: 'forwarded', path: '/h300' },
    { what: 'a 301-byte header line', request: `GET /h301 HTTP/1.1\r\n${HOST}${fieldLineOf(301)}\r\n\r\n`, answer: 'refused', path: '/h301' }
  ]
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const c of cases) {
    if (c.answer === 'forwarded') f.replies.push(reply([OK]))
    const response = await f.request(c.request)
    observed.push([c.what, response.bytes.toString('latin1'), f.logLines.at(-1)])
    expected.push([c.what, c.answer === 'forwarded' ? OK : BAD_REQUEST, c.answer === 'forwarded'
      ? relayedLine(f, response.clientPort, c.path as string)
      : refusedLine(response.clientPort, c.path === null ? '"- - - "' : requestField(f, c.path))])
  }
  t.strictSame(observed, expected)
  t.strictSame(f.records.filter((r) => r.outcome === 'bad-request').map((r) => r.primaryDefect?.code),
    ['REQUEST_TOO_MANY_HEADERS', 'REQUEST_LINE_TOO_LONG', 'REQUEST_HEADER_LINE_TOO_LONG'])
  t.equal(f.backend.requests.length, 3, 'only the requests within the limits reached the instance')
  await f.close(t)
})
