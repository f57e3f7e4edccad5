import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'
import { SAMPLE_RECORD } from '../../helpers/records.js'
import type { AccessLogRecord } from '../../../proxy/core/access-log-record.js'
import { formatAccessLogLine } from '../../../proxy/observers/access-log-format.js'
import { AccessLogWriterClosedError, type AccessLogProblem } from '../../../proxy/observers/access-log-writer.js'
import {
  ACCESS_LOG_ACCOUNT_ID,
  ACCESS_LOG_REGION,
  accessLogFilePath,
  createAccessLogDirWriter,
  formatEndTime,
  intervalEndMicros,
  randomLogString,
  REOPEN_DELAY_MICROS,
  type AccessLogDirTimers
} from '../../../proxy/observers/access-log-dir.js'

const MINUTE = 60 * 1_000_000
/** 2014-02-15T23:40:00Z, the end time of the AWS doc example (spec §3.1), in microseconds. */
const DOC_END = Date.UTC(2014, 1, 15, 23, 40) * 1000

/** A clock the test moves by hand. */
function steppedClock (micros: number): { nowMicros: () => number, set: (value: number) => void } {
  let now = micros
  return { nowMicros: () => now, set: (value) => { now = value } }
}

/** The random strings handed out in turn, so every file name is exact. */
function randomStrings (...values: string[]): () => string {
  const queue = [...values]
  return () => {
    const next = queue.shift()
    if (next === undefined) throw new Error('bug: the test ran out of random strings')
    return next
  }
}

/** Timers the test fires by hand: the pending callback and its delay. */
function manualTimers (): AccessLogDirTimers & { pending: () => Array<{ ms: number, fire: () => void }> } {
  const timers = new Map<number, { ms: number, callback: () => void }>()
  let nextId = 1
  return {
    setTimeout: (callback, ms) => {
      const id = nextId++
      timers.set(id, { ms, callback })
      return id
    },
    clearTimeout: (id) => { timers.delete(id as number) },
    pending: () => [...timers].map(([id, timer]) => ({
      ms: timer.ms,
      fire: () => {
        timers.delete(id)
        timer.callback()
      }
    }))
  }
}

/** A distinct record per index: a lost, repeated or reordered line shows. */
function record (index: number): AccessLogRecord {
  return { ...SAMPLE_RECORD, receivedAtMicros: SAMPLE_RECORD.receivedAtMicros + index, target: `/item/${index}` }
}

function lines (...indexes: number[]): string {
  return indexes.map((index) => `${formatAccessLogLine(record(index))}\n`).join('')
}

/** Every file under dir, '/'-separated relative paths, sorted. */
function filesUnder (dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((entry) => fs.statSync(path.join(dir, entry)).isFile())
    .map((entry) => entry.split(path.sep).join('/'))
    .sort()
}

/** The open file descriptors of this process under dir (Linux /proc). */
function fdsOpenUnder (dir: string): string[] {
  const root = fs.realpathSync(dir) + path.sep
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(root)
    } catch {
      return false
    }
  })
}

const PREFIX_5 = 'AWSLogs/000000000000/elasticloadbalancing/us-east-1/2014/02/15/000000000000_elasticloadbalancing_us-east-1_my-loadbalancer_'

function writerIn (t: Test, clock: { nowMicros: () => number }, extra: Partial<Parameters<typeof createAccessLogDirWriter>[0]> = {}): {
  dir: string
  writer: ReturnType<typeof createAccessLogDirWriter>
  timers: ReturnType<typeof manualTimers>
  problems: Array<[AccessLogProblem, string]>
} {
  const dir = t.testdir()
  const timers = manualTimers()
  const problems: Array<[AccessLogProblem, string]> = []
  const writer = createAccessLogDirWriter({
    dir,
    emitIntervalMinutes: 5,
    loadBalancerName: 'my-loadbalancer',
    ipAddress: () => '172.16.1.192',
    clock,
    randomString: randomStrings('20sg8hgm', '1054crg1', '115hdtdv', 'aaaaaaaa'),
    timers,
    onProblem: (problem, message) => problems.push([problem, message]),
    ...extra
  })
  return { dir, writer, timers, problems }
}

t.test('names: the AWS doc example and the real names of spec §3.1, exactly', async (t) => {
  t.equal(formatEndTime(DOC_END), '20140215T2340Z')
  t.equal(formatEndTime(Date.UTC(2020, 10, 12, 17, 55) * 1000), '20201112T1755Z')
  t.equal(
    accessLogFilePath({ accountId: '123456789012', region: 'us-west-2', loadBalancerName: 'my-loadbalancer', endMicros: DOC_END, ipAddress: '172.160.1.192', randomString: '20sg8hgm' }),
    'AWSLogs/123456789012/elasticloadbalancing/us-west-2/2014/02/15/123456789012_elasticloadbalancing_us-west-2_my-loadbalancer_20140215T2340Z_172.160.1.192_20sg8hgm.log',
    'the doc example path (without bucket/prefix; the IP not zero-padded, as in real names)'
  )
  t.equal(
    accessLogFilePath({ loadBalancerName: 'my-elb', endMicros: Date.UTC(2016, 3, 20, 17) * 1000, ipAddress: '10.0.33.113', randomString: '115hdtdv' }),
    'AWSLogs/000000000000/elasticloadbalancing/us-east-1/2016/04/20/000000000000_elasticloadbalancing_us-east-1_my-elb_20160420T1700Z_10.0.33.113_115hdtdv.log',
    'our defaults: account 000000000000, region us-east-1'
  )
  t.equal(ACCESS_LOG_ACCOUNT_ID, '000000000000')
  t.equal(ACCESS_LOG_REGION, 'us-east-1')
  t.equal(
    accessLogFilePath({ loadBalancerName: 'a', endMicros: Date.UTC(2014, 1, 16) * 1000, ipAddress: '::1', randomString: 'x' }),
    'AWSLogs/000000000000/elasticloadbalancing/us-east-1/2014/02/16/000000000000_elasticloadbalancing_us-east-1_a_20140216T0000Z_--1_x.log',
    'the folder date is the end time\'s UTC date; IPv6 colons become hyphens'
  )
  for (let index = 0; index < 50; index++) t.match(randomLogString(), /^[a-z0-9]{8}$/, 'random string: 8 lower-case alphanumerics')
})

t.test('intervals are UTC-aligned and half-open: [start, end)', async (t) => {
  t.equal(intervalEndMicros(DOC_END - 5 * MINUTE, 5), DOC_END, 'the first microsecond of 23:35 belongs to the file ending 23:40')
  t.equal(intervalEndMicros(DOC_END - 1, 5), DOC_END, 'the last microsecond before 23:40 too')
  t.equal(intervalEndMicros(DOC_END, 5), DOC_END + 5 * MINUTE, '23:40:00.000000 belongs to the next file')
  t.equal(intervalEndMicros(DOC_END - 1, 60), Date.UTC(2014, 1, 16) * 1000, '60 minutes: on the hour')
  t.equal(intervalEndMicros(Date.UTC(2014, 1, 16) * 1000, 60), Date.UTC(2014, 1, 16, 1) * 1000)
})

t.test('the boundary: each line once, in order, in the file of the interval it was written in', async (t) => {
  const clock = steppedClock(DOC_END - 1)
  const { dir, writer, problems } = writerIn(t, clock)
  t.strictSame(filesUnder(dir), [], 'no file before the first line')
  writer.write(record(1))
  writer.write(record(2))
  clock.set(DOC_END) // exactly the boundary: the next interval
  writer.write(record(3))
  clock.set(DOC_END + 5 * MINUTE - 1)
  writer.write(record(4))
  clock.set(DOC_END + 5 * MINUTE)
  writer.write(record(5))
  await writer.close()
  t.strictSame(fdsOpenUnder(dir), [], 'close() closed every file')
  const names = [`${PREFIX_5}20140215T2340Z_172.16.1.192_20sg8hgm.log`, `${PREFIX_5}20140215T2345Z_172.16.1.192_1054crg1.log`, `${PREFIX_5}20140215T2350Z_172.16.1.192_115hdtdv.log`]
  t.strictSame(filesUnder(dir), names, 'three files, named exactly')
  const contents = names.map((name) => fs.readFileSync(path.join(dir, name), 'latin1'))
  t.strictSame(contents, [lines(1, 2), lines(3, 4), lines(5)], 'every line exactly once, in order, in the right file')
  t.strictSame(problems, [], 'no problem reported')
  t.throws(() => writer.write(record(6)), AccessLogWriterClosedError, 'write() after close() is a bug in the caller')
  t.equal(writer.close(), writer.close(), 'close() again returns the same promise')
})

t.test('a 60-minute interval: the file of 23:00-24:00 ends 20140216T0000Z, under 2014/02/16', async (t) => {
  const clock = steppedClock(DOC_END)
  const { dir, writer } = writerIn(t, clock, { emitIntervalMinutes: 60 })
  writer.write(record(1))
  clock.set(DOC_END + 19 * MINUTE) // 23:59
  writer.write(record(2))
  await writer.close()
  const name = 'AWSLogs/000000000000/elasticloadbalancing/us-east-1/2014/02/16/000000000000_elasticloadbalancing_us-east-1_my-loadbalancer_20140216T0000Z_172.16.1.192_20sg8hgm.log'
  t.strictSame(filesUnder(dir), [name])
  t.equal(fs.readFileSync(path.join(dir, name), 'latin1'), lines(1, 2))
})

t.test('the interval-end timer closes the file; one timer, re-armed while the clock is short of the end, cleared by close()', async (t) => {
  const clock = steppedClock(DOC_END - 90 * 1_000_000) // 23:38:30
  const { dir, writer, timers } = writerIn(t, clock)
  writer.write(record(1))
  t.strictSame(timers.pending().map((timer) => timer.ms), [90_001], 'one timer, for the end of the interval')
  clock.set(DOC_END - 1000) // fired a millisecond early by the clock's reading
  timers.pending()[0]?.fire()
  t.strictSame(timers.pending().map((timer) => timer.ms), [2], 're-armed for the rest')
  t.equal(fdsOpenUnder(dir).length, 1, 'the file is still open')
  writer.write(record(2))
  clock.set(DOC_END)
  timers.pending()[0]?.fire()
  t.strictSame(timers.pending(), [], 'no timer once the file is closed')
  clock.set(DOC_END + 7 * MINUTE) // nothing during 23:40-23:45: no file for it
  writer.write(record(3))
  t.equal(timers.pending().length, 1, 'the next file arms the one timer')
  await writer.close()
  t.strictSame(timers.pending(), [], 'close() cleared the timer')
  t.strictSame(fdsOpenUnder(dir), [])
  t.strictSame(filesUnder(dir).map((name) => [name, fs.readFileSync(path.join(dir, name), 'latin1')]), [
    [`${PREFIX_5}20140215T2340Z_172.16.1.192_20sg8hgm.log`, lines(1, 2)],
    [`${PREFIX_5}20140215T2350Z_172.16.1.192_1054crg1.log`, lines(3)]
  ])
})

t.test('close() flushes what was written, without waiting for the interval to end', async (t) => {
  const clock = steppedClock(DOC_END - MINUTE)
  const { dir, writer } = writerIn(t, clock)
  const indexes = Array.from({ length: 2000 }, (_, index) => index)
  for (const index of indexes) writer.write(record(index))
  await writer.close()
  t.equal(fs.readFileSync(path.join(dir, `${PREFIX_5}20140215T2340Z_172.16.1.192_20sg8hgm.log`), 'latin1'), lines(...indexes))
})

t.test('a clock that goes back never closes a file; with none open, a new file for its own interval', async (t) => {
  const clock = steppedClock(DOC_END + MINUTE)
  const { dir, writer, timers } = writerIn(t, clock)
  writer.write(record(1))
  clock.set(DOC_END - MINUTE)
  writer.write(record(2))
  clock.set(DOC_END + 5 * MINUTE)
  timers.pending()[0]?.fire()
  clock.set(DOC_END - MINUTE)
  writer.write(record(3))
  await writer.close()
  t.strictSame(filesUnder(dir).map((name) => [name, fs.readFileSync(path.join(dir, name), 'latin1')]), [
    [`${PREFIX_5}20140215T2340Z_172.16.1.192_1054crg1.log`, lines(3)],
    [`${PREFIX_5}20140215T2345Z_172.16.1.192_20sg8hgm.log`, lines(1, 2)]
  ])
})

t.test('a file that cannot be created is reported once, never thrown; lines resume when it can', async (t) => {
  const clock = steppedClock(DOC_END - MINUTE)
  const { dir, writer, problems } = writerIn(t, clock)
  fs.writeFileSync(path.join(dir, 'AWSLogs'), 'a file where the folder should be')
  writer.write(record(1))
  writer.write(record(2))
  t.strictSame(filesUnder(dir), ['AWSLogs'], 'nothing written')
  t.equal(problems.length, 1, 'reported once')
  t.equal(problems[0]?.[0].kind, 'write-error')
  t.match(problems[0]?.[1], /^access log file .*AWSLogs.*20140215T2340Z.* cannot be created \((ENOTDIR|EEXIST)\): the proxy keeps serving/)
  fs.rmSync(path.join(dir, 'AWSLogs'))
  writer.write(record(3))
  t.equal(problems.length, 1, 'within a second of the failure no new attempt is made: the line is dropped')
  t.strictSame(filesUnder(dir), [], 'and no file was created')
  clock.set(DOC_END - MINUTE + REOPEN_DELAY_MICROS)
  writer.write(record(4))
  t.strictSame(problems[1]?.[0], { kind: 'written-again', droppedLines: 3 }, 'a second later, written again; three lines lost')
  await t.rejects(writer.close(), { code: /^(ENOTDIR|EEXIST)$/ }, 'close() rejects with the first error')
  t.strictSame(filesUnder(dir).map((name) => fs.readFileSync(path.join(dir, name), 'latin1')), [lines(4)])
})

t.test('a directory that cannot be created throws at once (before the proxy listens)', async (t) => {
  const file = path.join(t.testdir(), 'file')
  fs.writeFileSync(file, '')
  t.throws(() => createAccessLogDirWriter({
    dir: path.join(file, 'logs'),
    emitIntervalMinutes: 60,
    loadBalancerName: 'a',
    ipAddress: () => '127.0.0.1',
    clock: steppedClock(0)
  }), { code: /^(ENOTDIR|EEXIST)$/ })
})
