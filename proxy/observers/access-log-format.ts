/**
 * The CLB access-log line of one AccessLogRecord: its bytes, written into a caller's buffer
 * (writeAccessLogLine, what the writer uses), or the same bytes as a string (formatAccessLogLine).
 * Nothing else: no I/O, and the line depends on the record alone.
 *
 * CLB-LOGS entry syntax:
 *   timestamp elb client:port backend:port request_processing_time backend_processing_time
 *   response_processing_time elb_status_code backend_status_code received_bytes sent_bytes
 *   "request" "user_agent" ssl_cipher ssl_protocol
 *
 * The sentinels CLB prints (`-`, `-1`, `0`) live here and nowhere else. Every line this module
 * writes matches the Athena RegexSerDe pattern AWS publishes for CLB logs (docs/access-log.md
 * quotes it; test/proxy/observers/access-log-format.test.ts proves it on hostile and random input). Choices made
 * where CLB is undocumented are listed, with reasons, in docs/access-log.md.
 */
import type { AccessLogRecord } from '../core/access-log-record.js'

/** CLB-LOGS, user_agent: "If the string is longer than 8 KB, it is truncated." We read 8 KB as 8192 bytes of the raw value. */
export const USER_AGENT_MAX_BYTES = 8192

/** CLB-LOGS, request field for TCP/SSL listeners: three dashes each followed by a space. We also use it when the request line could not be parsed. */
export const UNPARSED_REQUEST_FIELD = '"- - - "'

const MICROS_PER_SECOND = 1_000_000

/**
 * Writes one record's CLB access-log line, without the trailing newline, as bytes into `out` from
 * `offset`. Returns the offset after the line, or -1 when it does not fit before `out.length`.
 * Throws a RangeError (a bug in the caller, never a client's doing) when a numeric field is not
 * the kind of number the record type promises (negative, fractional or non-finite). Bytes before
 * `offset` are never touched; after a -1 or a throw, those from `offset` on mean nothing.
 *
 * Every byte is ASCII: each field is percent-encoded where it could hold anything else. The
 * digits go straight into the bytes: a line built as a string was a tree of some forty pieces and
 * a dozen number-to-string conversions per request, flattened again when copied into the batch
 * (bench/README.md, "The access-log line as bytes").
 */
export function writeAccessLogLine(record: AccessLogRecord, out: Buffer, offset: number): number {
  putLine(lineBytes.begin(out, offset), record)
  return lineBytes.end()
}

/** Formats one record as one CLB access-log line, without the trailing newline: writeAccessLogLine's bytes as a string. */
export function formatAccessLogLine(record: AccessLogRecord): string {
  return asText((line) => putLine(line, record))
}

function putLine (line: LineBytes, record: AccessLogRecord): void {
  putTimestamp(line, record.receivedAtMicros)
  line.byte(SP)
  line.ascii(elbField.text(record.elbName))
  line.byte(SP)
  line.ascii(clientAddressField.text(record.clientAddress))
  line.byte(COLON)
  putCount(line, 'clientPort', record.clientPort)
  line.byte(SP)
  putBackend(line, record.backend)
  line.byte(SP)
  putSeconds(line, record.requestProcessingSeconds)
  line.byte(SP)
  putSeconds(line, record.backendProcessingSeconds)
  line.byte(SP)
  putSeconds(line, record.responseProcessingSeconds)
  line.byte(SP)
  if (record.elbStatusCode === null) line.byte(DASH)
  else putCount(line, 'elbStatusCode', record.elbStatusCode)
  line.byte(SP)
  putBackendStatusCode(line, record.backendStatusCode)
  line.byte(SP)
  putCount(line, 'receivedBytes', record.receivedBytes)
  line.byte(SP)
  putCount(line, 'sentBytes', record.sentBytes)
  line.byte(SP)
  putRequest(line, record)
  line.byte(SP)
  putUserAgent(line, record.userAgent)
  line.byte(SP)
  line.ascii(formatSslCipher(record.sslCipher))
  line.byte(SP)
  line.ascii(formatSslProtocol(record.sslProtocol))
}

const SP = 0x20
const COLON = 0x3a
const DASH = 0x2d
const DOT = 0x2e
const QUOTE = 0x22
const DIGIT_ZERO = 0x30

/** The cursor's buffer between lines: it keeps no caller's buffer (nor a long line's) alive. */
const NO_BYTES = Buffer.alloc(0)

/**
 * A cursor over the bytes of the line being written. The formatter is synchronous and writes one
 * line at a time, so one cursor serves every line. Past the buffer's end it writes nothing but
 * goes on counting, so that `at` ends as the offset the whole line would have needed.
 */
class LineBytes {
  private out: Buffer = NO_BYTES
  at = 0
  private overflowed = false

  begin (out: Buffer, offset: number): this {
    this.out = out
    this.at = offset
    this.overflowed = false
    return this
  }

  /** The offset after the line, or -1 when it did not fit. The buffer is let go. */
  end (): number {
    this.out = NO_BYTES
    return this.overflowed ? -1 : this.at
  }

  /** True when `length` more bytes fit; else notes the overflow and counts them. */
  private room (length: number): boolean {
    if (this.at + length <= this.out.length) return true
    this.overflowed = true
    this.at += length
    return false
  }

  byte (value: number): void {
    if (this.room(1)) this.out[this.at++] = value
  }

  /** A string whose every char code is an ASCII byte (the field encoders make sure of it). */
  ascii (text: string): void {
    const length = text.length
    if (!this.room(length)) return
    // A short text is copied faster here than through Buffer.write's argument handling.
    if (length <= SHORT_TEXT) {
      const out = this.out
      let at = this.at
      for (let i = 0; i < length; i++) out[at++] = text.charCodeAt(i)
    } else {
      this.out.write(text, this.at, length, 'latin1')
    }
    this.at += length
  }

  /** A non-negative safe integer in decimal, without leading zeros. */
  decimal (value: number): void {
    let width = 1
    for (let power = 10; power <= value; power *= 10) width++
    this.paddedDecimal(value, width)
  }

  /** A non-negative integer below 10^width in exactly `width` digits, zero-padded. */
  paddedDecimal (value: number, width: number): void {
    if (!this.room(width)) return
    const out = this.out
    let at = this.at + width
    this.at = at
    // For a safe integer value = 10q + r, value / 10 rounds to a double below q + 1 (below 2^50
    // doubles are at most 1/8 apart, and r / 10 <= 0.9), so its floor is q.
    for (let i = 0; i < width; i++) {
      const quotient = Math.floor(value / 10)
      out[--at] = DIGIT_ZERO + (value - quotient * 10)
      value = quotient
    }
  }
}

/** Texts up to this many chars are copied char by char. */
const SHORT_TEXT = 32

const lineBytes = new LineBytes()

/** Where the string forms write their bytes; a longer line gets a buffer of its own size. */
const textScratch = Buffer.allocUnsafe(4096)

/** What `put` writes, as a string: the string forms of the byte writers. */
function asText (put: (line: LineBytes) => void): string {
  let scratch = textScratch
  for (;;) {
    put(lineBytes.begin(scratch, 0))
    const end = lineBytes.end()
    if (end !== -1) return scratch.toString('latin1', 0, end)
    // The cursor counted what the whole text needs: the second try fits.
    scratch = Buffer.allocUnsafe(lineBytes.at)
  }
}

/**
 * One field's last input and the text it gave. Under load most lines share their load balancer,
 * client address, instance, host, method and version with the line before: each is encoded once
 * per change instead of once per line. Keyed on the exact input, so the text is the same.
 */
class LastEncoded {
  private input: string | null = null
  private output = ''

  constructor (private readonly encode: (value: string) => string) {}

  text (value: string): string {
    if (value !== this.input) {
      this.output = this.encode(value)
      this.input = value
    }
    return this.output
  }
}

const elbField = new LastEncoded(encodeLogToken)
const clientAddressField = new LastEncoded(encodeLogToken)
const backendAddressField = new LastEncoded(encodeLogToken)
const methodField = new LastEncoded(encodeLogToken)
const versionField = new LastEncoded(encodeLogToken)

/**
 * `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (CLB-LOGS: "in ISO 8601 format"; six fractional digits in
 * every AWS example). Integer arithmetic only, so the microseconds are never rounded.
 */
export function formatTimestamp(receivedAtMicros: number): string {
  return asText((line) => putTimestamp(line, receivedAtMicros))
}

function putTimestamp (line: LineBytes, receivedAtMicros: number): void {
  if (!Number.isSafeInteger(receivedAtMicros) || receivedAtMicros < 0) {
    throw new RangeError(`access-log receivedAtMicros must be a non-negative safe integer, got ${String(receivedAtMicros)} (a bug in clb-proxy)`)
  }
  const fractionMicros = receivedAtMicros % MICROS_PER_SECOND
  const wholeSeconds = (receivedAtMicros - fractionMicros) / MICROS_PER_SECOND
  // toISOString() gives 'YYYY-MM-DDTHH:MM:SS.000Z'; the safe-integer bound keeps the year at 4 digits (<= 2255).
  if (wholeSeconds !== lastWholeSeconds) {
    lastWholeSeconds = wholeSeconds
    lastSecondsPart = new Date(wholeSeconds * 1000).toISOString().slice(0, 19)
  }
  line.ascii(lastSecondsPart)
  line.byte(DOT)
  line.paddedDecimal(fractionMicros, 6)
  line.byte(0x5a) // Z
}

// Most lines of a busy second share their date and time: format them once per second.
let lastWholeSeconds = -1
let lastSecondsPart = ''

/**
 * A processing time in seconds as CLB prints it: at most 6 decimals, trailing zeros and a bare
 * trailing dot dropped (`0.00004`, `1.5`, zero is `0`); null (the request was not dispatched) is `-1`.
 *
 * Rounding is to the nearest microsecond of the exact binary value, ties away from zero:
 * Number.prototype.toFixed works on the exact mathematical value of the double (ECMA-262
 * Number.prototype.toFixed: "Let n be an integer for which n / 10^f - x is as close to zero as
 * possible. If there are two such n, pick the larger n."), unlike Math.round(x * 1e6), whose
 * multiplication rounds first.
 */
export function formatSeconds(seconds: number | null): string {
  return asText((line) => putSeconds(line, seconds))
}

function putSeconds (line: LineBytes, seconds: number | null): void {
  if (seconds === null) return line.ascii('-1')
  if (!(seconds >= 0 && seconds < 1e21)) {
    throw new RangeError(`access-log processing time must be a finite number of seconds >= 0, got ${String(seconds)} (a bug in clb-proxy)`)
  }
  // The usual value, a whole number of microseconds (secondsBetween makes them): below 10^6 s the
  // neighbouring multiples of 10^-6 are far further apart than a double's precision, so this
  // integer is the n toFixed(6) picks, and the digits are the same.
  if (seconds < WHOLE_MICROS_BOUND_SECONDS) {
    const micros = Math.round(seconds * MICROS_PER_SECOND)
    if (micros / MICROS_PER_SECOND === seconds) return putWholeMicrosAsSeconds(line, micros)
  }
  // toFixed(6) always has a dot here; drop trailing zeros, then the dot if nothing follows it.
  const fixed = seconds.toFixed(6)
  let end = fixed.length
  while (fixed.charCodeAt(end - 1) === DIGIT_ZERO) end--
  if (fixed.charCodeAt(end - 1) === DOT) end--
  line.ascii(end === fixed.length ? fixed : fixed.slice(0, end))
}

/** Below this many seconds, formatSeconds reads a whole number of microseconds directly. */
const WHOLE_MICROS_BOUND_SECONDS = 1_000_000

/** `micros` (a non-negative safe integer) as formatSeconds prints it: `0.000041`, `1.5`, `2`. */
function putWholeMicrosAsSeconds (line: LineBytes, micros: number): void {
  let fraction = micros % MICROS_PER_SECOND
  line.decimal((micros - fraction) / MICROS_PER_SECOND)
  if (fraction === 0) return
  let digits = 6
  while (fraction % 10 === 0) {
    fraction /= 10
    digits--
  }
  line.byte(DOT)
  line.paddedDecimal(fraction, digits)
}

/** The same rule as formatSeconds for a duration already held in integer microseconds. */
export function formatMicrosAsSeconds(micros: number): string {
  if (!Number.isSafeInteger(micros) || micros < 0) {
    throw new RangeError(`access-log duration must be a non-negative safe integer of microseconds, got ${String(micros)} (a bug in clb-proxy)`)
  }
  return asText((line) => putWholeMicrosAsSeconds(line, micros))
}

/**
 * Makes a value safe as an unquoted, space-delimited field or as one of the three tokens of the
 * quoted request field: every byte that is a control character (0x00-0x1F, 0x7F), a space, a
 * double quote, a backslash or >= 0x80 becomes `%HH` (upper-case hex). The backslash is encoded
 * because log readers that honour `\"` escapes (GoAccess, logstash QUOTEDSTRING) would otherwise
 * take a field ending in `\` as running on past its closing quote. Each char code 0-255 is one byte
 * (latin1, how the proxy reads header bytes); a char above 0xFF is encoded as its UTF-8 bytes.
 * `%` itself is kept, so a URL the client percent-encoded is logged as sent (CLB-LOGS: "The load
 * balancer preserves the URL sent by the client, as is"). An empty value is logged as `-`.
 */
export function encodeLogToken(value: string): string {
  if (value === '') return '-'
  if (TOKEN_SAFE.test(value)) return value
  return percentEncodeBytes(toLogBytes(value), isUnsafeInToken)
}

/**
 * The user_agent field, quotes included. Null (no User-Agent header) is `"-"`. The raw value is
 * cut to USER_AGENT_MAX_BYTES bytes first, then every control byte, `"`, `\` and byte >= 0x80 is
 * `%HH`-encoded; spaces stay (the field is quoted, and Athena reads it as `"[^"]*"`).
 */
export function formatUserAgent(userAgent: string | null): string {
  if (userAgent === null) return '"-"'
  if (userAgent.length <= USER_AGENT_MAX_BYTES && QUOTED_SAFE.test(userAgent)) return `"${userAgent}"`
  const bytes = toLogBytes(userAgent)
  const kept = bytes.length > USER_AGENT_MAX_BYTES ? bytes.subarray(0, USER_AGENT_MAX_BYTES) : bytes
  return `"${percentEncodeBytes(kept, isUnsafeInQuotes)}"`
}

/**
 * The request field, quotes included: `METHOD scheme://host:port target HTTP/x.y` with no space
 * between port and target (CLB-LOGS: "HTTP Method + Protocol://Host header:port + Path + HTTP
 * version"). An absolute-form target (RFC 9112 §3.2.2) already names scheme and host, so it is
 * logged as sent. Any part null (the request line could not be parsed) gives `"- - - "`.
 */
export function formatRequest(record: Pick<AccessLogRecord, 'method' | 'scheme' | 'host' | 'listenerPort' | 'target' | 'httpVersion'>): string {
  return asText((line) => putRequest(line, record))
}

function putRequest (line: LineBytes, record: Pick<AccessLogRecord, 'method' | 'scheme' | 'host' | 'listenerPort' | 'target' | 'httpVersion'>): void {
  const { method, target, httpVersion } = record
  if (method === null || target === null || httpVersion === null) return line.ascii(UNPARSED_REQUEST_FIELD)
  line.byte(QUOTE)
  line.ascii(methodField.text(method))
  line.byte(SP)
  putUrl(line, record, target)
  line.byte(SP)
  line.ascii(versionField.text(httpVersion))
  line.byte(QUOTE)
}

/** The url of the request field, log-safe: the target as sent when in absolute form, else prefixed with `scheme://host:port`. */
function putUrl (line: LineBytes, record: Pick<AccessLogRecord, 'scheme' | 'host' | 'listenerPort'>, target: string): void {
  // An origin-form target starts with `/` (RFC 9112 §3.2.1) and is never in absolute form.
  if (target.charCodeAt(0) !== 0x2f && ABSOLUTE_FORM.test(target)) return line.ascii(encodeLogToken(target))
  checkCount('listenerPort', record.listenerPort)
  const prefix = urlPrefix.text(record.scheme, record.host, record.listenerPort)
  // Encoding is byte by byte, so two safe parts make a safe whole; anything else is encoded whole.
  if (urlPrefix.safe && TOKEN_SAFE.test(target)) {
    line.ascii(prefix)
    line.ascii(target)
  } else {
    line.ascii(encodeLogToken(prefix + target))
  }
}

/** `scheme://host:port` of the last line, and whether it needs no encoding (most lines share it). */
const urlPrefix = {
  scheme: '',
  host: '',
  port: -1,
  prefix: '',
  safe: false,
  text (scheme: string, host: string, port: number): string {
    if (scheme !== this.scheme || host !== this.host || port !== this.port) {
      this.scheme = scheme
      this.host = host
      this.port = port
      this.prefix = `${scheme}://${host}:${port}`
      this.safe = TOKEN_SAFE.test(this.prefix)
    }
    return this.prefix
  }
}

function putBackend (line: LineBytes, backend: AccessLogRecord['backend']): void {
  // CLB-LOGS backend:port: "If the load balancer can't send the request to a registered instance,
  // or if the instance closes the connection before a response can be sent, this value is set to -."
  if (backend === null) return line.byte(DASH)
  line.ascii(backendAddressField.text(backend.address))
  line.byte(COLON)
  putCount(line, 'backend.port', backend.port)
}

function putBackendStatusCode (line: LineBytes, code: AccessLogRecord['backendStatusCode']): void {
  // `0` when no backend response exists: real CLB 503/504/408 lines show `503 0`, `504 0`.
  if (code === 'no-response') return line.byte(DIGIT_ZERO)
  // `-` when the backend answered but the load balancer rejected the response: our choice (docs/access-log.md).
  if (code === 'rejected') return line.byte(DASH)
  // CLB-LOGS backend_status_code, TCP/SSL listeners: `-` (the doc's TCP and SSL example lines).
  if (code === 'not-http') return line.byte(DASH)
  putCount(line, 'backendStatusCode', code)
}

/** The user_agent field, as formatUserAgent words it; the usual short printable value is copied as it is. */
function putUserAgent (line: LineBytes, userAgent: string | null): void {
  if (userAgent !== null && userAgent.length <= USER_AGENT_MAX_BYTES && QUOTED_SAFE.test(userAgent)) {
    line.byte(QUOTE)
    line.ascii(userAgent)
    line.byte(QUOTE)
  } else {
    line.ascii(formatUserAgent(userAgent))
  }
}

/**
 * Athena reads ssl_cipher as `[A-Z0-9-]+` (OpenSSL names such as ECDHE-RSA-AES128-GCM-SHA256).
 * CLB-LOGS: without a successful TLS negotiation "the value is set to -". Any other character
 * (e.g. the `_` of TLS 1.3 names, which CLB does not negotiate) becomes `-` so the line still loads.
 */
function formatSslCipher(cipher: string | null): string {
  if (cipher === null || cipher === '') return '-'
  return cipher.replace(/[^A-Z0-9-]/g, '-')
}

/** Athena reads ssl_protocol as `[A-Za-z0-9.-]*` (e.g. TLSv1.2); other characters become `-`. */
function formatSslProtocol(protocol: string | null): string {
  if (protocol === null || protocol === '') return '-'
  return protocol.replace(/[^A-Za-z0-9.-]/g, '-')
}

function putCount (line: LineBytes, field: string, value: number): void {
  checkCount(field, value)
  line.decimal(value)
}

/** A count must be a non-negative safe integer; anything else is a bug in the caller (RangeError). */
function checkCount (field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`access-log ${field} must be a non-negative safe integer, got ${String(value)} (a bug in clb-proxy)`)
  }
}

/** RFC 9112 §3.2.2 absolute-form; the scheme is case-insensitive (RFC 3986 §3.1). */
const ABSOLUTE_FORM = /^https?:\/\//i
/** Printable ASCII except space, `"` and `\`: needs no encoding outside quotes. */
const TOKEN_SAFE = /^[\x21\x23-\x5B\x5D-\x7E]*$/
/** Printable ASCII including space, except `"` and `\`: needs no encoding inside quotes. */
const QUOTED_SAFE = /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/

function isUnsafeInToken(byte: number): boolean {
  return byte <= 0x20 || byte === 0x22 || byte === 0x5c || byte >= 0x7f
}

function isUnsafeInQuotes(byte: number): boolean {
  return byte < 0x20 || byte === 0x22 || byte === 0x5c || byte >= 0x7f
}

const HEX = '0123456789ABCDEF'

function percentEncodeBytes(bytes: Uint8Array, isUnsafe: (byte: number) => boolean): string {
  let out = ''
  for (const byte of bytes) {
    out += isUnsafe(byte) ? `%${HEX[byte >> 4]}${HEX[byte & 0x0f]}` : String.fromCharCode(byte)
  }
  return out
}

/** One byte per char code 0-255 (latin1); a code point above 0xFF contributes its UTF-8 bytes (a lone surrogate, U+FFFD's). */
function toLogBytes(value: string): Uint8Array {
  let widest = 0
  for (let i = 0; i < value.length; i++) widest = Math.max(widest, value.charCodeAt(i))
  if (widest <= 0xff) return Buffer.from(value, 'latin1')
  const parts: Buffer[] = []
  for (const char of value) {
    const codePoint = char.codePointAt(0) ?? 0
    parts.push(codePoint <= 0xff ? Buffer.from([codePoint]) : Buffer.from(char, 'utf8'))
  }
  return Buffer.concat(parts)
}
