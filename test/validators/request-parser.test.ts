import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import { DEFECTS, DEFECT_CODES, type DefectCode } from '../../validators/defects.js'
import { MAX_METHOD_LENGTH, RequestParser, type RequestFraming, type RequestParserState } from '../../validators/request-parser.js'
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

t.test('every request defect code has a case', async (t) => {
  const covered = new Set(REQUEST_CASES.flatMap((c) => c.expected.defects.map((d) => d.split('@')[0] as DefectCode)))
  t.same(DEFECT_CODES.filter((code) => DEFECTS[code].direction === 'request' && !covered.has(code)), [])
  for (const code of covered) t.equal(DEFECTS[code].direction, 'request', `${code} is a request defect`)
})

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
