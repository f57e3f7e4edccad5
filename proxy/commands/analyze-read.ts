/**
 * The input side of `clb-proxy analyze`: the files named on the command line and the log files of
 * directory trees in the S3 layout (`AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/
 * ..._elasticloadbalancing_..._.log`, spec §3.1), plain or gzip (sniffed from the magic bytes),
 * read as streams and cut into lines by hand on the bytes, so memory stays one chunk plus one
 * line (a line longer than MAX_LINE_BYTES is counted unparseable, not held).
 */
import { Presets, SingleBar } from 'cli-progress'
import { createReadStream } from 'node:fs'
import { open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createGunzip } from 'node:zlib'
import { emptyFields, parseClbLine } from './analyze-parse.js'
import type { AnalyzeStats } from './analyze-stats.js'

export const MAX_LINE_BYTES = 1 << 20
const NEWLINE = 10
const CR = 13

export interface InputFile {
  readonly path: string
  readonly size: number
}

/** A path that is neither a file nor a directory we can read. */
export class InputError extends Error {}

/**
 * Why a file could not be read (to its end), in words, or null when `error` is not a failure of
 * the input (no system or zlib error code: a bug, left to surface as one). A zlib error is a
 * corrupt gzip; a system error keeps its description only, as the caller names the path.
 */
export function readFailure (error: unknown): string | null {
  const { code, syscall, message } = error as NodeJS.ErrnoException
  if (typeof code !== 'string') return null
  if (code.startsWith('Z_')) return `corrupt gzip (${message})`
  // "ENOENT: no such file or directory, open 'x.log'": the words between the code and the call.
  if (syscall !== undefined && message.startsWith(`${code}: `)) return message.slice(code.length + 2).split(`, ${syscall}`)[0] as string
  return message
}

/**
 * The files to read, in order: each PATH as given; a directory's files (recursively, sorted by
 * name, which for the S3 layout is date order) ending in `.log` or `.gz`. ELB's
 * `ELBAccessLogTestFile` ("not an actual access log file", CLB-LOGS-EN) has neither ending.
 */
export async function listInputs (paths: readonly string[]): Promise<InputFile[]> {
  const files: InputFile[] = []
  for (const path of paths) {
    let info
    try {
      info = await stat(path)
    } catch (error) {
      throw new InputError(`cannot read '${path}': ${readFailure(error) ?? (error as Error).message}`)
    }
    if (info.isDirectory()) await walk(path, files)
    else files.push({ path, size: info.size })
  }
  return files
}

async function walk (dir: string, files: InputFile[]): Promise<void> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await walk(path, files)
    else if (entry.isFile() && (entry.name.endsWith('.log') || entry.name.endsWith('.gz'))) files.push({ path, size: (await stat(path)).size })
  }
}

async function isGzip (path: string): Promise<boolean> {
  const handle = await open(path, 'r')
  try {
    const head = Buffer.alloc(2)
    const { bytesRead } = await handle.read(head, 0, 2, 0)
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b
  } finally {
    await handle.close()
  }
}

/** Reads one file into `stats`; `onBytes(n)` hears the file bytes read (compressed for gzip). */
export async function readInto (file: InputFile, stats: AnalyzeStats, onBytes: (bytes: number) => void): Promise<void> {
  // Sniffed before the file stream exists: a file that cannot be opened (removed since it was
  // listed, unreadable) rejects here, reported by the command, not as an unhandled stream 'error'.
  const gzip = await isGzip(file.path)
  const raw = createReadStream(file.path, { highWaterMark: 1 << 20 })
  let source: AsyncIterable<Buffer> = raw
  if (gzip) {
    // A listener on the file stream, not on the iterated one: 'data' would switch that to flowing.
    raw.on('data', (chunk) => onBytes(chunk.length))
    const gunzip = createGunzip()
    raw.on('error', (error) => gunzip.destroy(error))
    // A corrupt gzip ends the read: the file stream goes too, so its descriptor is not left open.
    gunzip.on('error', () => raw.destroy())
    source = raw.pipe(gunzip)
  }
  const fields = emptyFields()
  let lineNumber = 0
  let buf: Buffer = Buffer.alloc(0)
  const text = (start: number, end: number): string => buf.toString('utf8', start, end)
  /** A line longer than MAX_LINE_BYTES: skipping to its end. */
  let skipping = false
  let carry: Buffer | null = null

  const line = (start: number, end: number): void => {
    lineNumber++
    if (end > start && buf[end - 1] === CR) end--
    if (end === start) { stats.addBlank(); return }
    if (parseClbLine(buf, start, end, fields)) stats.add(fields, text)
    else stats.addUnparseable(file.path, lineNumber, buf.toString('utf8', start, end))
  }

  for await (const chunk of source) {
    if (!gzip) onBytes(chunk.length)
    let at = 0
    if (carry !== null || skipping) {
      const newline = chunk.indexOf(NEWLINE)
      if (newline < 0) {
        if (!skipping) {
          carry = Buffer.concat([carry as Buffer, chunk])
          if (carry.length > MAX_LINE_BYTES) { skipping = true; overlong(stats, file.path, lineNumber + 1, carry); carry = null }
        }
        continue
      }
      if (skipping) {
        skipping = false
        lineNumber++
      } else {
        buf = Buffer.concat([carry as Buffer, chunk.subarray(0, newline)])
        line(0, buf.length)
      }
      carry = null
      at = newline + 1
    }
    buf = chunk
    for (;;) {
      const newline = buf.indexOf(NEWLINE, at)
      if (newline < 0) break
      line(at, newline)
      at = newline + 1
    }
    if (at < buf.length) {
      carry = Buffer.from(buf.subarray(at))
      if (carry.length > MAX_LINE_BYTES) { skipping = true; overlong(stats, file.path, lineNumber + 1, carry); carry = null }
    }
  }
  if (carry !== null) {
    buf = carry
    line(0, buf.length)
  } else if (skipping) {
    lineNumber++
  }
}

function overlong (stats: AnalyzeStats, path: string, lineNumber: number, head: Buffer): void {
  stats.addUnparseable(path, lineNumber, `(longer than ${MAX_LINE_BYTES} bytes) ${head.toString('utf8', 0, 100)}`)
}

/**
 * The progress bar on a terminal (cli-progress): bytes read of the total, and the lines so far.
 * Nothing at all when the stream is not a terminal (piped, redirected, CI); erased at the end.
 */
export class Progress {
  private readonly bar: SingleBar | null
  private started = false

  constructor (stream: NodeJS.WritableStream & { isTTY?: boolean }, private readonly total: number) {
    this.bar = stream.isTTY === true
      ? new SingleBar({
        stream: stream as NodeJS.WriteStream,
        format: `analyze [{bar}] {percentage}% of ${formatBytes(total)} | {lines} lines`,
        barsize: 30,
        // Redrawn at most 5 times a second, whatever the read rate; the last frame is erased.
        fps: 5,
        clearOnComplete: true,
        hideCursor: false,
        stopOnComplete: false
      }, Presets.shades_classic)
      : null
  }

  add (bytes: number, lines: number): void {
    if (this.bar === null) return
    if (!this.started) {
      this.started = true
      this.bar.start(Math.max(this.total, 1), 0, { lines })
    }
    this.bar.increment(bytes, { lines })
  }

  end (): void {
    if (this.bar !== null && this.started) this.bar.stop()
  }
}

function formatBytes (bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)} GiB`
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`
  return `${Math.ceil(bytes / 1024)} KiB`
}
