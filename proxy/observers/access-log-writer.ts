/**
 * Writes access-log lines to a file, stdout or a caller's stream. It subscribes to nothing: the
 * proxy (or a test) calls write() with each finished record. Formatting is
 * proxy/observers/access-log-format.ts; this module only adds the newline, buffers and flushes.
 *
 * Files and stdout go through pino.destination (SonicBoom): asynchronous, buffered writes and an
 * end() that writes out every buffered line before it closes the file (it never closes fd 1 or 2,
 * SonicBoom's actualClose skips them). pino also registers the stream so a process that exits
 * without close() still flushes synchronously on 'exit'; the writer's own batch is flushed then too.
 *
 * A log that cannot be written (ENOSPC, EIO, EDQUOT; a file whose folder was removed) never stops
 * the proxy: `onProblem` hears of it when it happens, once per kind of failure, and again only
 * after the log was written in between. Lines that cannot be written wait in memory, up to
 * MAX_WAITING_BYTES, and are written if the destination recovers (a disk that was full); past that
 * bound they are dropped and counted.
 */
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { formatAccessLogLine, writeAccessLogLine } from './access-log-format.js'
import type { AccessLogRecord } from '../core/access-log-record.js'
import { makeFolderSync } from '../core/make-folder.js'

export type AccessLogWriterOptions = (
  /** A file path (opened at once for appending; missing directories are created) or '-' for stdout. */
  | { readonly destination: string }
  /** A stream the caller owns: written to, waited on by close(), never ended. */
  | { readonly stream: NodeJS.WritableStream }
) & {
  /**
   * Told when lines cannot be written, once per kind of problem, with the sentence
   * describeAccessLogProblem words it in (for the diagnostics logger).
   */
  readonly onProblem?: (problem: AccessLogProblem, message: string) => void
}

/**
 * What can go wrong while the proxy runs (an open error is thrown by createAccessLogWriter):
 * - 'write-error': a write failed with this error; reported once per error code;
 * - 'lines-dropped': lines waiting for a failing destination passed MAX_WAITING_BYTES; from now
 *   on new lines are dropped (and counted) until a write succeeds;
 * - 'written-again': a write succeeded after a failure; `droppedLines` were lost meanwhile;
 * - 'file-removed': the log file was deleted (or its folder removed) while open: the lines still
 *   go to the deleted file, which nothing can read once the proxy stops;
 * - 'file-moved': the log file was moved away or replaced while open (log rotation): the lines
 *   still go to the moved file, not to the path;
 * - 'close-waiting': close() has waited CLOSE_NOTICE_MS for the destination to take the last
 *   `waitingBytes` (a stdout reader that stopped reading, a slow disk); it goes on waiting;
 * - 'reopen-failed': reopen() could not open the path (no permission, a folder in its place):
 *   the lines still go to the file open before.
 */
export type AccessLogProblem =
  | { readonly kind: 'write-error'; readonly error: NodeJS.ErrnoException }
  | { readonly kind: 'lines-dropped'; readonly maxWaitingBytes: number }
  | { readonly kind: 'written-again'; readonly droppedLines: number }
  | { readonly kind: 'file-removed'; readonly file: string }
  | { readonly kind: 'file-moved'; readonly file: string }
  | { readonly kind: 'close-waiting'; readonly waitingBytes: number }
  | { readonly kind: 'reopen-failed'; readonly file: string; readonly error: NodeJS.ErrnoException }

/** Our choice: 8 MiB of lines (tens of thousands of requests) wait for a destination that fails. */
export const MAX_WAITING_BYTES = 8 * 1024 * 1024
/** Our choice: a line reaches the file at most this long after its request ended (ms). */
export const BATCH_MS = 20
/** Our choice: a batch is written at once when the next line would make it larger than this (bytes). */
const BATCH_BYTES = 64 * 1024
/** Our choice: after this long (ms), a close() still waiting for its destination is reported ('close-waiting'). */
export const CLOSE_NOTICE_MS = 2000
/** Our choice: how often an open log file is checked for having been deleted (one fstat). */
const REMOVAL_CHECK_MS = 1000

/** One sentence for the diagnostics logger: what happened to the access log `where`, and what the proxy does about it. */
export function describeAccessLogProblem (problem: AccessLogProblem, where: string): string {
  switch (problem.kind) {
    case 'write-error':
      // pino turns the stream into a no-op after EPIPE: nothing waits, nothing is counted.
      if (problem.error.code === 'EPIPE') {
        return `access log ${where} cannot be written (EPIPE: its reader went away): the proxy keeps serving; ` +
          'from now on access-log lines are dropped, uncounted. Restart the proxy with a reader to log again'
      }
      return `access log ${where} cannot be written (${problem.error.code ?? problem.error.message}): the proxy keeps serving; ` +
        `lines wait in memory (up to ${MAX_WAITING_BYTES / (1024 * 1024)} MiB) and are written if the destination recovers. ` +
        'Reported once per kind of error'
    case 'lines-dropped':
      return `access log ${where}: ${problem.maxWaitingBytes / (1024 * 1024)} MiB of lines are waiting for a destination that fails; ` +
        'new lines are dropped (and counted) until a write succeeds'
    case 'written-again':
      return `access log ${where} is written again${problem.droppedLines > 0 ? `; ${problem.droppedLines} line(s) were dropped meanwhile` : ''}`
    case 'close-waiting':
      return `access log ${where}: stopping waits for ${problem.waitingBytes} bytes of lines the destination has not taken yet ` +
        '(a reader that stopped reading?)'
    case 'file-moved':
      return `access log ${where} was moved or replaced while the proxy writes to it (log rotation?): the lines still go to ` +
        `the moved file, not to ${where}. Reopen ${where} with SIGUSR2 (kill -USR2 <pid>; reopenAccessLog() in a library), or rotate with copytruncate`
    case 'reopen-failed':
      return `access log ${where} could not be reopened (${problem.error.code ?? problem.error.message}): the lines still go to the file ` +
        'open before, wherever it was moved'
    case 'file-removed':
      return `access log ${where} was deleted (or its folder removed) while the proxy writes to it: the lines go to the ` +
        'deleted file and are lost when the proxy stops. Create it again with SIGUSR2 (kill -USR2 <pid>; reopenAccessLog() in a library), or restart the proxy'
  }
}

export interface AccessLogWriter {
  /** Formats the record and queues the line plus '\n'. Throws once close() was called (a bug in the caller). */
  write(record: AccessLogRecord): void
  /**
   * Resolves when every line written so far has reached the destination and the file this writer
   * opened is closed (stdout and caller streams stay open). Rejects with the first write or open
   * error. Calling it again returns the same promise.
   */
  close(): Promise<void>
  /**
   * Log rotation: opens the destination file again by its path (appending, creating it and its
   * folder if they are gone); later lines go there, and lines logged just before may land in
   * either file. False when no file was reopened: stdout, a caller's stream, after close(), or an
   * open that failed (reported as 'reopen-failed').
   */
  reopen(): boolean
}

/** Thrown by write() after close(): the caller logged a request after shutting the log down. */
export class AccessLogWriterClosedError extends Error {
  readonly code = 'ERR_ACCESS_LOG_WRITER_CLOSED'
  constructor() {
    super('access-log writer is closed; write() after close() is a bug in the caller')
    this.name = 'AccessLogWriterClosedError'
  }
}

/** Throws the fs error (EACCES, EISDIR, ...) at once when a destination file cannot be created or opened. */
export function createAccessLogWriter(options: AccessLogWriterOptions): AccessLogWriter {
  const where = 'stream' in options ? '(stream)' : options.destination === '-' ? 'stdout' : options.destination
  const report = options.onProblem
  const onProblem = (problem: AccessLogProblem): void => report?.(problem, describeAccessLogProblem(problem, where))
  return 'stream' in options ? createStreamWriter(options.stream, onProblem) : createDestinationWriter(options.destination, onProblem)
}

/** The error codes already reported since the last successful write: each kind is reported once. */
class FailureEpisode {
  private readonly reportedCodes = new Set<string>()
  droppedLines = 0
  dropReported = false

  get failing(): boolean {
    return this.reportedCodes.size > 0
  }

  /** True the first time this code is seen in the episode. */
  isNew(error: NodeJS.ErrnoException): boolean {
    const code = error.code ?? error.message
    if (this.reportedCodes.has(code)) return false
    this.reportedCodes.add(code)
    return true
  }

  end(): void {
    this.reportedCodes.clear()
    this.droppedLines = 0
    this.dropReported = false
  }
}

type SonicBoom = ReturnType<typeof pino.destination>

function createDestinationWriter(destination: string, onProblem: (problem: AccessLogProblem) => void): AccessLogWriter {
  const fd = destination === '-' ? 1 : openForAppend(destination)
  // maxLength: SonicBoom keeps the lines a failing write could not take and retries them with the
  // next write; past this bound it drops new lines instead of growing without limit ('drop').
  // SonicBoom takes strings here (its default contentMode). Its 'buffer' mode would take the batch's
  // bytes as they are, but in sonic-boom 4.2.1 the synchronous flush pino runs at exit misreads its
  // queue after a failed write (lengths out of step with buffers: NUL bytes or lost lines).
  const sonic: SonicBoom = pino.destination({ dest: fd, sync: false, maxLength: MAX_WAITING_BYTES })
  let firstError: Error | null = null
  const episode = new FailureEpisode()
  // pino's exit hook calls flushSync() when close() was never called. SonicBoom's own (4.2.1)
  // sleeps and retries every error but EAGAIN for ever: on a full disk, or with a stdout reader
  // gone, the process would never end, even when the error was not yet known (a write still in
  // flight). flushHeldLinesSync takes its place: bounded, and it gives up at the first error.
  sonic.flushSync = () => flushHeldLinesSync(sonic)
  /** The fd SonicBoom writes to now (a reopen replaces it). */
  const currentFd = (): number => (sonic as unknown as SonicBoomQueue).fd
  // Without a listener an 'error' (ENOSPC, EPIPE on stdout) would be thrown from the event
  // emitter and take the proxy down; it is reported once per kind when it happens, and by close().
  // (pino's own listener turns the stream into a no-op after EPIPE, and re-emits other errors,
  // so the first one arrives twice: once per kind covers that too.)
  sonic.on('error', (error: NodeJS.ErrnoException) => {
    firstError ??= error
    if (episode.isNew(error)) onProblem({ kind: 'write-error', error })
  })
  // Bytes handed to SonicBoom and bytes it wrote: what a slow close() still waits for.
  let handedBytes = 0
  let writtenBytes = 0
  sonic.on('write', (bytes: number) => {
    writtenBytes += bytes
    if (!episode.failing) return
    // The lines that waited were written: nothing is lost unless some were dropped.
    if (episode.droppedLines === 0) firstError = null
    onProblem({ kind: 'written-again', droppedLines: episode.droppedLines })
    episode.end()
  })
  sonic.on('drop', (data: string) => {
    episode.droppedLines += countLines(data)
    if (episode.dropReported) return
    episode.dropReported = true
    onProblem({ kind: 'lines-dropped', maxWaitingBytes: MAX_WAITING_BYTES })
  })
  // A deleted file keeps taking writes through its open fd: nothing fails, the lines just vanish
  // with the proxy. An fstat now and then tells (link count 0). A file moved away (log rotation:
  // `mv access.log access.log.1`) keeps taking them too, while the path names another file or
  // none: a stat of the path beside the fstat tells. stdout is not a file of ours.
  let removalReported = false
  let moveReported = false
  const reportIfRemoved = (stats: fs.Stats): void => {
    if (removalReported || stats.nlink > 0) return
    removalReported = true
    onProblem({ kind: 'file-removed', file: destination })
  }
  const reportIfMoved = (open: fs.Stats, atPath: fs.Stats | null): void => {
    if (moveReported || removalReported || open.nlink === 0) return
    if (atPath !== null && atPath.ino === open.ino && atPath.dev === open.dev) return
    moveReported = true
    onProblem({ kind: 'file-moved', file: destination })
  }
  /** Reopens so far; the old fds still being closed (close() waits for them). */
  let reopens = 0
  const oldFdsClosing = new Set<Promise<void>>()
  const removalCheck = destination === '-'
    ? null
    : setInterval(() => {
      // A reopen between the two callbacks would compare the old file with the new one.
      const checked = reopens
      fs.fstat(currentFd(), (error, open) => {
        if (error !== null || checked !== reopens) return
        reportIfRemoved(open)
        fs.stat(destination, (pathError, atPath) => {
          if (checked === reopens) reportIfMoved(open, pathError === null ? atPath : null)
        })
      })
    }, REMOVAL_CHECK_MS).unref()
  let closing: Promise<void> | null = null
  // Lines go out in batches: one write when BATCH_MS have passed since the first line of the
  // batch, or at once when the next line would not fit in BATCH_BYTES. Under load a write per
  // line, or even per event-loop turn, costs a system call and a thread-pool round trip per
  // request or two (measured with bench/). No line waits longer than BATCH_MS; close() writes what
  // is waiting. The formatter writes each line's bytes straight into the batch: no string per line
  // (a batch kept as a string held every line through the next young-generation GC, and a line
  // built as a string cost more than the rest of its writing: bench/README.md). Lines are ASCII
  // (the formatter percent-encodes every other byte), so latin1 reads the batch byte for byte.
  const batch = Buffer.allocUnsafe(BATCH_BYTES)
  /** The batch less its last byte, so that a line that fits leaves room for its newline. */
  const lineRoom = batch.subarray(0, BATCH_BYTES - 1)
  let batchLength = 0
  let flushTimer: NodeJS.Timeout | null = null
  const flushBatch = (): void => {
    if (flushTimer !== null) clearTimeout(flushTimer)
    flushTimer = null
    if (batchLength === 0) return
    // One flat string per batch (a copy: the batch is reused).
    const lines = batch.toString('latin1', 0, batchLength)
    batchLength = 0
    handedBytes += lines.length
    sonic.write(lines)
  }
  // pino flushes SonicBoom synchronously on 'exit' when close() was never called (its listener,
  // added with the stream, runs first). The lines still in the batch are written after them, here,
  // directly (handed to SonicBoom they would start an asynchronous write the exit may cut short).
  const flushAtExit = (): void => {
    if (batchLength === 0 || isDestroyed(sonic)) return
    if (flushTimer !== null) clearTimeout(flushTimer)
    flushTimer = null
    sonic.flushSync()
    writeSyncAtExit(currentFd(), [batch.subarray(0, batchLength)])
    batchLength = 0
  }
  flushersAtExit.add(flushAtExit)

  return {
    write(record) {
      if (closing !== null) throw new AccessLogWriterClosedError()
      // The line's bytes go straight into the batch, the newline's room kept at its end.
      let end = writeAccessLogLine(record, lineRoom, batchLength)
      if (end === -1 && batchLength > 0) {
        flushBatch()
        // At batchLength, not 0: a problem reported from inside the flush (SonicBoom emits 'drop'
        // synchronously) may have had a line written meanwhile.
        end = writeAccessLogLine(record, lineRoom, batchLength)
      }
      // A line longer than a batch (a long URL and user agent, percent-encoded) goes alone.
      if (end === -1) {
        const line = `${formatAccessLogLine(record)}\n`
        handedBytes += line.length
        return void sonic.write(line)
      }
      batch[end] = LF
      batchLength = end + 1
      flushTimer ??= setTimeout(flushBatch, BATCH_MS)
    },
    reopen() {
      if (closing !== null || destination === '-' || isDestroyed(sonic)) return false
      // The lines formatted so far join what SonicBoom holds: they go out before any later line.
      flushBatch()
      let opened: number
      try {
        opened = openForAppend(destination)
      } catch (error) {
        onProblem({ kind: 'reopen-failed', file: destination, error: error as NodeJS.ErrnoException })
        return false
      }
      // SonicBoom reads its fd at each write (sonic-boom 4.2.1; its own reopen() swaps it the same
      // way, but only for a stream it opened from a path, and it can hang an end() that comes while
      // it waits): lines it holds go to the new file. A write in flight ends on the old fd, which
      // is closed after it; the rest of a write the old file took only in part (a full disk)
      // continues in the new one.
      const queue = sonic as unknown as SonicBoomQueue
      const old = queue.fd
      queue.fd = opened
      reopens++
      const closeOld = (): void => {
        sonic.removeListener('write', closeOld)
        sonic.removeListener('error', closeOld)
        const closed = new Promise<void>(resolve => fs.close(old, () => resolve()))
        oldFdsClosing.add(closed)
        void closed.then(() => oldFdsClosing.delete(closed))
      }
      if (queue._writing) {
        sonic.once('write', closeOld)
        sonic.once('error', closeOld)
      } else {
        closeOld()
      }
      // A later move or removal of the new file is reported again.
      removalReported = false
      moveReported = false
      return true
    },
    close() {
      if (closing !== null) return closing
      flushersAtExit.remove(flushAtExit)
      flushBatch()
      if (removalCheck !== null) {
        clearInterval(removalCheck)
        // A last look before the fd closes, so a removal between two checks is still reported.
        try {
          const open = fs.fstatSync(currentFd())
          reportIfRemoved(open)
          reportIfMoved(open, fs.statSync(destination, { throwIfNoEntry: false }) ?? null)
        } catch { /* the fd is SonicBoom's to report on */ }
      }
      // Lines are ASCII: a string's length is its bytes.
      const slowClose = setTimeout(() => onProblem({ kind: 'close-waiting', waitingBytes: handedBytes - writtenBytes }), CLOSE_NOTICE_MS)
      closing = new Promise<void>((resolve, reject) => {
        const finish = (): void => {
          clearTimeout(slowClose)
          sonic.removeListener('close', finish)
          sonic.removeListener('error', finish)
          if (firstError === null) return resolve()
          const failure = firstError
          if (isDestroyed(sonic)) return reject(failure)
          // Drop what cannot be written, release the fd (never fd 1) and leave pino's exit hook
          // nothing to flush; settle once the fd is closed.
          sonic.destroy()
          // After EPIPE pino has made destroy() a no-op: nothing to wait for.
          if (!isDestroyed(sonic)) return reject(failure)
          sonic.once('close', () => reject(failure))
          sonic.once('error', () => reject(failure))
        }
        // After EPIPE pino has made end() and destroy() no-ops: nothing more can be written or
        // waited for. After any other error, end() still tries the lines that wait (a disk that
        // was full may have room now); if it fails again, 'error' settles this.
        if ((firstError as NodeJS.ErrnoException | null)?.code === 'EPIPE') return finish()
        sonic.once('close', finish)
        sonic.once('error', finish)
        // end() writes out everything buffered, closes the fd (SonicBoom never closes fd 1 or 2)
        // and emits 'finish' then 'close'. flushSync() is not needed and would throw
        // "sonic boom is not ready yet" on a stream whose fd is not open.
        sonic.end()
      }).then(() => allOldFdsClosed(), async (error: unknown) => {
        await allOldFdsClosed()
        throw error
      })
      return closing
    }
  }

  /** The fds a reopen replaced: closed once their write in flight ended (at the latest, once close() has ended every write). */
  async function allOldFdsClosed (): Promise<void> {
    await Promise.all([...oldFdsClosing])
  }
}

/**
 * The open writers' exit flushes, run by one 'exit' listener while any writer is open (a listener
 * per writer would warn past ten proxies in one process, as a test suite may start).
 */
const flushersAtExit = {
  flushes: new Set<() => void>(),
  runAll (): void {
    for (const flush of flushersAtExit.flushes) flush()
  },
  add (flush: () => void): void {
    if (this.flushes.size === 0) process.on('exit', this.runAll)
    this.flushes.add(flush)
  },
  remove (flush: () => void): void {
    if (!this.flushes.delete(flush)) return
    if (this.flushes.size === 0) process.removeListener('exit', this.runAll)
  }
}

/** Our choice: at exit, how long in all a full pipe (EAGAIN: a stdout reader that stopped reading) is waited for. */
export const EXIT_FLUSH_WAIT_MS = 1000
/** Between two tries of a write that met a full pipe at exit (SonicBoom's BUSY_WRITE_TIMEOUT). */
const EXIT_FLUSH_RETRY_MS = 100

/** What SonicBoom 4.2.1 holds in its default (utf8) mode: private fields, pinned by package-lock.json; the exit and reopen tests use them. */
interface SonicBoomQueue {
  fd: number
  _writing: boolean
  _writingBuf: string | Buffer
  _bufs: Array<string | Buffer>
  _len: number
}

/**
 * Writes what SonicBoom holds, synchronously, while the process exits: the chunk of a failed or
 * not yet started write, then the queue (a write still in flight in the thread pool is left to
 * finish: writing it again could log its lines twice). A full pipe is waited for at most
 * EXIT_FLUSH_WAIT_MS in all; any other error (ENOSPC, EPIPE, EIO) ends it, and the lines not
 * written are lost with the process, as they would be with a crash.
 */
function flushHeldLinesSync (sonic: SonicBoom): void {
  const queue = sonic as unknown as SonicBoomQueue
  if (isDestroyed(sonic) || queue.fd < 0) return
  const chunks = queue._writing || queue._writingBuf.length === 0 ? [...queue._bufs] : [queue._writingBuf, ...queue._bufs]
  queue._bufs = []
  if (!queue._writing) queue._writingBuf = ''
  queue._len = 0
  writeSyncAtExit(queue.fd, chunks)
}

/** Writes the chunks in order, synchronously; a full pipe is waited for at most EXIT_FLUSH_WAIT_MS in all, any other error ends it. */
function writeSyncAtExit (fd: number, chunks: ReadonlyArray<string | Buffer>): void {
  let waitedMs = 0
  for (const chunk of chunks) {
    let bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk
    while (bytes.length > 0) {
      try {
        bytes = bytes.subarray(fs.writeSync(fd, bytes))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || waitedMs >= EXIT_FLUSH_WAIT_MS) return
        Atomics.wait(EXIT_FLUSH_SLEEP, 0, 0, EXIT_FLUSH_RETRY_MS)
        waitedMs += EXIT_FLUSH_RETRY_MS
      }
    }
  }
}

/** Atomics.wait on this blocks the main thread for a while (nothing ever notifies it). */
const EXIT_FLUSH_SLEEP = new Int32Array(new SharedArrayBuffer(4))

/** SonicBoom sets `destroyed` when it starts closing (end() or destroy()); its typings omit the field. */
function isDestroyed(sonic: SonicBoom): boolean {
  return (sonic as unknown as { readonly destroyed: boolean }).destroyed
}

/**
 * Opens the log file now, so a bad path fails createAccessLogWriter() before the proxy listens.
 * (Handing the path to pino.destination opens it later, asynchronously: an open error then
 * surfaces as an 'error' event, and pino's exit hook calls flushSync() on the never-opened stream,
 * which throws "sonic boom is not ready yet" from process 'exit'.) Missing directories are
 * created, as pino.destination's `mkdir: true` would; existing files are appended to.
 */
function openForAppend(file: string): number {
  makeFolderSync(path.dirname(file))
  return fs.openSync(file, 'a')
}

const LF = 0x0a

/** Lines in a batch of lines (each ends in LF). */
function countLines(data: string): number {
  let lines = 0
  for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) lines++
  return lines
}

function createStreamWriter(stream: NodeJS.WritableStream, onProblem: (problem: AccessLogProblem) => void): AccessLogWriter {
  let pendingWrites = 0
  let firstError: Error | null = null
  let closing: Promise<void> | null = null
  let allWritten: (() => void) | null = null
  const episode = new FailureEpisode()

  const onWritten = (error?: Error | null): void => {
    if (error) {
      firstError ??= error
      if (episode.isNew(error)) onProblem({ kind: 'write-error', error })
    } else if (episode.failing) {
      onProblem({ kind: 'written-again', droppedLines: 0 })
      episode.end()
    }
    pendingWrites--
    if (pendingWrites === 0 && allWritten !== null) allWritten()
  }

  return {
    write(record) {
      if (closing !== null) throw new AccessLogWriterClosedError()
      pendingWrites++
      // The callback runs once the stream has handled this chunk; backpressure is the stream's
      // own buffering (the proxy must not wait on its access log).
      stream.write(`${formatAccessLogLine(record)}\n`, onWritten)
    },
    // A caller's stream is the caller's to rotate.
    reopen: () => false,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        allWritten = () => {
          if (firstError === null) resolve()
          else reject(firstError)
        }
        if (pendingWrites === 0) allWritten()
      })
      return closing
    }
  }
}
