/**
 * The incremental HTTP/1.x response parser. It stays one file (about 550 lines) on purpose: the
 * status line, the header lines, the framing decision, the body and the blank-line probe share one
 * state machine and one byte offset, and every step must give the same findings whatever the
 * chunking (test/validators/ runs each case whole, split and byte by byte); the pieces that stand
 * alone already live apart (chunked-framer.ts, content-length.ts, field-line.ts, line-splitter.ts).
 */
import { CR, TCHAR, isControl, isDigit, isWhitespace, latin1, wordTable } from './bytes.js'
import { ChunkedFramer } from './chunked-framer.js'
import { analyzeContentLength } from './content-length.js'
import type { Defect, DefectCode } from './defects.js'
import { NO_FIELDS, hasConnectionToken, hasField, listItems, parseFieldLine, type FieldLineIssue, type FieldLineProblem, type HeaderField } from './field-line.js'
import { LineSplitter } from './line-splitter.js'

/** The reason phrases most responses carry (RFC 9110 section 15): their strings are reused, not decoded per response. */
const COMMON_REASONS = wordTable(['OK', 'Created', 'No Content', 'Moved Permanently', 'Found', 'Not Modified', 'Bad Request',
  'Unauthorized', 'Forbidden', 'Not Found', 'Internal Server Error', 'Bad Gateway', 'Service Unavailable', 'Continue'])

function reasonText (buf: Buffer, start: number, end: number): string {
  return COMMON_REASONS.find(buf, start, end) ?? latin1(buf, start, end)
}

export type ResponseFraming =
  | { readonly kind: 'no-body' }
  | { readonly kind: 'content-length'; readonly length: number }
  | { readonly kind: 'chunked' }
  | { readonly kind: 'until-close' }

export interface ResponseHead {
  /** e.g. 'HTTP/1.1' */
  readonly version: string
  readonly statusCode: number
  readonly reason: string
  readonly fields: readonly HeaderField[]
  /** Absolute offset of the first byte of the final (non-1xx) status line (after any empty lines before it). */
  readonly start: number
  /** Absolute offset just past the blank line that ends the final head. */
  readonly end: number
  readonly framing: ResponseFraming
  /** Whether the backend connection may carry another exchange after this response. */
  readonly reusable: boolean
}

/**
 * - 'head': still reading a status line and headers;
 * - 'body': the head is complete, the body is not;
 * - 'complete': the message ended at `messageEnd`;
 * - 'invalid': a defect made the message impossible to frame; parsing stopped.
 */
export type ResponseParserState = 'head' | 'body' | 'complete' | 'invalid'

export interface ResponseParserOptions {
  /** The request method: a response to HEAD has no body (RFC 9112 section 6.3 rule 1). */
  readonly requestMethod: string
  /**
   * Largest head accepted, in bytes (HDR_TOO_LARGE beyond), counted from the first byte of the
   * response to the end of the final head: interim (1xx) responses and empty lines before a
   * status line count toward it.
   */
  readonly maxHeadBytes: number
}

const FIELD_PROBLEM_CODES: Record<FieldLineProblem, DefectCode> = {
  'bare-cr': 'LINE_BARE_CR',
  'no-colon': 'HDR_NO_COLON',
  'name-whitespace': 'HDR_NAME_WHITESPACE',
  'name-empty': 'HDR_NAME_EMPTY',
  'name-nul': 'HDR_NAME_NUL',
  'name-ctl': 'HDR_NAME_CTL',
  'name-invalid': 'HDR_NAME_INVALID',
  'value-nul': 'HDR_VALUE_NUL',
  'value-ctl': 'HDR_VALUE_CTL'
}

const FIELD_PROBLEM_MESSAGES: Record<FieldLineProblem, string> = {
  'bare-cr': 'CR not followed by LF',
  'no-colon': 'header line has no colon',
  'name-whitespace': 'whitespace inside the header name or before its colon',
  'name-empty': 'header line has an empty name',
  'name-nul': 'NUL byte in a header name',
  'name-ctl': 'control character in a header name',
  'name-invalid': 'header name has a character that is not a token character',
  'value-nul': 'NUL byte in a header value',
  'value-ctl': 'control character in a header value'
}

const HTTP_PREFIX = Buffer.from('HTTP/', 'latin1')
const NOT_HTTP = 'the response does not start with "HTTP/"'

/**
 * How many Defect objects of one code `defects` keeps: the first few offsets locate a repeated
 * finding (one bare LF per chunk line, one control byte per value byte), `defectCounts` has the
 * total. Without a bound, a 2 MB chunked body with bare-LF lines made 600 MiB of Defect objects.
 */
export const MAX_DEFECTS_PER_CODE = 3

// Enough to see one header-like line after a blank line; longer first lines are not header-like.
const BLANK_LINE_PROBE_BYTES = 8 * 1024
// A first line whose name (token characters before a colon) runs longer than this is not a header:
// real field names are short (the longest registered with IANA is under 50 characters), and a
// body of token characters (base64, hex, words) is then decided at once instead of at its end.
const BLANK_LINE_PROBE_NAME_BYTES = 256

/**
 * An incremental, pure HTTP/1.x response parser that records every defect with its byte offset.
 * Feed the backend's bytes with `push`, and `finish` when the backend closed the connection.
 * Offsets count from the first byte the backend sent for this exchange.
 */
export class ResponseParser {
  state: ResponseParserState = 'head'
  head: ResponseHead | null = null
  /** Absolute offset just past the message, once complete. */
  messageEnd = -1
  /** Interim (1xx) responses seen before the final one. */
  interimResponses = 0
  /** What was found, in the order found: at most MAX_DEFECTS_PER_CODE of each code. */
  readonly defects: Defect[] = []
  /** How many times each code was found, including occurrences `defects` does not list. */
  readonly defectCounts: Partial<Record<DefectCode, number>> = {}

  private received = 0
  private readonly lines = new LineSplitter()
  /** Absolute offset where the current status line starts (or would start): after earlier interim heads and empty lines. */
  private statusLineStart = 0
  private statusLine: StatusLine | null = null
  private fields: HeaderField[] = []
  private bodyRemaining = 0
  private chunked: ChunkedFramer | null = null
  private blankLineProbe: Buffer | null = null
  /** The probe is a view of the caller's chunk, valid only during the push that made it (copied at its end). */
  private blankLineProbeIsView = false
  /**
   * The probe's length when it was last judged undecided, else -1. The probe only ever grows, so
   * the same length means the same bytes, and the same verdict: a read that ends the body right
   * after the head (a short body) judges its probe once, not again at the end of the read.
   */
  private undecidedProbeLength = -1

  constructor (private readonly options: ResponseParserOptions) {}

  private get currentState (): ResponseParserState {
    return this.state
  }

  /**
   * True while the line after the head is still being read to decide HDR_BLANK_LINE (KC-502's
   * "more than one CRLF between each header"): a proxy that commits now could no longer answer 502.
   */
  get decidingBlankLine (): boolean {
    return this.blankLineProbe !== null
  }

  /** Total bytes fed so far. */
  get bytesReceived (): number {
    return this.received
  }

  push (chunk: Buffer): void {
    const chunkOffset = this.received
    this.received += chunk.length
    if (this.state === 'invalid' || this.state === 'complete') {
      this.afterComplete(chunk, 0, chunkOffset)
      return
    }
    let i = 0
    while (i < chunk.length && this.state === 'head') i = this.readHead(chunk, i, chunkOffset)
    if (this.blankLineProbe !== null) {
      this.probeBlankLine(chunk, i)
      // Decided before the body is read, so HDR_BLANK_LINE lands before any body defect of the same
      // read, in the same order whatever the chunking (the probe holds the same bytes either way).
      this.checkBlankLine(false)
    }
    // Read through a getter: TypeScript would otherwise keep the narrowing from the loop above.
    if (this.currentState === 'body' && i < chunk.length) this.readBody(chunk, i, chunkOffset)
    else if (this.currentState === 'complete') this.afterComplete(chunk, i, chunkOffset)
    if (this.blankLineProbe !== null) this.checkBlankLine(this.currentState !== 'body')
    // Still undecided after this read: the probe outlives the chunk it may be a view of.
    if (this.blankLineProbe !== null && this.blankLineProbeIsView) {
      this.blankLineProbe = Buffer.from(this.blankLineProbe)
      this.blankLineProbeIsView = false
    }
  }

  /** The backend closed the connection (FIN or reset). */
  finish (): void {
    if (this.state === 'complete' || this.state === 'invalid') return
    const at = this.received
    if (at === 0) return this.fail('EMPTY_RESPONSE', 0, 'the connection closed before any response byte')
    if (this.state === 'head') return this.fail('HEADERS_TRUNCATED', at, `the connection closed after ${at - this.statusLineStart} bytes of an incomplete head`)
    const framing = (this.head as ResponseHead).framing
    if (framing.kind === 'content-length') {
      return this.fail('BODY_SHORT_CL', at, `the connection closed ${this.bodyRemaining} bytes short of Content-Length ${framing.length}`)
    }
    if (framing.kind === 'chunked') return this.fail('CHUNKED_TRUNCATED', at, 'the connection closed before the last chunk')
    this.complete(at)
    if (this.blankLineProbe !== null) this.checkBlankLine(true)
  }

  private readHead (chunk: Buffer, from: number, chunkOffset: number): number {
    const next = this.lines.split(chunk, from, chunkOffset, this.onHeadLine, this)
    if (next === -1) this.checkCarriedLine()
    return next === -1 ? chunk.length : next
  }

  /** Each complete line of a head (interim or final); true when a head ended or parsing stopped. */
  private onHeadLine (buf: Buffer, start: number, end: number, offset: number, bareLf: boolean): boolean {
    const maxHeadBytes = this.options.maxHeadBytes
    // Byte order, so that the verdict does not depend on where a read ends: a status line that
    // cannot spell "HTTP/" fails at that byte (as it does while the line is still carried,
    // checkCarriedLine), before its line end and before the head limit if that lies further on.
    if (this.statusLine === null && start !== end) {
      const mismatch = httpPrefixMismatch(buf, start, end)
      if (mismatch !== -1 && offset + mismatch < maxHeadBytes) {
        this.fail('STATUS_LINE_INVALID', offset + mismatch, NOT_HTTP)
        return true
      }
    }
    // The head is too large as soon as its byte number maxHeadBytes (from the response's first
    // byte) arrives, whether that byte ends a line here or waits in the splitter's carry
    // (checkCarriedLine): the same lines are judged whatever the chunking.
    const lineLf = offset + (end - start) + (bareLf ? 0 : 1)
    if (lineLf >= maxHeadBytes) {
      this.headTooLarge()
      return true
    }
    if (bareLf) this.add('LINE_BARE_LF', lineLf, 'line ends in LF without CR')
    return this.headLine(buf, start, end, offset)
  }

  /**
   * The incomplete line the splitter carries is judged as far as its bytes go: a status line whose
   * first bytes cannot spell "HTTP/" fails at once (no waiting for a line end that may never come),
   * and so does a head that reached maxHeadBytes. The same rules, at the same offsets, as for a
   * whole line in readHead.
   */
  private checkCarriedLine (): void {
    const carried = this.lines.carriedBytes
    if (carried === 0) return
    if (this.statusLine === null) {
      const prefix = this.lines.carriedPrefix(HTTP_PREFIX.length)
      // A lone CR may be the first half of the CRLF of an empty line.
      const mismatch = prefix.length === 1 && prefix[0] === CR ? -1 : httpPrefixMismatch(prefix, 0, prefix.length)
      if (mismatch !== -1 && mismatch < prefix.length && this.lines.carriedFrom + mismatch < this.options.maxHeadBytes) {
        this.fail('STATUS_LINE_INVALID', this.lines.carriedFrom + mismatch, NOT_HTTP)
        return
      }
    }
    if (this.received > this.options.maxHeadBytes) this.headTooLarge()
  }

  private headTooLarge (): void {
    // RFC 9110 section 15.2: a client must parse any number of 1xx responses before the final
    // one, but nothing obliges a recipient to hold an unbounded number: the limit runs from the
    // first byte of the response, so a backend cannot grow the head without bound by repeating
    // `100 Continue` (HAProxy and nginx stream interim responses through; this proxy holds the
    // response until it is judged, docs/architecture.md "The commit rule").
    const interim = this.interimResponses === 0
      ? ''
      : ` (${this.interimResponses} interim 1xx response(s) before it count toward the limit)`
    this.fail('HDR_TOO_LARGE', this.options.maxHeadBytes, `the response head is larger than ${this.options.maxHeadBytes} bytes${interim}`)
  }

  /** Handles one head line; returns true when a head (interim or final) ended or parsing stopped. */
  private headLine (buf: Buffer, start: number, end: number, offset: number): boolean {
    if (this.statusLine === null) {
      if (start === end) {
        // RFC 9112 section 2.2 lets a server ignore empty lines before a request-line; it says
        // nothing of the kind for a status-line. HAProxy 2.6 and llhttp skip them, nginx 1.22
        // cannot parse the status line and relays the bytes as HTTP/0.9: peers split, so warn.
        this.add('EMPTY_LINE_BEFORE_STATUS', offset, 'an empty line before the status line')
        this.statusLineStart = offset + 1 + (buf[end] === CR ? 1 : 0)
        return false
      }
      this.statusLineStart = offset
      return !this.readStatusLine(buf, start, end, offset)
    }
    if (start === end) return this.endOfHead(offset + 1 + (buf[end] === 0x0d ? 1 : 0))
    if (isWhitespace(buf[start])) {
      const previous = this.fields.pop()
      if (previous === undefined) {
        // RFC 9112 section 2.2: whitespace between the start-line and the first header field; the
        // bytes are relayed unchanged, and a client that trims it would read a different header.
        this.add('HDR_NAME_WHITESPACE', offset, 'a line starting with whitespace between the status line and the first header')
        return false
      }
      // RFC 9112 section 5.2: obs-fold; a proxy may replace it with SP before forwarding.
      this.add('HDR_OBS_FOLD', offset, 'header value continued on a line starting with whitespace (obs-fold)')
      const continuation = buf.toString('latin1', start, end).trim()
      this.fields.push({ ...previous, value: continuation.length > 0 ? `${previous.value} ${continuation}` : previous.value })
      return false
    }
    const field = parseFieldLine(buf, start, end, offset, this.onFieldIssue)
    if (field !== null) this.fields.push(field)
    return false
  }

  /**
   * status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4);
   * HTTP-version = "HTTP/" DIGIT "." DIGIT. The line's "HTTP/" was checked in readHead. A missing SP
   * after the code is tolerated, as every peer does. Returns false when the line is unusable.
   * Tolerated with a warning, because HAProxy 2.6 and nginx 1.22 relay them (docs/defects.md):
   * several SP before the code, a code below 100, a control byte in the reason phrase.
   */
  private readStatusLine (buf: Buffer, start: number, end: number, offset: number): boolean {
    // Every offset below is the first byte that breaks the grammar (as llhttp reports it). Bytes
    // past `end` are the line terminator, never a digit or SP, so the fixed-position checks stop there.
    if (!isDigit(buf[start + 5])) return this.invalidStatusLine(offset + 5, 'the HTTP version is not DIGIT "." DIGIT')
    if (buf[start + 6] !== 0x2e) return this.invalidStatusLine(offset + 6, 'the HTTP version is not DIGIT "." DIGIT')
    if (!isDigit(buf[start + 7])) return this.invalidStatusLine(offset + 7, 'the HTTP version is not DIGIT "." DIGIT')
    if (buf[start + 8] !== 0x20) return this.invalidStatusLine(offset + 8, 'no space after the HTTP version')
    // `HTTP/1.0  401 Unauthorized` (a real server's output): HAProxy and nginx skip the extra SP,
    // llhttp rejects it ("Invalid status code" at the second SP).
    let code = 9
    while (start + code < end && buf[start + code] === 0x20) code++
    for (let k = code; k < code + 3; k++) if (!isDigit(buf[start + k])) return this.invalidStatusLine(offset + k, 'the status code is not three digits')
    const afterCode = code + 3
    if (start + afterCode < end && buf[start + afterCode] !== 0x20) return this.invalidStatusLine(offset + afterCode, 'the status code is not three digits followed by a space')
    const statusCode = digitValue(buf, start + code) * 100 + digitValue(buf, start + code + 1) * 10 + digitValue(buf, start + code + 2)
    // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ). A CR is never allowed (RFC 9112 section
    // 2.2, every peer rejects it); other control bytes, NUL included, are relayed by HAProxy,
    // nginx and llhttp alike.
    let reasonControlAt = -1
    for (let i = start + afterCode + 1; i < end; i++) {
      const b = buf[i] as number
      if (b === CR) { this.fail('LINE_BARE_CR', offset + (i - start), 'CR not followed by LF'); return false }
      if (reasonControlAt === -1 && isControl(b)) reasonControlAt = i
    }
    const version = buf[start + 5] === 0x31 && buf[start + 7] === 0x31 ? 'HTTP/1.1' : latin1(buf, start, start + 8)
    // The warnings, in byte order.
    if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') this.add('VERSION_UNSUPPORTED', offset + 5, `${version} on an HTTP/1 connection`)
    if (code > 9) this.add('STATUS_LINE_EXTRA_SPACES', offset + 9, `${code - 8} spaces between the HTTP version and the status code`)
    if (statusCode < 100) {
      // RFC 9110 section 15: "Values outside the range 100..599 are invalid"; a client "SHOULD
      // process the response as if it had a 5xx (Server Error) status code": a final response.
      this.add('STATUS_CODE_BELOW_100', offset + code, `status code ${buf.toString('latin1', start + code, start + afterCode)} is below 100; read as a final response`)
    }
    if (reasonControlAt !== -1) this.add('STATUS_REASON_CTL', offset + (reasonControlAt - start), 'control character in the reason phrase')
    this.statusLine = { version, statusCode, reason: reasonText(buf, Math.min(start + afterCode + 1, end), end), codeOffset: offset + code }
    return true
  }

  private readonly onFieldIssue = (issue: FieldLineIssue): void => {
    this.add(FIELD_PROBLEM_CODES[issue.problem], issue.offset, FIELD_PROBLEM_MESSAGES[issue.problem])
  }

  private invalidStatusLine (at: number, why: string): boolean {
    this.fail('STATUS_LINE_INVALID', at, why)
    return false
  }

  /** The blank line after the headers; `end` is the absolute offset just past it. */
  private endOfHead (end: number): boolean {
    // The head limit was checked on the blank line's LF (readHead), so `end` <= maxHeadBytes here.
    const status = this.statusLine as StatusLine
    const fields = this.fields
    if (status.statusCode === 101) {
      this.fail('STATUS_101_UNSUPPORTED', status.codeOffset, 'CLB HTTP listeners do not relay protocol upgrades')
      return true
    }
    if (status.statusCode >= 100 && status.statusCode < 200) {
      // RFC 9110 section 15.2: a client MUST be able to parse one or more 1xx responses before the
      // final one. They stay inside the head limit (headTooLarge).
      this.interimResponses++
      this.statusLine = null
      this.fields = []
      this.statusLineStart = end
      // Stop the splitter: readHead starts over on the rest of the read, so the next status line's
      // "HTTP/" prefix is checked byte by byte, as when it starts a read.
      return true
    }
    const framing = this.decideFraming(status.statusCode, fields, end)
    if (framing === null) return true
    const closeAfter = hasConnectionToken(fields, 'close') ||
      (status.version === 'HTTP/1.0' && !hasConnectionToken(fields, 'keep-alive'))
    const teAndCl = hasField(fields, 'transfer-encoding') && hasField(fields, 'content-length')
    this.head = {
      version: status.version,
      statusCode: status.statusCode,
      reason: status.reason,
      fields,
      start: this.statusLineStart,
      end,
      framing,
      // RFC 9112 section 9.3 (persistence); TE with CL: "the connection MUST be closed" after (section 6.3 rule 3).
      reusable: !closeAfter && framing.kind !== 'until-close' && !teAndCl
    }
    this.state = 'body'
    this.blankLineProbe = NO_BYTES
    if (framing.kind === 'no-body' || (framing.kind === 'content-length' && framing.length === 0)) {
      this.complete(end)
    } else if (framing.kind === 'content-length') {
      this.bodyRemaining = framing.length
    } else if (framing.kind === 'chunked') {
      this.chunked = new ChunkedFramer(this.options.maxHeadBytes, (lf) => this.add('LINE_BARE_LF', lf, 'chunked framing line ends in LF without CR'))
    }
    return true
  }

  /** RFC 9112 section 6.3: how the length of this response body is determined; `end` is where the body starts. */
  private decideFraming (statusCode: number, fields: readonly HeaderField[], end: number): ResponseFraming | null {
    const contentLength = analyzeContentLength(fields)
    for (const finding of contentLength.findings) {
      switch (finding.problem) {
        case 'not-integer': this.fail('CL_NOT_INTEGER', finding.offset, finding.message); return null
        case 'overflow': this.fail('CL_OVERFLOW', finding.offset, finding.message); return null
        case 'different': this.fail('CL_DUP_DIFFERENT', finding.offset, finding.message); return null
        case 'same-duplicate': this.add('CL_DUP_SAME', finding.offset, finding.message)
      }
    }
    const transferEncodings = hasField(fields, 'transfer-encoding') ? fields.filter((f) => f.lowerName === 'transfer-encoding') : NO_FIELDS
    const bodyForbidden = this.options.requestMethod === 'HEAD' || statusCode === 204 || statusCode === 304
    if (statusCode === 204 && (transferEncodings.length > 0 || (contentLength.length ?? 0) > 0)) {
      // RFC 9110 section 8.6: "A server MUST NOT send a Content-Length header field in any response with a status code of ... 204".
      this.add('BODY_NOT_ALLOWED', (transferEncodings[0] ?? fields.find((f) => f.lowerName === 'content-length'))?.offset ?? 0,
        'a 204 response announces a body')
    }
    if (bodyForbidden) return { kind: 'no-body' }
    if (transferEncodings.length > 0) {
      const codings = transferEncodings.flatMap((f) => listItems(f.value).map((item) => item.split(';')[0]?.trim().toLowerCase() ?? ''))
      const first = transferEncodings[0] as HeaderField
      if (contentLength.present) {
        this.add('TE_AND_CL', first.offset, 'Transfer-Encoding and Content-Length are both present; Content-Length is ignored')
      }
      // RFC 9112 section 6.3 rule 4: chunked must be the final coding, else the body runs until close.
      if (codings[codings.length - 1] === 'chunked') {
        if (codings.indexOf('chunked') !== codings.length - 1) this.add('TE_UNSUPPORTED', first.valueOffset, 'chunked is applied more than once')
        return { kind: 'chunked' }
      }
      this.add('TE_UNSUPPORTED', first.valueOffset, `Transfer-Encoding "${transferEncodings.map((f) => f.value).join(', ')}" does not end in chunked; the body is read until close`)
      return { kind: 'until-close' }
    }
    if (contentLength.length !== null) return { kind: 'content-length', length: contentLength.length }
    // At the first body byte: the head ended without framing. (At the head's start, this message-wide
    // finding would outrank, in judge(), a real defect inside the head under the strict profile.)
    this.add('BODY_UNTIL_CLOSE', end, 'no Content-Length or Transfer-Encoding: the body runs until the connection closes')
    return { kind: 'until-close' }
  }

  private readBody (chunk: Buffer, from: number, chunkOffset: number): void {
    const framing = (this.head as ResponseHead).framing
    if (framing.kind === 'content-length') {
      const take = Math.min(this.bodyRemaining, chunk.length - from)
      this.bodyRemaining -= take
      if (this.bodyRemaining === 0) {
        this.complete(chunkOffset + from + take)
        this.afterComplete(chunk, from + take, chunkOffset)
      }
      return
    }
    if (framing.kind === 'chunked') {
      const framer = this.chunked as ChunkedFramer
      const progress = framer.feed(chunk, from, chunkOffset)
      if (progress.error !== null) return this.fail('CHUNK_SIZE_INVALID', progress.error.offset, progress.error.message)
      if (progress.end !== -1) {
        this.complete(chunkOffset + progress.end)
        this.afterComplete(chunk, progress.end, chunkOffset)
      }
    }
  }

  /**
   * Bytes after a complete response, in the same read: more than Content-Length announced is the
   * documented 502 cause; after other framings they are reported and the connection not reused.
   */
  private afterComplete (chunk: Buffer, from: number, chunkOffset: number): void {
    if (from >= chunk.length || this.state !== 'complete') return
    const head = this.head as ResponseHead
    if (this.defects.some((d) => d.code === 'BODY_EXCEEDS_CL' || d.code === 'EXTRA_BYTES_AFTER_RESPONSE' || d.code === 'BODY_NOT_ALLOWED')) return
    const at = chunkOffset + from
    if (head.framing.kind === 'content-length') {
      this.add('BODY_EXCEEDS_CL', at, `${chunk.length - from} more byte(s) arrived after the ${head.framing.length} bytes of Content-Length`)
    } else if (head.framing.kind === 'no-body') {
      this.add('BODY_NOT_ALLOWED', at, `${chunk.length - from} bytes followed a response that has no body`)
    } else {
      this.add('EXTRA_BYTES_AFTER_RESPONSE', at, `${chunk.length - from} bytes followed the complete response`)
    }
  }

  private probeBlankLine (chunk: Buffer, from: number): void {
    if (this.blankLineProbe === null || this.blankLineProbe.length >= BLANK_LINE_PROBE_BYTES) return
    const room = BLANK_LINE_PROBE_BYTES - this.blankLineProbe.length
    if (this.blankLineProbe.length === 0) {
      // Most probes are decided by the read that completes the head: judge a view of it, and copy
      // only what stays undecided after the read (push), so no response pays for a copy it does not need.
      this.blankLineProbe = chunk.subarray(from, from + room)
      this.blankLineProbeIsView = true
      return
    }
    this.blankLineProbe = Buffer.concat([this.blankLineProbe, chunk.subarray(from, from + room)])
  }

  /**
   * KC-502: "A response containing more than one CRLF between each header" gets a 502. A blank
   * line ends the head (RFC 9112 section 2.1), so the heuristic is: the first line after the
   * blank line is itself a well-formed field line ending in CRLF. Decided as soon as the probe
   * says yes or no, or when `final` and it is still undecided (then no).
   */
  private checkBlankLine (final: boolean): void {
    const probe = this.blankLineProbe
    if (probe === null) return
    const verdict = probe.length === this.undecidedProbeLength ? 'undecided' : looksLikeFieldLine(probe)
    if (verdict === 'undecided' && !final) {
      this.undecidedProbeLength = probe.length
      return
    }
    this.blankLineProbe = null
    if (verdict === 'yes') {
      const head = this.head as ResponseHead
      if (isEventStreamField(head, probe)) return
      const line = probe.toString('latin1', 0, Math.min(probe.indexOf(0x0d), 60))
      this.add('HDR_BLANK_LINE', head.end, `header line "${line}" follows the blank line at offset ${head.end - 2} that ended the head`)
    }
  }

  private complete (end: number): void {
    this.state = 'complete'
    this.messageEnd = end
  }

  /** Counts every finding; lists only the first MAX_DEFECTS_PER_CODE of each code (bounded memory). */
  private add (code: DefectCode, offset: number, message: string): void {
    const count = (this.defectCounts[code] ?? 0) + 1
    this.defectCounts[code] = count
    if (count <= MAX_DEFECTS_PER_CODE) this.defects.push({ code, offset, message })
  }

  private fail (code: DefectCode, offset: number, message: string): void {
    this.add(code, offset, message)
    this.state = 'invalid'
  }
}

/** The probe before its first byte: shared, as a probe is replaced, never written to. */
const NO_BYTES = Buffer.alloc(0)

/** The value of the decimal digit at `at` (the caller checked it is one). */
function digitValue (buf: Buffer, at: number): number {
  return (buf[at] as number) - 0x30
}

interface StatusLine {
  readonly version: string
  readonly statusCode: number
  readonly reason: string
  /** Absolute offset of the first digit of the status code. */
  readonly codeOffset: number
}

/** Index (from `start`) of the first byte of the line that cannot begin "HTTP/", or -1. */
function httpPrefixMismatch (buf: Buffer, start: number, end: number): number {
  for (let k = 0; k < HTTP_PREFIX.length; k++) {
    if (start + k >= end || buf[start + k] !== HTTP_PREFIX[k]) return k
  }
  return -1
}

// WHATWG HTML section 9.2.6, "Interpreting an event stream": the field names an event stream uses.
const EVENT_STREAM_FIELDS = new Set(['data', 'event', 'id', 'retry'])

/** A server-sent event stream (WHATWG HTML section 9.2: Content-Type "text/event-stream"): sent over time by design. */
export function isEventStream (head: ResponseHead): boolean {
  const contentType = head.fields.find((f) => f.lowerName === 'content-type')
  return contentType !== undefined && contentType.value.trimStart().toLowerCase().startsWith('text/event-stream')
}

/**
 * An event stream's body is made of `name: value` lines by design (WHATWG HTML section 9.2): its
 * first line is not a header after a blank line, unless its name is not an event-stream field.
 */
function isEventStreamField (head: ResponseHead, probe: Buffer): boolean {
  return isEventStream(head) && EVENT_STREAM_FIELDS.has(probe.toString('latin1', 0, probe.indexOf(0x3a)))
}

/** 'yes' when `bytes` starts with token ":" *(VCHAR / SP / HT / obs-text) CRLF. */
export function looksLikeFieldLine (bytes: Buffer): 'yes' | 'no' | 'undecided' {
  let i = 0
  const nameEnd = Math.min(bytes.length, BLANK_LINE_PROBE_NAME_BYTES + 1)
  while (i < nameEnd && TCHAR[bytes[i] as number] === 1) i++
  if (i > BLANK_LINE_PROBE_NAME_BYTES) return 'no'
  if (i === bytes.length) return bytes.length >= BLANK_LINE_PROBE_BYTES ? 'no' : 'undecided'
  if (i === 0 || bytes[i] !== 0x3a) return 'no'
  for (i++; i < bytes.length; i++) {
    const b = bytes[i] as number
    if (b === 0x0d) {
      if (i + 1 === bytes.length) return 'undecided'
      return bytes[i + 1] === 0x0a ? 'yes' : 'no'
    }
    if ((b < 0x20 && b !== 0x09) || b === 0x7f) return 'no'
  }
  return bytes.length >= BLANK_LINE_PROBE_BYTES ? 'no' : 'undecided'
}
