/**
 * The malformed-input corpus, read from data: test/fixtures/response-cases.yaml (what a backend
 * sends, and what clb-proxy must make of it) and test/fixtures/request-cases.yaml (what a client
 * sends). The format is in test/fixtures/README.md; adding a case needs no TypeScript (style.md
 * lesson 11, after aws/http-desync-guardian's tests/*.yaml).
 *
 * This module only loads and validates the files: every key known, every value of the right
 * type, every defect code in validators/defects.ts and of the file's direction, every byte string
 * written as a YAML double-quoted scalar in printable ASCII with escapes. A file with a problem
 * fails the import of this module with the full list of problems (file:line, case, field), so no
 * suite runs on data it cannot trust. test/validators/corpus-coverage.test.ts checks what spans cases
 * (coverage of every defect code, unique names, a rule for each case).
 *
 * Response cases are run by test/validators/response-parser.test.ts (whole, split at every head boundary,
 * byte by byte) and test/proxy/data-path/proxy-verdicts.test.ts (real sockets), which replay `bytes` from a raw
 * `net` backend:
 * - write `bytes` in one write; then `laterRead` (if any) in a later one, after the proxy answered;
 * - end the backend socket after writing when `endsWithClose` (with an RST instead of a FIN when
 *   `endsWithReset`); otherwise keep it open;
 * - ask with `requestMethod` (GET when absent); a case whose `maxHeadBytes` is below the proxy
 *   option's minimum is parser-level only.
 * Request cases are run by test/validators/corpus-coverage.test.ts (RequestParser: whole, split at every
 * boundary, byte by byte) and test/proxy/data-path/proxy-forwarding.test.ts (real sockets).
 *
 * Offsets count from the first byte of the message (0-based), as in HAProxy's "error at position".
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node, type Scalar } from 'yaml'
import { DEFECTS, type DefectCode, type DefectDirection } from '../../validators/defects.js'
import type { ResponseParserState } from '../../validators/response-parser.js'

export type Verdict = 'pass' | 'reject'

/**
 * What the client receives for a response case: CLB's own 502 or 504 (exact bytes in
 * proxy/data-path/synthetic-responses.ts), or the backend's bytes up to the end of the framed message.
 */
export type ResponseClient = 'elb-502' | 'elb-504' | 'relayed'

/**
 * What the client receives for one request: CLB's own 400 or 405 (proxy/data-path/synthetic-responses.ts),
 * or the backend's response to the forwarded request.
 */
export type RequestClient = 'elb-400' | 'elb-405' | 'forwarded'

export interface ResponseCase {
  /** Unique, kebab-case; it names the test. */
  readonly name: string
  /** What the backend sends, one character per byte (latin1): see caseBytes(). */
  readonly bytes: string
  /** The request method this response answers; absent means GET. A response to HEAD has no body. */
  readonly requestMethod?: string
  /**
   * The parser's (and the proxy's) maxHeadBytes for this case; absent means CLB_DEFAULTS.maxHeadBytes
   * (64 KiB). Values below the proxy option's minimum (1 KiB) keep the split-at-every-boundary runs
   * small: such cases are parser-level only.
   */
  readonly maxHeadBytes?: number
  /** The backend closes the connection after sending `bytes` (the parser is told with finish()). */
  readonly endsWithClose: boolean
  /** The close is a TCP RST rather than a FIN (the parser sees the same finish()). */
  readonly endsWithReset?: boolean
  /** Bytes the backend sends in a later read, after the response was judged: not part of this exchange. */
  readonly laterRead?: string
  /**
   * Every defect the parser lists, in the order it finds them: at most MAX_DEFECTS_PER_CODE (3) of
   * one code (validators/response-parser.ts).
   */
  readonly expectedCodes: readonly DefectCode[]
  /** The offset of each defect in `expectedCodes`, same order. */
  readonly expectedOffsets: readonly number[]
  /**
   * ResponseParser.defectCounts: how many times each code was found, listed or not. Absent means
   * each code of `expectedCodes` as many times as it is listed (nothing found beyond the list).
   */
  readonly expectedCounts?: Readonly<Partial<Record<DefectCode, number>>>
  /** ResponseParser.state once `bytes` (and the close, if any) were fed. */
  readonly expectedState: ResponseParserState
  /** judge(defects, 'clb').action: 'reject' means CLB's own 502 (or 504, see `client`). */
  readonly expectedVerdict: Verdict
  /** judge(defects, 'strict').action. */
  readonly expectedStrictVerdict: Verdict
  /** judge(defects, 'clb').primary, present exactly when `expectedVerdict` is 'reject'. */
  readonly expectedPrimary?: { readonly code: DefectCode; readonly offset: number }
  /** What the client receives through the proxy (clb profile). */
  readonly client: ResponseClient
  /** The access log's `elb_status_code backend_status_code`, as CLB prints them: "502 -", "504 0", "200 200". */
  readonly log: string
  /** The first-column label of the peers-validation.md §0.3 row this case reproduces. */
  readonly peersRow?: string
  /** The RFC section or AWS sentence the expectation encodes. */
  readonly rule: string
}

export interface RequestCase {
  /** Unique, kebab-case; it names the test. */
  readonly name: string
  /** What the client sends on one connection (one request, or several pipelined), one character per byte. */
  readonly bytes: string
  /** The parser's (and the proxy's) maxHeadBytes; absent means CLB_DEFAULTS.maxHeadBytes (64 KiB). */
  readonly maxHeadBytes?: number
  /** The parser's (and the proxy's) maxRequestLineBytes; absent means CLB_DEFAULTS.maxRequestLineBytes (16 KiB). */
  readonly maxRequestLineBytes?: number
  /** The parser's (and the proxy's) maxHeaderLineBytes; absent means CLB_DEFAULTS.maxHeaderLineBytes (16 KiB). */
  readonly maxHeaderLineBytes?: number
  /** The parser's (and the proxy's) maxHeaderCount; absent means CLB_DEFAULTS.maxHeaderCount (100). */
  readonly maxHeaderCount?: number
  /** Every defect found, in stream order (the parser stops at the first one of a request). */
  readonly expectedCodes: readonly DefectCode[]
  /** The offset of each defect, counted from the first byte of the request it is in. */
  readonly expectedOffsets: readonly number[]
  /** What the client receives for each request the proxy answers, in order. */
  readonly client: readonly RequestClient[]
  /** The access log's `elb_status_code backend_status_code` of each of those requests, in order. */
  readonly log: readonly string[]
  /** The RFC section or AWS sentence the expectation encodes. */
  readonly rule: string
}

/** The cases of one file, and everything wrong with it (empty when the file is sound). */
export interface CorpusLoad<T> {
  readonly cases: readonly T[]
  readonly problems: readonly string[]
}

export const RESPONSE_CASES_FILE = fileURLToPath(new URL('../fixtures/response-cases.yaml', import.meta.url))
export const REQUEST_CASES_FILE = fileURLToPath(new URL('../fixtures/request-cases.yaml', import.meta.url))

// --- Field checks: each returns what is wrong with a value, or null ---

type Check = (value: unknown, node: Node | null) => string | null

const RESPONSE_STATES: readonly ResponseParserState[] = ['head', 'body', 'complete', 'invalid']
const VERDICTS: readonly Verdict[] = ['pass', 'reject']
const RESPONSE_CLIENTS: readonly ResponseClient[] = ['elb-502', 'elb-504', 'relayed']
const REQUEST_CLIENTS: readonly RequestClient[] = ['elb-400', 'elb-405', 'forwarded']
// RFC 9110 section 9.1: method = token.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// elb_status_code, then backend_status_code: a status, `-` (no response to log) or `0` (none received)
// (CLB-LOGS); or, for a relayed response whose status code is outside 100-599 (docs/defects.md
// STATUS_CODE_BELOW_100), that code twice as the log prints a number: `1 1` for `001`.
const LOG_PAIR = /^(?:[1-5][0-9][0-9] (?:[1-5][0-9][0-9]|-|0)|([0-9]{1,3}) \1)$/

const isText: Check = (value) => typeof value === 'string' ? null : 'must be a string'

const isName: Check = (value) =>
  typeof value === 'string' && /^[a-z0-9][a-z0-9.-]*$/.test(value) ? null : 'must be kebab-case: a-z, 0-9, "." and "-"'

const isBoolean: Check = (value) => typeof value === 'boolean' ? null : 'must be true or false'

const isPositiveInteger: Check = (value) => Number.isSafeInteger(value) && (value as number) > 0 ? null : 'must be a positive integer'

const isMethod: Check = (value) => typeof value === 'string' && TOKEN.test(value) ? null : 'must be a method token'

function oneOf (allowed: readonly string[]): Check {
  return (value) => typeof value === 'string' && allowed.includes(value) ? null : `must be one of ${allowed.join(', ')}`
}

function listOf (item: Check, minLength = 0): Check {
  return (value) => {
    if (!Array.isArray(value)) return 'must be a list, [a, b]'
    if (value.length < minLength) return `must have at least ${minLength} item${minLength === 1 ? '' : 's'}`
    for (const [i, element] of value.entries()) {
      const problem = item(element, null)
      if (problem !== null) return `item ${i} ${problem}`
    }
    return null
  }
}

/** { CODE: N, ... }: response codes of the registry, each with a positive count. */
const isCounts: Check = (value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a map { CODE: N, ... }'
  for (const [code, count] of Object.entries(value)) {
    const problem = isDefectCode('response')(code, null) ?? isPositiveInteger(count, null)
    if (problem !== null) return `${code}: ${problem}`
  }
  return null
}

const isOffset: Check = (value) => Number.isSafeInteger(value) && (value as number) >= 0 ? null : 'must be a non-negative integer'

const isLogPair: Check = (value) =>
  typeof value === 'string' && LOG_PAIR.test(value) ? null : 'must be "elb_status_code backend_status_code", e.g. "502 -", "504 0", "200 200"'

function isDefectCode (direction: DefectDirection): Check {
  return (value) => {
    if (typeof value !== 'string' || !Object.hasOwn(DEFECTS, value)) return `must be a code of validators/defects.ts, not ${JSON.stringify(value)}`
    return DEFECTS[value as DefectCode].direction === direction ? null : `${value} is a ${DEFECTS[value as DefectCode].direction} code, not a ${direction} code`
  }
}

function isPrimary (direction: DefectDirection): Check {
  const code = isDefectCode(direction)
  return (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be { code: CODE, offset: N }'
    const keys = Object.keys(value).sort()
    if (keys.join(',') !== 'code,offset') return `must have exactly the keys code and offset, not ${keys.join(', ')}`
    const record = value as Record<string, unknown>
    const problem = code(record.code, null) ?? isOffset(record.offset, null)
    return problem === null ? null : problem
  }
}

/**
 * A byte string: a YAML double-quoted scalar (so `\r`, `\n`, `\xHH` are escapes, not text), written
 * in printable ASCII (so no byte depends on the file's encoding), whose characters are all at most
 * U+00FF (one character is one byte, latin1).
 */
function isBytes (source: string): Check {
  return (value, node) => {
    if (typeof value !== 'string' || node === null || !isScalar(node) || (node as Scalar).type !== 'QUOTE_DOUBLE') {
      return 'must be a double-quoted string ("...") with escapes \\r \\n \\t \\xHH'
    }
    const range = node.range
    if (range !== undefined && range !== null) {
      const written = source.slice(range[0], range[1])
      const raw = [...written].findIndex((ch) => ch !== '\n' && (ch < ' ' || ch > '~'))
      if (raw !== -1) return `must be written in printable ASCII: write byte ${[...written][raw]?.codePointAt(0)?.toString(16)} as \\xHH`
    }
    const wide = [...value].findIndex((ch) => (ch.codePointAt(0) as number) > 0xff)
    if (wide !== -1) return `has a character above \\xFF at index ${wide} (a \\u or \\U escape?): every character must be one byte, \\x00-\\xFF`
    return null
  }
}

interface FieldSpec {
  readonly required: boolean
  readonly check: Check
}

type Schema = Readonly<Record<string, FieldSpec>>

function required (check: Check): FieldSpec {
  return { required: true, check }
}

function optional (check: Check): FieldSpec {
  return { required: false, check }
}

/** The keys of a response case, in the order the README lists them. */
function responseSchema (source: string): Schema {
  return {
    name: required(isName),
    bytes: required(isBytes(source)),
    requestMethod: optional(isMethod),
    maxHeadBytes: optional(isPositiveInteger),
    endsWithClose: required(isBoolean),
    endsWithReset: optional(isBoolean),
    laterRead: optional(isBytes(source)),
    expectedCodes: required(listOf(isDefectCode('response'))),
    expectedOffsets: required(listOf(isOffset)),
    expectedCounts: optional(isCounts),
    expectedState: required(oneOf(RESPONSE_STATES)),
    expectedVerdict: required(oneOf(VERDICTS)),
    expectedStrictVerdict: required(oneOf(VERDICTS)),
    expectedPrimary: optional(isPrimary('response')),
    client: required(oneOf(RESPONSE_CLIENTS)),
    log: required(isLogPair),
    peersRow: optional(isText),
    rule: required(isText)
  }
}

/** The keys of a request case, in the order the README lists them. */
function requestSchema (source: string): Schema {
  return {
    name: required(isName),
    bytes: required(isBytes(source)),
    maxHeadBytes: optional(isPositiveInteger),
    maxRequestLineBytes: optional(isPositiveInteger),
    maxHeaderLineBytes: optional(isPositiveInteger),
    maxHeaderCount: optional(isPositiveInteger),
    expectedCodes: required(listOf(isDefectCode('request'))),
    expectedOffsets: required(listOf(isOffset)),
    client: required(listOf(oneOf(REQUEST_CLIENTS), 1)),
    log: required(listOf(isLogPair, 1)),
    rule: required(isText)
  }
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

/**
 * Parses one corpus file: a YAML sequence of maps, each checked against `schema`. The returned
 * cases hold only the keys present in the file (an absent optional key is absent, not undefined).
 */
function parseCorpus<T> (source: string, file: string, schema: Schema): CorpusLoad<T> {
  const lineCounter = new LineCounter()
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false })
  const problems: string[] = []
  const at = (offset: number | undefined): string => offset === undefined ? file : `${file}:${lineCounter.linePos(offset).line}`
  for (const error of [...doc.errors, ...doc.warnings]) problems.push(`${at(error.pos[0])}: ${error.message.split('\n')[0] ?? ''}`)
  if (doc.errors.length > 0) return { cases: [], problems }
  const items = doc.contents
  if (!isSeq(items)) return { cases: [], problems: [...problems, `${file}: must be a YAML list of cases ("- name: ...")`] }
  const cases: T[] = []
  for (const [index, item] of items.items.entries()) {
    const where = at(isMap(item) || isScalar(item) ? item.range?.[0] : undefined)
    if (!isMap(item)) {
      problems.push(`${where}: case ${index} must be a map of fields`)
      continue
    }
    const nameNode = item.items.find((pair) => isScalar(pair.key) && pair.key.value === 'name')?.value
    const label = `case ${isScalar(nameNode) ? JSON.stringify(nameNode.value) : index}`
    const fields = new Map<string, Node | null>()
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? pair.key.value : null
      const keyAt = at(isScalar(pair.key) ? pair.key.range?.[0] : undefined)
      if (typeof key !== 'string') {
        problems.push(`${keyAt}: ${label}: a key that is not a plain name`)
        continue
      }
      if (!Object.hasOwn(schema, key)) {
        problems.push(`${keyAt}: ${label}: unknown key "${key}" (known: ${Object.keys(schema).join(', ')})`)
        continue
      }
      fields.set(key, (pair.value ?? null) as Node | null)
    }
    const built: Record<string, unknown> = {}
    let sound = true
    for (const [key, spec] of Object.entries(schema)) {
      if (!fields.has(key)) {
        if (spec.required) {
          problems.push(`${where}: ${label}: missing key "${key}"`)
          sound = false
        }
        continue
      }
      const node = fields.get(key) ?? null
      const value: unknown = node === null ? null : node.toJS(doc)
      const problem = spec.check(value, node)
      if (problem !== null) {
        problems.push(`${at(node?.range?.[0])}: ${label}: ${key} ${problem}`)
        sound = false
        continue
      }
      built[key] = value
    }
    if (sound) cases.push(deepFreeze(built) as T)
  }
  return { cases: Object.freeze(cases), problems }
}

/** Parses the text of a response corpus file (`file` names it in problems). */
export function parseResponseCases (source: string, file = 'response-cases.yaml'): CorpusLoad<ResponseCase> {
  return parseCorpus<ResponseCase>(source, file, responseSchema(source))
}

/** Parses the text of a request corpus file (`file` names it in problems). */
export function parseRequestCases (source: string, file = 'request-cases.yaml'): CorpusLoad<RequestCase> {
  return parseCorpus<RequestCase>(source, file, requestSchema(source))
}

/** Reads and parses a corpus file from disk. */
export function readCorpus<T> (path: string, parse: (source: string, file: string) => CorpusLoad<T>): CorpusLoad<T> {
  return parse(readFileSync(path, 'utf8'), path)
}

function loadOrThrow<T> (path: string, parse: (source: string, file: string) => CorpusLoad<T>): readonly T[] {
  const { cases, problems } = readCorpus(path, parse)
  if (problems.length > 0) throw new Error(`the corpus file ${path} has ${problems.length} problem(s):\n${problems.join('\n')}`)
  return cases
}

/** Every response case of test/fixtures/response-cases.yaml, in file order. */
export const RESPONSE_CASES: readonly ResponseCase[] = loadOrThrow(RESPONSE_CASES_FILE, parseResponseCases)

/** Every request case of test/fixtures/request-cases.yaml, in file order. */
export const REQUEST_CASES: readonly RequestCase[] = loadOrThrow(REQUEST_CASES_FILE, parseRequestCases)

/**
 * The bytes of a case, as the backend (or client) sends them. YAML gives one character per `\xHH`
 * escape, U+0000-U+00FF (checked on load); latin1 maps each to the one byte of that value.
 */
export function caseBytes (corpusCase: { readonly bytes: string }): Buffer {
  return Buffer.from(corpusCase.bytes, 'latin1')
}
