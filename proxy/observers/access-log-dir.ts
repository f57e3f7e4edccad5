/**
 * Access-log files laid out and named as CLB delivers them to S3 (spec §3.1, CLB-LOGS):
 *
 *   <dir>/AWSLogs/<account-id>/elasticloadbalancing/<region>/yyyy/mm/dd/
 *     <account-id>_elasticloadbalancing_<region>_<load-balancer-name>_<end-time>_<ip-address>_<random-string>.log
 *
 * one file per emit interval (EmitInterval: 5 or 60 minutes), so tools pointed at real S3 logs
 * (Athena's DDL, GoAccess, `clb-proxy analyze`) read local ones unchanged. Like the single-file
 * writer it subscribes to nothing: the proxy (or a test) calls write() with each finished record.
 * Each file is an AccessLogWriter (access-log-writer.ts), so the line is the one pure formatter's
 * (access-log-format.ts) and write failures are reported the same way, through `onProblem`.
 *
 * Which file a line goes to (our choice; CLB says a file "contains entries for requests made
 * between 23:35 and 23:40", but a request still in flight at 23:40 can only be written later):
 * - The interval is decided by one clock reading, the injected clock's time when write() is called
 *   (the request has finished), never by the record's receivedAtMicros. Intervals are aligned to UTC
 *   (5-minute ones end at :00, :05, ...; 60-minute ones on the hour) and half-open: a line written
 *   exactly at 23:40:00.000000 belongs to the interval that ends at 23:45 (or 00:00).
 * - A file is opened on the first line of its interval and closed (flushed) when a line of a later
 *   interval arrives, when the interval's end timer finds the clock past the end, or by close().
 *   A closed file is never written again, so a line is written exactly once, in order.
 * - A clock that goes back (only an injected one does) never closes a file: the line goes into the
 *   open file; with none open, a new file for the line's own interval (a new random string, as CLB
 *   may deliver several files for one period).
 */
import { randomInt } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { AccessLogRecord } from '../core/access-log-record.js'
import type { Clock } from '../core/clock.js'
import type { EmitIntervalMinutes } from '../core/options.js'
import { makeFolderSync } from '../core/make-folder.js'
import {
  AccessLogWriterClosedError,
  createAccessLogWriter,
  describeAccessLogProblem,
  type AccessLogProblem,
  type AccessLogWriter
} from './access-log-writer.js'

/** Our choice: a fake, documented account id (12 digits like a real one; no real account is 000000000000). */
export const ACCESS_LOG_ACCOUNT_ID = '000000000000'
/** Our choice: the region in the path and name (us-east-1, the AWS default region). */
export const ACCESS_LOG_REGION = 'us-east-1'
/** spec §3.1 [O-LOGS]: "Random string: 8 lower-case alphanumerics in all examples". */
const RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'
const RANDOM_LENGTH = 8
/** Our choice: after a file could not be created, the next attempt waits this long (lines meanwhile are dropped and counted), so a failing disk costs one attempt per second, not one per request. */
export const REOPEN_DELAY_MICROS = 1_000_000

export interface AccessLogDirTimers {
  readonly setTimeout: (callback: () => void, ms: number) => unknown
  readonly clearTimeout: (timer: unknown) => void
}

export interface AccessLogDirWriterOptions {
  /** The local stand-in for `bucket[/prefix]`: AWSLogs/... is created under it. */
  readonly dir: string
  /** EmitInterval: 5 or 60 minutes. */
  readonly emitIntervalMinutes: EmitIntervalMinutes
  /** The `load-balancer-name` part of each file name (the options' `name`). */
  readonly loadBalancerName: string
  /** The `ip-address` part: the listener's bound address, read when a file is opened. */
  readonly ipAddress: () => string
  /** Decides each line's interval (the proxy's hooks.clock). */
  readonly clock: Clock
  /** Told when lines cannot be written, once per kind of problem (as createAccessLogWriter's). */
  readonly onProblem?: (problem: AccessLogProblem, message: string) => void
  /** The `random-string` part (default: 8 random lower-case alphanumerics); tests make it fixed. */
  readonly randomString?: () => string
  /** The interval-end timer (default: the global timers); tests fire it by hand. */
  readonly timers?: AccessLogDirTimers
}

export interface AccessLogFileNameParts {
  readonly loadBalancerName: string
  /** The end of the interval, microseconds since the Unix epoch. */
  readonly endMicros: number
  readonly ipAddress: string
  readonly randomString: string
  readonly accountId?: string
  readonly region?: string
}

/** The end of the interval `nowMicros` falls in: intervals are aligned to UTC and half-open [start, end). */
export function intervalEndMicros (nowMicros: number, emitIntervalMinutes: EmitIntervalMinutes): number {
  const intervalMicros = emitIntervalMinutes * 60 * 1_000_000
  return (Math.floor(nowMicros / intervalMicros) + 1) * intervalMicros
}

/** spec §3.1 `end-time`, e.g. `20140215T2340Z` (UTC, minutes). */
export function formatEndTime (endMicros: number): string {
  const iso = new Date(Math.floor(endMicros / 1000)).toISOString() // 2014-02-15T23:40:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}Z`
}

/**
 * The file's path under the directory, '/'-separated (spec §3.1 verbatim format):
 * `AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/<account>_elasticloadbalancing_<region>_<name>_<end-time>_<ip>_<random>.log`.
 * `yyyy/mm/dd` is "the date that the log was delivered": ours is the UTC date of the interval's
 * end, the earliest a file can be delivered. IPv6 colons (and anything but letters, digits, dots
 * and hyphens) become hyphens, so the name stays one `_`-separated token per part on any file system.
 */
export function accessLogFilePath (parts: AccessLogFileNameParts): string {
  const account = parts.accountId ?? ACCESS_LOG_ACCOUNT_ID
  const region = parts.region ?? ACCESS_LOG_REGION
  const iso = new Date(Math.floor(parts.endMicros / 1000)).toISOString()
  const ip = parts.ipAddress.replace(/[^A-Za-z0-9.-]/g, '-')
  const name = [account, 'elasticloadbalancing', region, parts.loadBalancerName, formatEndTime(parts.endMicros), ip, parts.randomString].join('_')
  return ['AWSLogs', account, 'elasticloadbalancing', region, iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10), `${name}.log`].join('/')
}

/** spec §3.1: "A system-generated random string"; 8 lower-case alphanumerics like every real name. */
export function randomLogString (): string {
  let text = ''
  for (let index = 0; index < RANDOM_LENGTH; index++) text += RANDOM_ALPHABET[randomInt(RANDOM_ALPHABET.length)]
  return text
}

const defaultTimers: AccessLogDirTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout)
}

interface OpenFile {
  readonly endMicros: number
  readonly file: string
  readonly writer: AccessLogWriter
}

/**
 * Creates the directory now (and checks it can be written), so a bad path fails before the proxy
 * listens, like createAccessLogWriter; files are opened later, on their interval's first line.
 */
export function createAccessLogDirWriter (options: AccessLogDirWriterOptions): AccessLogWriter {
  makeFolderSync(options.dir)
  fs.accessSync(options.dir, fs.constants.W_OK)
  const { clock, emitIntervalMinutes } = options
  const timers = options.timers ?? defaultTimers
  const randomString = options.randomString ?? randomLogString
  const report = (problem: AccessLogProblem, message: string): void => options.onProblem?.(problem, message)

  let current: OpenFile | null = null
  let timer: unknown = null
  let closing: Promise<void> | null = null
  let firstError: Error | null = null
  /** Files being closed (flushed) after their interval: close() waits for every one. */
  const closingFiles = new Set<Promise<void>>()
  /** Open failures since the last file that opened: each code is reported once. */
  const openErrorCodes = new Set<string>()
  let linesNotOpened = 0
  /** After an open failure: no new attempt before this clock reading. */
  let reopenAtMicros = 0

  const clearTimer = (): void => {
    if (timer !== null) timers.clearTimeout(timer)
    timer = null
  }
  const closeCurrent = (): void => {
    clearTimer()
    const open = current
    if (open === null) return
    current = null
    // Its lines are already handed to the file's writer; close() writes them out. A failure was
    // reported by that writer when it happened; it is kept for close() to reject with.
    const closed = open.writer.close().catch((error: Error) => { firstError ??= error })
    closingFiles.add(closed)
    void closed.finally(() => closingFiles.delete(closed))
  }
  // One timer, for the open file's interval end; it re-arms when the clock is not past the end yet.
  const armTimer = (endMicros: number): void => {
    clearTimer()
    const remainingMs = Math.max(0, Math.ceil((endMicros - clock.nowMicros()) / 1000)) + 1
    timer = timers.setTimeout(() => {
      timer = null
      if (current === null || current.endMicros !== endMicros) return
      if (clock.nowMicros() >= endMicros) closeCurrent()
      else armTimer(endMicros)
    }, remainingMs)
  }
  const open = (endMicros: number): OpenFile | null => {
    const file = path.join(options.dir, ...accessLogFilePath({
      loadBalancerName: options.loadBalancerName,
      endMicros,
      ipAddress: options.ipAddress(),
      randomString: randomString()
    }).split('/'))
    let writer: AccessLogWriter
    try {
      writer = createAccessLogWriter({ destination: file, onProblem: report })
    } catch (error) {
      const failure = error as NodeJS.ErrnoException
      firstError ??= failure
      linesNotOpened++
      reopenAtMicros = clock.nowMicros() + REOPEN_DELAY_MICROS
      const code = failure.code ?? failure.message
      if (!openErrorCodes.has(code)) {
        openErrorCodes.add(code)
        report({ kind: 'write-error', error: failure },
          `access log file ${file} cannot be created (${code}): the proxy keeps serving; lines are dropped until a ` +
          'file can be created (tried again once a second). Reported once per kind of error')
      }
      return null
    }
    if (openErrorCodes.size > 0) {
      const problem: AccessLogProblem = { kind: 'written-again', droppedLines: linesNotOpened }
      report(problem, describeAccessLogProblem(problem, file))
      openErrorCodes.clear()
      linesNotOpened = 0
    }
    current = { endMicros, file, writer }
    armTimer(endMicros)
    return current
  }

  return {
    write (record: AccessLogRecord) {
      if (closing !== null) throw new AccessLogWriterClosedError()
      const endMicros = intervalEndMicros(clock.nowMicros(), emitIntervalMinutes)
      // A later interval closes the open file first; an earlier one (a clock gone back) keeps it.
      if (current !== null && endMicros > current.endMicros) closeCurrent()
      if (current === null && openErrorCodes.size > 0 && clock.nowMicros() < reopenAtMicros) {
        linesNotOpened++
        return
      }
      const target = current ?? open(endMicros)
      if (target === null) return
      target.writer.write(record)
    },
    // The interval's open file, again by its path (a later interval opens a new file anyway).
    reopen: () => closing === null && current !== null && current.writer.reopen(),
    close () {
      if (closing !== null) return closing
      closeCurrent()
      closing = Promise.all([...closingFiles]).then(() => {
        if (firstError !== null) throw firstError
      })
      return closing
    }
  }
}
