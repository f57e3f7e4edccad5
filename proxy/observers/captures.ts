/**
 * Captures: one readable text file per rejected response (the format: capture-format.ts).
 *
 * The writer is a subscriber of the 'exchange' event (docs/architecture.md, lifecycle events): it
 * queues the record and writes later with fs/promises, so nothing here blocks or throws into the
 * data path; a file that cannot be written is reported to the logger.
 */
import { lstatSync, readdirSync, type Dirent, type Stats } from 'node:fs'
import { lstat, open, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import type { ClbProxyEvents, ExchangeRecord } from '../core/events.js'
import { makeFolder } from '../core/make-folder.js'
import { CLB_DEFAULTS } from '../core/options.js'
import { CAPTURED_OUTCOMES, CAPTURE_FILE_NAME, captureFileName, formatCapture, parseHeaderFields, summarizeCapture, type CaptureOptions, type CaptureSummary } from './capture-format.js'

// --- the writer: a subscriber of 'exchange' ----------------------------------------------------

export interface CaptureStore {
  /**
   * Stops capturing and resolves once every queued capture is written or has failed (failures are
   * reported on the logger). When the directory cannot be written, the captures still waiting
   * are dropped instead of tried one by one: shutdown never waits on a directory that fails.
   */
  close (): Promise<void>
  /** The capture files kept now, newest first. */
  list (): CaptureSummary[]
  /** Resolves once every capture queued so far is written (or failed): list() then includes them. */
  settled (): Promise<void>
  /**
   * The file `record` is captured to, null when it is not captured (an outcome that is not
   * captured, or the store is closed) or when the directory failed at the last attempt (reported
   * on the logger). The writer decides the name synchronously, the first time it sees the record
   * (from this call or from its own 'exchange' listener, whichever runs first), and writes the
   * file afterwards: the file may not exist yet, and is not written if the directory fails from
   * now on or the queue overflows (both reported on the logger).
   */
  fileFor (record: ExchangeRecord): string | null
}

interface KeptCapture {
  readonly file: string
  readonly summary: CaptureSummary
}

interface QueuedCapture {
  readonly record: ExchangeRecord
  /** The capture's number in this run (HAProxy's "event #"); its file is numbered base + sequence. */
  readonly sequence: number
  /** The path announced by fileFor(). */
  readonly file: string
}

// Our choice: the header of a capture found at startup is read from its first 64 KiB.
const HEADER_READ_BYTES = 64 * 1024
// Our choice: a second proxy writing into the same directory may take a name first; try the next counter.
const NAME_ATTEMPTS = 100

/** Whether a record produces a capture (docs/captures.md, "What is captured"). */
export function isCaptured (record: ExchangeRecord): boolean {
  if (!CAPTURED_OUTCOMES.has(record.outcome)) return false
  return record.outcome !== 'backend-timeout' || record.responseBytes !== null
}

/**
 * Writes one capture file per record whose outcome is in CAPTURED_OUTCOMES (a 'backend-timeout'
 * only when bytes arrived), into `options.captureDir` (created, mode 0700, when missing; files are
 * mode 0600: request heads carry cookies). At most `maxCaptures` capture files are kept: capture
 * files already in the directory at startup count as the oldest, and after each write the oldest
 * are deleted. Files whose names are not capture names are never touched. With `captureDir` null
 * nothing is subscribed.
 *
 * The directory is listed synchronously here (the names only; their headers are read later), so
 * the number of the next capture, and with it the name of its file, is known as soon as a record
 * arrives. A directory that cannot be created, listed or written is reported once per kind of
 * error (the system error code), not once per capture, and again only after it worked in between.
 */
export function subscribeCaptures (events: ClbProxyEvents, options: CaptureOptions, logger: DiagnosticsLogger): CaptureStore {
  const directory = options.captureDir
  if (directory === null) return { close: async () => undefined, list: () => [], settled: async () => undefined, fileFor: () => null }
  const kept: KeptCapture[] = []
  const pending: QueuedCapture[] = []
  const planned = new WeakMap<ExchangeRecord, string | null>()
  let sequence = 0
  let skipped = 0
  let running = false
  let closed = false
  let worker: Promise<void> = Promise.resolve()
  // Errors reported since the directory last worked, by code; captures lost meanwhile.
  const reported = new Set<string>()
  let notWritten = 0
  let directoryFailing = false

  /** Reports a failure once per code until the next success; `lost` captures were not written. */
  const reportFailure = (error: unknown, lost: number, what: string): void => {
    notWritten += lost
    directoryFailing = true
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    if (reported.has(code)) return
    reported.add(code)
    logger.error({ notice: 'capture-not-written', err: error, captureDir: directory },
      `${what}: ${directory} (${code}); the proxy keeps serving, and this is reported once per kind of error ` +
      'until a capture is written again')
  }
  const reportSuccess = (): void => {
    directoryFailing = false
    if (reported.size === 0 && notWritten === 0) return
    logger.info({ notice: 'capture-written-again', captureDir: directory, notWritten },
      `captures are written to ${directory} again; ${notWritten} capture(s) were not written before`)
    reported.clear()
    notWritten = 0
  }

  // The default folder's name can be guessed, and it is in the shared temp dir: it is used only while it is ours alone.
  const checkOwnership = directory === CLB_DEFAULTS.captureDir
  const unsafeAtStart = checkOwnership ? unsafeDefaultDirectory(statOrNull(directory)) : null
  // Files in a folder somebody else controls are not adopted: they would be listed, and replayed, as captures.
  const scan = unsafeAtStart === null ? scanDirectory(directory) : { names: [], largestCounter: 0, error: unsafeAtStart }
  if (scan.error !== null) reportFailure(scan.error, 0, unsafeAtStart === null ? 'capture directory not readable' : 'capture directory not used')
  let base = scan.largestCounter
  // Never rejects: a header that cannot be read is summarized from nothing.
  const adopted = summarizeExisting(directory, scan.names).then((found) => { kept.unshift(...found) })

  const writeOne = async (queued: QueuedCapture): Promise<void> => {
    // The directory first: one that cannot be used costs no formatting.
    await makeFolder(directory, 0o700)
    if (checkOwnership) {
      // Again at each write: another user may have made the folder since startup (mkdir accepts a folder that exists).
      const unsafe = unsafeDefaultDirectory(await lstat(directory))
      if (unsafe !== null) throw unsafe
    }
    const text = formatCapture(queued.record, options)
    let file: string | null = null
    let candidate = queued.file
    for (let attempt = 0; attempt < NAME_ATTEMPTS && file === null; attempt++) {
      try {
        const handle = await open(candidate, 'wx', 0o600)
        try { await handle.writeFile(text) } finally { await handle.close() }
        file = candidate
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        base++
        candidate = join(directory, captureFileName(queued.record, base + queued.sequence))
      }
    }
    if (file === null) throw new Error(`${NAME_ATTEMPTS} capture file names in a row were taken in ${directory}`)
    if (file !== queued.file) {
      logger.warn({ notice: 'capture-renamed', file, announced: queued.file },
        `capture written as ${file}: the name announced, ${queued.file}, was taken (another proxy writing to the same directory?)`)
    }
    kept.push({ file, summary: summarizeCapture(file, parseHeaderFields(text), false) })
    while (kept.length > options.maxCaptures) {
      const oldest = kept.shift() as KeptCapture
      try {
        await unlink(oldest.file)
      } catch (error) {
        // Already gone (removed by hand or by another proxy sharing the directory): nothing to do.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') reportFailure(error, 0, 'old capture file not removed')
      }
    }
  }

  const drain = async (): Promise<void> => {
    try {
      await adopted
      for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
        if (closed && directoryFailing) {
          // Stopping, and the directory fails: the rest would fail alike, one by one. close() says how many.
          notWritten += pending.length + 1
          pending.length = 0
          break
        }
        try {
          await writeOne(next)
          reportSuccess()
        } catch (error) {
          reportFailure(error, 1, 'capture not written')
        }
      }
      if (skipped > 0) {
        logger.warn({ notice: 'captures-skipped', skipped, maxCaptures: options.maxCaptures },
          `${skipped} capture(s) skipped: more than max-captures responses were waiting to be written, and only the newest ` +
          'are kept (the diagnostics of the skipped ones name files that were not written)')
        skipped = 0
      }
    } finally {
      running = false
    }
  }

  /** Queues a captured record once and returns the file announced for it (see fileFor). */
  const plan = (record: ExchangeRecord): string | null => {
    // Most records are not captured: decided before any bookkeeping (this runs once per request).
    if (!isCaptured(record)) return null
    const known = planned.get(record)
    if (known !== undefined) return known
    let announced: string | null = null
    if (!closed) {
      // Only the newest maxCaptures survive anyway: an older record still waiting is dropped, not written then deleted.
      if (pending.length >= options.maxCaptures) {
        pending.shift()
        skipped++
      }
      sequence++
      const file = join(directory, captureFileName(record, base + sequence))
      pending.push({ record, sequence, file })
      if (!running) {
        running = true
        worker = drain()
      }
      // While the directory fails, the file is still tried (the directory may be fixed meanwhile)
      // but not announced: a diagnostic would name a file that most likely never appears.
      if (!directoryFailing) announced = file
    }
    planned.set(record, announced)
    return announced
  }

  const onExchange = (record: ExchangeRecord): void => {
    try {
      plan(record)
    } catch (error) {
      logger.error({ err: error }, 'capture not queued')
    }
  }
  events.on('exchange', onExchange)

  let closing: Promise<void> | null = null
  return {
    close: () => (closing ??= (async () => {
      closed = true
      events.off('exchange', onExchange)
      await adopted
      await worker
      if (notWritten > 0) {
        logger.warn({ notice: 'captures-not-written', captureDir: directory, notWritten },
          `${notWritten} capture(s) were not written to ${directory}`)
      }
    })()),
    list: () => kept.map((capture) => capture.summary).reverse(),
    settled: async () => {
      await adopted
      await worker
    },
    fileFor: plan
  }
}

function statOrNull (path: string): Stats | null {
  try {
    return lstatSync(path)
  } catch {
    // Missing (created with the first capture, mode 0700) or unreadable (reported when it is used).
    return null
  }
}

/**
 * Why the default capture folder must not be used, or null: it must be a real folder (not a
 * symbolic link) of this user's that no other user can write. Anybody can create a folder of that
 * name in the shared temp dir before the proxy does, and then delete or replace the captures,
 * which `clb-proxy replay` serves and the admin API lists. A folder the user names is their choice
 * and is not checked (a container's mounted volume, say). Owners and mode bits are POSIX's:
 * Windows has no uid, and there only a link or a file is refused.
 */
function unsafeDefaultDirectory (stats: Stats | null): Error | null {
  if (stats === null) return null
  if (!stats.isDirectory()) return unsafe('not a folder but a symbolic link or a file')
  const uid = process.getuid?.()
  if (uid === undefined) return null
  if (stats.uid !== uid) return unsafe(`owned by uid ${stats.uid}, not by this user's uid ${uid}`)
  if ((stats.mode & 0o022) !== 0) return unsafe(`writable by other users, mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}`)
  return null
}

function unsafe (problem: string): Error {
  return new Error(`${problem}: no capture is written there; remove it or give --capture-dir`)
}

interface FoundCapture {
  readonly name: string
  readonly time: string
  readonly counter: number
}

/**
 * The capture file names already in the directory, oldest first, and the largest number among
 * them; a missing directory is empty (it is created with the first capture). Synchronous: it runs
 * once, when the proxy starts, so the name of every later capture is known when it is queued.
 */
function scanDirectory (directory: string): { names: FoundCapture[]; largestCounter: number; error: NodeJS.ErrnoException | null } {
  let entries: Dirent[]
  try {
    entries = readdirSync(directory, { withFileTypes: true })
  } catch (error) {
    const failure = error as NodeJS.ErrnoException
    return { names: [], largestCounter: 0, error: failure.code === 'ENOENT' ? null : failure }
  }
  const names: FoundCapture[] = []
  for (const entry of entries) {
    const match = entry.isFile() ? CAPTURE_FILE_NAME.exec(entry.name) : null
    if (match !== null) names.push({ name: entry.name, time: match[1] as string, counter: Number(match[4]) })
  }
  names.sort((a, b) => a.time < b.time ? -1 : a.time > b.time ? 1 : a.counter - b.counter)
  return { names, largestCounter: names.reduce((largest, entry) => Math.max(largest, entry.counter), 0), error: null }
}

/** The summaries of the capture files found at startup, read from their headers, oldest first. */
async function summarizeExisting (directory: string, names: readonly FoundCapture[]): Promise<KeptCapture[]> {
  const kept: KeptCapture[] = []
  for (const { name } of names) {
    const file = join(directory, name)
    kept.push({ file, summary: summarizeCapture(file, parseHeaderFields(await readHead(file)), true) })
  }
  return kept
}

/** The first HEADER_READ_BYTES of a file as text; '' when it cannot be read (it is still counted and may be deleted). */
async function readHead (file: string): Promise<string> {
  try {
    const handle = await open(file, 'r')
    try {
      const buffer = Buffer.alloc(HEADER_READ_BYTES)
      const { bytesRead } = await handle.read(buffer, 0, HEADER_READ_BYTES, 0)
      return buffer.subarray(0, bytesRead).toString('utf8')
    } finally {
      await handle.close()
    }
  } catch {
    return ''
  }
}
