import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

/**
 * Diagnostics for a person at a terminal: the same pino records as the JSON diagnostics, each
 * turned into one or two plain lines. The CLI uses it when stderr is a TTY; pipes and files keep
 * the JSON lines, which tools can parse.
 *
 *   09:30:40 502 GET /orders from 127.0.0.1:3000: CL_NOT_INTEGER at byte 60 (aws-documented)
 *            Content-Length value "5x" is not an integer
 *            bytes 20-: tent-Type: text/plain\r\nContent-Length: 5x\r\n\r\nhello
 */
export function formatDiagnosticText (record: Record<string, unknown>): string {
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 19) : '--:--:--'
  const message = typeof record.msg === 'string' ? record.msg : ''
  const indent = ' '.repeat(time.length + 1)
  if (typeof record.defect !== 'string' && typeof record.outcome !== 'string') return `${time} ${message}\n`
  const status = record.elbStatus === null || record.elbStatus === undefined ? '-' : String(record.elbStatus)
  const where = typeof record.backend === 'string' ? ` from ${record.backend}` : ''
  const request = typeof record.request === 'string' ? ` ${record.request}` : ''
  let text = `${time} ${status}${request}${where}`
  if (typeof record.defect === 'string') {
    text += `: ${record.defect}${typeof record.offset === 'number' ? ` at byte ${record.offset}` : ''}${typeof record.source === 'string' ? ` (${record.source})` : ''}`
  }
  // The message repeats the status ("502 from the load balancer: ..."): keep its reason only.
  const reason = message.replace(/^\S+ from the load balancer: /, '')
  text += `\n${indent}${reason}\n`
  if (typeof record.excerpt === 'string' && record.excerpt.length > 0) {
    text += `${indent}bytes ${typeof record.excerptOffset === 'number' ? record.excerptOffset : 0}-: ${record.excerpt}\n`
  }
  if (Array.isArray(record.warnings)) {
    for (const warning of record.warnings as Array<Record<string, unknown>>) {
      text += `${indent}warning ${String(warning.code)} at byte ${String(warning.offset)}: ${String(warning.message)}\n`
    }
  }
  return text
}

/** A stream that takes pino's JSON lines and writes them to `out` as text. */
export function textDiagnosticsStream (out: NodeJS.WritableStream): Writable {
  let partial = ''
  return new Writable({
    write (chunk: Buffer | string, _encoding, done) {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() ?? ''
      let text = ''
      for (const line of lines) {
        if (line.length === 0) continue
        try {
          text += formatDiagnosticText(JSON.parse(line) as Record<string, unknown>)
        } catch {
          text += `${line}\n`
        }
      }
      if (text.length === 0) return done()
      out.write(text, () => done())
    }
  })
}

/** The diagnostics logger the CLI uses on a terminal. */
export function textLogger (out: NodeJS.WritableStream): Logger {
  return pino({ name: 'clb-proxy' }, textDiagnosticsStream(out))
}
