import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import { DEFECTS, DEFECT_CODES, defectAction, type DefectCode } from '../../validators/defects.js'
import { MAX_METHOD_LENGTH, RequestParser, type RequestFraming, type RequestLimits, type RequestParserState } from '../../validators/request-parser.js'
import { cutAt, everyByteAlone, splitAtEveryBoundary, wholeRead } from '../helpers/split.js'
import { feedStream, type RequestOutcome } from '../helpers/request-stream.js'

/** One request as the client connection sees it: everything that must not depend on the reads. */

interface RequestCase {
  readonly name: string
  readonly bytes: string
  readonly maxHeadBytes?: number
  /** The first request of the stream. */
  readonly expected: {
    readonly state: RequestParserState
    /** `CODE@offset`, in the order found. */
    readonly defects: readonly string[]
    /** Absent for an invalid request (see RequestOutcome.consumed). */
    readonly consumed?: number
    readonly method?: string
    readonly target?: string
    readonly version?: string
    readonly framing?: RequestFraming
    readonly end?: number
    readonly bodyBytes?: number
    readonly closeAfter?: boolean
    readonly contentLengthIgnored?: boolean
    readonly fields?: ReadonlyArray<readonly [string, string]>
  }
  /** Targets of the requests that follow in the same stream (pipelining); an invalid one as `invalid: CODE`. */
  readonly pipelinedTargets?: readonly string[]
  readonly rule: string
}

const CHUNKED_POST = 'POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n' // 53 bytes

const REQUEST_CASES: readonly RequestCase[] = [
  // --- Request line (RFC 9112 §3: request-line = method SP request-target SP HTTP-version) ---
  {
    name: 'simple-get',
    bytes: 'GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 47, method: 'GET', target: '/index.html', version: 'HTTP/1.1', framing: { kind: 'none' }, end: 47, bodyBytes: 0, closeAfter: false, fields: [['Host', 'example.com']] },
    rule: 'RFC 9112 §3'
  },
  {
    name: 'leading-empty-lines-ignored',
    bytes: '\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 32, method: 'GET', target: '/', end: 32 },
    rule: 'RFC 9112 §2.2: a server "SHOULD ignore at least one empty line (CRLF) received prior to the request-line"'
  },
  {
    name: 'five-leading-empty-lines',
    bytes: '\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@8'] },
    rule: 'RFC 9112 §2.2 asks to ignore "at least one" empty line; four are ignored, a fifth is a bad request line'
  },
  {
    name: 'method-of-127-characters',
    bytes: 'A'.repeat(MAX_METHOD_LENGTH) + ' / HTTP/1.1\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 142, method: 'A'.repeat(127) },
    rule: 'CLB-HTTPERR 405: "The length of the method in the request header exceeds 127 characters"; 127 is allowed'
  },
  {
    name: 'method-of-128-characters',
    bytes: 'A'.repeat(MAX_METHOD_LENGTH + 1) + ' / HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_METHOD_TOO_LONG@127'] },
    rule: 'CLB-HTTPERR 405: "The length of the method in the request header exceeds 127 characters"'
  },
  {
    name: 'connect',
    bytes: 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_CONNECT@0'] },
    rule: 'CLB-HTTPERR 400: CONNECT is not supported'
  },
  {
    name: 'space-in-target',
    bytes: 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@6'] },
    rule: 'CLB-HTTPERR 400: "a request can\'t have spaces in the URL"'
  },
  {
    name: 'control-byte-in-target',
    bytes: 'GET /a\x01b HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@6'] },
    rule: 'RFC 9112 §3.2: request-target has no CTL'
  },
  {
    name: 'empty-target',
    bytes: 'GET  HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@4'] },
    rule: 'RFC 9112 §3: request-target is not empty'
  },
  {
    name: 'no-version',
    bytes: 'GET /\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@3'] },
    rule: 'RFC 9112 §3: request-line = method SP request-target SP HTTP-version'
  },
  {
    name: 'version-http-2.0',
    bytes: 'GET / HTTP/2.0\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@6'] },
    rule: 'RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, and an HTTP/1 connection carries HTTP/1.x'
  },
  {
    name: 'version-lower-case',
    bytes: 'GET / http/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@6'] },
    rule: 'RFC 9112 §2.3: HTTP-name = %s"HTTP" (case-sensitive)'
  },
  {
    name: 'version-http-1.2-read-as-1.1',
    bytes: 'GET / HTTP/1.2\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 18, version: 'HTTP/1.1' },
    rule: 'RFC 9110 §2.5: a higher minor version is processed as the highest minor version the recipient implements'
  },
  {
    name: 'not-a-request-line',
    bytes: 'HELLO\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@0'] },
    rule: 'RFC 9112 §3'
  },
  {
    name: 'method-not-a-token',
    bytes: 'G(T / HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@1'] },
    rule: 'RFC 9110 §9.1: method = token; CLB-HTTPERR 400: "the method field in the request is malformed"'
  },
  {
    name: 'request-line-starts-with-space',
    bytes: ' GET / HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_INVALID@0'] },
    rule: 'RFC 9112 §3'
  },

  // --- Header lines (RFC 9112 §5) ---
  {
    name: 'header-without-colon',
    bytes: 'GET / HTTP/1.1\r\nNoColon\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_INVALID@16'] },
    rule: 'RFC 9112 §5: field-line = field-name ":" OWS field-value OWS'
  },
  {
    name: 'header-space-before-colon',
    bytes: 'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_INVALID@20'] },
    rule: 'RFC 9112 §5.1: "A server MUST reject, with a response status code of 400 (Bad Request), any received request message that contains whitespace between a header field name and colon"'
  },
  {
    name: 'header-nul',
    bytes: 'GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_INVALID@22'] },
    rule: 'CLB-DESYNC: NUL in a header is Severe (400)'
  },
  {
    name: 'header-bare-cr',
    bytes: 'GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_INVALID@22'] },
    rule: 'CLB-DESYNC: a bare CR in a header is Severe (400); RFC 9112 §2.2'
  },
  {
    name: 'obs-fold-unfolded',
    bytes: 'GET / HTTP/1.1\r\nX-A: a\r\n b\r\nHost: h\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 39, fields: [['X-A', 'a b'], ['Host', 'h']] },
    rule: 'RFC 9112 §5.2: a proxy MUST replace each obs-fold with one or more SP before forwarding'
  },
  {
    name: 'whitespace-line-before-first-header',
    bytes: 'GET / HTTP/1.1\r\n X-A: b\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_INVALID@16'] },
    rule: 'RFC 9112 §2.2: whitespace between the start-line and the first header field: "reject the message as invalid"'
  },
  {
    name: 'head-too-large',
    bytes: 'GET / HTTP/1.1\r\nX-Big: ' + 'a'.repeat(100) + '\r\nHost: h\r\n\r\n',
    maxHeadBytes: 64,
    expected: { state: 'invalid', defects: ['REQUEST_HEAD_TOO_LARGE@64'] },
    rule: 'our choice (docs/clb-choices.md): the head fails at its byte number maxHeadBytes'
  },

  // --- Framing (RFC 9112 §6.3) ---
  {
    name: 'content-length-body',
    bytes: 'POST /submit HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello',
    expected: { state: 'complete', defects: [], consumed: 49, framing: { kind: 'content-length', length: 5 }, end: 44, bodyBytes: 5 },
    rule: 'RFC 9112 §6.3 rule 6'
  },
  {
    name: 'content-length-zero',
    bytes: 'POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 38, framing: { kind: 'none' }, bodyBytes: 0 },
    rule: 'RFC 9112 §6.3 rule 6 (a zero length: the request ends with its head)'
  },
  {
    name: 'content-length-not-integer',
    bytes: 'POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\nhello',
    expected: { state: 'invalid', defects: ['REQUEST_CL_INVALID@34'] },
    rule: 'RFC 9112 §6.3 rule 5: an invalid Content-Length in a request: "the server MUST respond with a 400 (Bad Request)"'
  },
  {
    name: 'content-length-twice-different',
    bytes: 'POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    expected: { state: 'invalid', defects: ['REQUEST_CL_INVALID@52'] },
    rule: 'RFC 9112 §6.3 rule 5; CLB-DESYNC: multiple Content-Length is Severe'
  },
  {
    name: 'content-length-list',
    bytes: 'POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello',
    expected: { state: 'invalid', defects: ['REQUEST_CL_INVALID@34'] },
    rule: 'CLB-DESYNC (HDG BadContentLength): a Content-Length that is a list, not one integer, is Severe; the offset is the comma'
  },
  {
    name: 'content-length-twice-same',
    bytes: 'POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
    expected: { state: 'complete', defects: [], consumed: 62, framing: { kind: 'content-length', length: 5 } },
    rule: 'RFC 9110 §8.6: identical values MAY be replaced by one'
  },
  {
    name: 'chunked-body-with-extension-and-trailer',
    bytes: CHUNKED_POST + '5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 88, framing: { kind: 'chunked' }, end: 53, bodyBytes: 35 },
    rule: 'RFC 9112 §7.1'
  },
  {
    name: 'chunk-size-invalid',
    bytes: CHUNKED_POST + 'zz\r\nhello\r\n0\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_CHUNK_INVALID@53'] },
    rule: 'RFC 9112 §7.1: chunk-size = 1*HEXDIG'
  },
  {
    name: 'transfer-encoding-gzip',
    bytes: 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_TE_INVALID@36'] },
    rule: 'RFC 9112 §6.3 rule 4: a request whose final coding is not chunked: "the server MUST respond with the 400 (Bad Request) status code and then close the connection"'
  },
  {
    name: 'transfer-encoding-chunked-twice',
    bytes: 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_TE_INVALID@36'] },
    rule: 'RFC 9112 §6.1: "A sender MUST NOT apply the chunked transfer coding more than once"'
  },
  {
    name: 'transfer-encoding-and-content-length',
    bytes: 'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 71, framing: { kind: 'chunked' }, contentLengthIgnored: true, closeAfter: true },
    rule: 'RFC 9112 §6.3 rule 3: Transfer-Encoding overrides Content-Length; an intermediary forwarding it "MUST close the connection after responding"; CLB-DESYNC: Ambiguous, allowed in defensive mode'
  },

  // --- Connection persistence (RFC 9112 §9.3) ---
  {
    name: 'connection-close',
    bytes: 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 37, closeAfter: true },
    rule: 'RFC 9112 §9.6: the "close" connection option'
  },
  {
    name: 'http-1.0-closes-by-default',
    bytes: 'GET / HTTP/1.0\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 18, version: 'HTTP/1.0', closeAfter: true },
    rule: 'RFC 9112 §9.3: HTTP/1.0 persists only with keep-alive'
  },
  {
    name: 'http-1.0-keep-alive',
    bytes: 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 42, version: 'HTTP/1.0', closeAfter: false },
    rule: 'RFC 9112 §9.3 (keep-alive, RFC 2068 §19.7.1)'
  },

  // --- Pipelining: consumed < read length leaves the next request (ELB-HOW: pipelining on front-end connections) ---
  {
    name: 'pipelined-gets',
    bytes: 'GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 19, target: '/a' },
    pipelinedTargets: ['/b', '/c'],
    rule: 'RFC 9112 §9.3.2: a server MAY process pipelined requests in sequence'
  },
  {
    name: 'pipelined-after-content-length-body',
    bytes: 'POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 44, target: '/a', bodyBytes: 5 },
    pipelinedTargets: ['/b'],
    rule: 'RFC 9112 §6.3 rule 6: the body ends at Content-Length; the next byte starts the next request'
  },
  {
    name: 'pipelined-after-chunked-body',
    bytes: CHUNKED_POST + '3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 66, target: '/upload', bodyBytes: 13 },
    pipelinedTargets: ['/b'],
    rule: 'RFC 9112 §7.1: the chunked body ends with the last chunk and the trailer section'
  },
  {
    name: 'pipelined-then-invalid',
    bytes: 'GET /a HTTP/1.1\r\n\r\nCONNECT x:1 HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n',
    expected: { state: 'complete', defects: [], consumed: 19, target: '/a' },
    pipelinedTargets: ['invalid: REQUEST_CONNECT'],
    rule: 'CLB-HTTPERR 400 for CONNECT; the requests before it are unaffected'
  }
]

t.test('each request case read in one piece', async (t) => {
  for (const c of REQUEST_CASES) {
    const outcomes = feedStream(wholeRead(Buffer.from(c.bytes, 'latin1')), c.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes)
    const first = outcomes[0] as RequestOutcome
    const { expected } = c
    t.equal(first.state, expected.state, `${c.name}: state`)
    t.same(first.defects.map((d) => `${d.code}@${d.offset}`), expected.defects, `${c.name}: defects`)
    t.equal(first.consumed, expected.consumed ?? null, `${c.name}: bytes consumed`)
    if (expected.method !== undefined) t.equal(first.head?.method, expected.method, `${c.name}: method`)
    if (expected.target !== undefined) t.equal(first.head?.target ?? first.requestLine?.target, expected.target, `${c.name}: target`)
    if (expected.version !== undefined) t.equal(first.head?.version, expected.version, `${c.name}: version`)
    if (expected.framing !== undefined) t.same(first.head?.framing, expected.framing, `${c.name}: framing`)
    if (expected.end !== undefined) t.equal(first.head?.end, expected.end, `${c.name}: end of head`)
    if (expected.bodyBytes !== undefined) t.equal(first.bodyBytes, expected.bodyBytes, `${c.name}: body bytes`)
    if (expected.closeAfter !== undefined) t.equal(first.head?.closeAfter, expected.closeAfter, `${c.name}: closeAfter`)
    if (expected.contentLengthIgnored !== undefined) t.equal(first.head?.contentLengthIgnored, expected.contentLengthIgnored, `${c.name}: contentLengthIgnored`)
    if (expected.fields !== undefined) t.same(first.head?.fields.map((f) => [f.name, f.value]), expected.fields, `${c.name}: fields`)
    const following = outcomes.slice(1).map((o) => o.state === 'complete' ? o.head?.target : `${o.state}: ${o.defects.map((d) => d.code).join(' ')}`)
    t.same(following, c.pipelinedTargets ?? [], `${c.name}: the requests that follow`)
  }
})

t.test('the request line survives a header failure, for the access log', async (t) => {
  const [outcome] = feedStream(wholeRead(Buffer.from('GET /x HTTP/1.1\r\nNoColon\r\n\r\n', 'latin1')), 1024)
  t.same(outcome?.requestLine, { method: 'GET', target: '/x', version: 'HTTP/1.1' })
})

t.test('the pipelined requests are parsed in full', async (t) => {
  const c = REQUEST_CASES.find((x) => x.name === 'pipelined-then-invalid') as RequestCase
  const outcomes = feedStream(wholeRead(Buffer.from(c.bytes, 'latin1')), 1024)
  t.same(outcomes.map((o) => [o.state, o.defects.map((d) => `${d.code}@${d.offset}`), o.consumed]), [
    ['complete', [], 19],
    // Offsets count from the first byte of each request.
    ['invalid', ['REQUEST_CONNECT@0'], null]
  ], 'the request after CONNECT is never read')
})

t.test('every chunking of a request stream gives the same requests', async (t) => {
  for (const c of REQUEST_CASES) {
    const bytes = Buffer.from(c.bytes, 'latin1')
    const maxHeadBytes = c.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes
    const whole = feedStream(wholeRead(bytes), maxHeadBytes)
    // Unconsumed bytes are handed back to the caller, so no grouping rule is needed: every cut is fair.
    const chunkings = [...splitAtEveryBoundary(bytes, bytes.length), everyByteAlone(bytes)]
    const differ = chunkings.filter((chunking) => !isDeepStrictEqual(feedStream(chunking, maxHeadBytes), whole)).map((chunking) => chunking.label)
    t.same(differ, [], `${c.name}: all ${chunkings.length} chunkings match one read`)
  }
})

t.test('defectCounts counts the request\'s defect, as ResponseParser.defectCounts does', async (t) => {
  const valid = new RequestParser(1024)
  valid.push(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'))
  t.equal(valid.state, 'complete')
  t.strictSame(valid.defectCounts, {})
  const invalid = new RequestParser(1024)
  invalid.push(Buffer.from('GET / HTTP/1.1\r\nNoColon\r\n\r\n', 'latin1'))
  t.strictSame(invalid.defects.map((d) => d.code), ['REQUEST_HEADER_INVALID'])
  t.strictSame(invalid.defectCounts, { REQUEST_HEADER_INVALID: 1 }, 'the parser stops at the first defect: one code, once')
})

t.test('a chunked request body with 100,000 bare-LF chunk lines is framed without a defect per line', async (t) => {
  // RFC 9112 section 2.2: a recipient MAY accept a bare LF; the request parser does, silently.
  const bytes = Buffer.from(CHUNKED_POST + '1\nx\r\n'.repeat(100_000) + '0\r\n\r\n', 'latin1')
  const parser = new RequestParser(1024)
  for (let from = 0; from < bytes.length; from += 4096) parser.push(bytes.subarray(from, from + 4096))
  t.equal(parser.state, 'complete')
  t.equal(parser.bodyBytes, bytes.length - CHUNKED_POST.length)
  t.strictSame(parser.defects, [])
  t.strictSame(parser.defectCounts, {})
})

const REQUEST_RUNS = 2000
const REQUEST_PIECE = fc.constantFrom('GET / HTTP/1.1\r\n', 'POST /p HTTP/1.0\r\n', 'Host: h\r\n', 'Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n',
  'Connection: close\r\n', '\r\n', '\n', '\r', ' ', ':', 'abc', '3\r\nabc\r\n', '0\r\n\r\n', ';x=y', '\x00', 'zz', 'A'.repeat(130))

t.test('messy request streams: never a throw, and every chunking gives the same requests', async (t) => {
  let runs = 0
  fc.assert(fc.property(fc.array(REQUEST_PIECE, { maxLength: 16 }), fc.array(fc.nat({ max: 400 }), { maxLength: 10 }), fc.integer({ min: 16, max: 512 }),
    (parts, cuts, maxHeadBytes) => {
      runs++
      const bytes = Buffer.from(parts.join(''), 'latin1')
      const whole = feedStream(wholeRead(bytes), maxHeadBytes)
      const differ = [cutAt(bytes, cuts), everyByteAlone(bytes)].filter((chunking) => !isDeepStrictEqual(feedStream(chunking, maxHeadBytes), whole))
      if (differ.length > 0) throw new Error(`${differ.map((d) => d.label).join('; ')} differ from one read for ${JSON.stringify(bytes.toString('latin1'))}`)
    }), { seed: 0x7e9, numRuns: REQUEST_RUNS })
  t.equal(runs, REQUEST_RUNS)
})

// --- Request limits: maxRequestLineBytes, maxHeaderLineBytes, maxHeaderCount (docs/clb-choices.md) ---

/** Small limits, so that every split of a case into 2 and 3 reads can be tried. */
const SMALL_LIMITS: RequestLimits = Object.freeze({ maxHeadBytes: 1024, maxRequestLineBytes: 32, maxHeaderLineBytes: 24, maxHeaderCount: 3 })
const DEFAULT_LIMITS: RequestLimits = Object.freeze({
  maxHeadBytes: CLB_DEFAULTS.maxHeadBytes,
  maxRequestLineBytes: CLB_DEFAULTS.maxRequestLineBytes,
  maxHeaderLineBytes: CLB_DEFAULTS.maxHeaderLineBytes,
  maxHeaderCount: CLB_DEFAULTS.maxHeaderCount
})

/** A request line of exactly `length` bytes, CRLF excluded. */
function requestLineOf (length: number): string {
  return `GET /${'a'.repeat(length - 14)} HTTP/1.1`
}

/** A header field line of exactly `length` bytes, CRLF excluded. */
function fieldLineOf (length: number, name = 'X-A'): string {
  return `${name}: ${'b'.repeat(length - name.length - 2)}`
}

const LINE_20 = requestLineOf(20) + '\r\n' // the head's first 22 bytes

interface LimitCase {
  readonly name: string
  readonly bytes: string
  /** SMALL_LIMITS, with these changed. */
  readonly limits?: Partial<RequestLimits>
  readonly expected: LimitVerdict
  readonly rule: string
}

/** One request's head as the parser judged it: what must not depend on the reads. */
interface LimitVerdict {
  readonly state: RequestParserState
  /** `CODE@offset`. */
  readonly defects: readonly string[]
  /** Where the head ended (null: it did not). */
  readonly end?: number | null
  readonly fields?: ReadonlyArray<readonly [string, string]> | null
}

const LIMIT_CASES: readonly LimitCase[] = [
  // --- maxRequestLineBytes: the request line, CRLF excluded (RFC 9112 section 3) ---
  {
    name: 'request-line-at-the-limit',
    bytes: requestLineOf(32) + '\r\nHost: h\r\n\r\n',
    expected: { state: 'complete', defects: [], end: 45, fields: [['Host', 'h']] },
    rule: 'maxRequestLineBytes: a request line of exactly the limit passes'
  },
  {
    name: 'request-line-at-the-limit-bare-lf',
    bytes: requestLineOf(32) + '\n\r\n',
    expected: { state: 'complete', defects: [], end: 35, fields: [] },
    rule: 'RFC 9112 section 2.2: a bare LF ends the line too; it is not part of the line'
  },
  {
    name: 'request-line-one-byte-over',
    bytes: requestLineOf(33) + '\r\nHost: h\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_TOO_LONG@32'], end: null, fields: null },
    rule: 'maxRequestLineBytes: the line fails at its byte number maxRequestLineBytes (from 0)'
  },
  {
    name: 'request-line-cr-past-the-limit-is-not-a-crlf',
    bytes: requestLineOf(32) + '\rX\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_TOO_LONG@32'], end: null, fields: null },
    rule: 'RFC 9112 section 2.2: a CR not followed by LF is part of the line, so the line is 34 bytes long'
  },
  {
    name: 'request-line-after-leading-empty-lines',
    bytes: '\r\n\n' + requestLineOf(33) + '\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_TOO_LONG@35'], end: null, fields: null },
    rule: 'RFC 9112 section 2.2: the empty lines before the request line are not part of it; the offset counts them'
  },
  {
    name: 'request-line-without-crlf',
    bytes: 'GET /' + 'a'.repeat(80),
    expected: { state: 'invalid', defects: ['REQUEST_LINE_TOO_LONG@32'], end: null, fields: null },
    rule: 'maxRequestLineBytes: decided by the byte that crosses the limit, not by a CRLF that may never come'
  },
  {
    name: 'request-line-control-byte-in-a-method-past-the-limit',
    bytes: 'A'.repeat(40) + '\x00 / HTTP/1.1\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_LINE_TOO_LONG@32'], end: null, fields: null },
    rule: 'a method byte past maxRequestLineBytes is never judged: the limit came first, whatever the reads'
  },
  {
    name: 'request-line-too-long-before-the-head',
    bytes: requestLineOf(40) + '\r\n\r\n',
    limits: { maxHeadBytes: 36 },
    expected: { state: 'invalid', defects: ['REQUEST_LINE_TOO_LONG@32'], end: null, fields: null },
    rule: 'the limit crossed at the earliest byte decides'
  },
  {
    name: 'request-line-and-head-crossed-at-the-same-byte',
    bytes: requestLineOf(40) + '\r\n\r\n',
    limits: { maxHeadBytes: 32 },
    expected: { state: 'invalid', defects: ['REQUEST_HEAD_TOO_LARGE@32'], end: null, fields: null },
    rule: 'on a tie the head limit decides (its byte is known to cross it as it arrives, even a CR)'
  },

  // --- maxHeaderLineBytes: a field line, CRLF excluded (RFC 9112 section 5) ---
  {
    name: 'header-line-at-the-limit',
    bytes: LINE_20 + fieldLineOf(24) + '\r\n\r\n',
    expected: { state: 'complete', defects: [], end: 50, fields: [['X-A', 'b'.repeat(19)]] },
    rule: 'maxHeaderLineBytes: a field line of exactly the limit passes'
  },
  {
    name: 'header-line-one-byte-over',
    bytes: LINE_20 + 'Host: h\r\n' + fieldLineOf(25) + '\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_LINE_TOO_LONG@55'], end: null, fields: null },
    rule: 'maxHeaderLineBytes: the line fails at its byte number maxHeaderLineBytes (from 0)'
  },
  {
    name: 'header-line-without-crlf',
    bytes: LINE_20 + fieldLineOf(100),
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_LINE_TOO_LONG@46'], end: null, fields: null },
    rule: 'maxHeaderLineBytes: decided by the byte that crosses the limit, not by a CRLF that may never come'
  },
  {
    name: 'header-line-folded-at-the-limit',
    bytes: LINE_20 + 'X-A: ' + 'b'.repeat(10) + '\r\n ' + 'c'.repeat(6) + '\r\n\r\n',
    expected: { state: 'complete', defects: [], end: 50, fields: [['X-A', 'b'.repeat(10) + ' ' + 'c'.repeat(6)]] },
    rule: 'RFC 9112 section 5.2: obs-fold (OWS CRLF RWS) is part of the field line: 15 + 2 + 7 bytes'
  },
  {
    name: 'header-line-folded-one-byte-over',
    bytes: LINE_20 + 'X-A: ' + 'b'.repeat(10) + '\r\n ' + 'c'.repeat(7) + '\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_LINE_TOO_LONG@46'], end: null, fields: null },
    rule: 'RFC 9112 section 5.2: a continuation counts toward the field line it continues'
  },
  {
    name: 'header-line-folded-crossing-inside-the-fold',
    bytes: LINE_20 + fieldLineOf(23) + '\r\n\tc\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_LINE_TOO_LONG@46'], end: null, fields: null },
    rule: 'RFC 9112 section 5.2: the fold\'s CRLF is part of the field line: its LF is the byte number maxHeaderLineBytes'
  },
  {
    name: 'header-line-continuation-without-a-field',
    bytes: LINE_20 + ' ' + 'c'.repeat(30) + '\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_HEADER_LINE_TOO_LONG@46'], end: null, fields: null },
    rule: 'the line limit is judged before the line\'s syntax (whitespace before the first header, RFC 9112 section 2.2)'
  },

  // --- maxHeaderCount: header fields (RFC 9112 section 5) ---
  {
    name: 'header-count-at-the-limit',
    bytes: LINE_20 + 'A: 1\r\nB: 2\r\nC: 3\r\n\r\n',
    expected: { state: 'complete', defects: [], end: 42, fields: [['A', '1'], ['B', '2'], ['C', '3']] },
    rule: 'maxHeaderCount: exactly the limit passes'
  },
  {
    name: 'header-count-one-over',
    bytes: LINE_20 + 'A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_TOO_MANY_HEADERS@40'], end: null, fields: null },
    rule: 'maxHeaderCount: the field past the limit fails at its first byte'
  },
  {
    name: 'header-count-continuation-is-not-a-field',
    bytes: LINE_20 + 'A: 1\r\nB: 2\r\nC: 3\r\n 4\r\n\r\n',
    expected: { state: 'complete', defects: [], end: 46, fields: [['A', '1'], ['B', '2'], ['C', '3 4']] },
    rule: 'RFC 9112 section 5.2: an obs-fold line continues a field, it is not one'
  },
  {
    name: 'header-count-one-over-starting-with-cr',
    bytes: LINE_20 + 'A: 1\r\nB: 2\r\nC: 3\r\n\rD: 4\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_TOO_MANY_HEADERS@40'], end: null, fields: null },
    rule: 'a line that starts with CR and goes on is a (bad) field line, not the empty line; the count is crossed first'
  },
  {
    name: 'header-count-before-its-line-length',
    bytes: LINE_20 + 'A: 1\r\nB: 2\r\nC: 3\r\n' + fieldLineOf(40) + '\r\n\r\n',
    expected: { state: 'invalid', defects: ['REQUEST_TOO_MANY_HEADERS@40'], end: null, fields: null },
    rule: 'the field past maxHeaderCount fails at its first byte, before its byte number maxHeaderLineBytes'
  },
  {
    name: 'header-count-zero',
    bytes: LINE_20 + 'A: 1\r\n\r\n',
    limits: { maxHeaderCount: 0, maxHeaderLineBytes: 0 },
    expected: { state: 'invalid', defects: ['REQUEST_TOO_MANY_HEADERS@22'], end: null, fields: null },
    rule: 'on a tie the count decides before the line length (it is known from the line\'s first bytes)'
  },
  {
    name: 'header-head-crossed-before-a-line',
    bytes: LINE_20 + 'Host: h\r\n' + fieldLineOf(40) + '\r\n\r\n',
    limits: { maxHeadBytes: 50 },
    expected: { state: 'invalid', defects: ['REQUEST_HEAD_TOO_LARGE@50'], end: null, fields: null },
    rule: 'the limit crossed at the earliest byte decides: the head at 50, before the line at 55'
  }
]

t.test('every request defect code has a case', async (t) => {
  const covered = new Set([...REQUEST_CASES.map((c) => c.expected.defects), ...LIMIT_CASES.map((c) => c.expected.defects)]
    .flatMap((defects) => defects.map((d) => d.split('@')[0] as DefectCode)))
  t.same(DEFECT_CODES.filter((code) => DEFECTS[code].direction === 'request' && !covered.has(code)), [])
  for (const code of covered) t.equal(DEFECTS[code].direction, 'request', `${code} is a request defect`)
})

function limitsOf (c: LimitCase): RequestLimits {
  return { ...SMALL_LIMITS, ...c.limits }
}

/** Feeds the reads to one parser until its request is complete or invalid (the rest would start the next one). */
function limitVerdictOf (pieces: readonly Buffer[], limits: RequestLimits): LimitVerdict {
  const parser = new RequestParser(limits)
  for (const piece of pieces) {
    if (parser.state === 'complete' || parser.state === 'invalid') break
    parser.push(piece)
  }
  return {
    state: parser.state,
    defects: parser.defects.map((d) => `${d.code}@${d.offset}`),
    end: parser.head?.end ?? null,
    fields: parser.head?.fields.map((f) => [f.name, f.value] as const) ?? null
  }
}

/** Every way to cut `bytes` into two reads, and into three. */
function twoAndThreePieces (bytes: Buffer): Buffer[][] {
  const chunkings: Buffer[][] = []
  for (let i = 1; i < bytes.length; i++) {
    chunkings.push([bytes.subarray(0, i), bytes.subarray(i)])
    for (let j = i + 1; j < bytes.length; j++) chunkings.push([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)])
  }
  return chunkings
}

t.test('the limit codes are request defects that every profile rejects (CLB answers 400)', async (t) => {
  const codes: readonly DefectCode[] = ['REQUEST_LINE_TOO_LONG', 'REQUEST_HEADER_LINE_TOO_LONG', 'REQUEST_TOO_MANY_HEADERS']
  t.strictSame(codes.map((code) => [code, DEFECTS[code].direction, DEFECTS[code].source, defectAction(code, 'clb'), defectAction(code, 'strict')]),
    codes.map((code) => [code, 'request', 'our-choice', 'reject', 'reject']))
})

t.test('each limit: exactly at the limit passes, one byte over fails with its code and offset', async (t) => {
  for (const c of LIMIT_CASES) {
    const verdict = limitVerdictOf([Buffer.from(c.bytes, 'latin1')], limitsOf(c))
    t.strictSame(verdict, { end: null, fields: null, ...c.expected }, `${c.name}: ${c.rule}`)
  }
})

t.test('each limit gives the same verdict for every split of the bytes into 2 and 3 reads, and byte by byte', async (t) => {
  for (const c of LIMIT_CASES) {
    const bytes = Buffer.from(c.bytes, 'latin1')
    const whole = limitVerdictOf([bytes], limitsOf(c))
    const chunkings = [...twoAndThreePieces(bytes), everyByteAlone(bytes).pieces]
    const differ = chunkings.filter((pieces) => !isDeepStrictEqual(limitVerdictOf(pieces, limitsOf(c)), whole))
      .map((pieces) => pieces.map((p) => p.length).join('+'))
    t.strictSame(differ.slice(0, 5), [], `${c.name}: all ${chunkings.length} chunkings match one read`)
  }
})

t.test('a request line without a CRLF fails on the read that holds its byte number maxRequestLineBytes', async (t) => {
  const bytes = Buffer.from('GET /' + 'a'.repeat(80), 'latin1')
  const parser = new RequestParser(SMALL_LIMITS)
  parser.push(bytes.subarray(0, 32))
  t.equal(parser.state, 'head', '32 bytes: still within the limit')
  parser.push(bytes.subarray(32, 33))
  t.strictSame(parser.defects.map((d) => `${d.code}@${d.offset}`), ['REQUEST_LINE_TOO_LONG@32'], 'the 33rd byte crosses it')
  t.match(parser.defects[0]?.message, /32 bytes \(maxRequestLineBytes\)/, 'the message names the limit and the option')
})

t.test('a line that holds exactly the limit and then a CR waits for the next byte', async (t) => {
  const line = Buffer.from(fieldLineOf(24) + '\r', 'latin1')
  const ends = [['\n\r\n', 'complete', []], ['x', 'invalid', ['REQUEST_HEADER_LINE_TOO_LONG@46']]] as const
  for (const [next, state, defects] of ends) {
    const parser = new RequestParser(SMALL_LIMITS)
    parser.push(Buffer.from(LINE_20, 'latin1'))
    parser.push(line)
    t.equal(parser.state, 'head', 'the CR may be the line\'s CRLF')
    parser.push(Buffer.from(next, 'latin1'))
    t.strictSame([parser.state, parser.defects.map((d) => `${d.code}@${d.offset}`)], [state, defects], JSON.stringify(next))
  }
})

t.test('the messages name each limit and its option', async (t) => {
  const messageOf = (bytes: string): string => {
    const parser = new RequestParser(SMALL_LIMITS)
    parser.push(Buffer.from(bytes, 'latin1'))
    return parser.defects.map((d) => d.message).join()
  }
  t.strictSame([
    messageOf(requestLineOf(33) + '\r\n\r\n'),
    messageOf(LINE_20 + fieldLineOf(25) + '\r\n\r\n'),
    messageOf(LINE_20 + 'A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n')
  ], [
    'the request line is longer than 32 bytes (maxRequestLineBytes)',
    'a header field line is longer than 24 bytes (maxHeaderLineBytes)',
    'more than 3 header fields (maxHeaderCount)'
  ])
})

t.test('a 10 MiB header line with no CRLF fails on the read that crosses maxHeaderLineBytes, never held whole', async (t) => {
  const MIB = 1024 * 1024
  const head = Buffer.from('GET / HTTP/1.1\r\nX-Huge: ', 'latin1') // the field line starts at 16
  const line = Buffer.alloc(10 * MIB, 0x61)
  const crossing = 16 + CLB_DEFAULTS.maxHeaderLineBytes
  const expected = [`REQUEST_HEADER_LINE_TOO_LONG@${crossing}`]
  // A head limit far above the line: only maxHeaderLineBytes can stop the line.
  const limits = { ...DEFAULT_LIMITS, maxHeadBytes: 64 * MIB }
  for (const readSize of [1, 1024, 64 * 1024]) {
    const parser = new RequestParser(limits)
    parser.push(head)
    for (let from = 0; from < line.length && parser.state === 'head'; from += readSize) parser.push(line.subarray(from, from + readSize))
    t.strictSame(parser.defects.map((d) => `${d.code}@${d.offset}`), expected, `${readSize}-byte reads: the line limit`)
    const readsNeeded = Math.floor((crossing - head.length) / readSize) + 1
    t.equal(parser.bytesReceived, head.length + readsNeeded * readSize, `${readSize}-byte reads: the verdict came with the read that holds byte ${crossing}`)
  }
  const whole = new RequestParser(DEFAULT_LIMITS)
  const result = whole.push(Buffer.concat([head, line]))
  t.strictSame([whole.state, whole.defects.map((d) => `${d.code}@${d.offset}`), result.consumed], ['invalid', expected, head.length + line.length],
    'one 10 MiB read: the same verdict, and the whole read is consumed (the proxy answers and closes)')
})

const LIMITS_ARBITRARY = fc.record({
  maxHeadBytes: fc.integer({ min: 16, max: 512 }),
  maxRequestLineBytes: fc.integer({ min: 0, max: 160 }),
  maxHeaderLineBytes: fc.integer({ min: 0, max: 64 }),
  maxHeaderCount: fc.integer({ min: 0, max: 4 })
})

t.test('messy request heads under small limits: every chunking gives the same verdict', async (t) => {
  let runs = 0
  fc.assert(fc.property(fc.array(REQUEST_PIECE, { maxLength: 16 }), fc.array(fc.nat({ max: 400 }), { maxLength: 10 }), LIMITS_ARBITRARY,
    (parts, cuts, limits) => {
      runs++
      const bytes = Buffer.from(parts.join(''), 'latin1')
      const whole = limitVerdictOf([bytes], limits)
      const differ = [cutAt(bytes, cuts), everyByteAlone(bytes)].filter((chunking) => !isDeepStrictEqual(limitVerdictOf(chunking.pieces, limits), whole))
      if (differ.length > 0) throw new Error(`${differ.map((d) => d.label).join('; ')} differ from one read for ${JSON.stringify(bytes.toString('latin1'))} ${JSON.stringify(limits)}`)
    }), { seed: 0x1137, numRuns: REQUEST_RUNS })
  t.equal(runs, REQUEST_RUNS)
})
