/**
 * Writes access-log lines to a file, stdout or a caller's stream. It subscribes to nothing: the
 * proxy (or a test) calls write() with each finished record. Formatting is
 * proxy/access-log-format.ts; this module only adds the newline, buffers and flushes.
 *
 * Files and stdout go through pino.destination (SonicBoom): asynchronous, buffered writes and an
 * end() that writes out every buffered line before it closes the file (it never closes fd 1 or 2,
 * SonicBoom's actualClose skips them). pino also registers the stream so a process that exits
 * without close() still flushes synchronously on 'exit'.
 */
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { formatAccessLogLine } from './access-log-format.js'
import type { AccessLogRecord } from './access-log-record.js'

export type AccessLogWriterOptions =
  /** A file path (opened at once for appending; missing directories are created) or '-' for stdout. */
  | { readonly destination: string }
  /** A stream the caller owns: written to, waited on by close(), never ended. */
  | { readonly stream: NodeJS.WritableStream }

export interface AccessLogWriter {
  /** Formats the record and queues the line plus '\n'. Throws once close() was called (a bug in the caller). */
  write(record: AccessLogRecord): void
  /**
   * Resolves when every line written so far has reached the destination and the file this writer
   * opened is closed (stdout and caller streams stay open). Rejects with the first write or open
   * error. Calling it again returns the same promise.
   */
  close(): Promise<void>
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
  return 'stream' in options ? createStreamWriter(options.stream) : createDestinationWriter(options.destination)
}

type SonicBoom = ReturnType<typeof pino.destination>

function createDestinationWriter(destination: string): AccessLogWriter {
  const sonic: SonicBoom = pino.destination({ dest: destination === '-' ? 1 : openForAppend(destination), sync: false })
  let firstError: Error | null = null
  // Without a listener an 'error' (ENOSPC, EPIPE on stdout) would be thrown from the event
  // emitter and take the proxy down; it is kept and reported by close() instead. (pino's own
  // listener turns the stream into a no-op after EPIPE.)
  sonic.on('error', (error: Error) => {
    firstError ??= error
  })
  let closing: Promise<void> | null = null
  // Lines finished in one turn of the event loop go out in one write: under load many exchanges
  // finish per turn, and a write per line would cost a system call per request. No line waits
  // longer than the current turn.
  let batch = ''
  let flushScheduled = false
  const flushBatch = (): void => {
    flushScheduled = false
    if (batch.length === 0) return
    const lines = batch
    batch = ''
    sonic.write(lines)
  }

  return {
    write(record) {
      if (closing !== null) throw new AccessLogWriterClosedError()
      batch += `${formatAccessLogLine(record)}\n`
      if (!flushScheduled) {
        flushScheduled = true
        setImmediate(flushBatch)
      }
    },
    close() {
      flushBatch()
      closing ??= new Promise<void>((resolve, reject) => {
        const finish = (): void => {
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
        if (firstError !== null) return finish()
        sonic.once('close', finish)
        sonic.once('error', finish)
        // end() writes out everything buffered, closes the fd (SonicBoom never closes fd 1 or 2)
        // and emits 'finish' then 'close'. flushSync() is not needed and would throw
        // "sonic boom is not ready yet" on a stream whose fd is not open.
        sonic.end()
      })
      return closing
    }
  }
}

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
  fs.mkdirSync(path.dirname(file), { recursive: true })
  return fs.openSync(file, 'a')
}

function createStreamWriter(stream: NodeJS.WritableStream): AccessLogWriter {
  let pendingWrites = 0
  let firstError: Error | null = null
  let closing: Promise<void> | null = null
  let allWritten: (() => void) | null = null

  const onWritten = (error?: Error | null): void => {
    if (error) firstError ??= error
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
