import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import { DEFECTS, DEFECT_CODES, type Defect, type DefectCode } from '../../validators/defects.js'
import { MAX_DEFECTS_PER_CODE, ResponseParser, type ResponseHead, type ResponseParserState } from '../../validators/response-parser.js'
import { judge, type ResponseVerdict } from '../../validators/verdict.js'
import { RESPONSE_CASES, caseBytes, type ResponseCase } from '../helpers/corpus-cases.js'
import { byteByByte, cutAt, splitAtEveryBoundary, wholeRead, type Chunking } from '../helpers/split.js'
import { REPO_URL } from '../helpers/repo.js'

/** Everything the parser and judge() say about one response: what must not depend on the chunking. */
interface Outcome {
  readonly state: ResponseParserState
  readonly messageEnd: number
  readonly interimResponses: number
  readonly bytesReceived: number
  readonly head: ResponseHead | null
  readonly defects: readonly Defect[]
  readonly defectCounts: Partial<Record<DefectCode, number>>
  readonly clb: ResponseVerdict
  readonly strict: ResponseVerdict
}

interface FeedOptions {
  readonly requestMethod: string
  readonly maxHeadBytes: number
  readonly endsWithClose: boolean
}

function feed (chunking: Chunking, options: FeedOptions): Outcome {
  const parser = new ResponseParser({ requestMethod: options.requestMethod, maxHeadBytes: options.maxHeadBytes })
  for (const piece of chunking.pieces) parser.push(piece)
  if (options.endsWithClose) parser.finish()
  return {
    state: parser.state,
    messageEnd: parser.messageEnd,
    interimResponses: parser.interimResponses,
    bytesReceived: parser.bytesReceived,
    head: parser.head,
    defects: parser.defects.map((d) => ({ ...d })),
    defectCounts: { ...parser.defectCounts },
    clb: judge(parser.defects, 'clb'),
    strict: judge(parser.defects, 'strict')
  }
}

/** How many times each code occurs in a list. */
function tally (codes: readonly DefectCode[]): Partial<Record<DefectCode, number>> {
  const counts: Partial<Record<DefectCode, number>> = {}
  for (const code of codes) counts[code] = (counts[code] ?? 0) + 1
  return counts
}

function feedOptionsOf (responseCase: ResponseCase): FeedOptions {
  return {
    requestMethod: responseCase.requestMethod ?? 'GET',
    maxHeadBytes: responseCase.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes,
    endsWithClose: responseCase.endsWithClose
  }
}

/**
 * The chunkings every case runs under: two reads at every boundary of the head, and byte by byte.
 * Bytes past the end of the framed message stay with the byte that completes it (test/helpers/split.ts).
 */
function chunkingsOf (bytes: Buffer, whole: Outcome): Chunking[] {
  const headLength = whole.head?.end ?? bytes.length
  return [...splitAtEveryBoundary(bytes, headLength, whole.messageEnd), byteByByte(bytes, whole.messageEnd)]
}

/** Labels of the chunkings whose outcome differs from the one-read outcome. */
function chunkingsThatDiffer (bytes: Buffer, options: FeedOptions, whole: Outcome, chunkings: readonly Chunking[]): string[] {
  return chunkings.filter((chunking) => !isDeepStrictEqual(feed(chunking, options), whole)).map((chunking) => chunking.label)
}

t.test('the case table is well formed', async (t) => {
  const names = RESPONSE_CASES.map((c) => c.name)
  t.same(names.filter((name, i) => names.indexOf(name) !== i), [], 'case names are unique')
  for (const c of RESPONSE_CASES) {
    t.equal(c.expectedOffsets.length, c.expectedCodes.length, `${c.name}: one offset per expected code`)
    t.equal(c.expectedPrimary !== undefined, c.expectedVerdict === 'reject', `${c.name}: expectedPrimary is given exactly when the clb verdict is reject`)
    t.ok(c.rule.length > 0, `${c.name}: names the rule it encodes`)
    for (const code of c.expectedCodes) t.equal(DEFECTS[code].direction, 'response', `${c.name}: ${code} is a response defect`)
  }
})

t.test('every response defect code has a case', async (t) => {
  const covered = new Set(RESPONSE_CASES.flatMap((c) => c.expectedCodes))
  const responseCodes = DEFECT_CODES.filter((code) => DEFECTS[code].direction === 'response')
  t.same(responseCodes.filter((code) => !covered.has(code)), [])
})

t.test('every row of the observed peer matrix (peers-validation.md §0.3) has a case', async (t) => {
  // §0.3 of the shared spec's peers-validation.md, copied verbatim (the file says from where).
  const spec = readFileSync(new URL('test/fixtures/peers-validation/observed-matrix.md', REPO_URL), 'utf8')
  const section = spec.slice(spec.indexOf('### 0.3'), spec.indexOf('\n---', spec.indexOf('### 0.3')))
  const rows = section.split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| case ') && !line.startsWith('| ---'))
    .map((line) => (line.split(' | ')[0] as string).slice(2).trim())
  t.equal(rows.length, 38, 'the matrix has 38 rows')
  const covered = new Set(RESPONSE_CASES.map((c) => c.peersRow))
  t.same(rows.filter((row) => !covered.has(row)), [], 'rows without a case')
  t.same([...covered].filter((row) => row !== undefined && !rows.includes(row)), [], 'peersRow labels that are not rows')
})

t.test('each case read in one piece gives the expected defects and verdicts', async (t) => {
  for (const c of RESPONSE_CASES) {
    const outcome = feed(wholeRead(caseBytes(c)), feedOptionsOf(c))
    t.same(outcome.defects.map((d) => d.code), c.expectedCodes, `${c.name}: codes`)
    t.same(outcome.defects.map((d) => d.offset), c.expectedOffsets, `${c.name}: offsets`)
    t.strictSame(outcome.defectCounts, c.expectedCounts ?? tally(c.expectedCodes), `${c.name}: defectCounts`)
    t.equal(outcome.state, c.expectedState, `${c.name}: state`)
    t.equal(outcome.clb.action, c.expectedVerdict, `${c.name}: clb verdict`)
    t.equal(outcome.strict.action, c.expectedStrictVerdict, `${c.name}: strict verdict`)
    const primary = outcome.clb.primary === null ? undefined : { code: outcome.clb.primary.code, offset: outcome.clb.primary.offset }
    t.same(primary, c.expectedPrimary, `${c.name}: clb primary defect`)
    if (c.expectedState === 'complete') t.ok(outcome.messageEnd > 0 && outcome.messageEnd <= caseBytes(c).length, `${c.name}: messageEnd inside the bytes`)
  }
})

t.test('each case gives the same result split at every head boundary and byte by byte', async (t) => {
  for (const c of RESPONSE_CASES) {
    const bytes = caseBytes(c)
    const options = feedOptionsOf(c)
    const whole = feed(wholeRead(bytes), options)
    const chunkings = chunkingsOf(bytes, whole)
    t.same(chunkingsThatDiffer(bytes, options, whole, chunkings), [], `${c.name}: all ${chunkings.length} chunkings match one read`)
  }
})

t.test('a response is judged with the read that completes it', async (t) => {
  // The rule test/helpers/split.ts keeps: moving the excess into a later read changes the verdict,
  // which is why the excess stays with the completing byte in every chunking above.
  const c = RESPONSE_CASES.find((x) => x.name === 'blank-line-content-length-before') as ResponseCase
  const bytes = caseBytes(c)
  const options = feedOptionsOf(c)
  const separated = feed({ label: 'excess apart', pieces: [bytes.subarray(0, 43), bytes.subarray(43)] }, options)
  t.same(separated.defects.map((d) => `${d.code}@${d.offset}`), ['BODY_EXCEEDS_CL@43'], 'the blank-line probe only sees the completing read')
  const together = feed({ label: 'excess with the completing byte', pieces: [bytes.subarray(0, 42), bytes.subarray(42)] }, options)
  t.same(together.defects.map((d) => `${d.code}@${d.offset}`), ['HDR_BLANK_LINE@38', 'BODY_EXCEEDS_CL@43'])
})

t.test('parsed heads carry what the proxy needs', async (t) => {
  const interimCase = RESPONSE_CASES.find((x) => x.name === 'interim-1xx-then-final') as ResponseCase
  const interim = feed(wholeRead(caseBytes(interimCase)), feedOptionsOf(interimCase))
  t.equal(interim.interimResponses, 2)
  t.same(interim.head, {
    version: 'HTTP/1.1',
    statusCode: 200,
    reason: 'OK',
    fields: [{ name: 'Content-Length', lowerName: 'content-length', value: '2', offset: 103, valueOffset: 119 }],
    start: 86,
    end: 124,
    framing: { kind: 'content-length', length: 2 },
    reusable: true
  })
  t.equal(interim.messageEnd, 126)

  const folded = feed(wholeRead(Buffer.from('HTTP/1.0 200 OK\r\nX-Folded: a\r\n  b \r\nContent-Length: 0\r\n\r\n', 'latin1')),
    { requestMethod: 'GET', maxHeadBytes: 1024, endsWithClose: false })
  t.same(folded.head?.fields.map((f) => [f.name, f.value]), [['X-Folded', 'a b'], ['Content-Length', '0']], 'obs-fold is replaced by one SP (RFC 9112 §5.2)')
  t.equal(folded.head?.reusable, false, 'HTTP/1.0 without keep-alive closes (RFC 9112 §9.3)')

  const teAndCl = feed(wholeRead(caseBytes(RESPONSE_CASES.find((x) => x.name === 'transfer-encoding-and-content-length') as ResponseCase)),
    { requestMethod: 'GET', maxHeadBytes: 1024, endsWithClose: false })
  t.same(teAndCl.head?.framing, { kind: 'chunked' }, 'Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 rule 3)')
  t.equal(teAndCl.head?.reusable, false, 'and the connection is closed after (RFC 9112 §6.3 rule 3)')
})

// --- Bounded memory: repeated findings are counted, not listed one by one ---

/** A chunked response whose `chunks` chunk-size lines end in a bare LF ("1\nx\r\n" each). */
function bareLfChunkedResponse (chunks: number): Buffer {
  return Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1'),
    Buffer.from('1\nx\r\n'.repeat(chunks), 'latin1'),
    Buffer.from('0\r\n\r\n', 'latin1')
  ])
}

/** Reads of `size` bytes. */
function readsOf (bytes: Buffer, size: number): Chunking {
  const pieces: Buffer[] = []
  for (let from = 0; from < bytes.length; from += size) pieces.push(bytes.subarray(from, from + size))
  return { label: `reads of ${size} bytes`, pieces }
}

t.test('100,000 bare-LF chunk lines: the first 3 are listed, all 100,000 are counted', async (t) => {
  const bytes = bareLfChunkedResponse(100_000)
  const options = { requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes, endsWithClose: false }
  // The head is 47 bytes; chunk k (from 0) is the 5 bytes at 47 + 5k and its bare LF is its second byte.
  const expected = [48, 53, 58].map((offset) => ({ code: 'LINE_BARE_LF', offset, message: 'chunked framing line ends in LF without CR' }))
  for (const chunking of [wholeRead(bytes), readsOf(bytes, 4096), readsOf(bytes, 5)]) {
    const outcome = feed(chunking, options)
    t.equal(outcome.state, 'complete', `${chunking.label}: the response is whole`)
    t.strictSame(outcome.defects, expected, `${chunking.label}: ${MAX_DEFECTS_PER_CODE} listed, at the first offsets`)
    t.strictSame(outcome.defectCounts, { LINE_BARE_LF: 100_000 }, `${chunking.label}: every occurrence counted`)
    t.equal(outcome.clb.action, 'pass', `${chunking.label}: relayed with warnings (LINE_BARE_LF, peers split)`)
  }
})

t.test('each code keeps its own first 3: a head with 500 control bytes and 40 obs-folds', async (t) => {
  const head = 'HTTP/1.1 200 OK\r\nX-A: ' + '\x01'.repeat(500) + '\r\nX-B: b\r\n' + ' c\r\n'.repeat(40) + 'Content-Length: 0\r\n\r\n'
  const outcome = feed(wholeRead(Buffer.from(head, 'latin1')), { requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes, endsWithClose: false })
  t.strictSame(outcome.defects.map((d) => `${d.code}@${d.offset}`), [
    'HDR_VALUE_CTL@22', 'HDR_VALUE_CTL@23', 'HDR_VALUE_CTL@24',
    'HDR_OBS_FOLD@532', 'HDR_OBS_FOLD@536', 'HDR_OBS_FOLD@540'
  ])
  t.strictSame(outcome.defectCounts, { HDR_VALUE_CTL: 500, HDR_OBS_FOLD: 40 })
})

// --- Interim responses count toward the head limit (RFC 9110 section 15.2) ---

t.test('a long run of 100 Continue trips HDR_TOO_LARGE at maxHeadBytes, whatever the reads', async (t) => {
  const interim = 'HTTP/1.1 100 Continue\r\n\r\n' // 25 bytes
  const bytes = Buffer.from(interim.repeat(10_000) + 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1')
  const options = { requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes, endsWithClose: false }
  const whole = feed(wholeRead(bytes), options)
  // 2621 interim heads end at 65525; the next status line's LF would be byte 65547, past byte 65536.
  t.equal(whole.state, 'invalid')
  t.equal(whole.interimResponses, 2621)
  t.strictSame(whole.defects, [{
    code: 'HDR_TOO_LARGE',
    offset: CLB_DEFAULTS.maxHeadBytes,
    message: 'the response head is larger than 65536 bytes (2621 interim 1xx response(s) before it count toward the limit)'
  }])
  t.equal(whole.clb.primary?.code, 'HDR_TOO_LARGE', 'CLB\'s 502')
  const chunkings = [readsOf(bytes, 4096), readsOf(bytes, 25), readsOf(bytes, 7), byteByByte(bytes.subarray(0, 70_000)),
    cutAt(bytes, [65_525, 65_536, 65_537])]
  t.strictSame(chunkingsThatDiffer(bytes, options, whole, chunkings.slice(0, 3).concat(chunkings.slice(4))), [], 'the same outcome in every chunking')
  // Byte by byte over the first 70,000 bytes only (the rest is never read once the parser failed).
  const trickled = feed(chunkings[3] as Chunking, options)
  t.strictSame(trickled.defects, whole.defects, 'byte by byte: the same defect at the same offset')
})

t.test('the head limit runs from the first byte of the response: interim heads and empty lines count', async (t) => {
  const options = (maxHeadBytes: number): FeedOptions => ({ requestMethod: 'GET', maxHeadBytes, endsWithClose: false })
  const interims = 'HTTP/1.1 100 Continue\r\n\r\n'.repeat(39) // 975 bytes
  const fits = Buffer.from(interims + 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ab\r\n\r\nok', 'latin1') // a 1024-byte head
  const tooLarge = Buffer.from(interims + 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: abc\r\n\r\nok', 'latin1')
  for (const [bytes, expected] of [[fits, []], [tooLarge, ['HDR_TOO_LARGE@1024']]] as const) {
    const whole = feed(wholeRead(bytes), options(1024))
    t.strictSame(whole.defects.map((d) => `${d.code}@${d.offset}`), expected, `a ${bytes.length - 2}-byte head against 1024`)
    t.strictSame(chunkingsThatDiffer(bytes, options(1024), whole, [...splitAtEveryBoundary(bytes, 1026, whole.messageEnd), byteByByte(bytes, whole.messageEnd)]), [])
  }
  const emptyLines = Buffer.from('\r\n'.repeat(40_000) + 'HTTP/1.1 200 OK\r\n\r\n', 'latin1')
  const outcome = feed(wholeRead(emptyLines), options(CLB_DEFAULTS.maxHeadBytes))
  t.strictSame(outcome.defects.map((d) => `${d.code}@${d.offset}`),
    ['EMPTY_LINE_BEFORE_STATUS@0', 'EMPTY_LINE_BEFORE_STATUS@2', 'EMPTY_LINE_BEFORE_STATUS@4', 'HDR_TOO_LARGE@65536'])
  t.strictSame(outcome.defectCounts, { EMPTY_LINE_BEFORE_STATUS: 32_768, HDR_TOO_LARGE: 1 }, 'the 32,768 empty lines before byte 65536')
})

// --- Verdicts calibrated against HAProxy 2.6 and nginx 1.22 (docs/defects.md) ---

interface CalibrationCase {
  readonly bytes: string
  readonly maxHeadBytes?: number
  /** `CODE@offset`, in order. */
  readonly defects: readonly string[]
  readonly clb: 'pass' | 'reject'
}

const CALIBRATION: Record<string, CalibrationCase> = {
  'three SP before the code': { bytes: 'HTTP/1.1   200 OK\r\nContent-Length: 0\r\n\r\n', defects: ['STATUS_LINE_EXTRA_SPACES@9'], clb: 'pass' },
  'SP then HT before the code (HT is not SP)': { bytes: 'HTTP/1.1 \t200 OK\r\nContent-Length: 0\r\n\r\n', defects: ['STATUS_LINE_INVALID@9'], clb: 'reject' },
  'only SP after the version': { bytes: 'HTTP/1.1    \r\nContent-Length: 0\r\n\r\n', defects: ['STATUS_LINE_INVALID@12'], clb: 'reject' },
  'status 099': { bytes: 'HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n', defects: ['STATUS_CODE_BELOW_100@9'], clb: 'pass' },
  'status 100 is still interim': { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', defects: [], clb: 'pass' },
  'extra SP and a status below 100, in byte order': { bytes: 'HTTP/1.2  001 \x7f\r\nContent-Length: 0\r\n\r\n', defects: ['VERSION_UNSUPPORTED@5', 'STATUS_LINE_EXTRA_SPACES@9', 'STATUS_CODE_BELOW_100@10', 'STATUS_REASON_CTL@14'], clb: 'pass' },
  'DEL in the reason phrase': { bytes: 'HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n', defects: ['STATUS_REASON_CTL@14'], clb: 'pass' },
  'control byte, then a bare CR in the reason phrase': { bytes: 'HTTP/1.1 200 \x01\rOK\r\nContent-Length: 0\r\n\r\n', defects: ['LINE_BARE_CR@14'], clb: 'reject' },
  'a bare-LF empty line before the status line': { bytes: '\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', defects: ['LINE_BARE_LF@0', 'EMPTY_LINE_BEFORE_STATUS@0'], clb: 'pass' },
  'an empty line, then bytes that are not HTTP': { bytes: '\r\nXTTP/1.1 200 OK\r\n\r\n', defects: ['EMPTY_LINE_BEFORE_STATUS@0', 'STATUS_LINE_INVALID@2'], clb: 'reject' },
  'an empty line, then a short line': { bytes: '\r\nHT\nX: 1\r\n\r\n', defects: ['EMPTY_LINE_BEFORE_STATUS@0', 'STATUS_LINE_INVALID@4'], clb: 'reject' },
  'CR CR before the status line': { bytes: '\r\r\nHTTP/1.1 200 OK\r\n\r\n', defects: ['STATUS_LINE_INVALID@0'], clb: 'reject' },
  // A status line that cannot spell "HTTP/" fails at that byte when it comes before byte maxHeadBytes...
  'not HTTP, before the head limit': { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTX/1.1 200 OK\r\n\r\n', maxHeadBytes: 28, defects: ['STATUS_LINE_INVALID@27'], clb: 'reject' },
  // ...and the head limit wins when it comes first.
  'not HTTP, at the head limit': { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTX/1.1 200 OK\r\n\r\n', maxHeadBytes: 27, defects: ['HDR_TOO_LARGE@27'], clb: 'reject' },
  'DEL in a header name': { bytes: 'HTTP/1.1 200 OK\r\nfoo\x7fbar: x\r\nContent-Length: 0\r\n\r\n', defects: ['HDR_NAME_CTL@20'], clb: 'reject' },
  'a bare CR in a header name stays LINE_BARE_CR': { bytes: 'HTTP/1.1 200 OK\r\nfoo\rbar: x\r\nContent-Length: 0\r\n\r\n', defects: ['LINE_BARE_CR@20', 'HDR_NAME_INVALID@20'], clb: 'reject' },
  'obs-text in a header name (nginx relays it)': { bytes: 'HTTP/1.1 200 OK\r\nfoo\xe9bar: x\r\nContent-Length: 0\r\n\r\n', defects: ['HDR_NAME_INVALID@20'], clb: 'pass' },
  'NUL and a control byte in one name: NUL decides': { bytes: 'HTTP/1.1 200 OK\r\nf\x01o\x00: x\r\nContent-Length: 0\r\n\r\n', defects: ['HDR_NAME_NUL@20'], clb: 'reject' }
}

t.test('calibrated status-line and header-name verdicts, whole, split at every boundary and byte by byte', async (t) => {
  for (const [name, c] of Object.entries(CALIBRATION)) {
    const bytes = Buffer.from(c.bytes, 'latin1')
    const options = { requestMethod: 'GET', maxHeadBytes: c.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes, endsWithClose: false }
    const whole = feed(wholeRead(bytes), options)
    t.strictSame(whole.defects.map((d) => `${d.code}@${d.offset}`), c.defects, `${name}: defects`)
    t.equal(whole.clb.action, c.clb, `${name}: clb verdict`)
    t.strictSame(chunkingsThatDiffer(bytes, options, whole, [...splitAtEveryBoundary(bytes, bytes.length, whole.messageEnd), byteByByte(bytes, whole.messageEnd)]), [],
      `${name}: every chunking agrees`)
  }
})

t.test('a status code below 100 is a final response, framed by its Content-Length', async (t) => {
  const outcome = feed(wholeRead(Buffer.from('HTTP/1.1 001 One\r\nContent-Length: 5\r\n\r\nhello', 'latin1')),
    { requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes, endsWithClose: false })
  t.equal(outcome.interimResponses, 0, 'not read as a 1xx')
  t.equal(outcome.head?.statusCode, 1)
  t.same(outcome.head?.framing, { kind: 'content-length', length: 5 })
  t.equal(outcome.messageEnd, 44)
})

t.test('the final head starts after the empty lines before it', async (t) => {
  const outcome = feed(wholeRead(Buffer.from('\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1')),
    { requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes, endsWithClose: false })
  t.equal(outcome.head?.start, 4)
  t.equal(outcome.head?.end, 42)
})

// --- Properties (fast-check, fixed seeds so a failure replays exactly) ---

const ROBUSTNESS_RUNS = 3000
const GRAMMAR_RUNS = 400

/** Bytes that drive the parser into its interesting states more often than uniform bytes do. */
const INTERESTING_BYTE = fc.constantFrom(...'\r\n\r\n :;,0123456789abcdefABCDEFHTP/.\t\x00\x01\x7f\xff', 'HTTP/1.1 ', 'Content-Length: ', 'Transfer-Encoding: chunked')
const RESPONSE_PREFIX = fc.constantFrom('', '\r\n', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1  001 \x00\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'HTTP/1.1 204 No Content\r\n')
const messyResponse = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  fc.tuple(RESPONSE_PREFIX, fc.array(INTERESTING_BYTE, { maxLength: 80 })).map(([prefix, rest]) => Buffer.from(prefix + rest.join(''), 'latin1'))
)

t.test('the parser never throws, whatever the bytes and the reads', async (t) => {
  let runs = 0
  fc.assert(fc.property(messyResponse, fc.array(fc.nat({ max: 220 }), { maxLength: 12 }), fc.boolean(), fc.constantFrom('GET', 'HEAD'), fc.integer({ min: 16, max: 256 }),
    (bytes, cuts, endsWithClose, requestMethod, maxHeadBytes) => {
      runs++
      // Any cuts at all here, even past the end of the message: only "never throws, stays sane" is claimed.
      const points = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b)
      const pieces = [0, ...points].map((from, i) => bytes.subarray(from, points[i] ?? bytes.length))
      const outcome = feed({ label: 'random', pieces }, { requestMethod, maxHeadBytes, endsWithClose })
      if (!['head', 'body', 'complete', 'invalid'].includes(outcome.state)) throw new Error(`state ${outcome.state}`)
      if (outcome.bytesReceived !== bytes.length) throw new Error('bytesReceived')
      if (outcome.state === 'complete' && (outcome.messageEnd < 0 || outcome.messageEnd > bytes.length)) throw new Error('messageEnd')
      for (const d of outcome.defects) {
        if (DEFECTS[d.code]?.direction !== 'response') throw new Error(`unknown code ${d.code}`)
        if (!Number.isInteger(d.offset) || d.offset < 0 || d.offset > bytes.length) throw new Error(`${d.code} offset ${d.offset} outside 0..${bytes.length}`)
      }
    }), { seed: 0x5eed, numRuns: ROBUSTNESS_RUNS })
  t.equal(runs, ROBUSTNESS_RUNS, 'every generated input was parsed without throwing')
})

t.test('the verdict does not depend on the reads, for messy input too', async (t) => {
  let runs = 0
  fc.assert(fc.property(messyResponse, fc.array(fc.nat({ max: 220 }), { maxLength: 12 }), fc.boolean(), fc.integer({ min: 16, max: 256 }),
    (bytes, cuts, endsWithClose, maxHeadBytes) => {
      runs++
      const options = { requestMethod: 'GET', maxHeadBytes, endsWithClose }
      const whole = feed(wholeRead(bytes), options)
      const differ = chunkingsThatDiffer(bytes, options, whole, [cutAt(bytes, cuts, whole.messageEnd), byteByByte(bytes, whole.messageEnd)])
      if (differ.length > 0) throw new Error(`${differ.join('; ')} differ from one read`)
    }), { seed: 0xc0ffee, numRuns: ROBUSTNESS_RUNS })
  t.equal(runs, ROBUSTNESS_RUNS)
})

// A small grammar of valid responses (RFC 9112 §4, §5, §6.3, §7.1): they must never be rejected.
const TCHARS = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+-.^_`|~']
const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 })
const fieldName = token.filter((name) => !['content-length', 'transfer-encoding'].includes(name.toLowerCase()))
const visible = fc.string({ unit: fc.constantFrom(...Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i))), minLength: 1, maxLength: 10 })
const fieldValue = fc.array(visible, { maxLength: 3 }).map((words) => words.join(' '))
const fieldLine = fc.tuple(fieldName, fc.constantFrom('', ' ', '\t', '  '), fieldValue, fc.constantFrom('', ' ')).map(([n, ows, v, trailing]) => `${n}:${ows}${v}${v === '' ? '' : trailing}\r\n`)
// Bodies without ':' cannot look like a header line after the head (the KC-502 blank-line heuristic).
const contentLengthBody = fc.string({ unit: fc.constantFrom(...'abc xyz019\r\n'), maxLength: 40 })
const chunkData = fc.uint8Array({ minLength: 1, maxLength: 30 }).map((bytes) => Buffer.from(bytes).toString('latin1'))
const chunkExtension = fc.option(fc.tuple(token, fc.option(token, { nil: undefined })).map(([name, value]) => `;${name}${value === undefined ? '' : '=' + value}`), { nil: '' })
const chunk = fc.tuple(chunkData, chunkExtension, fc.boolean(), fc.nat({ max: 2 }))
  .map(([data, ext, upper, zeros]) => `${'0'.repeat(zeros)}${upper ? data.length.toString(16).toUpperCase() : data.length.toString(16)}${ext}\r\n${data}\r\n`)
const body = fc.oneof(
  contentLengthBody.map((text) => ({ framing: `Content-Length: ${text.length}\r\n`, bytes: text })),
  fc.tuple(fc.array(chunk, { maxLength: 4 }), fc.array(fieldLine, { maxLength: 2 }))
    .map(([chunks, trailers]) => ({ framing: 'Transfer-Encoding: chunked\r\n', bytes: `${chunks.join('')}0\r\n${trailers.join('')}\r\n` }))
)
const status = fc.integer({ min: 200, max: 599 }).filter((code) => code !== 204 && code !== 304)
const interim = fc.constantFrom('HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n')
const validResponse = fc.tuple(fc.array(interim, { maxLength: 2 }), fc.constantFrom('HTTP/1.1', 'HTTP/1.0'), status,
  fc.string({ unit: fc.constantFrom(...'OK Not Found'), maxLength: 12 }), fc.array(fieldLine, { maxLength: 5 }), body, fc.nat({ max: 5 }))
  .map(([interims, version, code, reason, fields, framedBody, framingAt]) => {
    const head = [...fields]
    head.splice(Math.min(framingAt, head.length), 0, framedBody.framing)
    return { status: code, bytes: Buffer.from(`${interims.join('')}${version} ${code} ${reason}\r\n${head.join('')}\r\n${framedBody.bytes}`, 'latin1') }
  })

t.test('valid responses from a small grammar have no defect, and every chunking agrees', async (t) => {
  let runs = 0
  fc.assert(fc.property(validResponse, fc.array(fc.nat({ max: 400 }), { maxLength: 12 }), (response, cuts) => {
    runs++
    const { bytes } = response
    const options = { requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes, endsWithClose: false }
    const whole = feed(wholeRead(bytes), options)
    if (whole.defects.length > 0) throw new Error(`defects ${whole.defects.map((d) => `${d.code}@${d.offset}`).join(' ')} in ${JSON.stringify(bytes.toString('latin1'))}`)
    if (whole.clb.action !== 'pass' || whole.strict.action !== 'pass') throw new Error('rejected')
    if (whole.state !== 'complete' || whole.messageEnd !== bytes.length) throw new Error(`state ${whole.state}, end ${whole.messageEnd} of ${bytes.length}`)
    if (whole.head?.statusCode !== response.status) throw new Error(`status ${String(whole.head?.statusCode)}`)
    const chunkings = [cutAt(bytes, cuts, whole.messageEnd), byteByByte(bytes, whole.messageEnd), ...splitAtEveryBoundary(bytes, whole.head.end, whole.messageEnd)]
    const differ = chunkingsThatDiffer(bytes, options, whole, chunkings)
    if (differ.length > 0) throw new Error(`${differ.join('; ')} differ from one read`)
  }), { seed: 0xb0d1e5, numRuns: GRAMMAR_RUNS })
  t.equal(runs, GRAMMAR_RUNS, 'every generated valid response passed')
})
