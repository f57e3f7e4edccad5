/**
 * aws/http-desync-guardian's YAML corpus as a peer suite (docs/peer-suites.md; style.md lesson 2).
 * The library behind CLB's desync mitigation mode classifies REQUESTS Compliant / Acceptable /
 * Ambiguous / Severe (docs/clb-behavior.md §6). CLB's default mode, `defensive`, blocks
 * Severe with a 400 and forwards the rest (CLB-DESYNC), and clb-proxy's request parser does the same
 * (docs/clb-choices.md, "Requests"; the tiers themselves are not implemented). So:
 *
 * 1. Requests: each case's raw request, built as the upstream harness builds it
 *    (test/helpers/desync-guardian.ts), goes through RequestParser whole, split at every byte
 *    boundary and one byte per read; the outcome must not depend on the chunking, and
 *    expected tier Severe <=> we reject (state 'invalid'). Where that does not hold, the case is in
 *    KNOWN_DIFFERENCES with its reason; where both reject but our defect does not answer the
 *    library's reason, it is in CODE_DIFFERENCES.
 * 2. Responses: the cases whose reason is Content-Length / Transfer-Encoding grammar or a NUL/CR in
 *    a header are replayed as a backend response (`HTTP/1.1 200 OK`, the case's header lines, a body
 *    that fits the framing) through ResponseParser and judge(…, 'clb'). The verdict must be the one
 *    docs/defects.md gives for those bytes (RESPONSE_EXPECTATIONS); where it differs from the
 *    library's tier (Severe <=> reject), KNOWN_RESPONSE_DIFFERENCES says why.
 *
 * Every list below is compared with what actually happens, both ways, so none can go stale.
 * Cases with a line break inside a field are skipped (SKIPPED, counted): caveat (c) of §6.3.
 */
import t from 'tap'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import type { DefectCode } from '../../validators/defects.js'
import { RequestParser, type RequestParserState } from '../../validators/request-parser.js'
import { ResponseParser } from '../../validators/response-parser.js'
import { judge } from '../../validators/verdict.js'
import { headerLines, loadDesyncGuardianCorpus, rawRequest, unescapeValue, type DesyncCase } from '../helpers/desync-guardian.js'
import { byteByByte, everyByteAlone, splitAtEveryBoundary, wholeRead, type Chunking } from '../helpers/split.js'

type Verdict = 'accept' | 'reject'

const cases = loadDesyncGuardianCorpus()
const byName = new Map(cases.map((c) => [c.name, c]))

// --- Skipped: a line break inside a field (caveat (c)) ---

/**
 * The library rates a field that contains LF as it would come from an HTTP engine's field API.
 * Over a socket the same bytes end the line: the "value" becomes a folded line, a header or a new
 * request, and the case no longer describes the bytes (a bare CR stays inside its line, so those
 * cases run).
 */
const LINE_BREAK_IN_VALUE = 'a line break inside a header value: on the wire it ends the line, so the value the library rates does not exist over a socket'
const SKIPPED: Record<string, string> = {
  'severe.yaml: Multiline headers are deprecated': LINE_BREAK_IN_VALUE,
  'severe.yaml: Multiline headers are deprecated (with \\n only)': LINE_BREAK_IN_VALUE,
  'severe.yaml: Http Engine missed LF': LINE_BREAK_IN_VALUE,
  'severe.yaml: \\n in value is bad': LINE_BREAK_IN_VALUE,
  'severe.yaml: \\n in name is bad': 'a line break inside a header name: on the wire the name is a line without a colon',
  'uri-specific-test-cases.yaml: \\n in URI': 'a line break inside the URI: on the wire the request line ends there',
  'uri-specific-test-cases.yaml: Request Smuggling in URI': 'line breaks inside the URI: on the wire they are two requests'
}

function hasLineBreak (c: DesyncCase): boolean {
  return [c.method, c.uri, c.version, ...c.headers.flatMap((h) => [h.name, h.value])].some((field) => field.includes('\n'))
}

const runCases = cases.filter((c) => !hasLineBreak(c))

// --- The loader ---

t.test('the corpus is read as the upstream harness reads it', async (t) => {
  // clb-behavior.md §6.3: 159 cases, counted with PyYAML: 28 Compliant, 15 Acceptable, 58 Ambiguous, 58 Severe.
  t.equal(cases.length, 159)
  const perFile: Record<string, number> = {}
  const perTier: Record<string, number> = {}
  for (const c of cases) {
    perFile[c.file] = (perFile[c.file] ?? 0) + 1
    perTier[c.expected.tier] = (perTier[c.expected.tier] ?? 0) + 1
  }
  t.same(perFile, {
    'acceptable.yaml': 9,
    'ambiguous.yaml': 37,
    'bad-header-characters.yaml': 15,
    'edge-cases.yaml': 8,
    'more-compliant-tests.yaml': 10,
    'real-life-test-cases.yaml': 24,
    'rfc-compliant.yaml': 14,
    'severe.yaml': 27,
    'single-case.yaml': 1,
    'uri-specific-test-cases.yaml': 14
  })
  t.same(perTier, { Compliant: 28, Acceptable: 15, Ambiguous: 58, Severe: 58 })
  t.equal(byName.size, cases.length, 'case names are unique (a repeated name gets " (2)")')
  t.ok(byName.has('acceptable.yaml: Get with a body and Content-Length:0 (2)'))

  // Caveat (b): a YAML "\xA0" is the code point U+00A0, sent as its UTF-8 bytes C2 A0.
  const nbsp = byName.get('bad-header-characters.yaml: Transfer-Encoding: \\xa0chunked') as DesyncCase
  t.same([...Buffer.from(nbsp.headers[0]?.value ?? '', 'utf8')].slice(0, 3), [0xc2, 0xa0, 0x63])
  // Caveat (a): a plain YAML scalar keeps "\t" as two characters; the harness's unescape makes it a tab.
  t.equal(byName.get('edge-cases.yaml: Bad URI does not shadow essential bad headers')?.uri, '/foo/bar\t/baz')
  t.equal(unescapeValue('a\\x41\\b\\f\\n\\r\\t\\q\\\\\\x7'), 'aA\b\f\n\r\tq\\\x07', '\\xNN takes at most two hex digits; \\c stands for c')
  t.throws(() => unescapeValue('\\x0\\n'), /malformed/, 'a non-hex digit after \\x is a malformed case (the harness panics)')
  t.equal(unescapeValue('\\xa0'), '\u00a0', 'an unescaped \\xNN is a code point too (Rust char::from(u8))')
  // An integer value is printed in decimal, as the harness's as_i64 branch does.
  t.equal(byName.get('severe.yaml: Multiple Content-Length')?.headers[1]?.value, '100')
  // An empty version (HTTP/0.9 in the corpus) leaves the harness's "{method} {uri} {version}" with a trailing space.
  t.equal(rawRequest(byName.get('acceptable.yaml: Empty version, which means HTTP/0.9') as DesyncCase).toString('latin1'),
    'GET /foo/bar \r\nX-My-Header: some value\r\n\r\n')
})

t.test('the skipped cases are exactly the ones with a line break inside a field', async (t) => {
  t.same(cases.filter(hasLineBreak).map((c) => c.name).sort(), Object.keys(SKIPPED).sort())
  t.equal(runCases.length, 152)
})

// --- Requests ---

interface RequestOutcome {
  readonly state: RequestParserState
  readonly defects: ReadonlyArray<{ readonly code: DefectCode; readonly offset: number }>
  readonly framing: string | null
  /** Offset just past the head, once accepted. */
  readonly headEnd: number | null
}

/** Feeds the reads in order, as proxy/data-path/client-connection.ts does, until the parser is done with the head. */
function parseRequest (chunking: Chunking): RequestOutcome {
  const parser = new RequestParser(CLB_DEFAULTS.maxHeadBytes)
  for (const piece of chunking.pieces) {
    parser.push(piece)
    if (parser.state === 'complete' || parser.state === 'invalid') break
  }
  return {
    state: parser.state,
    defects: parser.defects.map((d) => ({ code: d.code, offset: d.offset })),
    framing: parser.head === null ? null : parser.head.framing.kind,
    headEnd: parser.head === null ? null : parser.head.end
  }
}

function requestVerdict (outcome: RequestOutcome): Verdict {
  // The corpus sends heads without bodies: an accepted head leaves the parser waiting for the body or complete.
  if (outcome.state === 'head') throw new Error('the parser is still reading the head after the blank line')
  return outcome.state === 'invalid' ? 'reject' : 'accept'
}

/** Defensive mode (CLB's default): Severe is answered 400, everything else is forwarded (CLB-DESYNC). */
function expectedVerdict (c: DesyncCase): Verdict {
  return c.expected.tier === 'Severe' ? 'reject' : 'accept'
}

/**
 * - 'documented': docs/clb-choices.md or docs/defects.md states our behaviour;
 * - 'undocumented': our parser follows the RFC (or peer) rule named in the reason, but
 *   docs/clb-choices.md does not list the choice yet;
 * - 'bug': our behaviour contradicts our own docs (reported, not fixed here: validators/ has another owner).
 */
type DifferenceKind = 'documented' | 'undocumented' | 'bug'

interface KnownDifference {
  readonly kind: DifferenceKind
  readonly ours: Verdict
  readonly reason: string
}

const WHITESPACE_BEFORE_COLON = 'whitespace between the header name and the colon: the library rates the name non-compliant or suspicious (forwarded in defensive mode); we answer 400 (docs/clb-choices.md, "Requests"; RFC 9112 §5.1: a server MUST reject such a request with 400)'
const WHITESPACE_IN_NAME = 'whitespace inside a header name ("Transfer- Encoding"): the library rates the name suspicious (Ambiguous, forwarded); we answer 400, as for whitespace before the colon (field-line.ts reports both as name-whitespace; docs/defects.md HDR_NAME_WHITESPACE: "whitespace inside a name is rejected by HAProxy, nginx and llhttp alike"; docs/clb-choices.md names only whitespace before the colon)'
const HTTP_0_9 = 'HTTP/0.9 ("HTTP/0.9" or an empty version, sent as the harness sends it: "{method} {uri} \\r\\n" and header lines): the library rates it Acceptable (Ambiguous with TE/CL); we answer 400 to every version but HTTP/1.x (validators/request-parser.ts). A request with header fields is not HTTP/0.9 on the wire; ELB-HOW says CLB accepts HTTP/0.9 front-end requests, which docs/clb-choices.md does not discuss yet'
const TE_NOT_CHUNKED = 'Transfer-Encoding that does not end in chunked, with Content-Length: the library rates the pair Ambiguous (BothTeClPresent, forwarded); we answer 400 (docs/clb-choices.md, "Transfer-Encoding not ending in a single chunked"; RFC 9112 §6.3 rule 4)'
const WHITESPACE_FIRST_LINE = 'a whitespace-led line right after the request line: the library reads it as a header with a suspicious or empty name; we answer 400 (RFC 9112 §2.2: a recipient MUST either reject it or consume it without processing; validators/request-parser.ts rejects)'
const EMPTY_NAME = 'a header line that starts with ":": the library rates the empty name Ambiguous (forwarded); we answer 400 because it is not a field line (RFC 9110 §5.1: field-name = token, at least one tchar)'
const CONTROL_IN_URI = 'a control character (HT, \\x01) in the request-target: the library rates it Ambiguous (AmbiguousUri, forwarded); we answer 400 (RFC 9112 §3.2: the request-target has no control characters; RFC 9112 §3: an invalid request-line SHOULD get 400). docs/clb-choices.md names only the space'
const CHUNKED_PARAMETERS = 'Transfer-Encoding "chunked;custom_param;" (and "gzip   ;"): the library drops the parameters and rates it Compliant; our request parser compares the whole item with "chunked" and answers 400. RFC 9110 §10.1.4 requires "=" in a transfer-parameter and RFC 9112 §7.1 defines no parameter for chunked, so rejecting is defensible, but our ResponseParser drops the parameters (item.split(";")) and reads the same value as chunked: docs/clb-choices.md should say which one is meant'

/** Request cases where (expected tier Severe <=> we reject) does not hold. */
const KNOWN_DIFFERENCES: Record<string, KnownDifference> = {
  'acceptable.yaml: No TE/CL headers, some others are non-compliant': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'acceptable.yaml: TE and some others are non-compliant': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'acceptable.yaml: CL and some others are non-compliant': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'ambiguous.yaml: Transfer-Encoding with a trailing space in name': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'ambiguous.yaml: Transfer-Encoding with a trailing tab in name': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'ambiguous.yaml: Transfer-Encoding[white-space] and Content-Length': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'ambiguous.yaml: Transfer-Encoding[white-space] and Content-Length[white-space]': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'ambiguous.yaml: Content-Length with UTF8 spaces': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON + ' (the corpus\'s "UTF8 spaces" are ASCII spaces, 0x20)' },
  'real-life-test-cases.yaml: Transfer-Encoding[tab]: chunked': { kind: 'documented', ours: 'reject', reason: WHITESPACE_BEFORE_COLON },
  'ambiguous.yaml: Transfer-Encoding with a space in the middle': { kind: 'documented', ours: 'reject', reason: WHITESPACE_IN_NAME },

  'acceptable.yaml: Non-RFC, but OK HTTP/0.9': { kind: 'undocumented', ours: 'reject', reason: HTTP_0_9 },
  'acceptable.yaml: Empty version, which means HTTP/0.9': { kind: 'undocumented', ours: 'reject', reason: HTTP_0_9 },
  'ambiguous.yaml: Transfer-Encoding for HTTP/0.9': { kind: 'undocumented', ours: 'reject', reason: HTTP_0_9 },
  'ambiguous.yaml: Content-Length for HTTP/0.9': { kind: 'undocumented', ours: 'reject', reason: HTTP_0_9 },
  'ambiguous.yaml: Transfer-Encoding for empty protocol, which is HTTP/0.9': { kind: 'undocumented', ours: 'reject', reason: HTTP_0_9 },
  'ambiguous.yaml: Content-Length for empty protocol, which is HTTP/0.9': { kind: 'undocumented', ours: 'reject', reason: HTTP_0_9 },

  'ambiguous.yaml: Both Transfer-Encoding and Content-Length': { kind: 'documented', ours: 'reject', reason: TE_NOT_CHUNKED + ' ("gzip")' },
  'real-life-test-cases.yaml: Transfer-Encoding: identity and Content-Length': { kind: 'documented', ours: 'reject', reason: TE_NOT_CHUNKED + ' ("deflate", despite the case name)' },

  'ambiguous.yaml: [white-space]Transfer-Encoding and Content-Length': { kind: 'undocumented', ours: 'reject', reason: WHITESPACE_FIRST_LINE },
  'ambiguous.yaml: [white-space]Transfer-Encoding and [white-space]Content-Length': { kind: 'undocumented', ours: 'reject', reason: WHITESPACE_FIRST_LINE },
  'ambiguous.yaml: Only white-spaces header name': { kind: 'undocumented', ours: 'reject', reason: WHITESPACE_FIRST_LINE },
  'ambiguous.yaml: Transfer-Encoding with UTF8 spaces': { kind: 'undocumented', ours: 'reject', reason: WHITESPACE_FIRST_LINE },

  'ambiguous.yaml: Empty header name': { kind: 'undocumented', ours: 'reject', reason: EMPTY_NAME },
  'ambiguous.yaml: Header name starts with :': { kind: 'undocumented', ours: 'reject', reason: EMPTY_NAME },

  'edge-cases.yaml: Bad URI does not shadow essential ambiguous headers': { kind: 'undocumented', ours: 'reject', reason: CONTROL_IN_URI },
  'uri-specific-test-cases.yaml: \\t in URI': { kind: 'undocumented', ours: 'reject', reason: CONTROL_IN_URI },
  'uri-specific-test-cases.yaml: \\x01 in URI': { kind: 'undocumented', ours: 'reject', reason: CONTROL_IN_URI },

  'uri-specific-test-cases.yaml: [space] in URI': {
    kind: 'documented',
    ours: 'reject',
    reason: 'CLB-HTTPERR says a request "can\'t have spaces in the URL" (400); the classifier calls SpaceInUri Acceptable; we follow the older explicit sentence (docs/clb-choices.md, "Requests")'
  },
  'uri-specific-test-cases.yaml: Extra spaces in version': {
    kind: 'undocumented',
    ours: 'reject',
    reason: 'a space after the version ("HTTP/1.1 \\r\\n"): the library trims it (Acceptable); we split the request line at its first and last SP (RFC 9112 §3: method SP request-target SP HTTP-version), so the target holds a space: 400, reported as "space in the request-target"'
  },
  'rfc-compliant.yaml: Empty URI': {
    kind: 'undocumented',
    ours: 'reject',
    reason: 'an empty request-target ("GET  HTTP/1.1"): the library does not rate the URI\'s length (Compliant); we answer 400 (RFC 9112 §3.2: every request-target form is at least one character; §3: an invalid request-line SHOULD get 400)'
  },

  'rfc-compliant.yaml: Transfer-Encoding with a param: chunked;custom_param': { kind: 'undocumented', ours: 'reject', reason: CHUNKED_PARAMETERS },
  'more-compliant-tests.yaml: TE with custom parameters OK': { kind: 'undocumented', ours: 'reject', reason: CHUNKED_PARAMETERS },
  'real-life-test-cases.yaml: Mixed case': { kind: 'undocumented', ours: 'reject', reason: CHUNKED_PARAMETERS + ' (here with a Content-Length too)' },

        }

/** Which of our request defect codes answers each library reason (when both reject). */
const REASON_TO_CODES: Record<string, readonly DefectCode[]> = {
  BadHeader: ['REQUEST_HEADER_INVALID'],
  BadContentLength: ['REQUEST_CL_INVALID'],
  MultipleContentLength: ['REQUEST_CL_INVALID'],
  BadTransferEncoding: ['REQUEST_TE_INVALID'],
  MultipleTransferEncodingChunked: ['REQUEST_TE_INVALID'],
  BadMethod: ['REQUEST_LINE_INVALID'],
  BadUri: ['REQUEST_LINE_INVALID'],
  BadVersion: ['REQUEST_LINE_INVALID']
}

const FIRST_DEFECT_WINS = 'we stop at the first defect in byte order; the library keeps the most severe finding, and its first reason at that tier'

/**
 * Severe cases that we reject too, but whose first defect's code does not answer the library's
 * reason (compared by code only: "edge-cases.yaml: Non-compliant character does not shadow bad
 * character" is BadHeader for its NUL and REQUEST_HEADER_INVALID for the whitespace before the
 * NUL's line's colon, and counts as answered).
 */
const CODE_DIFFERENCES: Record<string, { readonly ours: DefectCode; readonly reason: string }> = {
  'edge-cases.yaml: Bad header does not shadow other bad headers': { ours: 'REQUEST_CL_INVALID', reason: `Content-Length "$9000" is judged before Transfer-Encoding "chunked\\xc2\\x80": ${FIRST_DEFECT_WINS}` },
  'edge-cases.yaml: Bad URI does not shadow essential bad headers': { ours: 'REQUEST_LINE_INVALID', reason: `the tab in the URI is on the request line, before the bad Transfer-Encoding: ${FIRST_DEFECT_WINS}` },
  'severe.yaml: Content-Length[white-space] and Content-Length': { ours: 'REQUEST_HEADER_INVALID', reason: 'whitespace before the colon is rejected on its line (RFC 9112 §5.1), before any Content-Length is compared: the library instead reads "Content-Length " as a second Content-Length' },
  'severe.yaml: [white-space]Content-Length and Content-Length': { ours: 'REQUEST_HEADER_INVALID', reason: 'a whitespace-led line right after the request line is rejected on its line (RFC 9112 §2.2): the library instead reads " Content-Length" as a second Content-Length' },
  'severe.yaml: Transfer-Encoding[white-space] and Transfer-Encoding': { ours: 'REQUEST_HEADER_INVALID', reason: 'whitespace before the colon is rejected on its line (RFC 9112 §5.1): the library instead reads "Transfer-Encoding " as a second chunked' }
}

interface RequestRun {
  readonly verdict: Verdict
  readonly firstCode: DefectCode | null
  readonly chunkingMismatches: readonly string[]
}

function runRequestCase (c: DesyncCase): RequestRun {
  const bytes = rawRequest(c)
  const whole = parseRequest(wholeRead(bytes))
  const mismatches: string[] = []
  for (const chunking of [...splitAtEveryBoundary(bytes, bytes.length), everyByteAlone(bytes)]) {
    const outcome = parseRequest(chunking)
    if (JSON.stringify(outcome) !== JSON.stringify(whole)) mismatches.push(`${c.name}: ${chunking.label}: ${JSON.stringify(outcome)} vs one read ${JSON.stringify(whole)}`)
  }
  return { verdict: requestVerdict(whole), firstCode: whole.defects[0]?.code ?? null, chunkingMismatches: mismatches }
}

const requestRuns = new Map(runCases.map((c) => [c.name, runRequestCase(c)]))

t.test('our request parser gives the same outcome whatever the chunking', async (t) => {
  t.same([...requestRuns.values()].flatMap((run) => run.chunkingMismatches), [])
})

t.test('Severe <=> 400, except the differences listed with their reasons', async (t) => {
  const differences: Record<string, Verdict> = {}
  for (const c of runCases) {
    const ours = (requestRuns.get(c.name) as RequestRun).verdict
    if (ours !== expectedVerdict(c)) differences[c.name] = ours
  }
  t.same(differences, Object.fromEntries(Object.entries(KNOWN_DIFFERENCES).map(([name, d]) => [name, d.ours])),
    'the cases that differ are exactly the listed ones, with our verdict as listed')
  for (const [name, difference] of Object.entries(KNOWN_DIFFERENCES)) {
    t.ok(byName.has(name), `${name}: a corpus case`)
    t.ok(difference.reason.length > 40, `${name}: the difference says why`)
  }
  const kinds: Record<DifferenceKind, number> = { documented: 0, undocumented: 0, bug: 0 }
  for (const d of Object.values(KNOWN_DIFFERENCES)) kinds[d.kind]++
  t.same(kinds, { documented: 13, undocumented: 20, bug: 0 }, 'how many differences our docs explain, only the RFC explains, or are bugs (docs/peer-suites.md)')
  const agree = runCases.length - Object.keys(differences).length
  t.equal(agree, 119, `${runCases.length} cases run, ${agree} agree, ${Object.keys(differences).length} named differences, ${Object.keys(SKIPPED).length} skipped`)
})

t.test('where both reject, our defect answers the library\'s reason, except where listed', async (t) => {
  const differences: Record<string, DefectCode> = {}
  for (const c of runCases) {
    const run = requestRuns.get(c.name) as RequestRun
    if (run.verdict !== 'reject' || expectedVerdict(c) !== 'reject') continue
    const allowed = REASON_TO_CODES[c.expected.reason]
    t.ok(allowed !== undefined, `${c.name}: reason ${c.expected.reason} is mapped`)
    if (!(allowed ?? []).includes(run.firstCode as DefectCode)) differences[c.name] = run.firstCode as DefectCode
  }
  t.same(differences, Object.fromEntries(Object.entries(CODE_DIFFERENCES).map(([name, d]) => [name, d.ours])))
})

// --- Responses: the header-level cases replayed as a backend response ---

/** The reasons about header syntax shared by requests and responses (the corpus README, "Important scope note"). */
const RESPONSE_REASONS = ['BadContentLength', 'MultipleContentLength', 'DuplicateContentLength', 'BothTeClPresent',
  'BadTransferEncoding', 'MultipleTransferEncodingChunked', 'BadHeader']

const responseCases = runCases.filter((c) => RESPONSE_REASONS.includes(c.expected.reason))

/** RFC 9110 §5.6.3 OWS is SP / HTAB only (String.prototype.trim would also strip U+00A0). */
function trimOws (text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '')
}

/**
 * `HTTP/1.1 200 OK`, the case's header lines, the blank line, and a body that fits the framing the
 * headers ask for by the RFC, whatever our parser makes of them: the last-chunk alone when the
 * last coding of Transfer-Encoding is chunked (RFC 9112 §6.3 rule 4); else that many bytes when every
 * Content-Length item is the same 1*DIGIT (rule 5); else nothing (the backend then closes: rule 8).
 */
function responseBytes (c: DesyncCase): { readonly bytes: Buffer; readonly headLength: number } {
  const head = Buffer.from(`HTTP/1.1 200 OK\r\n${headerLines(c.headers)}\r\n`, 'utf8')
  const named = (name: string): string[] => c.headers.filter((h) => h.name.toLowerCase() === name).flatMap((h) => h.value.split(','))
  const codings = named('transfer-encoding').map((item) => trimOws(item.split(';')[0] as string).toLowerCase())
  const lengths = named('content-length').map(trimOws)
  let body = ''
  if (codings.length > 0) {
    if (codings[codings.length - 1] === 'chunked') body = '0\r\n\r\n'
  } else if (lengths.length > 0 && lengths.every((item) => /^[0-9]{1,5}$/.test(item) && item === lengths[0])) {
    body = 'x'.repeat(Number(lengths[0]))
  }
  return { bytes: Buffer.concat([head, Buffer.from(body, 'latin1')]), headLength: head.length }
}

interface ResponseOutcome {
  readonly action: 'pass' | 'reject'
  readonly defects: ReadonlyArray<{ readonly code: DefectCode; readonly offset: number }>
  readonly warnings: readonly DefectCode[]
}

/** The backend sends the reads, then closes (finish() does nothing to a message already complete or invalid). */
function parseResponse (chunking: Chunking): ResponseOutcome {
  const parser = new ResponseParser({ requestMethod: 'GET', maxHeadBytes: CLB_DEFAULTS.maxHeadBytes })
  for (const piece of chunking.pieces) parser.push(piece)
  parser.finish()
  const verdict = judge(parser.defects, 'clb')
  return { action: verdict.action, defects: parser.defects.map((d) => ({ code: d.code, offset: d.offset })), warnings: verdict.warnings.map((d) => d.code) }
}

interface ResponseExpectation {
  /** judge(…, 'clb').action, from the code's row in docs/defects.md. */
  readonly action: 'pass' | 'reject'
  /** The defect docs/defects.md names for these bytes: found (a warning when the action is pass). */
  readonly code: DefectCode
}

/** docs/defects.md, by the library's reason (the row whose example matches the bytes). */
const RESPONSE_EXPECTATIONS: Record<string, ResponseExpectation> = {
  BadContentLength: { action: 'reject', code: 'CL_NOT_INTEGER' }, // KC-502 "a Content-Length header which contains a non-integer"
  MultipleContentLength: { action: 'reject', code: 'CL_DUP_DIFFERENT' },
  DuplicateContentLength: { action: 'pass', code: 'CL_DUP_SAME' },
  BothTeClPresent: { action: 'pass', code: 'TE_AND_CL' },
  BadTransferEncoding: { action: 'pass', code: 'TE_UNSUPPORTED' },
  MultipleTransferEncodingChunked: { action: 'pass', code: 'TE_UNSUPPORTED' } // defects.md example: "chunked, chunked"
}

/** BadHeader: LINE_BARE_CR for a CR, HDR_VALUE_NUL for a NUL in a value, HDR_NAME_NUL for a NUL in a name. */
function badHeaderExpectation (c: DesyncCase): ResponseExpectation {
  if (c.headers.some((h) => h.name.includes('\r') || h.value.includes('\r'))) return { action: 'reject', code: 'LINE_BARE_CR' }
  if (c.headers.some((h) => h.value.includes('\0'))) return { action: 'reject', code: 'HDR_VALUE_NUL' }
  if (c.headers.some((h) => h.name.includes('\0'))) return { action: 'reject', code: 'HDR_NAME_NUL' }
  throw new Error(`${c.name}: a BadHeader case without CR or NUL`)
}

/** Cases whose bytes meet a different docs/defects.md row than their reason suggests. */
const RESPONSE_EXPECTATION_OVERRIDES: Record<string, ResponseExpectation & { readonly why: string }> = {
  'severe.yaml: Bad Content-Length (64-bits overflow)': { action: 'reject', code: 'CL_OVERFLOW', why: 'defects.md CL_OVERFLOW: "99999999999999999999"' },
  'severe.yaml: Bad Content-Length: 1000,1000': { action: 'pass', code: 'CL_DUP_SAME', why: 'defects.md CL_DUP_SAME: "Content-Length: 5, 5" is relayed (RFC 9110 §8.6)' },
  'severe.yaml: Content-Length[white-space] and Content-Length': { action: 'reject', code: 'HDR_NAME_WHITESPACE', why: 'defects.md HDR_NAME_WHITESPACE: "Content-Length : 5"' },
  'severe.yaml: Transfer-Encoding[white-space] and Transfer-Encoding': { action: 'reject', code: 'HDR_NAME_WHITESPACE', why: 'defects.md HDR_NAME_WHITESPACE' },
  'severe.yaml: [white-space]Content-Length and Content-Length': { action: 'reject', code: 'HDR_NAME_WHITESPACE', why: 'defects.md HDR_NAME_WHITESPACE: a whitespace-led line between the status line and the first header (RFC 9112 §2.2)' },
  'edge-cases.yaml: Bad header does not shadow other bad headers': { action: 'reject', code: 'CL_NOT_INTEGER', why: 'defects.md CL_NOT_INTEGER: "Content-Length: $9000" (with a Transfer-Encoding that does not end in chunked, whose TE_UNSUPPORTED is never reached)' },
  'edge-cases.yaml: Bad URI does not shadow essential bad headers': { action: 'reject', code: 'CL_NOT_INTEGER', why: 'the same headers as the case above (the URI is not part of a response)' }
}

function responseExpectation (c: DesyncCase): ResponseExpectation {
  const override = RESPONSE_EXPECTATION_OVERRIDES[c.name]
  if (override !== undefined) return override
  if (c.expected.reason === 'BadHeader') return badHeaderExpectation(c)
  return RESPONSE_EXPECTATIONS[c.expected.reason] as ResponseExpectation
}

const NOT_CHUNKED_RESPONSE = 'a response Transfer-Encoding that does not end in chunked: relayed and read until close, a warning (docs/defects.md TE_UNSUPPORTED, peers split: HAProxy answers 502, llhttp reads to close); the library rates it Severe in a request'
const CHUNKED_TWICE_RESPONSE = 'a response Transfer-Encoding of "chunked, chunked": the final coding is chunked, so the body is framed as chunked (RFC 9112 §6.3 rule 4) and relayed with a warning (docs/defects.md TE_UNSUPPORTED, peers split: HAProxy 2.6 answers 502, nginx 1.22 relays it); the library rates it Severe in a request'

/** Response cases where (the library's tier Severe <=> our clb verdict reject) does not hold. */
const KNOWN_RESPONSE_DIFFERENCES: Record<string, string> = {
  'bad-header-characters.yaml: Transfer-Encoding: \\x01chunked': NOT_CHUNKED_RESPONSE,
  'bad-header-characters.yaml: Transfer-Encoding: chunked\\x01': NOT_CHUNKED_RESPONSE,
  'bad-header-characters.yaml: Transfer-Encoding: \\xa0chunked': NOT_CHUNKED_RESPONSE,
  'bad-header-characters.yaml: Transfer-Encoding: chunked\\xa0': NOT_CHUNKED_RESPONSE,
  'edge-cases.yaml: Bad non-essential header does not shadow bad Transfer-Encoding': NOT_CHUNKED_RESPONSE,
  'real-life-test-cases.yaml: Two Identical Fields - TE': CHUNKED_TWICE_RESPONSE,
  'real-life-test-cases.yaml: Transfer-Encoding: chunk': NOT_CHUNKED_RESPONSE,
  'real-life-test-cases.yaml: Transfer-Encoding: xchunked': NOT_CHUNKED_RESPONSE,
  'real-life-test-cases.yaml: Invalid Transfer-Encoding': CHUNKED_TWICE_RESPONSE,
  'real-life-test-cases.yaml: Chunks Priority on Content-Length.2': NOT_CHUNKED_RESPONSE,
  'severe.yaml: Unknown Transfer-Encoding: xchunked': NOT_CHUNKED_RESPONSE,
  'severe.yaml: Bad character in Transfer-Encoding value: chunked\\x11': NOT_CHUNKED_RESPONSE,
  'severe.yaml: Multiple Transfer-Encoding: chunked': CHUNKED_TWICE_RESPONSE,
  'severe.yaml: Multiple Transfer-Encoding: chunked,chunked': CHUNKED_TWICE_RESPONSE,
  'severe.yaml: Bad Content-Length: 1000,1000': 'a list of identical Content-Length values: relayed with a warning (docs/defects.md CL_DUP_SAME, RFC 9110 §8.6); the library rates the one-field list Severe (BadContentLength)',
}

t.test('the header-level cases, replayed as a backend response', async (t) => {
  t.equal(responseCases.length, 57, 'the 62 cases with a Content-Length / Transfer-Encoding / NUL-CR reason, less the 5 skipped')
  const mismatches: string[] = []
  const notAsDocumented: string[] = []
  const differences: Record<string, 'pass' | 'reject'> = {}
  const usedOverrides = new Set<string>()
  for (const c of responseCases) {
    const { bytes, headLength } = responseBytes(c)
    const whole = parseResponse(wholeRead(bytes))
    for (const chunking of [...splitAtEveryBoundary(bytes, headLength), byteByByte(bytes)]) {
      const outcome = parseResponse(chunking)
      if (JSON.stringify(outcome) !== JSON.stringify(whole)) mismatches.push(`${c.name}: ${chunking.label}`)
    }
    if (c.name in RESPONSE_EXPECTATION_OVERRIDES) usedOverrides.add(c.name)
    const expected = responseExpectation(c)
    const found = expected.action === 'pass' ? whole.warnings.includes(expected.code) : whole.defects.some((d) => d.code === expected.code)
    if (whole.action !== expected.action || !found) {
      notAsDocumented.push(`${c.name}: expected ${expected.action} with ${expected.code}, got ${whole.action} with ${whole.defects.map((d) => d.code).join(', ')}`)
    }
    if ((whole.action === 'reject') !== (c.expected.tier === 'Severe')) differences[c.name] = whole.action
  }
  t.same(mismatches, [], 'the same defects and verdict whatever the chunking')
  t.same(notAsDocumented, [], 'every verdict is the one docs/defects.md gives for those bytes')
  t.same([...usedOverrides].sort(), Object.keys(RESPONSE_EXPECTATION_OVERRIDES).sort(), 'every override names a case that runs')
  t.same(Object.keys(differences).sort(), Object.keys(KNOWN_RESPONSE_DIFFERENCES).sort(), 'the verdicts that differ from the library\'s tier are exactly the listed ones')
  t.same(Object.values(differences).filter((action) => action === 'reject'), [], 'every listed response difference is one we relay (we reject nothing the library forwards)')
})
