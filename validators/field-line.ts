import { CR, TCHAR, WordTable, isControl, isWhitespace, latin1 } from './bytes.js'

/** A header field as received: name as sent, value with surrounding whitespace removed. */
export interface HeaderField {
  readonly name: string
  /** ASCII-lower-cased name, for matching. */
  readonly lowerName: string
  readonly value: string
  /** Absolute offset of the first byte of the field line. */
  readonly offset: number
  /** Absolute offset of the first byte of the value (after OWS). */
  readonly valueOffset: number
}

export type FieldLineProblem = 'bare-cr' | 'no-colon' | 'name-whitespace' | 'name-empty' | 'name-nul' | 'name-ctl' | 'name-invalid' | 'value-nul' | 'value-ctl'

export interface FieldLineIssue {
  readonly problem: FieldLineProblem
  readonly offset: number
}

/**
 * Parses one field line (RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS).
 * Reports every problem found to `report`; returns the field, or null when the line has no
 * usable name and colon.
 */
export function parseFieldLine (buf: Buffer, start: number, end: number, offset: number,
  report: (issue: FieldLineIssue) => void): HeaderField | null {
  // The usual line first, in one pass and one table lookup per byte: a name of token characters
  // up to its colon, and after it only VCHAR, SP, HTAB and obs-text. Such a line has no problem
  // to report (no CR, NUL or other control byte anywhere), so the careful reading below would
  // find none; any other line is read by it from its first byte.
  let colon = start
  while (colon < end && TCHAR[buf[colon] as number] === 1) colon++
  if (colon > start && colon < end && buf[colon] === 0x3a) {
    let i = colon + 1
    while (i < end && FIELD_VALUE_BYTE[buf[i] as number] === 1) i++
    if (i === end) return fieldOf(buf, start, colon, end, offset)
  }
  return parseProblemFieldLine(buf, start, end, offset, report)
}

/** parseFieldLine for a line that may have problems: each one is reported, in the order found. */
function parseProblemFieldLine (buf: Buffer, start: number, end: number, offset: number,
  report: (issue: FieldLineIssue) => void): HeaderField | null {
  // A CR inside a line (the terminator is already excluded) is a bare CR (RFC 9112 section 2.2).
  const cr = buf.indexOf(CR, start)
  if (cr !== -1 && cr < end) report({ problem: 'bare-cr', offset: offset + (cr - start) })

  let colon = -1
  let nameInvalidAt = -1
  let nameWhitespaceAt = -1
  let nameNulAt = -1
  let nameControlAt = -1
  for (let i = start; i < end; i++) {
    const b = buf[i] as number
    if (b === 0x3a) { colon = i; break }
    if (TCHAR[b] === 0 && nameInvalidAt === -1) nameInvalidAt = i
    if (isWhitespace(b) && nameWhitespaceAt === -1) nameWhitespaceAt = i
    if (b === 0 && nameNulAt === -1) nameNulAt = i
    // NUL and a bare CR have problems of their own; HT is whitespace (isControl excludes it).
    if (b !== 0 && b !== CR && isControl(b) && nameControlAt === -1) nameControlAt = i
  }
  if (colon === -1) {
    report({ problem: 'no-colon', offset })
    return null
  }
  if (colon === start) {
    // RFC 9110 section 5.1: field-name = token, at least one tchar. HAProxy ("error at position"
    // of the colon), nginx ("upstream sent invalid header") and llhttp all reject it.
    report({ problem: 'name-empty', offset })
    return null
  }
  if (nameNulAt !== -1) {
    // A NUL hides a name from some parsers but not others (`\0Transfer-Encoding`): a smuggling vector.
    report({ problem: 'name-nul', offset: offset + (nameNulAt - start) })
  } else if (nameWhitespaceAt !== -1) {
    // RFC 9112 section 5.1: "No whitespace is allowed between the field name and colon ...
    // a server MUST reject ... and a proxy MUST remove any such whitespace from a response".
    // Whitespace inside a name is rejected by every strict peer as well (HAProxy, nginx, llhttp).
    report({ problem: 'name-whitespace', offset: offset + (nameWhitespaceAt - start) })
  } else if (nameControlAt !== -1) {
    // A control byte is not a tchar (RFC 9110 section 5.6.2), and unlike other non-token bytes
    // every strict peer rejects it: nginx (`ch <= 0x20 || ch == 0x7f`), HAProxy and llhttp.
    report({ problem: 'name-ctl', offset: offset + (nameControlAt - start) })
  } else if (nameInvalidAt !== -1) {
    report({ problem: 'name-invalid', offset: offset + (nameInvalidAt - start) })
  }
  let valueStart = colon + 1
  while (valueStart < end && isWhitespace(buf[valueStart])) valueStart++
  let valueEnd = end
  while (valueEnd > valueStart && isWhitespace(buf[valueEnd - 1])) valueEnd--
  for (let i = valueStart; i < valueEnd; i++) {
    const b = buf[i] as number
    if (b === 0) report({ problem: 'value-nul', offset: offset + (i - start) })
    else if ((b < 0x20 && b !== 0x09 && b !== CR) || b === 0x7f) report({ problem: 'value-ctl', offset: offset + (i - start) })
  }
  return fieldOf(buf, start, colon, end, offset)
}

/** The field of the line `buf[start..end)` whose colon is at `colon`: the value without the whitespace around it. */
function fieldOf (buf: Buffer, start: number, colon: number, end: number, offset: number): HeaderField {
  let valueStart = colon + 1
  while (valueStart < end && isWhitespace(buf[valueStart])) valueStart++
  let valueEnd = end
  while (valueEnd > valueStart && isWhitespace(buf[valueEnd - 1])) valueEnd--
  const known = COMMON_FIELD_NAMES.find(buf, start, colon)
  const name = known === null ? latin1(buf, start, colon) : known.name
  return {
    name,
    lowerName: known === null ? name.toLowerCase() : known.lowerName,
    value: latin1(buf, valueStart, valueEnd),
    offset,
    valueOffset: offset + (valueStart - start)
  }
}

/**
 * The bytes a field value may hold without a problem to report (RFC 9110 section 5.5: field-value
 * is VCHAR, SP, HTAB and obs-text); the whitespace around a value is among them.
 */
const FIELD_VALUE_BYTE = (() => {
  const table = new Uint8Array(256)
  for (let b = 0; b < 256; b++) table[b] = b === 0x09 || (b >= 0x20 && b !== 0x7f) ? 1 : 0
  return table
})()

/** Splits a comma-separated list value into trimmed items (RFC 9110 section 5.6.1), keeping empty ones. */
export function listItems (value: string): string[] {
  return value.split(',').map((item) => item.trim())
}

/** The fields of a head that has none of a name: shared, never written to. */
export const NO_FIELDS: readonly HeaderField[] = Object.freeze([])

/** Whether a field named `lowerName` (lower case) is present. A loop, no closure: this runs for every message. */
export function hasField (fields: readonly HeaderField[], lowerName: string): boolean {
  for (let k = 0; k < fields.length; k++) if ((fields[k] as HeaderField).lowerName === lowerName) return true
  return false
}

/** True when a `Connection` field lists `token` (case-insensitive). */
export function hasConnectionToken (fields: readonly HeaderField[], token: string): boolean {
  for (const field of fields) {
    if (field.lowerName !== 'connection') continue
    for (const item of listItems(field.value)) if (item.toLowerCase() === token) return true
  }
  return false
}

/**
 * Names most requests and responses carry, each in the two spellings senders use (curl, browsers,
 * Node, nginx, Go: `Content-Length`; HTTP/2-era and many libraries: `content-length`). A name that
 * matches one byte for byte reuses its two strings instead of decoding and lower-casing it again
 * (undici keeps such a table too, for the same reason); any other spelling is decoded as usual.
 */
const COMMON_FIELD_NAMES = new WordTable([
  'Host', 'User-Agent', 'Accept', 'Accept-Encoding', 'Accept-Language', 'Connection', 'Keep-Alive',
  'Content-Length', 'Content-Type', 'Content-Encoding', 'Transfer-Encoding', 'Cookie', 'Set-Cookie',
  'Date', 'Server', 'Cache-Control', 'ETag', 'Last-Modified', 'Location', 'Vary', 'Expect', 'Upgrade',
  'Referer', 'Origin', 'Authorization', 'If-None-Match', 'If-Modified-Since', 'X-Forwarded-For',
  'X-Forwarded-Proto', 'X-Forwarded-Port', 'X-Powered-By', 'Access-Control-Allow-Origin', 'Pragma', 'Expires'
].flatMap((name) => [name, name.toLowerCase()]).map((spelling) => [spelling, { name: spelling, lowerName: spelling.toLowerCase() }] as const))
