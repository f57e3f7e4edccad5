/**
 * `clb-proxy check`, the text form of a report (pure): the request in `curl -v` style, the
 * response bytes as HAProxy's `show errors` prints them with a `^` under each defect, the defect
 * list, the verdict line and the keep-alive measurement. docs/check.md "Reading the output".
 */
import { escapeBytes } from '../../validators/bytes.js'
import { DEFECTS, defectAction, type DefectSource } from '../../validators/defects.js'
import type { ResponseFraming } from '../../validators/response-parser.js'
import { formatSeconds, hostPort, type CapturedBytes, type CheckDefect, type CheckReport } from './check-report.js'

/** The whole text output of `clb-proxy check`, as printed. */
export function renderCheckReport (report: CheckReport): string {
  return renderResponsePart(report) + renderKeepAliveWaitLine(report) + renderKeepAlivePart(report)
}

/** The request, the response dump, the defects and the verdict line. */
export function renderResponsePart (report: CheckReport): string {
  const lines: string[] = [
    `checking ${report.url} (profile ${report.profile}, idle timeout ${report.idleTimeoutSeconds} s)`,
    `> ${report.request.method} ${report.request.target} HTTP/1.1`,
    ...report.request.headers.map((header) => `> ${header.name}: ${escapeText(header.value)}`),
    report.request.bodyBytes === 0 ? '>' : `> (${report.request.bodyBytes} body bytes)`,
    '',
    responseHeadline(report),
    ...renderDump(report),
    '',
    ...renderDefectList(report),
    '',
    report.verdict.summary
  ]
  return lines.join('\n') + '\n'
}

/** The line printed before the keep-alive wait (empty when there is no wait). */
export function renderKeepAliveWaitLine (report: CheckReport): string {
  if (report.keepAlive.outcome !== 'waiting' && !report.keepAlive.measured) return ''
  return `\nwaiting up to ${formatSeconds(report.keepaliveWaitSeconds)} s to see whether the backend closes the idle connection; --keepalive-wait 0 skips\n`
}

/** What the keep-alive wait showed (empty while it is still running). */
export function renderKeepAlivePart (report: CheckReport): string {
  const keepAlive = report.keepAlive
  const idle = report.idleTimeoutSeconds
  switch (keepAlive.outcome) {
    case 'waiting':
      return ''
    case 'skipped':
      return '\nkeep-alive: not measured (--keepalive-wait 0)\n'
    case 'not-reusable':
      return `\nkeep-alive: not measured: ${keepAlive.note ?? 'CLB would not reuse the connection'}\n`
    case 'extra-bytes':
      return `keep-alive: the backend sent ${keepAlive.extraBytes} more bytes on the idle connection ` +
        `${formatSeconds(keepAlive.waitedSeconds)} s after the response (EXTRA_BYTES_AFTER_RESPONSE, ` +
        `${defectAction('EXTRA_BYTES_AFTER_RESPONSE', report.profile)}): CLB does not reuse such a connection. ` +
        `They start: "${escapeBytes(keepAlive.extraExcerpt ?? Buffer.alloc(0))}"\n`
    case 'stayed-open':
      if (keepAlive.waitedSeconds >= idle) {
        return `keep-alive: the backend kept the idle connection open for the whole wait (${formatSeconds(keepAlive.waitedSeconds)} s, ` +
          `at least the idle timeout of ${idle} s): good, CLB closes idle connections first\n`
      }
      return `keep-alive: the backend kept the idle connection open for the whole wait (${formatSeconds(keepAlive.waitedSeconds)} s); ` +
        `the idle timeout is ${idle} s, so an earlier close than that is not ruled out (--keepalive-wait ${idle} waits that long)\n`
    case 'closed': {
      const after = formatSeconds(keepAlive.closedAfterSeconds ?? 0)
      if ((keepAlive.closedAfterSeconds ?? 0) >= idle) {
        return `keep-alive: the backend closed the idle connection ${after} s after the response, not before CLB's idle timeout (${idle} s): good, CLB closes idle connections first\n`
      }
      return [
        `keep-alive: WARNING: the backend closed the idle connection ${after} s after the response, before CLB's idle timeout (${idle} s).`,
        '  CLB keeps backend connections open after a response and reuses them for later requests. When it',
        '  sends a request on a connection just as the backend closes it, CLB answers 504 GATEWAY_TIMEOUT and',
        '  the backend never logs the request: the most common cause of intermittent CLB 504s',
        '  (CLB-HTTPERR 504: "Registered instances closing the connection to Elastic Load Balancing").',
        `  Fix: make the backend's keep-alive timeout greater than the idle timeout (e.g. ${idle + 5} s), so that`,
        '  CLB is the one that closes idle connections (CLB-IDLE); AWS: "The keep-alive timeout should be at',
        '  least 60 seconds" (CLB-BACKEND). Node\'s http server closes idle connections after 5 s by default',
        `  (server.keepAliveTimeout = 5000 in Node 20 and 22): set server.keepAliveTimeout = ${(idle + 5) * 1000}.`,
        '  Elsewhere: nginx keepalive_timeout, gunicorn --keep-alive, Apache KeepAliveTimeout.',
        ''
      ].join('\n')
    }
  }
}

function responseHeadline (report: CheckReport): string {
  const n = report.bytesReceived
  const from = hostPort(report.address.host, report.address.port)
  switch (report.ending) {
    case 'complete': {
      const framing = report.head === null ? '' : ` (${describeFraming(report.head.framing)})`
      return `< ${n} bytes from ${from}: a complete response${framing}; offsets count from its first byte`
    }
    case 'invalid':
      return `< ${n} bytes from ${from}: invalid, reading stopped at the defect; offsets count from the first byte`
    case 'closed':
      return n === 0
        ? `< ${from} closed the connection without sending a byte`
        : `< ${n} bytes from ${from}, then it closed the connection; offsets count from the first byte`
    case 'timeout':
      return n === 0
        ? `< nothing from ${from} within ${formatSeconds(report.timeoutSeconds)} s`
        : `< ${n} bytes from ${from}, then nothing for ${formatSeconds(report.timeoutSeconds)} s; offsets count from the first byte`
    case 'deadline': {
      const maxTime = formatSeconds(report.maxTimeSeconds)
      return report.head === null
        ? `< ${n} bytes from ${from}: the head still incomplete when --max-time ${maxTime} s ran out; offsets count from the first byte`
        : `< ${n} bytes from ${from}: still streaming when --max-time ${maxTime} s ran out (${describeFraming(report.head.framing)}); offsets count from its first byte`
    }
  }
}

function describeFraming (framing: ResponseFraming): string {
  switch (framing.kind) {
    case 'no-body': return 'no body'
    case 'content-length': return `Content-Length: ${framing.length}`
    case 'chunked': return 'chunked'
    case 'until-close': return 'body delimited by the connection closing'
  }
}

function renderDefectList (report: CheckReport): string[] {
  if (report.defects.length === 0) return [`defects (profile ${report.profile}): none`]
  const sorted = [...report.defects].sort((a, b) => a.offset - b.offset)
  const lines = [`defects (profile ${report.profile}):`]
  for (const found of sorted) {
    lines.push(`  ${found.code} at offset ${found.offset}, ${found.action}: ${found.message}`)
    lines.push(`    ${SOURCE_TEXT[DEFECTS[found.code].source]}`)
  }
  return lines
}

/** Why the default verdict is what it is (validators/defects.ts `source`). */
const SOURCE_TEXT: Readonly<Record<DefectSource, string>> = Object.freeze({
  'aws-documented': 'AWS lists this among the causes of ELB-generated 502s (KC-502)',
  'aws-504': 'AWS: an instance closing the connection makes CLB answer 504 (CLB-HTTPERR)',
  'aws-400': 'AWS: CLB answers 400 (CLB-HTTPERR)',
  'aws-405': 'AWS: CLB answers 405 (CLB-HTTPERR)',
  'peer-consensus': 'not in the AWS docs; every strict proxy (HAProxy, nginx, Envoy, llhttp) rejects it',
  'peers-split': 'not in the AWS docs; proxies disagree, so the clb profile warns and strict rejects',
  'our-choice': "not in the AWS docs; clb-proxy's choice (docs/defects.md)"
})

// --- the HAProxy-style dump -------------------------------------------------------------

/** Head bytes shown at most; defects further in get their own excerpt. */
const SHOWN_HEAD_BYTES = 8 * 1024
/** Context kept around a defect: at most this many bytes before it on its line, and after it. */
const SHOWN_CONTEXT_BYTES = 512
/** The start of the body of a response still streaming at --max-time (its first events), at most. */
const SHOWN_STREAM_BYTES = 512
/** HAProxy `show errors` wraps lines at 79 columns; the prefix `  00000  ` takes 9 of them. */
const WRAP_COLUMNS = 79

interface ByteRange { start: number; end: number }

/**
 * The response bytes as HAProxy's `show errors` prints them (peers-validation.md section 1.2):
 * one input line per output line, prefixed by the offset of its first byte, escaped, wrapped at
 * 79 columns with `NNNNN+` continuations; under the line holding each defect, a `^` at its byte.
 */
function renderDump (report: CheckReport): string[] {
  if (report.bytesReceived === 0) return []
  const ranges = shownRanges(report)
  const byDefect = [...report.defects].sort((a, b) => a.offset - b.offset)
  const placed = new Set<CheckDefect>()
  const lines: string[] = []
  let shownUpTo = 0
  let lastPiece = ''
  for (const range of ranges) {
    if (range.start > shownUpTo) lines.push(`  ... (${range.start - shownUpTo} bytes not shown)`)
    const bytes = sliceCaptured(report.captured, range)
    for (const line of splitLines(bytes, range.start)) {
      for (const piece of wrap(line.bytes, line.start)) {
        lastPiece = piece.prefix + piece.text
        lines.push(lastPiece)
        for (const found of byDefect) {
          if (placed.has(found) || found.offset < piece.start || found.offset >= piece.start + piece.length) continue
          placed.add(found)
          const column = piece.prefix.length + escapeBytes(line.bytes, piece.start - line.start, found.offset - line.start).length
          lines.push(`${' '.repeat(column)}^ ${found.code}: ${found.message}`)
        }
      }
    }
    shownUpTo = range.end
  }
  // Defects at the very end (the connection closed there): a marker after the last byte shown.
  const atEnd = byDefect.filter((found) => !placed.has(found) && found.offset === shownUpTo && shownUpTo === report.bytesReceived)
  if (atEnd.length > 0) {
    const endsLine = lastByte(report.captured, shownUpTo) === 0x0a
    const prefix = offsetPrefix(shownUpTo, false)
    if (endsLine) lines.push(prefix.trimEnd())
    const column = endsLine ? prefix.length : lastPiece.length
    for (const found of atEnd) lines.push(`${' '.repeat(column)}^ ${found.code}: ${found.message}`)
  }
  if (report.bytesReceived > shownUpTo) lines.push(`  ... (${report.bytesReceived - shownUpTo} more bytes not shown)`)
  return lines
}

/**
 * The head (or what stands for it), plus each defect's line and the line after it; for a response
 * still streaming at --max-time, the start of its body too, ending at a line end when one is near.
 */
function shownRanges (report: CheckReport): ByteRange[] {
  const prefix = report.captured.find((kept) => kept.start === 0)
  const ranges: ByteRange[] = []
  if (prefix !== undefined) {
    const headEnd = report.head?.end ?? guessHeadEnd(prefix.bytes)
    ranges.push({ start: 0, end: Math.min(headEnd, SHOWN_HEAD_BYTES, prefix.bytes.length) })
    if (report.ending === 'deadline' && report.head !== null && headEnd <= SHOWN_HEAD_BYTES) {
      const end = Math.min(headEnd + SHOWN_STREAM_BYTES, prefix.bytes.length)
      const lastLf = end === prefix.bytes.length ? end - 1 : prefix.bytes.lastIndexOf(0x0a, end - 1)
      ranges.push({ start: headEnd, end: lastLf >= headEnd ? lastLf + 1 : end })
    }
  }
  for (const found of report.defects) {
    // A defect may sit just past the last byte (the connection closed there): its line is the last one.
    const kept = report.captured.find((k) => k.start <= found.offset && found.offset <= k.start + k.bytes.length)
    if (kept === undefined) continue
    const at = found.offset - kept.start
    // Buffer#lastIndexOf counts a negative offset from the end, hence the guard for at = 0.
    let start = at === 0 ? 0 : kept.bytes.lastIndexOf(0x0a, at - 1) + 1
    start = Math.max(start, at - SHOWN_CONTEXT_BYTES)
    let end = lineEnd(kept.bytes, at)
    end = lineEnd(kept.bytes, end)
    end = Math.min(end, at + SHOWN_CONTEXT_BYTES)
    ranges.push({ start: kept.start + start, end: kept.start + end })
  }
  ranges.sort((a, b) => a.start - b.start)
  const merged: ByteRange[] = []
  for (const range of ranges) {
    const previous = merged[merged.length - 1]
    if (previous !== undefined && range.start <= previous.end && isCaptured(report.captured, previous.start, range.end)) {
      previous.end = Math.max(previous.end, range.end)
    } else if (range.end > range.start) {
      merged.push({ ...range })
    }
  }
  return merged
}

/** Just past the LF that ends the line holding `at`, or the end of the bytes. */
function lineEnd (bytes: Buffer, at: number): number {
  const lf = bytes.indexOf(0x0a, at)
  return lf === -1 ? bytes.length : lf + 1
}

/** Where the head would end when the parser stopped before it did: the first blank line, or all. */
function guessHeadEnd (bytes: Buffer): number {
  const crlf = bytes.indexOf('\r\n\r\n', 0, 'latin1')
  const lf = bytes.indexOf('\n\n', 0, 'latin1')
  const ends = [crlf === -1 ? -1 : crlf + 4, lf === -1 ? -1 : lf + 2].filter((end) => end !== -1)
  return ends.length === 0 ? bytes.length : Math.min(...ends)
}

function isCaptured (captured: readonly CapturedBytes[], start: number, end: number): boolean {
  return captured.some((kept) => kept.start <= start && kept.start + kept.bytes.length >= end)
}

function sliceCaptured (captured: readonly CapturedBytes[], range: ByteRange): Buffer {
  const kept = captured.find((k) => k.start <= range.start && k.start + k.bytes.length >= range.end)
  if (kept === undefined) throw new Error(`bug: bytes ${range.start}-${range.end} were shown but not captured`)
  return kept.bytes.subarray(range.start - kept.start, range.end - kept.start)
}

function lastByte (captured: readonly CapturedBytes[], end: number): number | undefined {
  const kept = captured.find((k) => k.start < end && k.start + k.bytes.length >= end)
  return kept?.bytes[end - 1 - kept.start]
}

interface DumpLine { start: number; bytes: Buffer }

/** Splits at LF, each line keeping its terminator (shown escaped, as HAProxy does). */
function splitLines (bytes: Buffer, start: number): DumpLine[] {
  const lines: DumpLine[] = []
  let from = 0
  while (from < bytes.length) {
    const end = lineEnd(bytes, from)
    lines.push({ start: start + from, bytes: bytes.subarray(from, end) })
    from = end
  }
  return lines
}

interface DumpPiece { prefix: string; text: string; start: number; length: number }

function offsetPrefix (offset: number, continuation: boolean): string {
  return `  ${String(offset).padStart(5, '0')}${continuation ? '+' : ' '} `
}

/** One line as one or more pieces of at most 79 columns; an escape sequence is never split. */
function wrap (bytes: Buffer, start: number): DumpPiece[] {
  const pieces: DumpPiece[] = []
  let pieceStart = 0
  let text = ''
  for (let i = 0; i < bytes.length; i++) {
    const escaped = escapeBytes(bytes, i, i + 1)
    const width = offsetPrefix(start + pieceStart, pieceStart > 0).length + text.length + escaped.length
    if (width > WRAP_COLUMNS && text.length > 0) {
      pieces.push({ prefix: offsetPrefix(start + pieceStart, pieceStart > 0), text, start: start + pieceStart, length: i - pieceStart })
      pieceStart = i
      text = ''
    }
    text += escaped
  }
  pieces.push({ prefix: offsetPrefix(start + pieceStart, pieceStart > 0), text, start: start + pieceStart, length: bytes.length - pieceStart })
  return pieces
}

function escapeText (text: string): string {
  return escapeBytes(Buffer.from(text, 'latin1'))
}
