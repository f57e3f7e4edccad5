/**
 * The malformed-input corpus as data (style.md lesson 11): test/fixtures/response-cases.yaml and
 * request-cases.yaml load with no problem, cover every code of the defect registry, and every
 * request case gives the same requests and defects whole, split at every byte boundary and byte
 * by byte. (Response cases run through the parser in test/validators/response-parser.test.ts and over real
 * sockets in test/proxy/data-path/proxy-verdicts.test.ts; request cases over real sockets in
 * test/proxy/data-path/proxy-forwarding.test.ts.)
 */
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import { OPTION_LIMITS } from '../../proxy/core/resolve-options.js'
import { DEFECTS, DEFECT_CODES, type DefectDirection } from '../../validators/defects.js'
import type { RequestLimits } from '../../validators/request-parser.js'
import {
  REQUEST_CASES,
  REQUEST_CASES_FILE,
  RESPONSE_CASES,
  RESPONSE_CASES_FILE,
  caseBytes,
  parseRequestCases,
  parseResponseCases,
  readCorpus,
  type RequestCase
} from '../helpers/corpus-cases.js'
import { everyByteAlone, splitAtEveryBoundary, wholeRead } from '../helpers/split.js'
import { feedStream } from '../helpers/request-stream.js'

/** The fields every file's cases share, for the checks that apply to both. */
interface AnyCase {
  readonly name: string
  readonly maxHeadBytes?: number
  readonly maxRequestLineBytes?: number
  readonly maxHeaderLineBytes?: number
  readonly maxHeaderCount?: number
  readonly expectedCodes: readonly string[]
  readonly expectedOffsets: readonly number[]
  readonly rule: string
}

const FILES: ReadonlyArray<{ readonly file: string; readonly direction: DefectDirection; readonly cases: readonly AnyCase[] }> = [
  { file: 'response-cases.yaml', direction: 'response', cases: RESPONSE_CASES },
  { file: 'request-cases.yaml', direction: 'request', cases: REQUEST_CASES }
]

t.test('both corpus files load with no problem: known keys only, typed values, registry codes, bytes as escapes', async (t) => {
  const responses = readCorpus(RESPONSE_CASES_FILE, parseResponseCases)
  const requests = readCorpus(REQUEST_CASES_FILE, parseRequestCases)
  t.strictSame(responses.problems, [], 'response-cases.yaml')
  t.strictSame(requests.problems, [], 'request-cases.yaml')
  t.equal(responses.cases.length, RESPONSE_CASES.length, 'every response case loaded')
  t.equal(requests.cases.length, REQUEST_CASES.length, 'every request case loaded')
})

t.test('every code of the defect registry is expected by at least one case of its direction', async (t) => {
  for (const { file, direction, cases } of FILES) {
    const covered = new Set(cases.flatMap((c) => c.expectedCodes))
    const missing = DEFECT_CODES.filter((code) => DEFECTS[code].direction === direction && !covered.has(code))
    t.strictSame(missing, [], `${direction} codes with no case in ${file}`)
  }
})

/** The limit keys a case may set, each also a proxy option (proxy/core/options.ts). */
const LIMIT_KEYS = ['maxHeadBytes', 'maxRequestLineBytes', 'maxHeaderLineBytes', 'maxHeaderCount'] as const

/** Every limit the case sets is one the proxy accepts (OPTION_LIMITS), as test/proxy/data-path/proxy-forwarding.test.ts requires. */
function proxyAccepts (c: AnyCase): boolean {
  return LIMIT_KEYS.every((key) => {
    const value = c[key]
    return value === undefined || (value >= OPTION_LIMITS[key].min && value <= OPTION_LIMITS[key].max)
  })
}

t.test('every code of the defect registry has a case the socket suites run (limits the proxy accepts)', async (t) => {
  for (const { file, direction, cases } of FILES) {
    const runnable = cases.filter(proxyAccepts)
    const covered = new Set(runnable.flatMap((c) => c.expectedCodes))
    const missing = DEFECT_CODES.filter((code) => DEFECTS[code].direction === direction && !covered.has(code))
    t.strictSame(missing, [], `${direction} codes with no socket-level case in ${file}`)
  }
})

t.test('names are unique, every case names its rule, one offset per code', async (t) => {
  for (const { file, cases } of FILES) {
    const names = cases.map((c) => c.name)
    t.strictSame(names.filter((name, i) => names.indexOf(name) !== i), [], `${file}: duplicate names`)
    t.strictSame(cases.filter((c) => c.rule.trim() === '').map((c) => c.name), [], `${file}: cases with an empty rule`)
    t.strictSame(cases.filter((c) => c.expectedOffsets.length !== c.expectedCodes.length).map((c) => c.name), [],
      `${file}: cases whose expectedOffsets and expectedCodes differ in length`)
  }
})

t.test('response cases: what the client gets agrees with the verdict and the log pair', async (t) => {
  // The clb profile relays what it passes and answers CLB's own 502 or 504 for what it rejects
  // (docs/defects.md); CLB logs its own error with backend_status_code `-` (502: the instance sent
  // no usable response) or `0` (504: the instance closed without a byte), and a relayed response
  // with the backend's status twice (CLB-LOGS).
  const disagreeing = RESPONSE_CASES.filter((c) => {
    const [elbStatus, backendStatus] = c.log.split(' ')
    if (c.client === 'relayed') return c.expectedVerdict !== 'pass' || elbStatus !== backendStatus
    if (c.expectedVerdict !== 'reject') return true
    return c.client === 'elb-502' ? c.log !== '502 -' : c.log !== '504 0'
  })
  t.strictSame(disagreeing.map((c) => `${c.name}: ${c.expectedVerdict}, ${c.client}, "${c.log}"`), [])
})

t.test('request cases: one log pair per answered request, and it agrees with what the client gets', async (t) => {
  // CLB-HTTPERR: 405 for a method longer than 127 characters, 400 for any other malformed request;
  // both are logged with backend_status_code 0 (no instance involved).
  const disagreeing = REQUEST_CASES.filter((c) =>
    c.log.length !== c.client.length ||
    c.client.some((outcome, i) => {
      const pair = c.log[i] as string
      if (outcome === 'elb-400') return pair !== '400 0'
      if (outcome === 'elb-405') return pair !== '405 0'
      return pair.endsWith(' 0') || pair.endsWith(' -')
    }) ||
    // Only the last request of a stream can be refused: the connection closes after a 400 or 405.
    c.client.slice(0, -1).some((outcome) => outcome !== 'forwarded') ||
    (c.client.at(-1) === 'elb-405') !== c.expectedCodes.includes('REQUEST_METHOD_TOO_LONG') ||
    (c.client.at(-1) === 'forwarded') !== (c.expectedCodes.length === 0))
  t.strictSame(disagreeing.map((c) => `${c.name}: ${c.client.join(' ')} / ${c.log.join(' / ')}`), [])
})

// --- Request cases through RequestParser ---

/** One request of a client stream: everything that must not depend on the reads. */

/** The parser limits of a case: each its own value, or CLB_DEFAULTS when absent. */
function limitsOf (c: RequestCase): RequestLimits {
  return {
    maxHeadBytes: c.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes,
    maxRequestLineBytes: c.maxRequestLineBytes ?? CLB_DEFAULTS.maxRequestLineBytes,
    maxHeaderLineBytes: c.maxHeaderLineBytes ?? CLB_DEFAULTS.maxHeaderLineBytes,
    maxHeaderCount: c.maxHeaderCount ?? CLB_DEFAULTS.maxHeaderCount
  }
}

t.test('each request case read in one piece gives its codes, offsets and one request per answer', async (t) => {
  for (const c of REQUEST_CASES) {
    const bytes = caseBytes(c)
    const outcomes = feedStream(wholeRead(bytes), limitsOf(c))
    t.strictSame({
      codes: outcomes.flatMap((o) => o.defects.map((d) => d.code)),
      offsets: outcomes.flatMap((o) => o.defects.map((d) => d.offset)),
      // 'forwarded' is a complete request; CLB's 400 or 405 answers an invalid one.
      states: outcomes.map((o) => o.state),
      // A stream that ends with forwarded requests is read to its last byte (nothing left waiting).
      unread: c.client.at(-1) === 'forwarded' ? bytes.length - outcomes.reduce((sum, o) => sum + (o.consumed ?? 0), 0) : 'not asserted'
    }, {
      codes: c.expectedCodes,
      offsets: c.expectedOffsets,
      states: c.client.map((outcome) => outcome === 'forwarded' ? 'complete' : 'invalid'),
      unread: c.client.at(-1) === 'forwarded' ? 0 : 'not asserted'
    }, c.name)
  }
})

t.test('each request case gives the same requests split at every byte boundary and byte by byte', async (t) => {
  for (const c of REQUEST_CASES) {
    const bytes = caseBytes(c)
    const whole = feedStream(wholeRead(bytes), limitsOf(c))
    // Unconsumed bytes are handed back to the caller, so every cut is fair (test/helpers/split.ts).
    const chunkings = [...splitAtEveryBoundary(bytes, bytes.length), everyByteAlone(bytes)]
    const differ = chunkings.filter((chunking) => !isDeepStrictEqual(feedStream(chunking, limitsOf(c)), whole)).map((chunking) => chunking.label)
    t.strictSame(differ, [], `${c.name}: all ${chunkings.length} chunkings match one read`)
  }
})

// --- The loader rejects what it cannot trust ---

const GOOD_RESPONSE = `- name: minimal
  bytes: "HTTP/1.1 204 No Content\\r\\n\\r\\n"
  endsWithClose: false
  expectedCodes: []
  expectedOffsets: []
  expectedState: complete
  expectedVerdict: pass
  expectedStrictVerdict: pass
  client: relayed
  log: "204 204"
  rule: 'RFC 9112 §6.3 rule 1'
`

/** GOOD_RESPONSE with one line replaced (or removed, when `to` is null). */
function responseWith (from: string, to: string | null): string {
  if (!GOOD_RESPONSE.includes(from)) throw new Error(`no line ${from}`)
  return GOOD_RESPONSE.replace(from + '\n', to === null ? '' : to + '\n')
}

t.test('the loader reads escapes as bytes and a continued line as nothing', async (t) => {
  const source = responseWith('  bytes: "HTTP/1.1 204 No Content\\r\\n\\r\\n"', '  bytes: "HTTP/1.1 204 \\x00\\xff\\t\\"\\\\\\\n    No Content\\r\\n\\r\\n"')
  const { cases, problems } = parseResponseCases(source)
  t.strictSame(problems, [])
  t.strictSame([...caseBytes(cases[0] as { bytes: string })], [...Buffer.from('HTTP/1.1 204 ', 'latin1'), 0x00, 0xff, 0x09, 0x22, 0x5c, ...Buffer.from('No Content\r\n\r\n', 'latin1')])
  t.strictSame(Object.keys(cases[0] as object), ['name', 'bytes', 'endsWithClose', 'expectedCodes', 'expectedOffsets', 'expectedState', 'expectedVerdict',
    'expectedStrictVerdict', 'client', 'log', 'rule'], 'absent optional keys stay absent')
})

t.test('the loader names every problem: file:line, case, field', async (t) => {
  const problemsOf = (source: string): readonly string[] => parseResponseCases(source, 'x.yaml').problems
  t.strictSame(problemsOf(responseWith('  log: "204 204"', '  log: "204 204"\n  expectedStatus: 204')),
    ['x.yaml:11: case "minimal": unknown key "expectedStatus" (known: name, bytes, requestMethod, maxHeadBytes, endsWithClose, endsWithReset, laterRead, ' +
      'expectedCodes, expectedOffsets, expectedCounts, expectedState, expectedVerdict, expectedStrictVerdict, expectedPrimary, client, log, peersRow, rule)'])
  t.strictSame(problemsOf(responseWith("  rule: 'RFC 9112 §6.3 rule 1'", null)), ['x.yaml:1: case "minimal": missing key "rule"'])
  t.strictSame(problemsOf(responseWith('  bytes: "HTTP/1.1 204 No Content\\r\\n\\r\\n"', "  bytes: 'HTTP/1.1 204 No Content\\r\\n\\r\\n'")),
    ['x.yaml:2: case "minimal": bytes must be a double-quoted string ("...") with escapes \\r \\n \\t \\xHH'], 'single quotes would keep \\r as two characters')
  t.strictSame(problemsOf(responseWith('  bytes: "HTTP/1.1 204 No Content\\r\\n\\r\\n"', '  bytes: "HTTP/1.1 204 N\u00e9\\r\\n\\r\\n"')),
    ['x.yaml:2: case "minimal": bytes must be written in printable ASCII: write byte e9 as \\xHH'])
  t.strictSame(problemsOf(responseWith('  bytes: "HTTP/1.1 204 No Content\\r\\n\\r\\n"', '  bytes: "HTTP/1.1 204 \\u0100\\r\\n\\r\\n"')),
    ['x.yaml:2: case "minimal": bytes has a character above \\xFF at index 13 (a \\u or \\U escape?): every character must be one byte, \\x00-\\xFF'])
  t.strictSame(problemsOf(responseWith('  expectedCodes: []', '  expectedCodes: [REQUEST_CONNECT, NO_SUCH_CODE]')),
    ['x.yaml:4: case "minimal": expectedCodes item 0 REQUEST_CONNECT is a request code, not a response code'])
  t.strictSame(problemsOf(responseWith('  expectedCodes: []', '  expectedCodes: [NO_SUCH_CODE]')),
    ['x.yaml:4: case "minimal": expectedCodes item 0 must be a code of validators/defects.ts, not "NO_SUCH_CODE"'])
  t.strictSame(problemsOf(responseWith('  client: relayed', '  client: elb-503')),
    ['x.yaml:9: case "minimal": client must be one of elb-502, elb-504, relayed'])
  t.strictSame(problemsOf(responseWith('  log: "204 204"', '  log: "204"')),
    ['x.yaml:10: case "minimal": log must be "elb_status_code backend_status_code", e.g. "502 -", "504 0", "200 200"'])
  t.strictSame(problemsOf(responseWith('  log: "204 204"', '  log: "1 2"')),
    ['x.yaml:10: case "minimal": log must be "elb_status_code backend_status_code", e.g. "502 -", "504 0", "200 200"'],
    'a status outside 100-599 is only the relayed status, printed twice')
  t.strictSame(problemsOf(responseWith('  expectedOffsets: []', '  expectedOffsets: []\n  expectedCounts: { LINE_BARE_LF: 0 }')),
    ['x.yaml:6: case "minimal": expectedCounts LINE_BARE_LF: must be a positive integer'])
  t.strictSame(problemsOf(responseWith('  expectedOffsets: []', '  expectedOffsets: []\n  expectedCounts: { REQUEST_CONNECT: 1 }')),
    ['x.yaml:6: case "minimal": expectedCounts REQUEST_CONNECT: REQUEST_CONNECT is a request code, not a response code'])
  t.strictSame(problemsOf(GOOD_RESPONSE + GOOD_RESPONSE.replace('  endsWithClose: false\n', '  endsWithClose: false\n  endsWithClose: true\n')).length, 1,
    'a key given twice is a YAML error')
  t.strictSame(problemsOf('name: not-a-list\n'), ['x.yaml: must be a YAML list of cases ("- name: ...")'])
  t.strictSame(parseRequestCases(`- name: r
  bytes: "GET / HTTP/1.1\\r\\n\\r\\n"
  expectedCodes: [HDR_NO_COLON]
  expectedOffsets: [0]
  client: []
  log: ["200 200"]
  rule: 'r'
`, 'y.yaml').problems, [
    'y.yaml:3: case "r": expectedCodes item 0 HDR_NO_COLON is a response code, not a request code',
    'y.yaml:5: case "r": client must have at least 1 item'
  ])
})
