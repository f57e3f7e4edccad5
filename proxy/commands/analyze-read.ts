/**
 * The input side of `clb-proxy analyze`: the files named on the command line (`-` for standard
 * input) and the log files of directory trees in the S3 layout (`AWSLogs/<account>/
 * elasticloadbalancing/<region>/yyyy/mm/dd/..._elasticloadbalancing_..._.log`, spec §3.1), plain
 * or gzip (sniffed from the magic bytes), read as streams from start to end without a seek (so a
 * pipe, FIFO or character device reads as a file does) and cut into lines by hand on the bytes,
 * so memory stays one chunk plus one line (a line longer than MAX_LINE_BYTES is counted
 * unparseable, not held).
 */
import { Presets, SingleBar } from 'cli-progress'
import { createReadStream } from 'node:fs'
import { readdir, realpath, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { emptyFields, parseClbLine } from './analyze-parse.js'
import type { AnalyzeStats } from './analyze-stats.js'

export const MAX_LINE_BYTES = 1 << 20
/** The bytes of an over-long line decoded for the listing: more than it shows (UNPARSEABLE_TEXT_MAX characters), however they decode. */
const OVERLONG_TEXT_BYTES = 1024
const NEWLINE = 10
const CR = 13
const SPACE = 32
const TAB = 9

export interface InputFile {
  /** As named on the command line or found under a directory; `-` for standard input. */
  readonly path: string
  /** In bytes; null where it is not known before reading (a pipe, FIFO, character device, `-`). */
  readonly size: number | null
  /** Standard input, read instead of opening `path`. */
  readonly stream?: NodeJS.ReadableStream
}

/** The name of standard input on the command line (POSIX utility syntax guideline 13). */
export const STDIN_PATH = '-'

/** A path that is neither a file nor a directory we can read, or a directory with no log file under it. */
export class InputError extends Error {}

/**
 * Why a file could not be read (to its end), in words, or null when `error` is not a failure of
 * the input: only a zlib error (a corrupt gzip), a system call's error, or a stream closed early
 * are; anything else, Node's own ERR_ codes for a wrong argument included, is a bug, left to
 * surface as one. A system error keeps its description only, as the caller names the path.
 */
export function readFailure (error: unknown): string | null {
  if (!(error instanceof Error)) return null
  const { code, syscall, message } = error as NodeJS.ErrnoException
  if (typeof code !== 'string') return null
  if (code.startsWith('Z_')) return `corrupt gzip (${message})`
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return message
  if (typeof syscall !== 'string') return null
  // "ENOENT: no such file or directory, open 'x.log'": the words between the code and the call.
  if (message.startsWith(`${code}: `)) return message.slice(code.length + 2).split(`, ${syscall}`)[0] as string
  return message
}

/**
 * The files to read, in order: each PATH as given; a directory's files (recursively, sorted by
 * name, which for the S3 layout is date order) ending in `.log` or `.gz`; a file (by its real
 * path, `realPaths` holds them all) listed before is not listed again, and its path is returned in
 * `alreadyListed`. ELB's
 * `ELBAccessLogTestFile` ("not an actual access log file", CLB-LOGS-EN) has neither ending. A
 * directory with none of them under it is an InputError, as a PATH that does not exist is.
 */
export async function listInputs (paths: readonly string[], stdin?: NodeJS.ReadableStream): Promise<{ files: InputFile[], alreadyListed: string[], realPaths: ReadonlySet<string> }> {
  const files: InputFile[] = []
  /** Paths skipped because their file was listed before: named twice, or under two PATHs (a directory and its subdirectory). */
  const alreadyListed: string[] = []
  const realPaths = new Set<string>()
  const add = async (path: string, size: number | null): Promise<void> => {
    const real = await orInputError(path, () => realpath(path))
    if (realPaths.has(real)) {
      alreadyListed.push(path)
      return
    }
    realPaths.add(real)
    files.push({ path, size })
  }
  for (const path of paths) {
    if (path === STDIN_PATH) {
      // A stream is read once: a second `-` would read nothing and count as an empty file.
      if (files.some((file) => file.stream !== undefined)) throw new InputError(`'${STDIN_PATH}' (standard input) can be named only once`)
      if (stdin === undefined) throw new InputError(`'${STDIN_PATH}' names standard input, and there is none here`)
      files.push({ path, size: null, stream: stdin })
      continue
    }
    const info = await orInputError(path, () => stat(path))
    if (info.isDirectory()) {
      const before = files.length
      const skippedBefore = alreadyListed.length
      await walk(path, add)
      // Most likely a mistyped S3 prefix: a report of 0 requests would hide it.
      if (files.length === before && alreadyListed.length === skippedBefore) throw new InputError(`no access-log files (.log or .gz) under '${path}'`)
    } else {
      await add(path, info.isFile() ? info.size : null)
    }
  }
  return { files, alreadyListed, realPaths }
}

/** A folder or file of the tree that cannot be listed or looked at is an InputError naming it, as a PATH that cannot be read is. */
async function walk (dir: string, add: (path: string, size: number) => Promise<void>): Promise<void> {
  const entries = (await orInputError(dir, () => readdir(dir, { withFileTypes: true }))).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await walk(path, add)
    else if (entry.isFile() && (entry.name.endsWith('.log') || entry.name.endsWith('.gz'))) await add(path, (await orInputError(path, () => stat(path))).size)
  }
}

/** `look` at `path`; a failure of the input (readFailure) becomes an InputError naming the path, anything else is rethrown. */
async function orInputError<T> (path: string, look: () => Promise<T>): Promise<T> {
  try {
    return await look()
  } catch (error) {
    const reason = readFailure(error)
    if (reason === null) throw error
    throw new InputError(`cannot read '${path}': ${reason}`)
  }
}

/**
 * The bytes of an input, gunzipped when its first two are the gzip magic bytes (ID1 31, ID2 139:
 * RFC 1952 section 2.3.1). Sniffed from the stream itself, not by a positioned read, which a pipe
 * or FIFO refuses (ESPIPE). `onBytes` hears the input's bytes as read (compressed for gzip).
 */
async function * decoded (raw: AsyncIterable<Buffer>, onBytes: (bytes: number) => void): AsyncGenerator<Buffer> {
  const chunks = raw[Symbol.asyncIterator]()
  const unread = { [Symbol.asyncIterator]: () => chunks }
  let head = Buffer.alloc(0)
  while (head.length < 2) {
    const next = await chunks.next()
    if (next.done === true) break
    onBytes(next.value.length)
    head = Buffer.concat([head, next.value])
  }
  async function * all (): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head
    // for await: leaving early (a corrupt gzip, an error) closes the input and its descriptor.
    for await (const chunk of unread) {
      onBytes(chunk.length)
      yield chunk
    }
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) {
    yield * all()
    return
  }
  const compressed = Readable.from(all(), { objectMode: false })
  const gunzip = createGunzip()
  compressed.on('error', (error) => gunzip.destroy(error))
  // A corrupt gzip ends the read: the input goes too, so a file's descriptor is not left open.
  gunzip.on('error', () => compressed.destroy())
  yield * compressed.pipe(gunzip)
}

/** Reads one file into `stats`; `onBytes(n)` hears the file bytes read (compressed for gzip). */
export async function readInto (file: InputFile, stats: AnalyzeStats, onBytes: (bytes: number) => void): Promise<void> {
  const raw = (file.stream ?? createReadStream(file.path, { highWaterMark: 1 << 20 })) as AsyncIterable<Buffer>
  const source = decoded(raw, onBytes)
  const fields = emptyFields()
  let lineNumber = 0
  let buf: Buffer = Buffer.alloc(0)
  const text = (start: number, end: number): string => decodeVisibly(buf, start, end)
  /** A line longer than MAX_LINE_BYTES: skipping to its end. */
  let skipping = false
  let carry: Buffer | null = null
  /** The `elb` field of the last line, as bytes and as a name: a file holds one load balancer's lines, so a name is made once. */
  let lastElb = Buffer.alloc(0)
  let lastElbName = ''

  const line = (start: number, end: number): void => {
    lineNumber++
    if (end > start && buf[end - 1] === CR) end--
    // A UTF-8 byte order mark before the first line (an editor's; AWS writes none) is not part of it.
    if (lineNumber === 1 && end - start >= 3 && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) start += 3
    // A line whose newline came in the chunk after the one that made it too long, or in a chunk bigger than the limit.
    if (end - start > MAX_LINE_BYTES) { overlong(stats, file.path, lineNumber, buf.subarray(start, end)); return }
    if (isBlank(buf, start, end)) { stats.addBlank(); return }
    const notClb = parseClbLine(buf, start, end, fields)
    if (notClb === null) {
      if (lastElb.compare(buf, fields.elbStart, fields.elbEnd) !== 0) {
        lastElb = Buffer.from(buf.subarray(fields.elbStart, fields.elbEnd))
        lastElbName = lastElb.toString('utf8')
      }
      stats.add(fields, text, lastElbName)
    }
    else stats.addUnparseable(file.path, lineNumber, decodeVisibly(buf, start, end), notClb)
  }

  for await (const chunk of source) {
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
  // Only its start is decoded: enough for the listing, which shows UNPARSEABLE_TEXT_MAX characters and marks the cut.
  stats.addUnparseable(path, lineNumber, decodeVisibly(head, 0, Math.min(head.length, OVERLONG_TEXT_BYTES)), `longer than ${MAX_LINE_BYTES} bytes`, true)
}

/** Empty, or only spaces and tabs. */
function isBlank (buf: Buffer, start: number, end: number): boolean {
  for (let at = start; at < end; at++) if (buf[at] !== SPACE && buf[at] !== TAB) return false
  return true
}

const REPLACEMENT_CHARACTER = '\ufffd'

/**
 * buf[start, end) as UTF-8, each byte that is not part of a valid sequence written `\xHH` rather
 * than U+FFFD, so that a log's stray byte stays visibly itself. Lines of valid UTF-8 take the
 * one-call path; a U+FFFD in the log itself (bytes EF BF BD) is kept.
 */
export function decodeVisibly (buf: Buffer, start: number, end: number): string {
  const text = buf.toString('utf8', start, end)
  if (!text.includes(REPLACEMENT_CHARACTER)) return text
  let out = ''
  let at = start
  while (at < end) {
    const lead = buf[at] as number
    // RFC 3629 section 4: the lead bytes of sequences of 1 to 4 bytes.
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0
    const piece = length > 0 && at + length <= end ? buf.toString('utf8', at, at + length) : REPLACEMENT_CHARACTER
    if (!piece.includes(REPLACEMENT_CHARACTER) || (length === 3 && lead === 0xef && buf[at + 1] === 0xbf && buf[at + 2] === 0xbd)) {
      out += piece
      at += length
    } else {
      out += `\\x${lead.toString(16).padStart(2, '0')}`
      at++
    }
  }
  return out
}

/**
 * The progress bar on a terminal (cli-progress): bytes read of the total, and the lines so far.
 * Nothing at all when the stream is not a terminal (piped, redirected, CI); erased at the end.
 */
export class Progress {
  private readonly bar: SingleBar | null
  private started = false

  private read = 0

  /** `total` null: the size of some input is not known before it is read (a pipe, `-`): no bar, no percentage, the bytes read. */
  constructor (stream: NodeJS.WritableStream & { isTTY?: boolean }, private readonly total: number | null) {
    this.bar = stream.isTTY === true
      ? new SingleBar({
        stream: stream as NodeJS.WriteStream,
        format: total === null ? 'analyze {read} read | {lines} lines' : `analyze [{bar}] {percentage}% of ${formatBytes(total)} | {lines} lines`,
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
    this.read += bytes
    if (!this.started) {
      this.started = true
      this.bar.start(Math.max(this.total ?? 1, 1), 0, { lines, read: formatBytes(this.read) })
    }
    if (this.total === null) this.bar.update(0, { lines, read: formatBytes(this.read) })
    else this.bar.increment(bytes, { lines })
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
