import { CR, TCHAR, isDigit, latin1, wordTable } from './bytes.js'
import { ChunkedFramer } from './chunked-framer.js'
import { analyzeContentLength } from './content-length.js'
import type { Defect, DefectCode } from './defects.js'
import { NO_FIELDS, hasConnectionToken, hasField, listItems, parseFieldLine, type FieldLineIssue, type HeaderField } from './field-line.js'
import { LineSplitter } from './line-splitter.js'

/** RFC 9110 section 9.3's methods and PATCH (RFC 5789): their strings are reused, not decoded per request. */
const COMMON_METHODS = wordTable(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH'])

export type RequestFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'content-length'; readonly length: number }
  | { readonly kind: 'chunked' }

export interface RequestHead {
  readonly method: string
  readonly target: string
  /** 'HTTP/1.0' or 'HTTP/1.1' (other HTTP/1.x minor versions are read as HTTP/1.1). */
  readonly version: string
  readonly fields: readonly HeaderField[]
  /** Offset just past the blank line that ends the head (leading empty lines included). */
  readonly end: number
  readonly framing: RequestFraming
  /** The client asked to close the connection after this exchange (RFC 9112 section 9.3). */
  readonly closeAfter: boolean
  /** Both Transfer-Encoding and Content-Length: chunked wins and Content-Length is dropped. */
  readonly contentLengthIgnored: boolean
}

export type RequestParserState = 'head' | 'body' | 'complete' | 'invalid'

export interface RequestPushResult {
  /** Bytes of the chunk that belong to this request; the rest starts the next (pipelined) request. */
  readonly consumed: number
  /** Index in the chunk where this request's body bytes start (equal to `consumed` when none). */
  readonly bodyFrom: number
}

// CLB-HTTPERR: "The length of the method in the request header exceeds 127 characters" -> 405.
export const MAX_METHOD_LENGTH = 127

/** Bounds on a request head (bytes exclude each line's CRLF); past one, the request is invalid. */
export interface RequestLimits {
  readonly maxHeadBytes: number
  readonly maxRequestLineBytes: number
  readonly maxHeaderLineBytes: number
  readonly maxHeaderCount: number
}

/** The offset of a limit that has not been crossed (every real offset is smaller). */
const NOT_CROSSED = Number.POSITIVE_INFINITY
const SP = 0x20
const HTAB = 0x09
// RFC 9112 section 2.2: "a server that is expecting to receive and parse a request-line SHOULD
// ignore at least one empty line (CRLF) received prior to the request-line".
const MAX_LEADING_EMPTY_LINES = 4

/**
 * An incremental, pure HTTP/1.x request parser for one request. Feed client bytes with `push`
 * until `state` is 'complete' or 'invalid'; leftover bytes start the next request.
 */
export class RequestParser {
  state: RequestParserState = 'head'
  head: RequestHead | null = null
  /** The request's defect: the parser stops at the first one, so this holds at most one. */
  readonly defects: Defect[] = []
  /** How many times each code was found (as ResponseParser.defectCounts; here at most one code, once). */
  readonly defectCounts: Partial<Record<DefectCode, number>> = {}
  /** Body bytes (as framed on the wire) consumed so far. */
  bodyBytes = 0

  private received = 0
  private leadingEmptyLines = 0
  /** Still reading the method's bytes (rejectsMethodByte). */
  private scanningMethod = true
  private methodBytesSeen = 0
  private requestLine: { method: string; target: string; version: string } | null = null
  private readonly fields: HeaderField[] = []
  private readonly lines = new LineSplitter()
  private remaining = 0
  private chunked: ChunkedFramer | null = null

  private readonly maxHeadBytes: number
  /** The limits a request head is held to; a number limits only the whole head. */
  private readonly limits: RequestLimits
  /**
   * How many bytes of the method rejectsMethodByte looks at: CLB's 127 characters and one more,
   * but never a byte at or past a limit, so no method byte is judged before an earlier limit.
   */
  private readonly methodScanBytes: number

  constructor (limits: number | RequestLimits) {
    this.limits = typeof limits === 'number'
      ? { maxHeadBytes: limits, maxRequestLineBytes: NOT_CROSSED, maxHeaderLineBytes: NOT_CROSSED, maxHeaderCount: NOT_CROSSED }
      : limits
    this.maxHeadBytes = this.limits.maxHeadBytes
    this.methodScanBytes = Math.min(MAX_METHOD_LENGTH + 1, this.limits.maxRequestLineBytes, this.maxHeadBytes)
  }

  /** Bytes received so far for this request. */
  get bytesReceived (): number {
    return this.received
  }

  push (chunk: Buffer): RequestPushResult {
    const chunkOffset = this.received
    let i = 0
    if (this.state === 'head') {
      if (this.scanningMethod && this.rejectsMethodByte(chunk, chunkOffset)) {
        this.received += chunk.length
        return { consumed: chunk.length, bodyFrom: chunk.length }
      }
      // No byte past offset maxHeadBytes can belong to a head that passes: the splitter never gets
      // one, so the line it carries stays bounded whatever the size of a read.
      const headBound = this.maxHeadBytes + 1 - chunkOffset
      const next = this.lines.split(chunk.length > headBound ? chunk.subarray(0, headBound) : chunk, 0, chunkOffset, this.onHeadLine, this)
      if (next === -1) {
        this.received += chunk.length
        this.judgeCarriedLine()
        return { consumed: chunk.length, bodyFrom: chunk.length }
      }
      i = next
    }
    const bodyFrom = i
    if (this.currentState === 'body') i = this.readBody(chunk, i, chunkOffset)
    else if (this.currentState === 'invalid') i = chunk.length
    this.received += i
    return { consumed: i, bodyFrom: Math.min(bodyFrom, i) }
  }

  /**
   * A control or 8-bit byte where the method is (before its first space) can never become a
   * request: it is rejected as it arrives, not when a line ends that may never come (binary
   * protocols, a WebSocket frame, TLS sent to an HTTP port). The same byte decides it whatever the
   * chunking. RFC 9112 section 3.1: method = token.
   */
  private rejectsMethodByte (chunk: Buffer, chunkOffset: number): boolean {
    for (let k = 0; k < chunk.length; k++) {
      const b = chunk[k] as number
      // The first space or line break ends the scan: from there on the lines decide, as they
      // always did (a leading empty line, section 2.2, included), so the order never depends on reads.
      if (b === 0x20 || b === 0x0d || b === 0x0a) { this.scanningMethod = false; return false }
      if (b < 0x20 || b >= 0x7f) {
        this.fail('REQUEST_LINE_INVALID', chunkOffset + k, 'the method is not a token')
        return true
      }
      if (++this.methodBytesSeen >= this.methodScanBytes) { this.scanningMethod = false; return false }
    }
    return false
  }

  /**
   * Each complete line of the head. Its limits are judged before its syntax, exactly as for a line
   * still carried (judgeCarriedLine), so the verdict and its offset never depend on the chunking.
   */
  private onHeadLine (buf: Buffer, start: number, end: number, offset: number, bareLf: boolean): boolean {
    const length = end - start
    // The head is too large once its byte at offset maxHeadBytes arrives, the CRLF included.
    const headCrossed = offset + length + (bareLf ? 0 : 1) >= this.maxHeadBytes
    if (this.requestLine === null) {
      // RFC 9112 section 3: request-line = method SP request-target SP HTTP-version, CRLF excluded.
      const lineCrossing = length > this.limits.maxRequestLineBytes ? offset + this.limits.maxRequestLineBytes : NOT_CROSSED
      return this.failAtFirstCrossing(headCrossed, NOT_CROSSED, lineCrossing, 'REQUEST_LINE_TOO_LONG') || this.headLine(buf, start, end, offset)
    }
    if (length === 0) return this.failAtFirstCrossing(headCrossed, NOT_CROSSED, NOT_CROSSED, 'REQUEST_HEADER_LINE_TOO_LONG') || this.headLine(buf, start, end, offset)
    const maxLine = this.limits.maxHeaderLineBytes
    let countCrossing = NOT_CROSSED
    let lineCrossing = NOT_CROSSED
    const first = buf[start]
    if (first === SP || first === HTAB) {
      // RFC 9112 section 5.2: obs-fold = OWS CRLF RWS is part of the field-value, so a continuation
      // line counts toward the field line it continues, from that line's first byte.
      const fieldStart = this.fieldLineStart(offset)
      if (offset + length - fieldStart > maxLine) lineCrossing = fieldStart + maxLine
    } else {
      // A field line (RFC 9112 section 5): the one past maxHeaderCount fails at its first byte.
      if (this.fields.length >= this.limits.maxHeaderCount) countCrossing = offset
      if (length > maxLine) lineCrossing = offset + maxLine
    }
    return this.failAtFirstCrossing(headCrossed, countCrossing, lineCrossing, 'REQUEST_HEADER_LINE_TOO_LONG') || this.headLine(buf, start, end, offset)
  }

  /**
   * The line the splitter carries (no LF yet) after a read: a limit it already crossed fails now,
   * at the same offset as when the whole line arrives (onHeadLine), not when a CRLF that may never
   * come ends it. Its first bytes are looked at only near a limit (a view of the carry, no copy).
   */
  private judgeCarriedLine (): void {
    const headCrossed = this.received > this.maxHeadBytes
    const carried = this.lines.carriedBytes
    if (carried === 0) {
      this.failAtFirstCrossing(headCrossed, NOT_CROSSED, NOT_CROSSED, 'REQUEST_LINE_TOO_LONG')
      return
    }
    const lineStart = this.lines.carriedFrom
    const lineEnd = lineStart + carried
    if (this.requestLine === null) {
      this.failAtFirstCrossing(headCrossed, NOT_CROSSED, this.carriedLineCrossing(lineStart, lineEnd, this.limits.maxRequestLineBytes), 'REQUEST_LINE_TOO_LONG')
      return
    }
    const maxLine = this.limits.maxHeaderLineBytes
    const tooManyFields = this.fields.length >= this.limits.maxHeaderCount
    let countCrossing = NOT_CROSSED
    let lineCrossing = NOT_CROSSED
    // A continuation's field line is the longest this line can belong to: below its limit, nothing can cross.
    if (tooManyFields || lineEnd - this.fieldLineStart(lineStart) > maxLine) {
      const opening = this.lines.carriedPrefix(2)
      const first = opening[0]
      if (first === SP || first === HTAB) {
        lineCrossing = this.carriedLineCrossing(this.fieldLineStart(lineStart), lineEnd, maxLine)
      } else {
        // A lone CR may still be the empty line that ends the head; CR and another byte is a field line.
        if (tooManyFields && (first !== CR || opening.length > 1)) countCrossing = lineStart
        lineCrossing = this.carriedLineCrossing(lineStart, lineEnd, maxLine)
      }
    }
    this.failAtFirstCrossing(headCrossed, countCrossing, lineCrossing, 'REQUEST_HEADER_LINE_TOO_LONG')
  }

  /**
   * Where a carried line from `start` to `lineEnd` crossed `max`, or NOT_CROSSED while it may still
   * fit: its last byte may be the CR of its CRLF, which is not part of the line (RFC 9112 section 2.2).
   */
  private carriedLineCrossing (start: number, lineEnd: number, max: number): number {
    const length = lineEnd - start
    if (length <= max) return NOT_CROSSED
    if (length === max + 1) {
      const carried = this.lines.carriedBytes
      if (this.lines.carriedPrefix(carried)[carried - 1] === CR) return NOT_CROSSED
    }
    return start + max
  }

  /** The first byte of the field line an obs-fold continuation at `offset` belongs to (itself when there is none). */
  private fieldLineStart (offset: number): number {
    const previous = this.fields[this.fields.length - 1]
    return previous === undefined ? offset : previous.offset
  }

  /**
   * Fails with the limit crossed at the earliest offset. On a tie the head wins, then the count,
   * then the line: the order in which the byte that crosses each can be known, so it never depends
   * on the reads. Returns whether the request failed.
   */
  private failAtFirstCrossing (headCrossed: boolean, countCrossing: number, lineCrossing: number,
    lineCode: 'REQUEST_LINE_TOO_LONG' | 'REQUEST_HEADER_LINE_TOO_LONG'): boolean {
    const headCrossing = headCrossed ? this.maxHeadBytes : NOT_CROSSED
    if (headCrossing <= countCrossing && headCrossing <= lineCrossing) {
      if (headCrossing === NOT_CROSSED) return false
      this.headTooLarge()
    } else if (countCrossing <= lineCrossing) {
      this.fail('REQUEST_TOO_MANY_HEADERS', countCrossing, `more than ${this.limits.maxHeaderCount} header fields (maxHeaderCount)`)
    } else if (lineCode === 'REQUEST_LINE_TOO_LONG') {
      this.fail(lineCode, lineCrossing, `the request line is longer than ${this.limits.maxRequestLineBytes} bytes (maxRequestLineBytes)`)
    } else {
      this.fail(lineCode, lineCrossing, `a header field line is longer than ${this.limits.maxHeaderLineBytes} bytes (maxHeaderLineBytes)`)
    }
    return true
  }

  private headTooLarge (): void {
    this.fail('REQUEST_HEAD_TOO_LARGE', this.maxHeadBytes, `the request head is larger than ${this.maxHeadBytes} bytes`)
  }

  private get currentState (): RequestParserState {
    return this.state
  }

  private headLine (buf: Buffer, start: number, end: number, offset: number): boolean {
    if (this.requestLine === null) {
      if (start === end && this.leadingEmptyLines < MAX_LEADING_EMPTY_LINES) {
        this.leadingEmptyLines++
        return false
      }
      return !this.readRequestLine(buf, start, end, offset)
    }
    if (start === end) return this.endOfHead(offset + (end - start) + (buf[end] === 0x0d ? 2 : 1))
    if (buf[start] === 0x20 || buf[start] === 0x09) {
      // RFC 9112 section 5.2: obs-fold; a proxy MUST replace it with SP before forwarding (or reject).
      const previous = this.fields.pop()
      if (previous === undefined) return this.failLine('REQUEST_HEADER_INVALID', offset, 'whitespace before the first header line')
      this.fields.push({ ...previous, value: `${previous.value} ${buf.toString('latin1', start, end).trim()}`.trim() })
      return false
    }
    this.fieldProblem = null
    const field = parseFieldLine(buf, start, end, offset, this.onFieldIssue)
    const problem = this.fieldProblem as { offset: number; message: string } | null
    if (problem !== null) return this.failLine('REQUEST_HEADER_INVALID', problem.offset, problem.message)
    if (field !== null) this.fields.push(field)
    return false
  }

  /** The first problem of the field line being read that makes the request invalid (onFieldIssue). */
  private fieldProblem: { offset: number; message: string } | null = null

  private readonly onFieldIssue = (issue: FieldLineIssue): void => {
    // Desync mitigation (CLB-DESYNC) rates NUL or CR in a header Severe: 400. A missing colon or
    // whitespace before it cannot be forwarded safely (RFC 9112 section 5.1: MUST respond 400).
    if (this.fieldProblem !== null) return
    if (issue.problem === 'bare-cr') this.fieldProblem = { offset: issue.offset, message: 'CR not followed by LF in a request header' }
    else if (issue.problem === 'value-nul' || issue.problem === 'name-nul') this.fieldProblem = { offset: issue.offset, message: 'NUL byte in a request header' }
    else if (issue.problem === 'no-colon' || issue.problem === 'name-empty') this.fieldProblem = { offset: issue.offset, message: 'request header line has no name and colon' }
    else if (issue.problem === 'name-whitespace') this.fieldProblem = { offset: issue.offset, message: 'whitespace between a request header name and its colon' }
  }

  /** request-line = method SP request-target SP HTTP-version (RFC 9112 section 3). */
  private readRequestLine (buf: Buffer, start: number, end: number, offset: number): boolean {
    const firstSpace = buf.indexOf(0x20, start)
    if (firstSpace === -1 || firstSpace >= end) return this.invalidLine(offset, 'the request line has no spaces')
    if (firstSpace - start > MAX_METHOD_LENGTH) {
      this.fail('REQUEST_METHOD_TOO_LONG', offset + MAX_METHOD_LENGTH, `the method is ${firstSpace - start} characters long; CLB allows 127`)
      return false
    }
    for (let i = start; i < firstSpace; i++) {
      // CLB-HTTPERR: "If the method field in the request is malformed, the load balancer responds with an HTTP 400".
      if (TCHAR[buf[i] as number] === 0) return this.invalidLine(offset + (i - start), 'the method is not a token')
    }
    if (firstSpace === start) return this.invalidLine(offset, 'the request line starts with a space')
    const lastSpace = buf.lastIndexOf(0x20, end - 1)
    if (lastSpace === firstSpace) return this.invalidLine(offset + (firstSpace - start), 'the request line has no HTTP version')
    for (let i = firstSpace + 1; i < lastSpace; i++) {
      const b = buf[i] as number
      // CLB-HTTPERR: "a request can't have spaces in the URL"; control bytes are Severe/Ambiguous in desync mitigation.
      if (b <= 0x20 || b === 0x7f) return this.invalidLine(offset + (i - start), b === 0x20 ? 'space in the request-target' : 'control character in the request-target')
    }
    if (lastSpace === firstSpace + 1) return this.invalidLine(offset + (lastSpace - start), 'empty request-target')
    if (!isHttp1Version(buf, lastSpace + 1, end)) {
      return this.invalidLine(offset + (lastSpace + 1 - start), `unsupported HTTP version "${latin1(buf, lastSpace + 1, end)}"`)
    }
    const method = COMMON_METHODS.find(buf, start, firstSpace) ?? latin1(buf, start, firstSpace)
    if (method === 'CONNECT') {
      this.fail('REQUEST_CONNECT', offset, 'CONNECT is not supported by Elastic Load Balancing')
      return false
    }
    this.requestLine = { method, target: latin1(buf, firstSpace + 1, lastSpace), version: buf[end - 1] === 0x30 ? 'HTTP/1.0' : 'HTTP/1.1' }
    return true
  }

  private endOfHead (end: number): boolean {
    const line = this.requestLine as { method: string; target: string; version: string }
    const contentLength = analyzeContentLength(this.fields)
    const bad = contentLength.findings.find((f) => f.problem !== 'same-duplicate')
    if (bad !== undefined) return this.failLine('REQUEST_CL_INVALID', bad.offset, bad.message)
    // Desync mitigation (CLB-DESYNC, HDG BadContentLength) rates a list such as "1000,1000" Severe: 400.
    const list = contentLength.present ? this.fields.find((f) => f.lowerName === 'content-length' && f.value.includes(',')) : undefined
    if (list !== undefined) return this.failLine('REQUEST_CL_INVALID', list.valueOffset + list.value.indexOf(','), `Content-Length "${list.value}" is a list, not one integer`)
    const transferEncodings = hasField(this.fields, 'transfer-encoding') ? this.fields.filter((f) => f.lowerName === 'transfer-encoding') : NO_FIELDS
    let framing: RequestFraming = NO_BODY
    if (transferEncodings.length > 0) {
      const codings = transferEncodings.flatMap((f) => listItems(f.value).map((item) => item.toLowerCase()))
      // RFC 9112 section 6.3 rule 4: TE in a request without chunked as the final coding -> 400.
      if (codings[codings.length - 1] !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1) {
        return this.failLine('REQUEST_TE_INVALID', (transferEncodings[0] as HeaderField).valueOffset, `Transfer-Encoding "${codings.join(', ')}" must end in a single chunked`)
      }
      framing = { kind: 'chunked' }
    } else if (contentLength.length !== null && contentLength.length > 0) {
      framing = { kind: 'content-length', length: contentLength.length }
    }
    const contentLengthIgnored = transferEncodings.length > 0 && contentLength.present
    this.head = {
      method: line.method,
      target: line.target,
      version: line.version,
      fields: this.fields,
      end,
      framing,
      closeAfter: hasConnectionToken(this.fields, 'close') || contentLengthIgnored ||
        (line.version === 'HTTP/1.0' && !hasConnectionToken(this.fields, 'keep-alive')),
      contentLengthIgnored
    }
    if (framing.kind === 'none') {
      this.state = 'complete'
    } else {
      this.state = 'body'
      if (framing.kind === 'content-length') this.remaining = framing.length
      // A bare LF ending a chunk line is accepted silently (RFC 9112 section 2.2: a recipient MAY).
      else this.chunked = new ChunkedFramer(this.maxHeadBytes)
    }
    return true
  }

  private readBody (chunk: Buffer, from: number, chunkOffset: number): number {
    const framing = (this.head as RequestHead).framing
    if (framing.kind === 'content-length') {
      const take = Math.min(this.remaining, chunk.length - from)
      this.remaining -= take
      this.bodyBytes += take
      if (this.remaining === 0) this.state = 'complete'
      return from + take
    }
    const progress = (this.chunked as ChunkedFramer).feed(chunk, from, chunkOffset)
    if (progress.error !== null) {
      this.fail('REQUEST_CHUNK_INVALID', progress.error.offset, progress.error.message)
      return chunk.length
    }
    const end = progress.end === -1 ? chunk.length : progress.end
    this.bodyBytes += end - from
    if (progress.end !== -1) this.state = 'complete'
    return end
  }

  private invalidLine (offset: number, message: string): boolean {
    this.fail('REQUEST_LINE_INVALID', offset, message)
    return false
  }

  private failLine (code: DefectCode, offset: number, message: string): boolean {
    this.fail(code, offset, message)
    return true
  }

  private fail (code: DefectCode, offset: number, message: string): void {
    this.defectCounts[code] = (this.defectCounts[code] ?? 0) + 1
    this.defects.push({ code, offset, message })
    this.state = 'invalid'
    // Nothing more is parsed: the carried line (up to maxHeadBytes) is released at once.
    this.lines.reset()
  }

  /** The parsed request line, even when the headers later failed (for the access log). */
  get requestLineSeen (): { readonly method: string; readonly target: string; readonly version: string } | null {
    return this.requestLine
  }
}

/** The framing of a request without a body (most of them): one shared, frozen value. */
const NO_BODY: RequestFraming = Object.freeze({ kind: 'none' })

const HTTP_1_DOT = Buffer.from('HTTP/1.', 'latin1')

/** `HTTP/1.` DIGIT, exactly (the only versions this parser reads; RFC 9112 section 2.3). */
function isHttp1Version (buf: Buffer, start: number, end: number): boolean {
  if (end - start !== HTTP_1_DOT.length + 1) return false
  for (let k = 0; k < HTTP_1_DOT.length; k++) if (buf[start + k] !== HTTP_1_DOT[k]) return false
  return isDigit(buf[end - 1])
}
