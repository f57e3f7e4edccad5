/**
 * llhttp's own markdown test corpus as a peer suite (docs/peers-validation.md §5.1, style.md
 * lesson 2): every strict-mode case runs through our parsers, and the verdict (and, where both
 * reject, the offset of the first error) is compared with llhttp's expected log. Where we disagree,
 * the case is named below with the reason; the test fails when a listed difference no longer occurs,
 * so the lists cannot go stale.
 *
 * The corpus (MIT, llhttp 9.4.2, commit 01e105a3) is in test/fixtures/llhttp-response-tests/ (its
 * README gives the format, ORIGIN.md where it was copied from).
 */
import { readFileSync, readdirSync } from 'node:fs'
import t from 'tap'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import type { DefectCode } from '../../validators/defects.js'
import { RequestParser } from '../../validators/request-parser.js'
import { ResponseParser } from '../../validators/response-parser.js'
import { judge } from '../../validators/verdict.js'
import { REPO_URL } from '../helpers/repo.js'

type Verdict = 'pass' | 'reject'

interface CorpusCase {
  /** `<file>: <heading>`, e.g. `invalid.md: Bare CR after response line`. */
  readonly name: string
  readonly meta: { readonly type: string; readonly pause?: string; readonly skipBody?: boolean; readonly noScan?: boolean }
  readonly input: Buffer
  /** The `off=N error code=C reason="..."` line of the expected log, if any. */
  readonly llhttpError: { readonly offset: number; readonly code: number; readonly reason: string } | null
}

const CORPUS_DIR = new URL('test/fixtures/llhttp-response-tests/', REPO_URL)

/**
 * Decodes an ```http block as llhttp's test/md-test.ts does: drop the final newline, join lines
 * that end in a backslash, turn every remaining newline into CRLF, then expand \r \n \t \f \xHH
 * and octal \NNN. The string is then encoded as UTF-8, as llhttp's runner passes it (the
 * "Non ASCII in status line" case counts 19 bytes for "Oriëntatieprobleem").
 */
function decodeHttpBlock (block: string): Buffer {
  let input = block.replace(/\n$/, '')
  input = input.replace(/\\(\r\n|\r|\n)/g, '')
  input = input.replace(/\r\n|\r|\n/g, '\r\n')
  input = input.replace(/\\r/g, '\r').replace(/\\n/g, '\n').replace(/\\t/g, '\t').replace(/\\f/g, '\f')
  input = input.replace(/\\x([0-9a-fA-F]+)/g, (_all, hex: string) => String.fromCharCode(parseInt(hex, 16)))
  input = input.replace(/\\([0-7]{1,3})/g, (_all, digits: string) => String.fromCharCode(parseInt(digits, 8)))
  return Buffer.from(input, 'utf8')
}

/** Splits one corpus file into cases: a heading names the case, then a meta comment, an ```http block and a ```log block. */
function parseCorpusFile (file: string, text: string): CorpusCase[] {
  const lines = text.split('\n')
  const cases: CorpusCase[] = []
  let heading = ''
  let meta: CorpusCase['meta'] | null = null
  let http: string | null = null
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const headingMatch = /^#{1,6}\s+(.*)$/.exec(line)
    if (headingMatch !== null) { heading = (headingMatch[1] as string).trim(); continue }
    const metaMatch = /^<!--\s*meta=(.*?)\s*-->\s*$/.exec(line)
    if (metaMatch !== null) { meta = JSON.parse(metaMatch[1] as string) as CorpusCase['meta']; continue }
    const fence = /^```(\w+)\s*$/.exec(line)
    if (fence === null) continue
    let block = ''
    for (i++; i < lines.length && !(lines[i] as string).startsWith('```'); i++) block += `${lines[i] as string}\n`
    if (fence[1] === 'http') {
      http = block
    } else if (fence[1] === 'log') {
      if (meta === null || http === null) throw new Error(`${file}: ${heading}: a log block without meta and input`)
      if (http.includes('${')) throw new Error(`${file}: ${heading}: inline JavaScript in the input is not supported here`)
      const error = /^off=(\d+) error code=(\d+) reason="(.*)"$/m.exec(block)
      cases.push({
        name: `${file}: ${heading}`,
        meta,
        input: decodeHttpBlock(http),
        llhttpError: error === null ? null : { offset: Number(error[1]), code: Number(error[2]), reason: error[3] as string }
      })
      meta = null
      http = null
    }
  }
  return cases
}

function readCorpus (folder: 'response' | 'request'): CorpusCase[] {
  const dir = new URL(`${folder}/`, CORPUS_DIR)
  return readdirSync(dir).filter((f) => f.endsWith('.md')).sort()
    .flatMap((file) => parseCorpusFile(file, readFileSync(new URL(file, dir), 'utf8')))
}

// llhttp error 22, PAUSED_UPGRADE ("Pause on CONNECT/Upgrade"), is llhttp stopping to hand the
// connection over to the upgraded protocol, not a parse error: it counts as llhttp accepting.
const LLHTTP_PAUSED_UPGRADE = 22

function llhttpVerdict (c: CorpusCase): Verdict {
  return c.llhttpError === null || c.llhttpError.code === LLHTTP_PAUSED_UPGRADE ? 'pass' : 'reject'
}

/**
 * Which of our defect codes may answer each llhttp error code (llhttp's src/llhttp/constants.ts
 * ERROR; the mapping follows peers-validation.md §8 "Map codes to llhttp reasons").
 */
const LLHTTP_ERROR_TO_DEFECTS: Record<number, readonly DefectCode[]> = {
  2: ['LINE_BARE_CR', 'CHUNK_SIZE_INVALID', 'REQUEST_CHUNK_INVALID'], // STRICT ("Expected LF after CR", chunk extensions)
  3: ['LINE_BARE_CR', 'REQUEST_HEADER_INVALID'], // LF_EXPECTED
  4: ['CL_DUP_DIFFERENT', 'CL_DUP_SAME', 'REQUEST_CL_INVALID'], // UNEXPECTED_CONTENT_LENGTH
  5: ['BODY_EXCEEDS_CL', 'BODY_NOT_ALLOWED', 'EXTRA_BYTES_AFTER_RESPONSE'], // CLOSED_CONNECTION ("Data after `Connection: close`")
  8: ['STATUS_LINE_INVALID'], // INVALID_CONSTANT
  9: ['STATUS_LINE_INVALID', 'VERSION_UNSUPPORTED'], // INVALID_VERSION
  10: ['HDR_NAME_INVALID', 'HDR_NAME_WHITESPACE', 'HDR_NO_COLON', 'HDR_VALUE_NUL', 'HDR_VALUE_CTL', 'HDR_OBS_FOLD', 'REQUEST_HEADER_INVALID'], // INVALID_HEADER_TOKEN
  11: ['CL_NOT_INTEGER', 'CL_OVERFLOW', 'CL_DUP_SAME', 'REQUEST_CL_INVALID', 'REQUEST_TE_INVALID'], // INVALID_CONTENT_LENGTH
  12: ['CHUNK_SIZE_INVALID', 'REQUEST_CHUNK_INVALID'], // INVALID_CHUNK_SIZE
  13: ['STATUS_LINE_INVALID', 'STATUS_LINE_EXTRA_SPACES'], // INVALID_STATUS
  15: ['TE_AND_CL', 'TE_UNSUPPORTED', 'REQUEST_TE_INVALID'], // INVALID_TRANSFER_ENCODING
  25: ['LINE_BARE_LF'], // CR_EXPECTED
  30: ['HDR_OBS_FOLD', 'REQUEST_HEADER_INVALID'] // UNEXPECTED_SPACE
}

// Reasons reused below.
const BODY_UNTIL_CLOSE_STRICT = 'no Content-Length or Transfer-Encoding: the strict profile rejects BODY_UNTIL_CLOSE (our choice, docs/defects.md); llhttp reads to EOF (RFC 9112 §6.3 rule 8)'
const BARE_LF = 'bare LF: RFC 9112 §2.2 lets a recipient accept it; peers split (HAProxy and nginx accept), so the clb profile warns (LINE_BARE_LF); llhttp strict rejects'
const BYTES_AFTER_NO_BODY = 'bytes after a response that has no body (204/304/HEAD): llhttp parses them as the next response; CLB sends one request at a time, so they belong to no response and the strict profile rejects BODY_NOT_ALLOWED (clb warns)'
const NOT_HTTP = 'llhttp also parses RTSP and ICE responses; a CLB HTTP listener speaks HTTP only (RFC 9112 §4: HTTP-version = "HTTP/" DIGIT "." DIGIT)'
const LEADING_CRLF = 'llhttp skips empty lines before a status line, as HAProxy does (nginx 1.22 cannot parse the status line and relays the bytes as HTTP/0.9); RFC 9112 §2.2 allows ignoring empty lines only before a request-line, so the clb profile warns (EMPTY_LINE_BEFORE_STATUS, peers split) and the strict profile rejects'
const CHUNK_EXT_GRAMMAR = 'we check chunk extensions only for control bytes: RFC 9112 §7.1.1 says a recipient MUST ignore unrecognized extensions, and the framing is unambiguous because the line ends at its CRLF (nginx\'s ngx_http_parse_chunked also skips extension bytes to the line end); llhttp validates the extension grammar'
const INCOMPLETE_LINE = 'the input ends inside a line: we judge whole lines only (a close here would be HEADERS_TRUNCATED, or a 408 for a request); llhttp rejects as soon as the offending byte arrives'
const CR_OFFSET = 'we report the bare CR itself; llhttp (and HAProxy, §0.3) report the byte after it, the one that should have been LF'
const LF_OFFSET = 'we report the bare LF itself; llhttp reports the byte after it'
const INCOMPLETE_HEAD = 'the input stops before the blank line that ends the head: we judge Content-Length once the head is complete (a head that never ends is CLB\'s 408 after the idle timeout); llhttp rejects as soon as it reads the value'
const TE_VALUE_OFFSET = 'we point at the first byte of the first Transfer-Encoding value (where the coding list that does not end in a single chunked starts: RFC 9112 §6.3 rule 4); llhttp fails where its state machine detects the conflict: the byte before the value, or later in the head'
const CL_SPACE_OFFSET = 'we point at the space inside the value, the first byte that is not a digit; llhttp at the digit after it (it allows trailing whitespace and fails when more digits follow)'
const PAST_END_OFFSET = 'we report the first byte past the end of the message; llhttp reports the byte after it (it has read that byte as the start of the next message)'
const TE_NOT_CHUNKED = 'a Transfer-Encoding that does not end in a single chunked: both read the body until close (RFC 9112 §6.3 rule 4); the strict profile rejects TE_UNSUPPORTED (HAProxy answers 502, peers-validation.md §0.3), clb warns'

interface KnownDifference {
  readonly llhttp: Verdict
  readonly clb: Verdict
  readonly strict: Verdict
  readonly reason: string
}

/** Strict-mode response cases where llhttp's verdict differs from ours under the clb or the strict profile. */
const KNOWN_DIFFERENCES: Record<string, KnownDifference> = {
  'connection.md: HTTP/1.0 with keep-alive and EOF-terminated 200 status': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'connection.md: HTTP/1.0 with keep-alive and 204 status': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BYTES_AFTER_NO_BODY },
  'connection.md: HTTP/1.1 with EOF-terminated 200 status': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'connection.md: HTTP/1.1 with 204 status': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BYTES_AFTER_NO_BODY },
  'connection.md: HTTP/1.1 with keep-alive disabled and 204 status': {
    llhttp: 'reject',
    clb: 'pass',
    strict: 'reject',
    reason: 'bytes after a whole 204 that said Connection: close: llhttp errors (CLOSED_CONNECTION); the 204 itself is complete, so the clb profile relays it and only warns (BODY_NOT_ALLOWED, our choice, docs/defects.md); strict rejects'
  },
  'connection.md: HTTP 101 response with Upgrade and Content-Length header': {
    llhttp: 'pass',
    clb: 'reject',
    strict: 'reject',
    reason: 'llhttp pauses to hand the connection to the upgraded protocol (PAUSED_UPGRADE); a CLB HTTP listener does not relay upgrades, so STATUS_101_UNSUPPORTED (our choice, docs/clb-choices.md)'
  },
  'connection.md: HTTP 101 response with Upgrade and Transfer-Encoding header': {
    llhttp: 'pass',
    clb: 'reject',
    strict: 'reject',
    reason: 'as the 101 with Content-Length: STATUS_101_UNSUPPORTED (our choice, docs/clb-choices.md)'
  },
  'connection.md: HTTP 200 response with Upgrade header': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'connection.md: HTTP 304 with Content-Length': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BYTES_AFTER_NO_BODY },
  'connection.md: HTTP 304 with Transfer-Encoding': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BYTES_AFTER_NO_BODY },
  'connection.md: HTTP 100 first, then 400': {
    llhttp: 'pass',
    clb: 'pass',
    strict: 'reject',
    reason: 'an extra CRLF between the 100 Continue and the final status line (a server quirk llhttp accommodates): ' + LEADING_CRLF
  },
  'content-length.md: Response without `Content-Length`, but with body': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'content-length.md: Content-Length reset when no body is received': {
    llhttp: 'pass',
    clb: 'pass',
    strict: 'reject',
    reason: 'skipBody is run as a response to HEAD: ' + BYTES_AFTER_NO_BODY
  },
  'finish.md: It should be safe to finish with cb after empty response': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'invalid.md: Invalid HTTP version': {
    llhttp: 'reject',
    clb: 'pass',
    strict: 'reject',
    reason: 'HTTP/5.6: peers split on versions other than 1.0 and 1.1 (HAProxy, nginx and Envoy accept any DIGIT "." DIGIT, peers-validation.md §8), so the clb profile warns (VERSION_UNSUPPORTED); llhttp strict rejects'
  },
  'invalid.md: Invalid space after start line': {
    llhttp: 'reject',
    clb: 'pass',
    strict: 'pass',
    reason: INCOMPLETE_LINE + '; once whole, a whitespace-led line before the first header is HDR_NAME_WHITESPACE, a 502 as llhttp, HAProxy and nginx give (RFC 9112 §2.2: reject it, or consume it without processing)'
  },
  'invalid.md: Extra space between HTTP version and status code': {
    llhttp: 'reject',
    clb: 'pass',
    strict: 'reject',
    reason: 'two SP before the status code: HAProxy 2.6 and nginx 1.22 skip the extra SP and relay the response (a real server sends "HTTP/1.0  401 Unauthorized"), llhttp rejects: peers split, so the clb profile warns (STATUS_LINE_EXTRA_SPACES), at llhttp\'s offset'
  },
  'invalid.md: Extra space between status code and reason': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'invalid.md: Only LFs present and no body': { llhttp: 'reject', clb: 'pass', strict: 'reject', reason: BARE_LF },
  'invalid.md: Only LFs present': { llhttp: 'reject', clb: 'pass', strict: 'reject', reason: BARE_LF },
  'pipelining.md: Should parse multiple events': {
    llhttp: 'pass',
    clb: 'reject',
    strict: 'reject',
    reason: 'llhttp parses the bytes after the first Content-Length body as pipelined responses; CLB sends one request at a time to an instance, so they are "more bytes in the body than the Content-Length header value" (KC-502): BODY_EXCEEDS_CL'
  },
  'sample.md: RTSP response': { llhttp: 'pass', clb: 'reject', strict: 'reject', reason: NOT_HTTP },
  'sample.md: ICE response': { llhttp: 'pass', clb: 'reject', strict: 'reject', reason: NOT_HTTP },
  'sample.md: Empty body should not trigger spurious span callbacks': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'sample.md: No headers and no body': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'sample.md: No reason phrase': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'sample.md: Empty reason phrase after space': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'sample.md: No carriage ret': { llhttp: 'reject', clb: 'pass', strict: 'reject', reason: BARE_LF },
  'sample.md: HTTP version 0.9': {
    llhttp: 'pass',
    clb: 'pass',
    strict: 'reject',
    reason: 'llhttp accepts "HTTP/0.9" in a status line; we warn VERSION_UNSUPPORTED (only 1.0 and 1.1 are HTTP/1 status lines) and the strict profile rejects it'
  },
  'sample.md: No Content-Length, no Transfer-Encoding': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: BODY_UNTIL_CLOSE_STRICT },
  'sample.md: Response starting with CRLF': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: LEADING_CRLF },
  'transfer-encoding.md: Trailing space on chunked body': {
    llhttp: 'reject',
    clb: 'pass',
    strict: 'pass',
    reason: 'whitespace after a chunk-size ("25  \\r\\n"): we tolerate it, the size is unambiguous (nginx\'s ngx_http_parse_chunked reads SP/HT after the size as the start of an extension); llhttp rejects it unless SPACES_AFTER_CHUNK_SIZE is on'
  },
  'transfer-encoding.md: `chunked` before other transfer-encoding': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: TE_NOT_CHUNKED },
  'transfer-encoding.md: multiple transfer-encoding where chunked is not the last one': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: TE_NOT_CHUNKED },
  'transfer-encoding.md: `chunkedchunked` transfer-encoding does not enable chunked enconding': { llhttp: 'pass', clb: 'pass', strict: 'reject', reason: TE_NOT_CHUNKED },
  'transfer-encoding.md: No extension after semicolon': { llhttp: 'reject', clb: 'pass', strict: 'pass', reason: CHUNK_EXT_GRAMMAR },
  'transfer-encoding.md: Unbalanced chunk extensions quoting': { llhttp: 'reject', clb: 'pass', strict: 'pass', reason: CHUNK_EXT_GRAMMAR }
}

interface OffsetDifference {
  readonly llhttp: number
  /** The offset of judge(defects, 'strict').primary. */
  readonly ours: number
  readonly reason: string
}

/** Cases where llhttp and our strict profile both reject, at different offsets. */
const OFFSET_DIFFERENCES: Record<string, OffsetDifference> = {
  'connection.md: HTTP/1.1 with keep-alive disabled and 204 status': { llhttp: 47, ours: 46, reason: PAST_END_OFFSET },
  'connection.md: HTTP/1.1 with keep-alive disabled, content-length': { llhttp: 71, ours: 70, reason: PAST_END_OFFSET },
  'invalid.md: CR before response and tab after HTTP version': {
    llhttp: 9,
    ours: 0,
    reason: 'llhttp skips the leading CR and fails at the tab after the version; we fail at the CR, the first byte that cannot start "HTTP/" (' + 'RFC 9112 §4)'
  },
  'invalid.md: Headers separated by CR': { llhttp: 24, ours: 23, reason: CR_OFFSET },
  'invalid.md: Bare CR after response line': { llhttp: 16, ours: 15, reason: CR_OFFSET },
  'invalid.md: Bare CR followed by CR after response line': { llhttp: 16, ours: 15, reason: CR_OFFSET },
  'invalid.md: Invalid HTTP version': {
    llhttp: 8,
    ours: 5,
    reason: 'HTTP/5.6 is well formed but unsupported: we point at the version digits, llhttp at the byte after them'
  },
  'invalid.md: Only LFs present and no body': { llhttp: 16, ours: 15, reason: LF_OFFSET },
  'invalid.md: Only LFs present': { llhttp: 16, ours: 15, reason: LF_OFFSET },
  'sample.md: No carriage ret': { llhttp: 16, ours: 15, reason: LF_OFFSET }
}

interface ResponseResult {
  readonly clb: Verdict
  readonly strict: Verdict
  readonly strictPrimary: { readonly code: DefectCode; readonly offset: number } | null
}

function runResponse (c: CorpusCase): ResponseResult {
  // skipBody: llhttp's on_headers_complete asks to skip the body, which is what a response to HEAD does.
  const parser = new ResponseParser({ requestMethod: c.meta.skipBody === true ? 'HEAD' : 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes })
  parser.push(c.input)
  // llhttp's runner calls llhttp_finish() only for the response-finish type; elsewhere the
  // connection stays open and an unfinished message is judged on what arrived.
  if (c.meta.type === 'response-finish') parser.finish()
  const strict = judge(parser.defects, 'strict')
  return {
    clb: judge(parser.defects, 'clb').action,
    strict: strict.action,
    strictPrimary: strict.primary === null ? null : { code: strict.primary.code, offset: strict.primary.offset }
  }
}

/** Which cases run: strict modes only. Lenient modes and pause variants are skipped by design. */
function classify (c: CorpusCase, kind: 'response' | 'request'): 'run' | 'lenient' | 'pause' {
  if (c.meta.type.startsWith(`${kind}-lenient-`)) return 'lenient'
  if (c.meta.pause !== undefined) return 'pause'
  if (c.meta.type === kind || c.meta.type === `${kind}-finish`) return 'run'
  throw new Error(`${c.name}: unexpected meta type ${c.meta.type}`)
}

const responseCases = readCorpus('response')

t.test('inputs are decoded as llhttp\'s runner decodes them', async (t) => {
  // Lengths implied by llhttp's own expected logs.
  const byName = (name: string): CorpusCase => responseCases.find((c) => c.name === name) as CorpusCase
  t.equal(byName('sample.md: Empty body should not trigger spurious span callbacks').input.toString('latin1'), 'HTTP/1.1 200 OK\r\n\r\n', 'newlines become CRLF, the final one dropped')
  t.equal(byName('invalid.md: Only LFs present').input.toString('latin1'), 'HTTP/1.1 200 OK\nFoo: abc\nBar: def\n\nBODY\n\\', 'a trailing backslash joins lines; the last one stays a byte ("span[body]=\\"")')
  t.equal(byName('sample.md: Non ASCII in status line').input.length, 112, 'UTF-8: "message complete" at off=112')
  t.equal(byName('invalid.md: Tab after HTTP version').input.toString('latin1'), 'HTTP/1.1\t200 OK\r\n\r\n', '\\t escape')
  t.equal(decodeHttpBlock('A\\x41\\101\\f\n').toString('latin1'), 'AAA\f', '\\xHH, octal and \\f escapes')
})

t.test('the response corpus is read whole, and the skipped cases are the ones skipped by design', async (t) => {
  const names = responseCases.map((c) => c.name)
  t.same(names.filter((name, i) => names.indexOf(name) !== i), [], 'case names are unique')
  const counts = { run: 0, lenient: 0, pause: 0 }
  for (const c of responseCases) counts[classify(c, 'response')]++
  // README: 85 response cases. Lenient modes describe what llhttp accepts only with a lenient flag
  // on (a strict CLB emulator takes the strict case as the expectation); pause variants repeat
  // sample inputs to test llhttp's callback pausing, which has no counterpart in our parser.
  t.same(counts, { run: 66, lenient: 8, pause: 11 })
  t.equal(responseCases.length, 85)
  t.equal(responseCases.filter((c) => c.llhttpError !== null).length, 26, 'cases with an expected error (README: 4 + 15 + 3 + 4)')
})

t.test('llhttp and our response parser agree, except where a difference is listed with its reason', async (t) => {
  const differences: Record<string, Omit<KnownDifference, 'reason'>> = {}
  const offsets: Record<string, Omit<OffsetDifference, 'reason'>> = {}
  const unmappedCodes: string[] = []
  for (const c of responseCases.filter((x) => classify(x, 'response') === 'run')) {
    const llhttp = llhttpVerdict(c)
    const ours = runResponse(c)
    if (ours.clb !== llhttp || ours.strict !== llhttp) differences[c.name] = { llhttp, clb: ours.clb, strict: ours.strict }
    if (llhttp === 'reject' && ours.strictPrimary !== null && c.llhttpError !== null) {
      if (ours.strictPrimary.offset !== c.llhttpError.offset) offsets[c.name] = { llhttp: c.llhttpError.offset, ours: ours.strictPrimary.offset }
      if (!(LLHTTP_ERROR_TO_DEFECTS[c.llhttpError.code] ?? []).includes(ours.strictPrimary.code)) {
        unmappedCodes.push(`${c.name}: llhttp ${c.llhttpError.code} vs ${ours.strictPrimary.code}`)
      }
    }
  }
  t.same(differences, strip(KNOWN_DIFFERENCES), 'verdict differences are exactly the listed ones')
  t.same(offsets, strip(OFFSET_DIFFERENCES), 'offset differences are exactly the listed ones')
  t.same(unmappedCodes, [], 'where both reject, our defect code answers llhttp\'s error code')
  for (const [name, difference] of Object.entries({ ...KNOWN_DIFFERENCES, ...OFFSET_DIFFERENCES })) {
    t.ok(difference.reason.length > 20, `${name}: the difference says why`)
  }
})

// --- The two request files: the Content-Length and Transfer-Encoding header grammar (README) ---

/** Strict-mode request cases where llhttp's verdict differs from our request parser's. */
const KNOWN_REQUEST_DIFFERENCES: Record<string, { readonly llhttp: Verdict; readonly ours: Verdict; readonly reason: string }> = {
  'content-length.md: Error on `Content-Length` overflow': { llhttp: 'reject', ours: 'pass', reason: INCOMPLETE_HEAD },
  'content-length.md: Error on duplicate `Content-Length`': { llhttp: 'reject', ours: 'pass', reason: INCOMPLETE_HEAD },
  'content-length.md: Missing CRLF-CRLF before body': { llhttp: 'reject', ours: 'pass', reason: INCOMPLETE_LINE },
  'transfer-encoding.md: No extension after semicolon': { llhttp: 'reject', ours: 'pass', reason: CHUNK_EXT_GRAMMAR },
  'transfer-encoding.md: Unbalanced chunk extensions quoting': { llhttp: 'reject', ours: 'pass', reason: CHUNK_EXT_GRAMMAR },
  'transfer-encoding.md: Space after chunk header': {
    llhttp: 'reject',
    ours: 'pass',
    reason: 'whitespace after a chunk-size ("a \\r\\n"): tolerated as in responses (the size is unambiguous); llhttp rejects it unless SPACES_AFTER_CHUNK_SIZE is on'
  }
}

/** Request cases where both reject at different offsets. */
const REQUEST_OFFSET_DIFFERENCES: Record<string, OffsetDifference> = {
  'content-length.md: Error on simultaneous `Content-Length` and `Transfer-Encoding: identity`': { llhttp: 56, ours: 57, reason: TE_VALUE_OFFSET },
  'content-length.md: Invalid whitespace token with `Content-Length` header field': {
    llhttp: 55,
    ours: 54,
    reason: 'we point at the whitespace before the colon; llhttp at the colon after it'
  },
  'content-length.md: Spaces in `Content-Length` #2': { llhttp: 35, ours: 34, reason: CL_SPACE_OFFSET },
  'content-length.md: Spaces in `Content-Length` #3': { llhttp: 36, ours: 35, reason: CL_SPACE_OFFSET },
  'content-length.md: Empty `Content-Length`': {
    llhttp: 34,
    ours: 32,
    reason: 'the value is empty: we point where it should start (just after the colon); llhttp at the end of the line'
  },
  'transfer-encoding.md: Ignoring `pigeons`': { llhttp: 49, ours: 38, reason: TE_VALUE_OFFSET },
  'transfer-encoding.md: POST with `Transfer-Encoding` and `Content-Length`': { llhttp: 111, ours: 86, reason: TE_VALUE_OFFSET },
  'transfer-encoding.md: POST with `chunked` before other transfer coding names': { llhttp: 94, ours: 86, reason: TE_VALUE_OFFSET },
  'transfer-encoding.md: POST with `chunked` and duplicate transfer-encoding': { llhttp: 115, ours: 86, reason: TE_VALUE_OFFSET },
  'transfer-encoding.md: POST with `chunkedchunked` as transfer-encoding': { llhttp: 104, ours: 86, reason: TE_VALUE_OFFSET },
  'transfer-encoding.md: Validate chunk parameters': {
    llhttp: 51,
    ours: 57,
    reason: 'a bare LF ends the chunk-size line "3 " for us (RFC 9112 §2.2: a recipient MAY accept it), so we fail later, at "foo" read as a chunk-size line; llhttp fails at the LF'
  },
  'transfer-encoding.md: Chunk header not terminated by CRLF': { llhttp: 78, ours: 77, reason: CR_OFFSET }
}

/** Feeds a request stream like proxy/data-path/client-connection.ts: pipelined requests one after the other. */
function runRequests (c: CorpusCase): { verdict: Verdict; firstDefect: { code: DefectCode; offset: number } | null } {
  let rest = c.input
  let start = 0
  while (rest.length > 0) {
    const parser = new RequestParser(CLB_DEFAULTS.maxHeadBytes)
    const { consumed } = parser.push(rest)
    if (parser.state === 'invalid') {
      const first = parser.defects[0] as NonNullable<(typeof parser.defects)[0]>
      // Our offsets count from each request's first byte; llhttp's from the start of the input.
      return { verdict: 'reject', firstDefect: { code: first.code, offset: start + first.offset } }
    }
    if (parser.state !== 'complete') break
    start += consumed
    rest = rest.subarray(consumed)
  }
  return { verdict: 'pass', firstDefect: null }
}

const requestCases = readCorpus('request')

t.test('the request corpus is read whole', async (t) => {
  const counts = { run: 0, lenient: 0, pause: 0 }
  for (const c of requestCases) counts[classify(c, 'request')]++
  t.same(counts, { run: 39, lenient: 10, pause: 0 })
  t.equal(requestCases.length, 49, 'README: 18 + 31 request cases')
})

t.test('llhttp and our request parser agree on Content-Length and Transfer-Encoding, except as listed', async (t) => {
  const differences: Record<string, { llhttp: Verdict; ours: Verdict }> = {}
  const offsets: Record<string, Omit<OffsetDifference, 'reason'>> = {}
  const unmappedCodes: string[] = []
  for (const c of requestCases.filter((x) => classify(x, 'request') === 'run')) {
    const llhttp = llhttpVerdict(c)
    const ours = runRequests(c)
    if (ours.verdict !== llhttp) differences[c.name] = { llhttp, ours: ours.verdict }
    if (llhttp === 'reject' && ours.firstDefect !== null && c.llhttpError !== null) {
      if (ours.firstDefect.offset !== c.llhttpError.offset) offsets[c.name] = { llhttp: c.llhttpError.offset, ours: ours.firstDefect.offset }
      if (!(LLHTTP_ERROR_TO_DEFECTS[c.llhttpError.code] ?? []).includes(ours.firstDefect.code)) {
        unmappedCodes.push(`${c.name}: llhttp ${c.llhttpError.code} vs ${ours.firstDefect.code}`)
      }
    }
  }
  t.same(differences, strip(KNOWN_REQUEST_DIFFERENCES), 'verdict differences are exactly the listed ones')
  t.same(offsets, strip(REQUEST_OFFSET_DIFFERENCES), 'offset differences are exactly the listed ones')
  t.same(unmappedCodes, [], 'where both reject, our defect code answers llhttp\'s error code')
})

/** The listed entries without their reasons, to compare with what was observed. */
function strip<T extends { reason: string }> (entries: Record<string, T>): Record<string, Omit<T, 'reason'>> {
  return Object.fromEntries(Object.entries(entries).map(([name, { reason: _reason, ...rest }]) => [name, rest]))
}
