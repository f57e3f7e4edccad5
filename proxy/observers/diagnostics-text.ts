import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { terminalSafe } from './diagnostics-escape.js'

/**
 * Diagnostics for a person at a terminal: the same pino records as the JSON diagnostics, each
 * turned into a few plain lines. The CLI uses it when stderr is a TTY; pipes and files keep the
 * JSON lines, which tools can parse.
 *
 *   09:30:40 502 GET /orders from 127.0.0.1:3000: CL_NOT_INTEGER at byte 60 (aws-documented)
 *            Content-Length value "5x" is not an integer
 *            bytes 20-: tent-Type: text/plain\r\nContent-Length: 5x\r\n\r\nhello
 *            capture: /tmp/clb-proxy-captures-1000/2026-11-25T09-30-40.212590Z-502-CL_NOT_INTEGER-1.capture
 *            replay: clb-proxy replay /tmp/clb-proxy-captures-1000/2026-11-25T09-30-40.212590Z-502-CL_NOT_INTEGER-1.capture
 *
 * Every string printed goes through terminalSafe(): a request target, a header value quoted in a
 * message or an error message can carry ESC, a bare CR or 8-bit bytes from a client, a backend or
 * a capture file, and none of them reaches the terminal as a control sequence or a line break.
 */
export function formatDiagnosticText (record: Record<string, unknown>): string {
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 19) : '--:--:--'
  const message = text(record.msg) ?? ''
  const indent = ' '.repeat(time.length + 1)
  const lines: string[] = []
  const detail = (line: string): void => { lines.push(`${indent}${line}`) }
  const isExchange = typeof record.notice !== 'string' && (typeof record.defect === 'string' || typeof record.outcome === 'string')
  if (!isExchange) {
    lines.push(`${time} ${message}`)
  } else {
    const status = record.elbStatus === null || record.elbStatus === undefined ? '-' : terminalSafe(String(record.elbStatus))
    const backend = text(record.backend)
    const instance = text(record.instance)
    const where = backend !== undefined ? ` from ${backend}` : instance !== undefined ? ` (instance ${instance})` : ''
    const request = text(record.request)
    let first = `${time} ${status}${request === undefined ? '' : ` ${request}`}${where}`
    const defect = text(record.defect)
    if (defect !== undefined) {
      first += `: ${defect}${typeof record.offset === 'number' ? ` at byte ${record.offset}` : ''}`
      const source = text(record.source)
      if (source !== undefined) first += ` (${source})`
    }
    lines.push(first)
    // The message repeats the status ("502 from the load balancer: ..."): keep its reason only.
    detail(message.replace(/^\S+ from the load balancer: /, ''))
    const excerpt = text(record.excerpt)
    if (excerpt !== undefined && excerpt.length > 0) {
      detail(`bytes ${typeof record.excerptOffset === 'number' ? record.excerptOffset : 0}-: ${excerpt}`)
    }
    for (const other of objects(record.otherDefects)) detail(`also ${describeDefect(other)}`)
    for (const warning of objects(record.warnings)) {
      const warningMessage = text(warning.message)
      detail(`warning ${describeDefect(warning)}${warningMessage === undefined ? '' : `: ${warningMessage}`}`)
    }
    if (typeof record.moreDefectCodes === 'number') detail(`and ${record.moreDefectCodes} more defect code(s)`)
  }
  const error = errorMessage(record.err)
  if (error !== undefined) detail(`error: ${error}`)
  const capture = text(record.capture)
  if (capture !== undefined) detail(`capture: ${capture}`)
  const replay = text(record.replay)
  if (replay !== undefined) detail(`replay: ${replay}`)
  const fix = text(record.fix)
  if (fix !== undefined) detail(`fix: ${fix}`)
  return `${lines.join('\n')}\n`
}

/** `CODE at byte 15`, or `CODE x 100000, first at offsets 51, 63, 75`. */
function describeDefect (summary: Record<string, unknown>): string {
  const code = text(summary.code) ?? '-'
  const offsets = Array.isArray(summary.firstOffsets) ? summary.firstOffsets.filter((offset) => typeof offset === 'number') : []
  // A warning in the shape of a Defect ({ code, offset, message }).
  if (typeof summary.offset === 'number') offsets.unshift(summary.offset)
  const count = typeof summary.count === 'number' ? summary.count : offsets.length
  if (count <= 1) return offsets.length === 0 ? code : `${code} at byte ${offsets[0]}`
  return `${code} x ${count}${offsets.length === 0 ? '' : `, first at offsets ${offsets.join(', ')}`}`
}

/** A string field, terminal-safe; undefined when absent or not a string. */
function text (value: unknown): string | undefined {
  return typeof value === 'string' ? terminalSafe(value) : undefined
}

function objects (value: unknown): Array<Record<string, unknown>> {
  return Array.isArray(value) ? value.filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null) : []
}

/** The message of a serialized error (pino's `err`), terminal-safe and on one line. */
function errorMessage (value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  return text((value as Record<string, unknown>).message)
}

/** A stream that takes pino's JSON lines and writes them to `out` as text. */
export function textDiagnosticsStream (out: NodeJS.WritableStream): Writable {
  let partial = ''
  return new Writable({
    write (chunk: Buffer | string, _encoding, done) {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() ?? ''
      let rendered = ''
      for (const line of lines) {
        if (line.length === 0) continue
        let record: Record<string, unknown> | null = null
        try {
          record = JSON.parse(line) as Record<string, unknown>
        } catch {
          // Not one of our records: printed as it is, but never raw.
        }
        rendered += record === null ? `${terminalSafe(line)}\n` : formatDiagnosticText(record)
      }
      if (rendered.length === 0) return done()
      out.write(rendered, () => done())
    }
  })
}

/** The diagnostics logger the CLI uses on a terminal. */
export function textLogger (out: NodeJS.WritableStream): Logger {
  return pino({ name: 'clb-proxy' }, textDiagnosticsStream(out))
}
