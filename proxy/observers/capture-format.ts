/**
 * The capture file format, after HAProxy's `show errors` (peers-validation.md §1.2, §7 item 2):
 * the exact bytes the backend sent, dumped one input line per output line with offsets and
 * escapes, a marker under each defect, and a header that says when, who, what the client got and
 * why. `formatCapture` writes one, `parseCapture` turns a file (or a hand-edited one) back into the
 * exact bytes, which `clb-proxy replay` serves (proxy/byte-servers/replay.ts). Pure: no files are
 * read or written here (captures.ts does that). docs/captures.md describes the format line by line.
 */
import { HEXDIG_VALUE, escapeBytes } from '../../validators/bytes.js'
import { formatAccessLogLine, formatTimestamp } from './access-log-format.js'
import type { ExchangeOutcome, ExchangeRecord } from '../core/events.js'
import { CLB_DEFAULTS, type ResolvedOptions } from '../core/options.js'

/** The first line of every capture; `format:` names the version parseCapture reads. */
export const CAPTURE_FORMAT = 'clb-proxy-capture 1'

/**
 * Outcomes that produce a capture (docs/captures.md says why the others do not):
 * - 'rejected': the response was malformed and the client got CLB's 502;
 * - 'backend-timeout' when bytes arrived: the instance started a response, then went silent.
 */
export const CAPTURED_OUTCOMES: ReadonlySet<ExchangeOutcome> = new Set<ExchangeOutcome>(['rejected', 'backend-timeout'])

/**
 * What the replay backend does after sending the bytes: 'close' ends the connection (FIN), which
 * is how a rejected response is reproduced; 'hold' keeps it open and silent, which reproduces an
 * instance that stopped mid-response until the idle timeout.
 */
export type AfterResponse = 'close' | 'hold'

/** One defect as a capture lists it (`defect: CODE @offset: message`). */
export interface CaptureDefect {
  readonly code: string
  readonly offset: number
  readonly message: string
}

/** What `list()` and the admin API report for one capture file. */
export interface CaptureSummary {
  /** Absolute path of the file. */
  readonly file: string
  /** When the request was received (the access-log time), `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
  readonly time: string | null
  readonly outcome: string | null
  /** The status the client got (502, 504). */
  readonly elbStatus: number | null
  /** `METHOD target HTTP/x.y`, escaped. */
  readonly request: string | null
  /** `address:port` of the instance, null when the access log says `-`. */
  readonly backend: string | null
  readonly defects: readonly CaptureDefect[]
  /** The defect that decided the rejection, null for a timeout. */
  readonly primaryDefect: string | null
  /** Response bytes kept in the file. */
  readonly responseBytes: number | null
  /**
   * The file was in the capture directory when this proxy started: an earlier run (or another
   * proxy sharing the directory) left it. Known from where the file came from, not from its time.
   */
  readonly earlierRun: boolean
}

/** What parseCapture reads back from a capture file. */
export interface ParsedCapture {
  /** Header fields in file order, by name; `defect` has one value per defect. */
  readonly fields: ReadonlyMap<string, readonly string[]>
  /** The exact response bytes of the `[response]` section. */
  readonly responseBytes: Buffer
  /** The exact request-head bytes of the `[request head]` section, null when the file has none. */
  readonly requestHead: Buffer | null
  readonly afterResponse: AfterResponse
  readonly defects: readonly CaptureDefect[]
}

/** A capture file that cannot be read back; `line` is 1-based. */
export class CaptureFormatError extends Error {
  readonly code = 'CAPTURE_FORMAT'
  constructor (readonly line: number, readonly reason: string) {
    super(`line ${line}: ${reason}`)
    this.name = 'CaptureFormatError'
  }
}

/** The options a capture writer reads: where, how many, how large, and the flags that judge a response. */
export type CaptureOptions = Pick<ResolvedOptions,
'captureDir' | 'maxCaptures' | 'captureBytes' | 'profile' | 'idleTimeoutSeconds' | 'maxHeadBytes' | 'responseBufferBytes' | 'responseHoldMs'>

// --- the dump: offset-prefixed, escaped, one input line per output line ----------------------

// Escaped characters per dump line: with the 9-column prefix a line fits HAProxy's 79 columns.
const DUMP_WIDTH = 70
// HAProxy prints offsets as %05d; a longer capture widens every offset of its dump alike.
const MIN_OFFSET_DIGITS = 5
// Our choice: the dump text is built in 64 KiB pieces.
const DUMP_CHUNK_BYTES = 64 * 1024
const LF = 0x0a
const SPACE = 0x20
/** The escape of each byte value, from the same escaper the diagnostics use (`\r \n \t \\ \xHH`), as ASCII bytes. */
const TOKEN_BYTES: readonly Buffer[] = Array.from({ length: 256 }, (_, byte) => Buffer.from(escapeBytes(Uint8Array.of(byte)), 'latin1'))

/** A label printed under the byte at `offset` (`^ CODE`); `offset` may equal the length (end of data). */
export interface DumpMarker {
  readonly offset: number
  readonly label: string
}

/**
 * HAProxy's `show errors` dump (peers-validation.md §1.2): each line is two spaces, the offset of
 * its first byte, then two spaces (a new input line) or `+ ` (the same input line, wrapped), then
 * the escaped bytes. A line ends after each LF byte. A space that ends a line is written `\x20` so
 * an editor that trims trailing blanks cannot change the bytes. Under a line, `^ LABEL` points at
 * the column of each marked byte.
 */
export function formatDump (bytes: Uint8Array, markers: readonly DumpMarker[] = []): string[] {
  return bytes.length === 0 ? [] : dumpText(bytes, markers).split('\n')
}

/** The dump lines joined by LF (no final LF), '' for no bytes. */
function dumpText (bytes: Uint8Array, markers: readonly DumpMarker[]): string {
  const digits = Math.max(MIN_OFFSET_DIGITS, String(bytes.length).length)
  const prefixWidth = 2 + digits + 2
  const labelsAt = new Map<number, string[]>()
  for (const marker of markers) {
    if (marker.offset < 0 || marker.offset > bytes.length) continue
    const labels = labelsAt.get(marker.offset) ?? []
    labels.push(marker.label)
    labelsAt.set(marker.offset, labels)
  }
  const markedOffsets = [...labelsAt.keys()].sort((a, b) => a - b)
  let nextMarker = 0
  // Written as latin1 bytes into chunks and decoded once: per-byte string concatenation is far
  // slower, and a capture may hold up to 16 MiB.
  const chunks: Buffer[] = []
  let buffer = Buffer.allocUnsafe(DUMP_CHUNK_BYTES)
  let at = 0
  const reserve = (needed: number): void => {
    if (at + needed <= buffer.length) return
    chunks.push(buffer.subarray(0, at))
    buffer = Buffer.allocUnsafe(Math.max(DUMP_CHUNK_BYTES, needed))
    at = 0
  }
  const writeText = (text: string): void => {
    reserve(text.length)
    at += buffer.write(text, at, 'latin1')
  }
  let i = 0
  while (i < bytes.length) {
    const lineStart = i
    const continuation = lineStart > 0 && bytes[lineStart - 1] !== LF
    writeText(`${lineStart > 0 ? '\n' : ''}  ${String(lineStart).padStart(digits, '0')}${continuation ? '+' : ' '} `)
    // Room for the widest line: DUMP_WIDTH, plus a last escape that starts just below it, plus `\x20`.
    reserve(DUMP_WIDTH + 8)
    let width = 0
    while (i < bytes.length) {
      const byte = bytes[i] as number
      const token = TOKEN_BYTES[byte] as Buffer
      if (width > 0 && width + token.length > DUMP_WIDTH) break
      if (token.length === 1) buffer[at++] = byte
      else at += token.copy(buffer, at)
      width += token.length
      i++
      if (byte === LF) break
    }
    // `\x20` in place of the space that ends the line.
    if (bytes[i - 1] === SPACE) at += buffer.write('\\x20', at - 1, 'latin1') - 1
    const lastLine = i === bytes.length
    while (nextMarker < markedOffsets.length) {
      const offset = markedOffsets[nextMarker] as number
      if (offset >= i && !(lastLine && offset === i)) break
      let column = 0
      for (let j = lineStart; j < offset; j++) column += (TOKEN_BYTES[bytes[j] as number] as Buffer).length
      writeText(`\n${' '.repeat(prefixWidth + column)}^ ${(labelsAt.get(offset) as string[]).join(' ')}`)
      nextMarker++
    }
  }
  chunks.push(buffer.subarray(0, at))
  return Buffer.concat(chunks).toString('latin1')
}

// A dump line: the offset, then ' ' or '+', then one space and the escaped bytes. The separator
// is optional so a line whose trailing blanks an editor trimmed still reads.
const DUMP_LINE = /^\s*(\d+)(?:([ +]) ?(.*))?$/
const MARKER_LINE = /^\s*\^/
const COMMENT_LINE = /^\s*#/
const BLANK_LINE = /^\s*$/
const FIELD_LINE = /^([a-z][a-z0-9-]*):[ \t]*(.*)$/
const SECTION_LINE = /^\[(request head|response)\](.*)$/
const DEFECT_VALUE = /^([A-Za-z0-9_]+) @(\d+)(?:: ?(.*))?$/

/**
 * The bytes of one dump line's escaped text. Escapes: `\r \n \t \\ \e` (HAProxy's ESC) and
 * `\xHH`; any other character stands for its UTF-8 bytes (ASCII for everything this module writes).
 */
/**
 * The bytes a header value such as `request:` stands for, in the escapes of the dump; null when
 * the text has an escape that is not one (a hand-edited file).
 */
export function unescapeCaptureText (text: string): Buffer | null {
  try {
    return unescapeDumpText(text, 0)
  } catch (error) {
    if (error instanceof CaptureFormatError) return null
    throw error
  }
}

function unescapeDumpText (text: string, line: number): Buffer {
  // Fast path: printable ASCII without escapes is its own bytes.
  if (PLAIN_ASCII.test(text)) return Buffer.from(text, 'latin1')
  // At most 3 UTF-8 bytes per UTF-16 unit; an escape is never longer than the text it stands for.
  const out = Buffer.allocUnsafe(text.length * 3)
  let length = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code !== 0x5c) {
      if (code < 0x80) {
        out[length++] = code
      } else {
        // A surrogate pair is two units; encode the whole code point once.
        const char = String.fromCodePoint(text.codePointAt(i) as number)
        length += out.write(char, length, 'utf8')
        i += char.length - 1
      }
      continue
    }
    const escape = text[i + 1]
    switch (escape) {
      case 'r': out[length++] = 0x0d; break
      case 'n': out[length++] = 0x0a; break
      case 't': out[length++] = 0x09; break
      case 'e': out[length++] = 0x1b; break
      case '\\': out[length++] = 0x5c; break
      case 'x': {
        const high = HEXDIG_VALUE[text.charCodeAt(i + 2)] ?? -1
        const low = HEXDIG_VALUE[text.charCodeAt(i + 3)] ?? -1
        if (high < 0 || low < 0) throw new CaptureFormatError(line, `\\x must be followed by two hex digits, got "\\x${text.slice(i + 2, i + 4)}"`)
        out[length++] = high * 16 + low
        i += 2
        break
      }
      default:
        throw new CaptureFormatError(line, escape === undefined
          ? 'a lone backslash ends the line (write \\\\ for a backslash byte)'
          : `unknown escape \\${escape} (known: \\r \\n \\t \\e \\\\ \\xHH)`)
    }
    i++
  }
  // A view: parseCapture copies every line into one Buffer.
  return out.subarray(0, length)
}

const PLAIN_ASCII = /^[\x20-\x5b\x5d-\x7e]*$/

/**
 * Reads a capture back. Header lines (`name: value`), blank lines and `#` comments come first;
 * then a `[request head]` section (optional) and a `[response]` section (required), each made of
 * dump lines, marker lines (`^ ...`), blank lines and comments. The offsets of dump lines are for
 * reading only: their values are not checked, so a hand-edited line needs no renumbering.
 */
export function parseCapture (text: string): ParsedCapture {
  const lines = text.split(/\r?\n/)
  const fields = new Map<string, string[]>()
  const sections: Record<'request head' | 'response', Buffer[] | null> = { 'request head': null, response: null }
  let current: Buffer[] | null = null
  let afterResponseLine = 0
  lines.forEach((line, index) => {
    const lineNumber = index + 1
    if (BLANK_LINE.test(line) || COMMENT_LINE.test(line)) return
    const section = SECTION_LINE.exec(line)
    if (section !== null) {
      const name = section[1] as 'request head' | 'response'
      if (sections[name] !== null) throw new CaptureFormatError(lineNumber, `a second [${name}] section`)
      current = sections[name] = []
      return
    }
    if (current === null) {
      const field = FIELD_LINE.exec(line)
      if (field === null) throw new CaptureFormatError(lineNumber, "expected a header line 'name: value', a '#' comment or a section line '[response]'")
      const name = field[1] as string
      if (name === 'after-response') afterResponseLine = lineNumber
      fields.set(name, [...(fields.get(name) ?? []), field[2] as string])
      return
    }
    if (MARKER_LINE.test(line)) return
    const dump = DUMP_LINE.exec(line)
    if (dump === null) {
      throw new CaptureFormatError(lineNumber, "expected a dump line '  00000  escaped bytes', a marker line '^ ...', a '#' comment or a blank line")
    }
    ;(current as Buffer[]).push(unescapeDumpText(dump[3] ?? '', lineNumber))
  })
  if (sections.response === null) {
    const lastLine = text.endsWith('\n') ? lines.length - 1 : lines.length
    throw new CaptureFormatError(Math.max(1, lastLine), 'no [response] section: the bytes to replay go under a line [response]')
  }
  const afterResponseText = fields.get('after-response')?.at(-1) ?? 'close'
  if (afterResponseText !== 'close' && afterResponseText !== 'hold') {
    throw new CaptureFormatError(afterResponseLine, `after-response must be 'close' or 'hold', got ${JSON.stringify(afterResponseText)}`)
  }
  return {
    fields,
    responseBytes: Buffer.concat(sections.response),
    requestHead: sections['request head'] === null ? null : Buffer.concat(sections['request head']),
    afterResponse: afterResponseText,
    defects: parseDefectFields(fields.get('defect') ?? [])
  }
}

function parseDefectFields (values: readonly string[]): CaptureDefect[] {
  const defects: CaptureDefect[] = []
  for (const value of values) {
    const match = DEFECT_VALUE.exec(value)
    if (match !== null) defects.push({ code: match[1] as string, offset: Number(match[2]), message: match[3] ?? '' })
  }
  return defects
}

// --- one capture file -------------------------------------------------------------------------

/**
 * The text of a capture for one exchange. `captureBytes` bounds the response and request-head
 * bytes written; the header says when the response was cut at that bound.
 */
export function formatCapture (record: ExchangeRecord, options: Omit<CaptureOptions, 'captureDir' | 'maxCaptures'>): string {
  const log = record.log
  const response = boundBytes(record.responseBytes, options.captureBytes)
  const requestHead = record.requestHead === null ? null : boundBytes(record.requestHead, options.captureBytes)
  const primary = record.primaryDefect
  const atLimit = response.length >= options.captureBytes
  const header = [
    `# clb-proxy capture (docs/captures.md). Replay it: clb-proxy replay FILE`,
    `format: ${CAPTURE_FORMAT}`,
    `time: ${formatTimestamp(log.receivedAtMicros)}`,
    `proxy: ${oneLine(log.elbName)}`,
    `client: ${oneLine(log.clientAddress)}:${log.clientPort}`,
    `backend: ${log.backend === null ? '-' : `${oneLine(log.backend.address)}:${log.backend.port}`}`,
    `request: ${requestLine(record)}`,
    `outcome: ${record.outcome}`,
    `elb-status: ${log.elbStatusCode ?? '-'}`,
    ...record.defects.map((defect) => `defect: ${defect.code} @${defect.offset}: ${oneLine(defect.message)}`),
    `primary-defect: ${primary === null ? '-' : `${primary.code} @${primary.offset}`}`,
    `access-log: ${accessLogLine(record)}`,
    `proxy-options:${judgingFlags(options).map((flag) => ` ${flag}`).join('')}`,
    `response-bytes: ${response.length}${atLimit ? ` (the capture limit, ${options.captureBytes} bytes: later bytes, if any, were not kept)` : ''}`,
    `after-response: ${afterResponseFor(record.outcome)}`
  ]
  const sections: string[] = []
  if (requestHead !== null) {
    sections.push('', `[request head] ${requestHead.length} bytes`)
    if (requestHead.length > 0) sections.push(dumpText(requestHead, []))
  }
  const errorAt = primary === null ? '' : `, error at position ${primary.offset}`
  // Markers for the response's own defects (request defects have offsets into the request head).
  const markers = record.defects.filter((defect) => !defect.code.startsWith('REQUEST_'))
    .map((defect) => ({ offset: defect.offset, label: defect.code }))
  sections.push('', `[response] ${response.length} bytes${errorAt}`)
  if (response.length > 0) sections.push(dumpText(response, markers))
  return `${[...header, ...sections].join('\n')}\n`
}

/** `2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-7.capture`: sorts by time; `:` is not allowed on Windows. */
export function captureFileName (record: ExchangeRecord, counter: number): string {
  const time = formatTimestamp(record.log.receivedAtMicros).replaceAll(':', '-')
  const reason = record.primaryDefect?.code ?? record.outcome
  return `${time}-${record.log.elbStatusCode ?? 0}-${reason}-${counter}.capture`
}

export const CAPTURE_FILE_NAME = /^(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{6}Z)-(\d{3})-([A-Za-z0-9_-]+)-(\d+)\.capture$/

function boundBytes (bytes: Buffer | null, limit: number): Buffer {
  if (bytes === null) return Buffer.alloc(0)
  return bytes.length > limit ? bytes.subarray(0, limit) : bytes
}

/**
 * Header values are one line and reach terminals (`cat`, `less`): control characters and 8-bit
 * bytes (C1 controls such as 0x9b, CSI, among them) become `\xHH`, a backslash `\\`.
 */
function oneLine (text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\xff\\]/g, (char) => escapeBytes(Buffer.from(char, 'latin1')))
}

function requestLine (record: ExchangeRecord): string {
  const { method, target, httpVersion } = record.log
  return [method, target, httpVersion].map((part) => part === null ? '-' : escapeBytes(Buffer.from(part, 'latin1'))).join(' ')
}

function accessLogLine (record: ExchangeRecord): string {
  try {
    return formatAccessLogLine(record.log)
  } catch (error) {
    // The formatter throws only on a record that is a bug in clb-proxy; the capture is still worth keeping.
    return `- (not formatted: ${oneLine((error as Error).message)})`
  }
}

/** The flags that decide how clb-proxy judges a response, where they differ from the defaults. */
function judgingFlags (options: Pick<CaptureOptions, 'profile' | 'idleTimeoutSeconds' | 'maxHeadBytes' | 'responseBufferBytes' | 'responseHoldMs'>): string[] {
  const flags: string[] = []
  if (options.profile !== CLB_DEFAULTS.profile) flags.push('--profile', options.profile)
  if (options.idleTimeoutSeconds !== CLB_DEFAULTS.idleTimeoutSeconds) flags.push('--idle-timeout', String(options.idleTimeoutSeconds))
  if (options.maxHeadBytes !== CLB_DEFAULTS.maxHeadBytes) flags.push('--max-head', String(options.maxHeadBytes))
  if (options.responseBufferBytes !== CLB_DEFAULTS.responseBufferBytes) flags.push('--response-buffer', String(options.responseBufferBytes))
  // How long an incomplete response is held before it streams: it decides between a 504 and a cut.
  if (options.responseHoldMs !== CLB_DEFAULTS.responseHoldMs) flags.push('--response-hold', String(options.responseHoldMs))
  return flags
}

function afterResponseFor (outcome: ExchangeOutcome): AfterResponse {
  return outcome === 'backend-timeout' ? 'hold' : 'close'
}

/** What list() reports, from a parsed header: a file of ours, or (`earlierRun`) one found at startup. */
export function summarizeCapture (file: string, fields: ReadonlyMap<string, readonly string[]>, earlierRun: boolean): CaptureSummary {
  const field = (name: string): string | null => fields.get(name)?.at(-1) ?? null
  const orNull = (value: string | null): string | null => value === null || value === '-' ? null : value
  const status = Number(field('elb-status'))
  const responseBytes = /^\d+/.exec(field('response-bytes') ?? '')
  return {
    file,
    time: orNull(field('time')),
    outcome: orNull(field('outcome')),
    elbStatus: Number.isInteger(status) && status > 0 ? status : null,
    request: orNull(field('request')),
    backend: orNull(field('backend')),
    defects: parseDefectFields(fields.get('defect') ?? []),
    primaryDefect: orNull(field('primary-defect')?.split(' ')[0] ?? null),
    responseBytes: responseBytes === null ? null : Number(responseBytes[0]),
    earlierRun
  }
}

/** The header fields of a capture's text (everything before its first section); never throws. */
export function parseHeaderFields (text: string): Map<string, string[]> {
  const fields = new Map<string, string[]>()
  for (const line of text.split(/\r?\n/)) {
    if (SECTION_LINE.test(line)) break
    const field = FIELD_LINE.exec(line)
    if (field !== null) fields.set(field[1] as string, [...(fields.get(field[1] as string) ?? []), field[2] as string])
  }
  return fields
}
