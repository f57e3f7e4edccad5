/**
 * CLB's desync mitigation classification of one HTTP/1.x request (CLB-DESYNC; docs/clb-behavior.md
 * §6): a port of aws/http-desync-guardian's `analyze_raw_request` (HDG @ 7dd6f37, `src/request_analyzer.rs`,
 * `src/raw_request_parser.rs`, `src/http_token_utils.rs`, `build.rs`; spec §6.2), the library CLB's
 * mode is built on. Same tiers, same reason names, same analysis order, same "first reason at the
 * highest tier decides" rule, byte for byte, including the library's quirks (each is marked HDG below).
 *
 * Pure: bytes in, a verdict out; no throwing on any input, and work linear in the head's length (each
 * byte is visited a bounded number of times; a Content-Length stops being read at 21 digits).
 * docs/desync.md has the reasons, their tiers and which mode blocks which tier.
 */
import { TCHAR, isDigit } from './bytes.js'

/** Ordered: Compliant < Acceptable < Ambiguous < Severe (HDG `RequestSafetyTier`). */
export type DesyncTier = 'Compliant' | 'Acceptable' | 'Ambiguous' | 'Severe'
export const DESYNC_TIERS: readonly DesyncTier[] = ['Compliant', 'Acceptable', 'Ambiguous', 'Severe']

/** The tier each of HDG's `ClassificationReason` values gives (each reason always gives the same tier). */
export const DESYNC_REASON_TIERS = Object.freeze({
  // Headers (HDG request_analyzer.rs, analyze_request_internal / upgrade_from_header_tier)
  EmptyHeader: 'Ambiguous',
  SuspiciousHeader: 'Ambiguous',
  NonCompliantHeader: 'Acceptable',
  BadHeader: 'Severe',
  // URI (check_uri)
  AmbiguousUri: 'Ambiguous',
  SpaceInUri: 'Acceptable',
  BadUri: 'Severe',
  // Version (check_version)
  NonCompliantVersion: 'Acceptable',
  BadVersion: 'Severe',
  // Content-Length (extract_content_length, check_cl_for_get_head, not_valid_for_predecessor_versions)
  GetHeadZeroContentLength: 'Acceptable',
  UndefinedContentLengthSemantics: 'Ambiguous',
  MultipleContentLength: 'Severe',
  DuplicateContentLength: 'Ambiguous',
  BadContentLength: 'Severe',
  // Transfer-Encoding (has_transfer_encoding, check_te_for_get_head, not_valid_for_predecessor_versions)
  UndefinedTransferEncodingSemantics: 'Ambiguous',
  MultipleTransferEncodingChunked: 'Severe',
  BadTransferEncoding: 'Severe',
  BothTeClPresent: 'Ambiguous',
  // Method (check_method)
  BadMethod: 'Severe',
  // Raw parsing only (parse_request_line, parse_headers)
  NonCrLfLineTermination: 'Acceptable',
  MultilineHeader: 'Ambiguous',
  PartialHeaderLine: 'Ambiguous',
  MissingLastEmptyLine: 'Ambiguous',
  MissingHeaderColon: 'Ambiguous',
  MissingUri: 'Ambiguous'
} as const satisfies Record<string, Exclude<DesyncTier, 'Compliant'>>)

export type DesyncReason = keyof typeof DESYNC_REASON_TIERS
export const DESYNC_REASONS: readonly DesyncReason[] = Object.freeze(Object.keys(DESYNC_REASON_TIERS) as DesyncReason[])

export interface DesyncFinding {
  readonly reason: DesyncReason
  /** Byte offset from the first byte of `head`. */
  readonly offset: number
  /** `<Reason> <detail>`; foreign bytes escaped as HDG's `to_quoted_ascii`, URIs and ordinary header values obfuscated as its `obfuscate_value`. */
  readonly message: string
}

export interface DesyncClassification {
  readonly tier: DesyncTier
  /** The reason that decided the tier (HDG's single reason): the first finding at the highest tier; 'Compliant' when none. */
  readonly reason: DesyncReason | 'Compliant'
  /** Every reason found, once each (its first occurrence), in HDG's analysis order. */
  readonly reasons: readonly DesyncFinding[]
}

/** CLB's `elb.http.desyncmitigationmode` (CLB-DESYNC, BOTO: default `defensive`). */
export type DesyncMode = 'monitor' | 'defensive' | 'strictest'
/** allow: forward; allow-and-close: forward, then close the client and the backend connection; block: 400 and close. */
export type DesyncAction = 'allow' | 'allow-and-close' | 'block'

/**
 * CLB-DESYNC's mode table (spec §6.1): monitor allows everything; defensive blocks Severe and
 * "routes the requests but closes the client and target connections" for Ambiguous; strictest
 * allows only Compliant.
 */
export function desyncAction (mode: DesyncMode, tier: DesyncTier): DesyncAction {
  if (mode === 'monitor' || tier === 'Compliant') return 'allow'
  if (mode === 'strictest') return 'block'
  if (tier === 'Severe') return 'block'
  return tier === 'Ambiguous' ? 'allow-and-close' : 'allow'
}

/** CLB-DESYNC: whether the mode blocks a request of that tier (400 and close, spec §6.4). */
export function blocks (mode: DesyncMode, tier: DesyncTier): boolean {
  return desyncAction(mode, tier) === 'block'
}

// --- Byte classes (HDG build.rs) ---

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const HT = 0x09
const COLON = 0x3a
/** HDG `is_bad_http_character`: CR, LF, NUL. */
const isBad = (b: number): boolean => b === CR || b === LF || b === 0
/** HDG `is_rfc_whitespace`: SP, HT. */
const isWs = (b: number): boolean => b === SP || b === HT
/** HDG `is_rfc_vchar`: 0x20-0x7E (SP included, as the library has it). */
const isVchar = (b: number): boolean => b >= 0x20 && b < 0x7f
/** HDG HEADER_VALUE_CHARS: VCHAR, obs-text, SP/HT. */
const isValueChar = (b: number): boolean => isVchar(b) || b >= 0x80 || isWs(b)
/** HDG VALID_URI_CHARS: "disable CTL in URL". */
const isUriChar = (b: number): boolean => b > SP && b !== 0x7f
const isTchar = (b: number): boolean => TCHAR[b] === 1
const isAlnum = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
const lower = (b: number): number => (b >= 0x41 && b <= 0x5a) ? b + 0x20 : b

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1')
const TE = ascii('transfer-encoding')
const CL = ascii('content-length')
const GET = ascii('GET')
const HEAD = ascii('HEAD')
const HTTP_0_9 = ascii('HTTP/0.9')
const HTTP_1_0 = ascii('HTTP/1.0')
const HTTP_1_ = ascii('HTTP/1.')
const HTTP_2 = ascii('HTTP/2')
const CONTENT_TYPE = ascii('content-type')
const CHUNKED = 'chunked'
/** HDG `VALID_TE`. */
const VALID_TE = new Set([CHUNKED, 'compress', 'deflate', 'gzip', 'identity'])
const U64_MAX = (1n << 64n) - 1n
/** HDG MESSAGE_MAX_SIZE / 2: how much of one foreign token a message quotes. */
const QUOTE_MAX = 150

/** A token: a view of the head's bytes and the offset of its first byte. */
interface Token {
  readonly bytes: Buffer
  readonly at: number
}

function trim (t: Token): Token {
  let s = 0
  let e = t.bytes.length
  while (s < e && isWs(t.bytes[s] as number)) s++
  while (s < e && isWs(t.bytes[e - 1] as number)) e--
  return { bytes: t.bytes.subarray(s, e), at: t.at + s }
}

function equalIgnoreCase (bytes: Uint8Array, lowerAscii: Uint8Array): boolean {
  if (bytes.length !== lowerAscii.length) return false
  for (let i = 0; i < bytes.length; i++) if (lower(bytes[i] as number) !== lowerAscii[i]) return false
  return true
}

/** HDG `to_quoted_ascii`. */
function quoted (bytes: Uint8Array): string {
  let out = '"'
  for (const b of bytes) {
    if (out.length >= QUOTE_MAX - 4) break
    if (b === CR) out += '\\r'
    else if (b === LF) out += '\\n'
    else if (b === HT) out += '\\t'
    else if (b === 0x5c) out += '\\\\'
    else if (isVchar(b)) out += String.fromCharCode(b)
    else out += '\\0x' + b.toString(16).padStart(2, '0')
  }
  return out + '"'
}

/** HDG `obfuscate_value`: user data becomes `_`, only the offending characters are shown. */
function obfuscated (bytes: Uint8Array): string {
  let out = '"'
  for (const b of bytes) {
    if (out.length >= QUOTE_MAX - 4) break
    if (b === CR) out += '\\r'
    else if (b === LF) out += '\\n'
    else if (b === HT) out += '\\t'
    else if (b === 0x5c) out += '\\\\'
    else if (b === SP) out += ' '
    else if (!isVchar(b) && b < 0x80) out += '\\0x' + b.toString(16).padStart(2, '0')
    else if (!out.endsWith('_')) out += '_'
  }
  return out + '"'
}

// --- HDG raw_request_parser.rs: RequestBuffer, with the same pos/end arithmetic ---

class Cursor {
  constructor (readonly buf: Buffer, public pos: number, public end: number) {}
  /** HDG is_done */
  get done (): boolean { return this.pos >= this.end }
  /** HDG is_partial: the delimiter was not found (pos went past end). */
  get partial (): boolean { return this.pos > this.end }
  token (): Token {
    return this.pos < this.end ? { bytes: this.buf.subarray(this.pos, this.end), at: this.pos } : { bytes: this.buf.subarray(0, 0), at: Math.min(this.pos, this.buf.length) }
  }

  trimLastCr (): boolean {
    if (this.end > this.pos && this.buf[this.end - 1] === CR) { this.end--; return true }
    return false
  }

  next (delimiter: number): Cursor {
    let current = this.pos
    while (current < this.end && this.buf[current] !== delimiter) current++
    const begin = this.pos
    this.pos = current + 1
    return new Cursor(this.buf, begin, current)
  }

  /** HDG last_token: from the right, skips trailing non-tchars, then takes back to the delimiter. */
  last (delimiter: number): Cursor {
    let current = this.end > this.pos ? this.end - 1 : this.pos
    let skipNonTchars = true
    while (this.pos < current && (this.buf[current] !== delimiter || skipNonTchars)) {
      skipNonTchars &&= !isTchar(this.buf[current] as number)
      current--
    }
    if (current >= this.pos && current < this.end) {
      const begin = this.buf[current] === delimiter ? current + 1 : current
      const end = this.end
      this.end = begin - 1
      return new Cursor(this.buf, begin, end)
    }
    return new Cursor(this.buf, 1, 0) // HDG: "partial token"
  }
}

interface Header {
  readonly name: Token
  readonly value: Token
}

// --- HDG http_token_utils.rs: determine_similarity ---

const Similarity = { Identical: 0, SameLetters: 1, Distant: 2 } as const
type Similarity = typeof Similarity[keyof typeof Similarity]

function nextAlnum (h: Uint8Array, i: number): number {
  while (i < h.length && !isAlnum(h[i] as number)) i++
  return i
}

function nextHeaderSymbol (h: Uint8Array, i: number): number {
  while (i < h.length && (h[i] as number) <= SP) i++
  return i
}

/** HDG same_char: ASCII case-insensitive, and the UTF-8 `ſ` (C5 BF) as `s`, dotless `ı` (C4 B1) as `i`. */
function sameChar (c: number, h: Uint8Array, i: number): [boolean, number] {
  const b = h[i] as number
  if (c === lower(b)) return [true, i + 1]
  if (h.length > i + 1 && ((c === 0x73 && b === 0xc5 && h[i + 1] === 0xbf) || (c === 0x69 && b === 0xc4 && h[i + 1] === 0xb1))) return [true, i + 2]
  return [false, i + 1]
}

/**
 * HDG determine_similarity: Identical (ASCII case-insensitively equal), SameLetters (the letters
 * match once non-alphanumerics around and bytes <= SP between are ignored and any non-alphanumeric
 * run stands for the '-'), else Distant. Linear: the index only moves forward.
 */
function similarity (important: Uint8Array, h: Uint8Array): Similarity {
  if (h.length < important.length) return Similarity.Distant
  let i = nextAlnum(h, 0)
  let identical = i === 0 && important.length === h.length
  for (const c of important) {
    if (i === h.length) return Similarity.Distant
    const delimiter = c === 0x2d
    const [same, next] = sameChar(c, h, i)
    if (!same) {
      if (!delimiter) break
      identical = false
    }
    i = delimiter ? nextAlnum(h, next) : nextHeaderSymbol(h, next)
  }
  const exhausted = i === h.length
  if (exhausted && identical) return Similarity.Identical
  if (exhausted || nextAlnum(h, i) === h.length) return Similarity.SameLetters
  return Similarity.Distant
}

/** HDG parse_num: SP/HT-trimmed, all digits (empty is 0), fits in u64. */
function parseNum (value: Token): bigint | 'Not an integer' | '64-bits overflow' {
  const t = trim(value).bytes
  let n = 0n
  for (const c of t) {
    if (c < 0x30 || c > 0x39) return 'Not an integer'
    n = n * 10n + BigInt(c - 0x30)
    if (n > U64_MAX) return '64-bits overflow' // so at most 21 digits are ever multiplied
  }
  return n
}

/** HDG is_valid_te: the item trimmed, parameters after ';' dropped, one of VALID_TE (case-insensitive). */
function validTe (bytes: Uint8Array): string | null {
  let s = 0
  let e = bytes.length
  while (s < e && isWs(bytes[s] as number)) s++
  while (s < e && isWs(bytes[e - 1] as number)) e--
  let semi = s
  while (semi < e && bytes[semi] !== 0x3b) semi++
  e = semi
  while (s < e && isWs(bytes[e - 1] as number)) e--
  if (e - s > 8) return null
  let text = ''
  for (let i = s; i < e; i++) text += String.fromCharCode(lower(bytes[i] as number))
  return VALID_TE.has(text) ? text : null
}

/** HDG header_tier: the worse of the name's (tchar) and the value's (VCHAR, obs-text, SP/HT) tier, with the offset of the byte that decides it. */
function headerTier (h: Header): { tier: 0 | 1 | 2; offset: number } {
  const scan = (t: Token, ok: (b: number) => boolean): { tier: 0 | 1 | 2; offset: number } => {
    let result: { tier: 0 | 1 | 2; offset: number } = { tier: 0, offset: -1 }
    for (let i = 0; i < t.bytes.length; i++) {
      const b = t.bytes[i] as number
      if (ok(b)) continue
      if (isBad(b)) return { tier: 2, offset: t.at + i }
      if (result.tier === 0) result = { tier: 1, offset: t.at + i }
    }
    return result
  }
  const name = scan(h.name, isTchar)
  const value = scan(h.value, isValueChar)
  return name.tier >= value.tier ? name : value
}

/**
 * Classifies one request from its raw head (request line, header lines, the empty line; bytes past
 * the empty line are never read), as HDG's analyze_raw_request does. `from` is where the request
 * line starts (the data path passes the offset past the empty lines RFC 9112 §2.2 lets a server
 * ignore; HDG itself rates a leading empty line MissingUri); offsets count from head[0].
 * The result is read-only: every head without a finding gets the same frozen value.
 */
export function classifyRequest (head: Buffer, from = 0): DesyncClassification {
  return isPlainHead(head, from) ? COMPLIANT : classifyRequestInDetail(head, from)
}

/** The classification of a head with no finding: one shared, frozen value. */
const COMPLIANT: DesyncClassification = Object.freeze({ tier: 'Compliant', reason: 'Compliant', reasons: Object.freeze([]) as readonly DesyncFinding[] })

/**
 * The head of most requests in one scan, without HDG's tokens: true only when the detailed
 * analysis cannot find anything (test/validators/desync-classifier.test.ts compares the two on the
 * whole corpus and on mutations of it). Request line `token SP 1*(> SP, not DEL) SP HTTP/1.0|1.1
 * CRLF`; header lines `1*tchar ":" *(VCHAR / SP / HT / obs-text) CRLF`, none starting with
 * whitespace (obs-fold), none whose name could be Transfer-Encoding or Content-Length by HDG's
 * similarity (14 bytes or more, starting with t, c or a byte that is not a letter or digit), except
 * one `Content-Length: 1*19DIGIT` (optional SP/HT around the digits) in a request whose method is
 * not GET or HEAD (uploads); then the empty line. Anything else is left to classifyRequestInDetail.
 */
function isPlainHead (head: Buffer, from: number): boolean {
  const end = head.length
  let i = from
  // method = token
  const methodStart = i
  while (i < end && TCHAR[head[i] as number] === 1) i++
  if (i === methodStart || head[i] !== SP) return false
  // HDG method_without_body: exactly GET or HEAD, case-sensitive; with a Content-Length, a finding.
  const methodLength = i - methodStart
  const bodyless = (methodLength === GET.length && head.compare(GET, 0, GET.length, methodStart, i) === 0) ||
    (methodLength === HEAD.length && head.compare(HEAD, 0, HEAD.length, methodStart, i) === 0)
  let contentLengthSeen = false
  // request-target: no CTL, SP or DEL (HDG check_uri)
  const uriStart = ++i
  while (i < end && isUriChar(head[i] as number)) i++
  if (i === uriStart || head[i] !== SP) return false
  i++
  if (i + 10 > end) return false
  for (let k = 0; k < HTTP_1_.length; k++) if (head[i + k] !== HTTP_1_[k]) return false
  const minor = head[i + 7]
  if ((minor !== 0x30 && minor !== 0x31) || head[i + 8] !== CR || head[i + 9] !== LF) return false
  i += 10
  for (;;) {
    if (i + 1 < end && head[i] === CR && head[i + 1] === LF) return true
    const nameStart = i
    while (i < end && TCHAR[head[i] as number] === 1) i++
    const nameLength = i - nameStart
    if (nameLength === 0 || head[i] !== COLON) return false
    if (nameLength >= CL.length) {
      // HDG similarity skips non-alphanumerics first, and compares letters case-insensitively.
      const first = head[nameStart] as number
      if (!isAlnum(first) || lower(first) === TE[0]) return false
      if (lower(first) === CL[0]) {
        // Only one Content-Length, named exactly so, of 1 to 19 digits (HDG parse_num: any u64).
        if (contentLengthSeen || bodyless || !equalIgnoreCase(head.subarray(nameStart, i), CL)) return false
        contentLengthSeen = true
        i++
        while (i < end && isWs(head[i] as number)) i++
        const digitsStart = i
        while (isDigit(head[i])) i++
        if (i === digitsStart || i - digitsStart > 19) return false
        while (i < end && isWs(head[i] as number)) i++
        if (i + 1 >= end || head[i] !== CR || head[i + 1] !== LF) return false
        i += 2
        continue
      }
    }
    i++
    while (i < end && isValueChar(head[i] as number)) i++
    if (i + 1 >= end || head[i] !== CR || head[i + 1] !== LF) return false
    i += 2
  }
}

/** HDG analyze_raw_request, finding by finding (classifyRequest's answer for any head that is not plain). */
export function classifyRequestInDetail (head: Buffer, from = 0): DesyncClassification {
  const findings = new Map<DesyncReason, DesyncFinding>()
  const find = (reason: DesyncReason, offset: number, detail: string): void => {
    if (!findings.has(reason)) findings.set(reason, { reason, offset, message: detail === '' ? reason : `${reason} ${detail}` })
  }
  const buffer = new Cursor(head, Math.max(0, Math.min(from, head.length)), head.length)

  // HDG parse_request_line: method = up to the first SP, version = the last token, URI = between.
  const lineStart = buffer.pos
  const requestLine = buffer.next(LF)
  if (!requestLine.trimLastCr()) find('NonCrLfLineTermination', Math.min(requestLine.end, head.length), 'Request line is \\n terminated (not \\r\\n)')
  const methodCursor = requestLine.next(SP)
  let versionCursor = requestLine.last(SP)
  let uriCursor = requestLine
  if ((uriCursor.partial && versionCursor.token().bytes.subarray(0, HTTP_1_.length).equals(HTTP_1_)) || (versionCursor.done && uriCursor.done)) {
    find('MissingUri', lineStart, `Missing URI: ${quoted(methodCursor.token().bytes)} ${quoted(uriCursor.token().bytes)} ${quoted(versionCursor.token().bytes)}`)
  } else if (uriCursor.partial) {
    // Two tokens: the second is the URI of an HTTP/0.9 request.
    uriCursor = versionCursor
    versionCursor = new Cursor(head, 0, 0)
  }
  const method = methodCursor.token()
  let version = versionCursor.done ? { bytes: head.subarray(0, 0), at: Math.min(requestLine.end + 1, head.length) } : versionCursor.token()
  const uri = uriCursor.token()

  // HDG parse_headers: lines up to the empty one; obs-fold lines are headers of their own except in Content-Type.
  const headers: Header[] = []
  let foldName: Token | null = null
  let mediaType = false
  for (;;) {
    const line = buffer.next(LF)
    if (!line.trimLastCr()) find('NonCrLfLineTermination', Math.min(line.end, head.length), 'Header line is \\n terminated (not \\r\\n)')
    if (line.done) break
    const lineAt = line.pos
    const multiLine = isWs(head[line.pos] as number)
    const first = line.next(COLON).token()
    if (!multiLine && !line.partial) {
      mediaType = equalIgnoreCase(first.bytes, CONTENT_TYPE)
      foldName = first
    }
    const header = multiLine && foldName !== null && (mediaType || line.partial)
      ? { name: foldName, value: first }
      : { name: first, value: line.token() }
    headers.push(header)
    if (!multiLine && line.partial) find('MissingHeaderColon', lineAt, `Header colon is missing: ${quoted(header.name.bytes)}`)
    if (multiLine && !mediaType) find('MultilineHeader', lineAt, `Multiline header found: ${quoted(header.name.bytes)}`)
    if (buffer.partial) { find('PartialHeaderLine', head.length, 'A header line is not terminated'); break }
    if (buffer.done) { find('MissingLastEmptyLine', head.length, 'Did not find an empty line at the end of request header'); break }
  }

  // HDG analyze_request_internal: "H2+ validation is not supported" (a byte-wise comparison).
  if (Buffer.compare(version.bytes, HTTP_2) >= 0) return { tier: 'Compliant', reason: 'Compliant', reasons: [] }
  if (trim(version).bytes.length === 0) version = { bytes: HTTP_0_9, at: version.at } // "empty version means HTTP/0.9"

  const describe = (h: Header, essential: boolean): string => `${quoted(h.name.bytes)}: ${essential ? quoted(h.value.bytes) : obfuscated(h.value.bytes)}`
  const te: Array<{ header: Header; essential: boolean }> = []
  const cl: Array<{ header: Header; essential: boolean }> = []
  for (const h of headers) {
    const teSimilarity = similarity(TE, h.name.bytes)
    const clSimilarity = teSimilarity === Similarity.Distant ? similarity(CL, h.name.bytes) : Similarity.Distant
    const essential = teSimilarity === Similarity.Identical || clSimilarity === Similarity.Identical
    const tier = headerTier(h)
    if (tier.tier === 2) find('BadHeader', tier.offset, describe(h, essential))
    else if (tier.tier === 1) find('NonCompliantHeader', tier.offset, describe(h, essential))
    const trimmedName = trim(h.name)
    if (trimmedName.bytes.length === 0 || trimmedName.bytes[0] === COLON) {
      find('EmptyHeader', h.name.at, describe(h, essential))
    } else if (!essential && tier.tier !== 2) {
      // HDG: a name that only looks like Transfer-Encoding / Content-Length is still read as one below.
      if (teSimilarity === Similarity.SameLetters) te.push({ header: h, essential })
      else if (clSimilarity === Similarity.SameLetters) cl.push({ header: h, essential })
      if (teSimilarity === Similarity.SameLetters || clSimilarity === Similarity.SameLetters) {
        find('SuspiciousHeader', h.name.at, `${describe(h, essential)} too close to ${quoted(teSimilarity === Similarity.SameLetters ? TE : CL)}`)
      }
    } else if (teSimilarity === Similarity.Identical) {
      te.push({ header: h, essential })
    } else if (clSimilarity === Similarity.Identical) {
      cl.push({ header: h, essential })
    }
  }

  // HDG verify_te_cl_headers
  if (te.length > 0 || cl.length > 0) {
    const first = (te[0] ?? cl[0]) as { header: Header }
    if (Buffer.compare(version.bytes, HTTP_1_0) <= 0 && te.length > 0) {
      find('UndefinedTransferEncodingSemantics', first.header.name.at, quoted(version.bytes))
    } else if (Buffer.compare(version.bytes, HTTP_1_0) < 0 && cl.length > 0) {
      find('UndefinedContentLengthSemantics', (cl[0] as { header: Header }).header.name.at, quoted(version.bytes))
    } else {
      // has_transfer_encoding: every comma-separated item must be a known coding; chunked right after chunked is Severe.
      let chunkedBefore = false
      for (const { header, essential } of te) {
        const v = header.value.bytes
        let start = 0
        for (let i = 0; i <= v.length; i++) {
          if (i < v.length && v[i] !== 0x2c) continue
          const coding = validTe(v.subarray(start, i))
          if (coding === null) {
            find('BadTransferEncoding', header.value.at + start, describe(header, essential))
          } else {
            if (chunkedBefore && coding === CHUNKED) find('MultipleTransferEncodingChunked', header.value.at + start, describe(header, essential))
            chunkedBefore = coding === CHUNKED
          }
          start = i + 1
        }
      }
      const hasTe = te.length > 0
      // extract_content_length: the first valid value is kept; a same value again is Ambiguous, a different one Severe.
      let length: bigint | null = null
      for (const { header, essential } of cl) {
        const n = parseNum(header.value)
        if (typeof n === 'string') find('BadContentLength', header.value.at, `${describe(header, essential)}: ${n}`)
        else if (length === null) length = n
        else if (n !== length) find('MultipleContentLength', header.value.at, describe(header, essential))
        else find('DuplicateContentLength', header.value.at, describe(header, essential))
      }
      // method_without_body: exactly GET or HEAD (case-sensitive).
      if (method.bytes.equals(GET) || method.bytes.equals(HEAD)) {
        if (hasTe) find('UndefinedTransferEncodingSemantics', (te[0] as { header: Header }).header.name.at, `${quoted(method.bytes)} has Transfer-Encoding`)
        if (length === 0n) find('GetHeadZeroContentLength', (cl[0] as { header: Header }).header.name.at, `${quoted(method.bytes)} has Content-Length:0`)
        else if (length !== null) find('UndefinedContentLengthSemantics', (cl[0] as { header: Header }).header.name.at, `${quoted(method.bytes)} has Content-Length: ${length}`)
      }
      if (length !== null && hasTe) {
        const c = cl[0] as { header: Header; essential: boolean }
        find('BothTeClPresent', c.header.name.at, describe(c.header, c.essential))
      }
    }
  }

  // HDG check_method: method = token.
  for (let i = 0; i < method.bytes.length; i++) {
    if (!isTchar(method.bytes[i] as number)) { find('BadMethod', method.at + i, quoted(method.bytes)); break }
  }

  // HDG check_version: HTTP/0.9 and HTTP/1.2-1.9 or extra whitespace are Acceptable, anything else not HTTP/1.<digit> Severe.
  const trimmedVersion = trim(version)
  if (trimmedVersion.bytes.equals(HTTP_0_9)) {
    find('NonCompliantVersion', version.at, quoted(version.bytes))
  } else if (trimmedVersion.bytes.length !== 8 || !trimmedVersion.bytes.subarray(0, 7).equals(HTTP_1_) ||
    !((trimmedVersion.bytes[7] as number) >= 0x30 && (trimmedVersion.bytes[7] as number) <= 0x39)) {
    find('BadVersion', version.at, quoted(version.bytes))
  } else if (trimmedVersion.bytes.length !== version.bytes.length || (trimmedVersion.bytes[7] as number) > 0x31) {
    find('NonCompliantVersion', version.at, quoted(version.bytes))
  }

  // HDG check_uri: CR/LF/NUL Severe (and stop), SP Acceptable, other CTL/DEL Ambiguous, bytes >= 0x80 fine.
  for (let i = 0; i < uri.bytes.length; i++) {
    const b = uri.bytes[i] as number
    if (isUriChar(b)) continue
    if (isBad(b)) { find('BadUri', uri.at + i, obfuscated(uri.bytes)); break }
    find(b === SP ? 'SpaceInUri' : 'AmbiguousUri', uri.at + i, obfuscated(uri.bytes))
  }

  // upgrade_verdict!: a finding raises the tier only when strictly higher, so the first at the top tier decides.
  const reasons = [...findings.values()]
  let tier: DesyncTier = 'Compliant'
  let reason: DesyncReason | 'Compliant' = 'Compliant'
  for (const f of reasons) {
    const t = DESYNC_REASON_TIERS[f.reason]
    if (DESYNC_TIERS.indexOf(t) > DESYNC_TIERS.indexOf(tier)) { tier = t; reason = f.reason }
  }
  return { tier, reason, reasons }
}
