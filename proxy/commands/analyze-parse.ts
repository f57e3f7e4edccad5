/**
 * The reader of one CLB access-log line for `clb-proxy analyze`: bytes in, the fields the report
 * needs out, no regex and no string per field (the hot loop of analyze; bench/analyze.mjs).
 *
 * The syntax is CLB-LOGS (spec §3.2): `timestamp elb client:port backend:port
 * request_processing_time backend_processing_time response_processing_time elb_status_code
 * backend_status_code received_bytes sent_bytes "request" "user_agent" ssl_cipher ssl_protocol`.
 * What it accepts, field by field, follows the Athena pattern (spec §3.6) where that pattern is
 * right about real lines, and is wider where real lines are wider:
 * - `"user_agent" ssl_cipher ssl_protocol` are optional: they "were added on May 18, 2015"
 *   (CLB-HIST), older lines end after `"request"` (the 408 line of spec §2.4);
 * - `backend:port` may be `-` ("if the load balancer can't send the request to a registered
 *   instance ..."), the status codes `-` (TCP/SSL listeners; clb-proxy's rejected response) or `0`;
 * - the request is `"- - - "` for TCP/SSL listeners, and may hold a raw space or quote ("The load
 *   balancer preserves the URL sent by the client, as is"): it ends at the `"` that ends the line
 *   or is followed by ` "`.
 * Anything else is not a CLB line: the caller counts it with its line number.
 */

/** The fields of one line the report uses. Offsets point into the buffer given to parseClbLine. */
export interface ClbLineFields {
  /** Minutes since the epoch of the timestamp (UTC), from its `YYYY-MM-DDTHH:MM` prefix. */
  minute: number
  /** `elb` offsets: the load balancer's name. */
  elbStart: number
  elbEnd: number
  /** `backend:port` offsets; backendStart === backendEnd - 1 with a `-` means no backend. */
  backendStart: number
  backendEnd: number
  hasBackend: boolean
  /** Microseconds; -1 for CLB's `-1` (could not dispatch, see spec §3.3 rows 5-7). */
  requestMicros: number
  backendMicros: number
  responseMicros: number
  /** The status code, -1 for `-` (or an empty field, which Athena's pattern admits). */
  elbStatus: number
  backendStatus: number
  /** Offsets of the URL in the request field (empty for `"- - - "`). */
  urlStart: number
  urlEnd: number
  /** `"- - - "` with elb_status_code `-`: a TCP/SSL listener line (CLB-LOGS), a connection, not an HTTP request. */
  isTcp: boolean
  /** FNV-1a hash of the URL's path (pathOfUrl's grouping, without the cut), to tell whether a path was ever answered without a string per line. */
  pathHash: number
}

export function emptyFields (): ClbLineFields {
  return {
    minute: 0,
    elbStart: 0,
    elbEnd: 0,
    backendStart: 0,
    backendEnd: 0,
    hasBackend: false,
    requestMicros: 0,
    backendMicros: 0,
    responseMicros: 0,
    elbStatus: 0,
    backendStatus: 0,
    urlStart: 0,
    urlEnd: 0,
    isTcp: false,
    pathHash: 0
  }
}

const SPACE = 32
const QUOTE = 34
const DASH = 45
const DOT = 46
const COLON = 58
const ZERO = 48

/** Cache of the day of the last timestamp: logs are in time order, Date.UTC runs once a day. */
let lastDayKey = -1
let lastDayMinutes = 0

function digit (buf: Uint8Array, at: number): number {
  const d = (buf[at] as number) - ZERO
  return d >= 0 && d <= 9 ? d : -1000000
}

/** `YYYY-MM-DDTHH:MM` at [start, start + 16): minutes since the epoch, or -1. */
function parseMinute (buf: Uint8Array, start: number, end: number): number {
  if (end - start < 16 || buf[start + 4] !== DASH || buf[start + 7] !== DASH || buf[start + 10] !== 84 || buf[start + 13] !== COLON) return -1
  const year = digit(buf, start) * 1000 + digit(buf, start + 1) * 100 + digit(buf, start + 2) * 10 + digit(buf, start + 3)
  const month = digit(buf, start + 5) * 10 + digit(buf, start + 6)
  const day = digit(buf, start + 8) * 10 + digit(buf, start + 9)
  const hour = digit(buf, start + 11) * 10 + digit(buf, start + 12)
  const minute = digit(buf, start + 14) * 10 + digit(buf, start + 15)
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59) return -1
  const dayKey = (year * 100 + month) * 100 + day
  if (dayKey !== lastDayKey) {
    lastDayKey = dayKey
    lastDayMinutes = Date.UTC(year, month - 1, day) / 60000
  }
  return lastDayMinutes + hour * 60 + minute
}

/** `-1`, or seconds with up to 6 decimals (spec §3.4), as integer microseconds; NaN if neither. */
function parseMicros (buf: Uint8Array, start: number, end: number): number {
  if (end - start === 2 && buf[start] === DASH && buf[start + 1] === ZERO + 1) return -1
  let whole = 0
  let i = start
  for (; i < end; i++) {
    const d = (buf[i] as number) - ZERO
    if (d < 0 || d > 9) break
    whole = whole * 10 + d
  }
  if (i === start) return NaN
  let micros = whole * 1000000
  if (i < end) {
    if (buf[i] !== DOT) return NaN
    let scale = 100000
    for (i++; i < end; i++) {
      const d = (buf[i] as number) - ZERO
      if (d < 0 || d > 9) return NaN
      micros += d * scale
      scale = scale / 10
    }
  }
  // A timing of hundreds of digits is not a timing: refused, not Infinity in the histogram.
  return Number.isFinite(micros) ? Math.round(micros) : NaN
}

/** A status code: digits, or `-`/empty as -1; NaN otherwise. */
function parseStatus (buf: Uint8Array, start: number, end: number): number {
  if (end === start || (end - start === 1 && buf[start] === DASH)) return -1
  let value = 0
  for (let i = start; i < end; i++) {
    const d = (buf[i] as number) - ZERO
    if (d < 0 || d > 9) return NaN
    value = value * 10 + d
  }
  return end - start > 3 ? NaN : value
}

/** Byte counts: digits or `-`. */
function isCount (buf: Uint8Array, start: number, end: number): boolean {
  if (end === start) return false
  if (end - start === 1 && buf[start] === DASH) return true
  for (let i = start; i < end; i++) {
    const d = (buf[i] as number) - ZERO
    if (d < 0 || d > 9) return false
  }
  return true
}

/** Ends of the 11 space-separated fields before the request; reused, the parser is not reentrant. */
const ends = new Int32Array(11)

/** The names of the fields before the request (CLB-LOGS), for the reason a line is not a CLB line. */
const FIELD_NAMES = ['timestamp', 'elb', 'client:port', 'backend:port', 'request_processing_time', 'backend_processing_time', 'response_processing_time', 'elb_status_code', 'backend_status_code', 'received_bytes', 'sent_bytes'] as const

/** Why a line is not a CLB line: the first field that failed, in a few words (made only for such a line). */
const NOT_CLB = Object.freeze({
  tooFewFields: 'fewer than 12 fields',
  emptyField: (field: number) => `${FIELD_NAMES[field] as string} is empty (two spaces)`,
  timestamp: 'timestamp is not YYYY-MM-DDTHH:MM...',
  timing: (field: number) => `${FIELD_NAMES[field] as string} is not seconds or -1`,
  status: (field: number) => `${FIELD_NAMES[field] as string} is not a 3-digit code`,
  count: (field: number) => `${FIELD_NAMES[field] as string} is not a count`,
  requestNotQuoted: 'request is not quoted',
  requestNotClosed: 'request has no closing quote'
})

/**
 * Reads the line buf[start, end) (no newline, no CR) into `out`. Returns null for a CLB access-log
 * line, else the reason it is not one (NOT_CLB); `out` then holds garbage.
 */
export function parseClbLine (buf: Uint8Array, start: number, end: number, out: ClbLineFields): string | null {
  let at = start
  for (let field = 0; field < 11; field++) {
    while (at < end && buf[at] !== SPACE) at++
    if (at >= end) return NOT_CLB.tooFewFields
    if (at === (field === 0 ? start : ends[field - 1] as number + 1)) return NOT_CLB.emptyField(field)
    ends[field] = at
    at++
  }
  const minute = parseMinute(buf, start, ends[0] as number)
  if (minute < 0) return NOT_CLB.timestamp
  out.minute = minute
  out.elbStart = (ends[0] as number) + 1
  out.elbEnd = ends[1] as number
  // client:port must have a colon (Athena: `([^ ]*):([0-9]*)`); backend:port may be `-`.
  const backendStart = (ends[2] as number) + 1
  const backendEnd = ends[3] as number
  out.backendStart = backendStart
  out.backendEnd = backendEnd
  out.hasBackend = !(backendEnd - backendStart === 1 && buf[backendStart] === DASH)
  out.requestMicros = parseMicros(buf, backendEnd + 1, ends[4] as number)
  if (Number.isNaN(out.requestMicros)) return NOT_CLB.timing(4)
  out.backendMicros = parseMicros(buf, (ends[4] as number) + 1, ends[5] as number)
  if (Number.isNaN(out.backendMicros)) return NOT_CLB.timing(5)
  out.responseMicros = parseMicros(buf, (ends[5] as number) + 1, ends[6] as number)
  if (Number.isNaN(out.responseMicros)) return NOT_CLB.timing(6)
  out.elbStatus = parseStatus(buf, (ends[6] as number) + 1, ends[7] as number)
  if (Number.isNaN(out.elbStatus)) return NOT_CLB.status(7)
  out.backendStatus = parseStatus(buf, (ends[7] as number) + 1, ends[8] as number)
  if (Number.isNaN(out.backendStatus)) return NOT_CLB.status(8)
  if (!isCount(buf, (ends[8] as number) + 1, ends[9] as number)) return NOT_CLB.count(9)
  if (!isCount(buf, (ends[9] as number) + 1, ends[10] as number)) return NOT_CLB.count(10)
  // "request": from the quote after sent_bytes to the quote that ends the line or precedes ` "`.
  const requestStart = at
  if (buf[requestStart] !== QUOTE) return NOT_CLB.requestNotQuoted
  let close = requestStart + 1
  for (;;) {
    while (close < end && buf[close] !== QUOTE) close++
    if (close >= end) return NOT_CLB.requestNotClosed
    if (close === end - 1 || (buf[close + 1] === SPACE && buf[close + 2] === QUOTE)) break
    close++
  }
  let urlStart = requestStart + 1
  while (urlStart < close && buf[urlStart] !== SPACE) urlStart++
  urlStart++
  let urlEnd = urlStart
  while (urlEnd < close && buf[urlEnd] !== SPACE) urlEnd++
  const noRequest = close - requestStart === 7 && buf[requestStart + 1] === DASH && buf[requestStart + 3] === DASH && buf[requestStart + 5] === DASH
  // A TCP/SSL listener line has both: `"- - - "` alone is also an HTTP request the load balancer could not read (a 400 line).
  out.isTcp = noRequest && out.elbStatus === -1
  if (noRequest || urlStart > close) {
    out.urlStart = out.urlEnd = close
  } else {
    out.urlStart = urlStart
    out.urlEnd = urlEnd
  }
  out.pathHash = hashPath(buf, out.urlStart, out.urlEnd)
  return null
}

const SLASH = 47
const QUESTION = 63
const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** FNV-1a over the path of the URL buf[start, end) as pathOfUrl (analyze-stats.ts) groups it: after `scheme://host`, before `?`, `/` when empty. */
function hashPath (buf: Uint8Array, start: number, end: number): number {
  let from = start
  for (let i = start + 1; i < end - 2 && i < start + 8; i++) {
    if (buf[i] === COLON && buf[i + 1] === SLASH && buf[i + 2] === SLASH) {
      from = i + 3
      while (from < end && buf[from] !== SLASH) from++
      break
    }
  }
  let to = from
  while (to < end && buf[to] !== QUESTION) to++
  if (to === from) return Math.imul(FNV_OFFSET ^ SLASH, FNV_PRIME) >>> 0
  let hash = FNV_OFFSET
  for (let i = from; i < to; i++) hash = Math.imul(hash ^ (buf[i] as number), FNV_PRIME) >>> 0
  return hash
}

/** A text line, for tests and small inputs: the fields, or null when it is not a CLB line. */
export function parseClbLineText (line: string): (ClbLineFields & { backend: string, url: string }) | null {
  const buf = Buffer.from(line, 'utf8')
  const out = emptyFields()
  if (parseClbLine(buf, 0, buf.length, out) !== null) return null
  return { ...out, backend: buf.toString('utf8', out.backendStart, out.backendEnd), url: buf.toString('utf8', out.urlStart, out.urlEnd) }
}
