/**
 * What the client gets, and what the access log says, for each kind of backend response: real
 * client sockets -> clb-proxy -> a raw `net` backend that sends exact bytes.
 *
 * Every response case runs whole, split in two at every byte boundary of its head, and byte by
 * byte; the client bytes, the log line, the deciding defect and the backend connections used must
 * be the same for every delivery (style.md lesson 10). The pieces are delivered deterministically:
 * the raw backend writes a piece only after the proxy reported reading the previous one
 * (test/helpers/raw-backend.ts).
 *
 * Split rule (test/helpers/split.ts): bytes past the end of the framed message stay in the piece
 * with the byte that completes it. The proxy judges a response with the read that completes it
 * ("more bytes in the body than the Content-Length header value", KC-502, is decided on that read);
 * bytes arriving in a later read reach a pooled connection and are a different case
 * (docs/architecture.md, "The commit rule"), covered by the corpus sweep at the end.
 *
 * Cases come from test/fixtures/response-cases.yaml (loaded by test/helpers/corpus-cases.ts): what
 * the client receives (`client`) and the access log's status pair (`log`) are read from the data; the
 * rows the table does not hold (RST without a byte, the backend's own 502, idle timeout, connection
 * refused) are here.
 */
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { CLB_DEFAULTS, type ClbProxyOptions } from '../../../proxy/core/options.js'
import { OPTION_LIMITS } from '../../../proxy/core/resolve-options.js'
import type { DefectCode } from '../../../validators/defects.js'
import { ResponseParser } from '../../../validators/response-parser.js'
import { RESPONSE_CASES, caseBytes, type ResponseCase } from '../../helpers/corpus-cases.js'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'
import { CLOSE_WITHOUT_A_BYTE, NEVER_ANSWER, RESET_WITHOUT_A_BYTE, closedPort, reply, type AfterPieces, type Reply } from '../../helpers/raw-backend.js'
import { byteByByte, splitAtEveryBoundary, wholeRead, type Chunking } from '../../helpers/split.js'

// clb-behavior.md §1.3, byte for byte.
const BAD_GATEWAY = 'HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'
const GATEWAY_TIMEOUT = 'HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'
const SERVICE_UNAVAILABLE = 'HTTP/1.1 503 Service Unavailable: Back-end server is at capacity\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'

const OK_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

function request (method = 'GET'): string {
  return `${method} /verdict HTTP/1.1\r\nHost: example.test\r\nUser-Agent: verdict-test\r\n\r\n`
}

/** The request as the instance must receive it (CLB-XFF: X-Forwarded-For/-Proto/-Port added). */
function forwarded (f: ProxyFixture, method = 'GET'): string {
  return `${method} /verdict HTTP/1.1\r\nHost: example.test\r\nUser-Agent: verdict-test\r\n` +
    `X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ${f.port}\r\n\r\n`
}

/**
 * The access-log line, written out: `middle` is backend:port through sent_bytes. The frozen clock
 * makes every timing 0 and the timestamp FIXED_TIMESTAMP.
 */
function logLine (f: ProxyFixture, clientPort: number, middle: string, method = 'GET'): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} ${middle} "${method} http://example.test:${f.port}/verdict HTTP/1.1" "verdict-test" - -`
}

interface VerdictCase {
  readonly name: string
  readonly bytes: Buffer
  readonly then: AfterPieces
  /** What the client must receive, exactly. */
  readonly client: string
  /** The access-log line from backend:port through sent_bytes. */
  readonly logMiddle: (f: ProxyFixture) => string
  readonly primary: DefectCode | null
  readonly closedByProxy: boolean
  /** The backend connection goes back to the pool (the next delivery reuses it). */
  readonly pooled: boolean
}

function corpusCase (name: string): ResponseCase {
  const found = RESPONSE_CASES.find((c) => c.name === name)
  if (found === undefined) throw new Error(`no corpus case ${name}`)
  return found
}

function thenOf (c: ResponseCase): AfterPieces {
  if (!c.endsWithClose) return 'keep-open'
  return c.endsWithReset === true ? 'rst' : 'fin'
}

/** The case runs end to end: its maxHeadBytes (if any) is one the proxy accepts (OPTION_LIMITS). */
function socketRunnable (c: ResponseCase): boolean {
  return c.maxHeadBytes === undefined || c.maxHeadBytes >= OPTION_LIMITS.maxHeadBytes.min
}

/** Cases grouped by the maxHeadBytes the proxy must run with (one fixture per group). */
function byMaxHeadBytes (cases: readonly ResponseCase[]): Map<number | undefined, ResponseCase[]> {
  const groups = new Map<number | undefined, ResponseCase[]>()
  for (const c of cases) groups.set(c.maxHeadBytes, [...(groups.get(c.maxHeadBytes) ?? []), c])
  return groups
}

/** Where a relayed response ends, as the parser frames it (test/validators/response-parser.test.ts pins the parser on every case). */
function relayedExtent (c: ResponseCase): { readonly messageEnd: number; readonly headEnd: number } {
  const parser = new ResponseParser({ requestMethod: c.requestMethod ?? 'GET', maxHeadBytes: c.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes })
  parser.push(caseBytes(c))
  if (c.endsWithClose) parser.finish()
  if (parser.state !== 'complete' || parser.head === null) throw new Error(`${c.name} says relayed, but is not a complete response`)
  return { messageEnd: parser.messageEnd, headEnd: parser.head.end }
}

/** What the client must receive for a corpus case: its `client` field (test/fixtures/README.md). */
function clientBytesOf (c: ResponseCase): string {
  if (c.client === 'elb-502') return BAD_GATEWAY
  if (c.client === 'elb-504') return GATEWAY_TIMEOUT
  // 'relayed': the backend's bytes up to the end of the framed message.
  return caseBytes(c).toString('latin1', 0, relayedExtent(c).messageEnd)
}

/**
 * The access-log line from backend:port through sent_bytes for a corpus case. The status pair is
 * the case's `log` field; the rest follows from who answered (docs/access-log.md): CLB's 504 for an
 * instance that sent nothing has no backend:port and -1 timings; CLB's 502 keeps backend:port (the
 * instance was reached); a relayed response counts its body bytes (CLB-LOGS sent_bytes).
 */
function logMiddleOf (f: ProxyFixture, c: ResponseCase): string {
  if (c.client === 'elb-504') return `- -1 -1 -1 ${c.log} 0 0`
  if (c.client === 'elb-502') return `${f.backendField} 0 0 0 ${c.log} 0 0`
  const { messageEnd, headEnd } = relayedExtent(c)
  return `${f.backendField} 0 0 0 ${c.log} 0 ${messageEnd - headEnd}`
}

/** The `elb_status_code backend_status_code` pair of an access-log line (fields 8 and 9, CLB-LOGS). */
function statusPair (line: string | undefined): string | undefined {
  return line?.split(' ').slice(7, 9).join(' ')
}

/** A corpus case CLB answers with its own 502. */
function rejected (name: string): VerdictCase {
  const c = corpusCase(name)
  if (c.expectedVerdict !== 'reject' || c.expectedPrimary === undefined || c.client !== 'elb-502') throw new Error(`${name} is not a rejection with CLB's 502`)
  return {
    name,
    bytes: caseBytes(c),
    then: thenOf(c),
    client: clientBytesOf(c),
    // docs/access-log.md: a 502 keeps backend:port (the instance was reached); the pair is the case's `log` ("502 -").
    logMiddle: (f) => logMiddleOf(f, c),
    primary: c.expectedPrimary.code,
    closedByProxy: false,
    pooled: false
  }
}

/** A response relayed unchanged. */
function relayed (name: string, bytes: Buffer, then: AfterPieces, logMiddle: (f: ProxyFixture) => string, pooled: boolean): VerdictCase {
  return { name, bytes, then, client: bytes.toString('latin1'), logMiddle, primary: null, closedByProxy: !pooled, pooled }
}

/** Every delivery of `bytes`: whole, split at each head boundary, byte by byte (split rule above). */
function deliveries (bytes: Buffer, then: AfterPieces, requestMethod = 'GET', maxHeadBytes = 64 * 1024): Chunking[] {
  if (bytes.length === 0) return [wholeRead(bytes)]
  // The framing offsets come from a whole read (test/validators/response-parser.test.ts pins them per case).
  const parser = new ResponseParser({ requestMethod, maxHeadBytes })
  parser.push(bytes)
  if (then !== 'keep-open') parser.finish()
  const messageEnd = parser.state === 'complete' ? parser.messageEnd : -1
  const headLength = parser.head?.end ?? bytes.length
  return [wholeRead(bytes), ...splitAtEveryBoundary(bytes, headLength, messageEnd), byteByByte(bytes, messageEnd)]
}

/** A fixture whose backend answers each request with the next reply the test queued. */
async function scriptedFixture (t: Test, proxy: ClbProxyOptions = {}): Promise<{ f: ProxyFixture; queue: Reply[] }> {
  // The verdicts must not depend on how slowly a busy machine delivers the pieces: a hold longer
  // than any run keeps every piece within it (the streaming rule has tests of its own,
  // test/proxy/data-path/proxy-streaming.test.ts).
  const f = await startProxyFixture(t, { proxy: { responseHoldMs: 10000, ...proxy } })
  return { f, queue: f.replies }
}

/** Runs every delivery of every case through one proxy and compares each with what it must be. */
async function runRow (t: Test, cases: readonly VerdictCase[]): Promise<void> {
  const { f, queue } = await scriptedFixture(t)
  // A relayed, reusable response leaves its backend connection in the pool for the next delivery
  // (ELB-HOW: "Classic Load Balancers use pre-open connections"); any other exchange closes it.
  let pooledConnection = false
  for (const c of cases) {
    const observed: unknown[] = []
    const expected: unknown[] = []
    const chunkings = deliveries(c.bytes, c.then)
    for (const chunking of chunkings) {
      queue.push({ pieces: chunking.pieces, then: c.then })
      const acceptedBefore = f.backend.accepted
      const requestsBefore = f.backend.requests.length
      const linesBefore = f.logLines.length
      const response = await f.request(request())
      // Pieces left over after the verdict end with their connection; wait for that before the next delivery.
      await f.backend.settled()
      observed.push({
        delivery: chunking.label,
        client: response.bytes.toString('latin1'),
        closedByProxy: response.closedByProxy,
        log: f.logLines.slice(linesBefore),
        primary: response.records[0]?.primaryDefect?.code ?? null,
        newBackendConnections: f.backend.accepted - acceptedBefore,
        backendReceived: f.backend.requests.slice(requestsBefore).map((r) => r.bytes.toString('latin1'))
      })
      expected.push({
        delivery: chunking.label,
        client: c.client,
        closedByProxy: c.closedByProxy,
        log: [logLine(f, response.clientPort, c.logMiddle(f))],
        primary: c.primary,
        newBackendConnections: pooledConnection ? 0 : 1,
        backendReceived: [forwarded(f)]
      })
      pooledConnection = c.pooled
    }
    t.strictSame(observed, expected, `${c.name}: ${chunkings.length} deliveries (whole, split at each head boundary, byte by byte)`)
  }
  if (cases.some((c) => c.client === BAD_GATEWAY)) await secondRequestAfter502(t, f, queue, cases[0] as VerdictCase)
  t.equal(queue.length, 0, 'every queued reply was used')
  await f.close(t)
}

/** The 502 says `Connection: keep-alive`, and the proxy keeps the client connection: a second request on it works. */
async function secondRequestAfter502 (t: Test, f: ProxyFixture, queue: Reply[], c: VerdictCase): Promise<void> {
  queue.push({ pieces: [c.bytes], then: c.then }, reply([OK_RESPONSE]))
  const client = await f.connect()
  client.write(request())
  const first = await client.response()
  await f.backend.settled()
  client.write(request())
  const second = await client.response()
  t.strictSame(
    [first.bytes.toString('latin1'), first.closedByProxy, second.bytes.toString('latin1'), second.closedByProxy],
    [BAD_GATEWAY, false, OK_RESPONSE, false],
    `${c.name}: after the 502 the same client connection carries another request`)
  t.strictSame(f.logLines.slice(-2), [
    logLine(f, client.port, c.logMiddle(f)),
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 2`)
  ], 'both exchanges logged, on the same client port')
  client.end()
  await client.whenClosed()
}

t.test('a blank line inside the head, with header lines after it -> 502 (KC-502 cause 1)', async (t) => {
  await runRow(t, [rejected('blank-line-content-length-before'), rejected('blank-line-content-length-after')])
})

t.test('Content-Length that is not an integer, or overflows -> 502 (KC-502 cause 2)', async (t) => {
  await runRow(t, ['content-length-abc', 'content-length-5x', 'content-length-minus-5', 'content-length-empty', 'content-length-overflow'].map(rejected))
})

t.test('more body bytes than Content-Length in the read that completes it -> 502 (KC-502 cause 3)', async (t) => {
  await runRow(t, [rejected('body-exceeds-content-length')])
})

t.test('responses that cannot be framed or parsed -> 502', async (t) => {
  await runRow(t, [
    'content-length-twice-different',
    'status-code-four-digits',
    'not-http',
    'random-bytes',
    'bare-cr-in-header',
    'line-without-colon',
    'headers-cut'
  ].map(rejected))
})

t.test('the instance closes without a byte (FIN or RST) -> 504, logged - -1 -1 -1 504 0 (CLB-HTTPERR 504 cause 2)', async (t) => {
  const { f, queue } = await scriptedFixture(t)
  for (const [label, script] of [['FIN', CLOSE_WITHOUT_A_BYTE], ['RST', RESET_WITHOUT_A_BYTE]] as const) {
    queue.push(script)
    const acceptedBefore = f.backend.accepted
    const response = await f.request(request())
    await f.backend.settled()
    t.strictSame({
      client: response.bytes.toString('latin1'),
      closedByProxy: response.closedByProxy,
      outcome: response.records[0]?.outcome,
      primary: response.records[0]?.primaryDefect?.code,
      log: f.logLines.at(-1),
      newBackendConnections: f.backend.accepted - acceptedBefore,
      backendReceived: f.backend.requests.at(-1)?.bytes.toString('latin1')
    }, {
      client: GATEWAY_TIMEOUT,
      closedByProxy: false,
      outcome: 'backend-closed',
      primary: 'EMPTY_RESPONSE',
      log: logLine(f, response.clientPort, '- -1 -1 -1 504 0 0 0'),
      newBackendConnections: 1,
      backendReceived: forwarded(f)
    }, `${label} with zero bytes`)
  }
  await f.close(t)
})

t.test('no response before the idle timeout -> 504, logged - -1 -1 -1 504 0 (CLB-HTTPERR 504 cause 1)', async (t) => {
  // idleTimeoutSeconds 1 (CLB's minimum): the wait is the proxy's own timer, ended by the exchange event.
  const { f, queue } = await scriptedFixture(t, { idleTimeoutSeconds: 1 })
  queue.push(NEVER_ANSWER)
  const response = await f.request(request())
  t.strictSame({
    client: response.bytes.toString('latin1'),
    closedByProxy: response.closedByProxy,
    outcome: response.records[0]?.outcome,
    log: f.logLines,
    backendConnections: f.backend.accepted,
    backendReceived: f.backend.requests.map((r) => r.bytes.toString('latin1'))
  }, {
    client: GATEWAY_TIMEOUT,
    closedByProxy: false,
    outcome: 'backend-timeout',
    log: [logLine(f, response.clientPort, '- -1 -1 -1 504 0 0 0')],
    backendConnections: 1,
    backendReceived: [forwarded(f)]
  })
  await f.close(t)
})

t.test('connection refused -> 503, logged - -1 -1 -1 503 0 (CLB-HTTPERR 503: no healthy instance)', async (t) => {
  const port = await closedPort()
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [{ host: '127.0.0.1', port }] } })
  const first = await f.request(request())
  const client = await f.connect()
  client.write(request())
  const kept = await client.response()
  // 503 says Connection: keep-alive: the same client connection takes another request.
  client.write(request())
  const again = await client.response()
  client.end()
  await client.whenClosed()
  t.strictSame({
    responses: [first, kept, again].map((r) => [r.bytes.toString('latin1'), r.closedByProxy, r.records[0]?.outcome]),
    log: f.logLines
  }, {
    responses: [
      [SERVICE_UNAVAILABLE, false, 'backend-unreachable'],
      [SERVICE_UNAVAILABLE, false, 'backend-unreachable'],
      [SERVICE_UNAVAILABLE, false, 'backend-unreachable']
    ],
    log: [
      logLine(f, first.clientPort, '- -1 -1 -1 503 0 0 0'),
      logLine(f, client.port, '- -1 -1 -1 503 0 0 0'),
      logLine(f, client.port, '- -1 -1 -1 503 0 0 0')
    ]
  })
  await f.close(t)
})

t.test('valid responses and the backend\'s own 502 are relayed byte for byte, logged with both status codes', async (t) => {
  const okContentLength = corpusCase('ok-content-length')
  const okChunked = corpusCase('ok-chunked-extensions-trailers')
  const okUntilClose = corpusCase('ok-until-close')
  await runRow(t, [
    // CLB-LOGS: sent_bytes "includes the response body but not the headers".
    relayed(okContentLength.name, caseBytes(okContentLength), 'keep-open', (f) => `${f.backendField} 0 0 0 200 200 0 5`, true),
    // The chunked body as framed on the wire: 64 bytes after the 47-byte head.
    relayed(okChunked.name, caseBytes(okChunked), 'keep-open', (f) => `${f.backendField} 0 0 0 200 200 0 64`, true),
    // Delimited by the close (RFC 9112 section 6.3 rule 8): the client connection ends with it.
    relayed(okUntilClose.name, caseBytes(okUntilClose), 'fin', (f) => `${f.backendField} 0 0 0 200 200 0 5`, false),
    // KC-502: a backend-generated 502 is logged with the backend's status, `502 502`.
    relayed('backend-own-502', Buffer.from('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nupstream ok', 'latin1'), 'keep-open',
      (f) => `${f.backendField} 0 0 0 502 502 0 11`, true)
  ])
})

t.test('every case of the response table, whole, through real sockets: the client bytes and log pair its data names', async (t) => {
  // maxHeadBytes below the proxy's own minimum (OPTION_LIMITS) cannot be reproduced end to end.
  const runnable = RESPONSE_CASES.filter(socketRunnable)
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const [maxHeadBytes, cases] of byMaxHeadBytes(runnable)) {
    const { f, queue } = await scriptedFixture(t, maxHeadBytes === undefined ? {} : { maxHeadBytes })
    for (const c of cases) {
      const bytes = caseBytes(c)
      const method = c.requestMethod ?? 'GET'
      const exchanged = f.waitForExchanges(f.records.length + 1)
      const laterRead = c.laterRead === undefined ? null : Buffer.from(c.laterRead, 'latin1')
      const idleEvent = laterRead === null ? null : once(f.proxy.events, 'backend-idle-event')
      // `laterRead` goes out only after the proxy answered: it reaches a pooled, idle connection.
      queue.push({ pieces: laterRead === null ? [bytes] : [bytes, exchanged, laterRead], then: thenOf(c) })
      const response = await f.request(request(method))
      const idle = idleEvent === null ? null : (await idleEvent)[0]
      await f.backend.settled()
      const line = f.logLines.at(-1)
      observed.push({ name: c.name, client: response.bytes.toString('latin1'), log: line, logPair: statusPair(line), idle: idle === null ? null : idle.event })
      expected.push({ name: c.name, client: clientBytesOf(c), log: logLine(f, response.clientPort, logMiddleOf(f, c), method), logPair: c.log, idle: laterRead === null ? null : 'extra-bytes' })
    }
    t.equal(queue.length, 0, `maxHeadBytes ${maxHeadBytes ?? 'default'}: every queued reply was used`)
    await f.close(t)
  }
  t.strictSame(observed, expected, `${runnable.length} of ${RESPONSE_CASES.length} cases`)
})

t.test('every case of the response table through real sockets, whole, split at each head boundary and byte by byte: the same client bytes, log line and deciding defect', async (t) => {
  // style.md lesson 10. A case with `laterRead` is left out: its later read comes after the
  // exchange, so it belongs to no delivery (the test above runs it). The full list of defects is
  // not compared here: the proxy stops reading at the first rejecting defect, so what it found
  // after that depends on the reads (test/validators/response-parser.test.ts pins the list on whole input).
  const runnable = RESPONSE_CASES.filter((c) => socketRunnable(c) && c.laterRead === undefined)
  for (const [maxHeadBytes, cases] of byMaxHeadBytes(runnable)) {
    const { f, queue } = await scriptedFixture(t, maxHeadBytes === undefined ? {} : { maxHeadBytes })
    for (const c of cases) {
      const method = c.requestMethod ?? 'GET'
      const chunkings = deliveries(caseBytes(c), thenOf(c), method, maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes)
      const observed: unknown[] = []
      const expected: unknown[] = []
      for (const chunking of chunkings) {
        queue.push({ pieces: chunking.pieces, then: thenOf(c) })
        const response = await f.request(request(method))
        await f.backend.settled()
        const line = f.logLines.at(-1)
        observed.push({
          delivery: chunking.label,
          client: response.bytes.toString('latin1'),
          logPair: statusPair(line),
          log: line,
          primary: response.records[0]?.primaryDefect?.code ?? null
        })
        expected.push({
          delivery: chunking.label,
          client: clientBytesOf(c),
          logPair: c.log,
          log: logLine(f, response.clientPort, logMiddleOf(f, c), method),
          // CLB's 504 for an instance that sent nothing names EMPTY_RESPONSE (proxy/core/events.ts).
          primary: c.client === 'relayed' ? null : c.expectedPrimary?.code ?? null
        })
      }
      t.strictSame(observed, expected, `${c.name}: ${chunkings.length} deliveries (whole, split at each head boundary, byte by byte)`)
    }
    t.equal(queue.length, 0, `maxHeadBytes ${maxHeadBytes ?? 'default'}: every queued reply was used`)
    await f.close(t)
  }
})
