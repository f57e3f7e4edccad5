/**
 * Observers whose destination fails while the proxy runs: an access log that cannot be written
 * (ENOSPC from /dev/full, a file deleted while open) and a capture directory that cannot be
 * created. Each failure is reported when it happens, once per kind, the proxy keeps serving, and
 * shutdown neither hangs nor loses the report.
 */
import { EventEmitter, once } from 'node:events'
import { readdir, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { createAccessLogWriter, MAX_WAITING_BYTES, type AccessLogProblem } from '../../../proxy/observers/access-log-writer.js'
import { subscribeCaptures } from '../../../proxy/observers/captures.js'
import type { CaptureOptions } from '../../../proxy/observers/capture-format.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { run } from '../../../proxy/commands/cli.js'
import { ClbProxyEvents, type ExchangeRecord } from '../../../proxy/core/events.js'
import { CLB_DEFAULTS } from '../../../proxy/core/options.js'
import { SAMPLE_RECORD, sampleExchangeRecord } from '../../helpers/records.js'
import { Sink } from '../../helpers/sink.js'

/** A pino logger keeping its records; `next(predicate)` resolves with the first matching record, kept or to come. */
function memoryLogger (): { logger: pino.Logger; records: Array<Record<string, unknown>>; next: (predicate: (record: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  const arrived = new EventEmitter()
  const logger = pino({ level: 'info', base: undefined, timestamp: false }, {
    write: (line: string) => {
      records.push(JSON.parse(line) as Record<string, unknown>)
      arrived.emit('record')
    }
  })
  const next = (predicate: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => new Promise((resolve) => {
    const check = (): void => {
      const found = records.find(predicate)
      if (found === undefined) return
      arrived.off('record', check)
      resolve(found)
    }
    arrived.on('record', check)
    check()
  })
  return { logger, records, next }
}

/** A problem collector for the writer's onProblem; `next(kind)` resolves once one of that kind arrived. */
function problemCollector (): { onProblem: (problem: AccessLogProblem, message: string) => void; problems: Array<[AccessLogProblem['kind'], string]>; next: (kind: AccessLogProblem['kind']) => Promise<void> } {
  const problems: Array<[AccessLogProblem['kind'], string]> = []
  const arrived = new EventEmitter()
  return {
    problems,
    onProblem: (problem, message) => {
      problems.push([problem.kind, message])
      arrived.emit(problem.kind)
    },
    next: async (kind) => {
      if (problems.some(([seen]) => seen === kind)) return
      await once(arrived, kind)
    }
  }
}

async function okBackend (t: Test): Promise<string> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined)
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      while (head.includes('\r\n\r\n')) {
        head = head.slice(head.indexOf('\r\n\r\n') + 4)
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
}

const WRITE_ERROR_DEV_FULL = 'access log /dev/full cannot be written (ENOSPC): the proxy keeps serving; lines wait in memory ' +
  '(up to 8 MiB) and are written if the destination recovers. Reported once per kind of error'

t.test('--access-log /dev/full: reported once when the first line fails, every request still served, close() rejects at once', async (t) => {
  const backend = await okBackend(t)
  const { logger, records, next } = memoryLogger()
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [backend], accessLog: '/dev/full', captureDir: null }, { logger })
  const first = await fetch(`${proxy.url}/1`)
  t.equal(await first.text(), 'ok')
  await next((record) => record.notice === 'access-log')
  for (let n = 2; n <= 5; n++) {
    const response = await fetch(`${proxy.url}/${n}`)
    t.equal(await response.text(), 'ok', `request ${n} served after the access log failed`)
  }
  await t.rejects(proxy.close(), { code: 'ENOSPC' }, 'close() still tries the waiting lines, then says they were lost')
  t.strictSame(records.map((record) => [record.level, record.notice, (record.err as { code?: string }).code, record.msg]), [
    [50, 'access-log', 'ENOSPC', WRITE_ERROR_DEV_FULL]
  ], 'five lines failed, one report')
})

t.test('a writer on /dev/full: lines wait up to MAX_WAITING_BYTES, then are dropped, reported once', async (t) => {
  const { onProblem, problems, next } = problemCollector()
  const writer = createAccessLogWriter({ destination: '/dev/full', onProblem })
  const line = 'x'.repeat(1000)
  const batch = Math.ceil(MAX_WAITING_BYTES / 2 / 1000) + 100
  for (let n = 0; n < batch; n++) writer.write({ ...SAMPLE_RECORD, userAgent: line })
  await next('write-error')
  for (let n = 0; n < batch; n++) writer.write({ ...SAMPLE_RECORD, userAgent: line })
  await next('lines-dropped')
  await t.rejects(writer.close(), { code: 'ENOSPC' })
  t.strictSame(problems, [
    ['write-error', WRITE_ERROR_DEV_FULL],
    ['lines-dropped', 'access log /dev/full: 8 MiB of lines are waiting for a destination that fails; new lines are dropped (and counted) until a write succeeds']
  ])
})

t.test('a stream that fails, then recovers: one report per kind of error, and one when lines are written again', async (t) => {
  const { onProblem, problems } = problemCollector()
  let failures = 3
  const stream = new Writable({
    write (_chunk, _encoding, done) {
      if (failures-- > 0) done(Object.assign(new Error('i/o error'), { code: 'EIO' }))
      else done()
    }
  })
  stream.on('error', () => undefined) // the stream's owner listens, as any owner must
  const writer = createAccessLogWriter({ stream, onProblem })
  for (let n = 0; n < 5; n++) writer.write(SAMPLE_RECORD)
  await t.rejects(writer.close(), { code: 'EIO' }, 'the lines that failed are lost: close() says so')
  t.strictSame(problems.map(([kind]) => kind), ['write-error'], 'a Writable stops at its first error: nothing after it')

  const recovering = problemCollector()
  let failing = 2
  const flaky = {
    write (_line: string, callback: (error?: Error | null) => void) {
      if (failing-- > 0) callback(Object.assign(new Error('i/o error'), { code: 'EIO' }))
      else callback(null)
      return true
    }
  } as unknown as NodeJS.WritableStream
  const flakyWriter = createAccessLogWriter({ stream: flaky, onProblem: recovering.onProblem })
  for (let n = 0; n < 4; n++) flakyWriter.write(SAMPLE_RECORD)
  await t.rejects(flakyWriter.close(), { code: 'EIO' })
  t.strictSame(recovering.problems, [
    ['write-error', 'access log (stream) cannot be written (EIO): the proxy keeps serving; lines wait in memory (up to 8 MiB) and are written if the destination recovers. Reported once per kind of error'],
    ['written-again', 'access log (stream) is written again']
  ])
})

t.test('an access-log file whose folder is removed while the proxy runs is reported when it happens', async (t) => {
  const backend = await okBackend(t)
  const folder = join(t.testdir(), 'logs')
  const file = join(folder, 'access.log')
  const { logger, records, next } = memoryLogger()
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [backend], accessLog: file, captureDir: null }, { logger })
  t.equal(await (await fetch(`${proxy.url}/before`)).text(), 'ok')
  await rm(folder, { recursive: true })
  // Found by the periodic check of the open file (every second), while the proxy serves.
  await next((record) => record.notice === 'access-log')
  t.equal(await (await fetch(`${proxy.url}/after`)).text(), 'ok')
  await proxy.close()
  t.strictSame(records.map((record) => [record.level, record.kind, record.file, record.msg]), [[
    50,
    'file-removed',
    file,
    `access log ${file} was deleted (or its folder removed) while the proxy writes to it: the lines go to ` +
      'the deleted file and are lost when the proxy stops. Create it again with SIGUSR2 (kill -USR2 <pid>; reopenAccessLog() in a library), or restart the proxy'
  ]])
})

function writerOptions (captureDir: string): CaptureOptions {
  return { ...CLB_DEFAULTS, captureDir, maxCaptures: 5 }
}

function rejectedRecord (micros: number): ExchangeRecord {
  return sampleExchangeRecord({ log: { receivedAtMicros: micros } })
}

t.test('a capture directory that stops working, then works again: one report, one recovery line, no file announced meanwhile', async (t) => {
  const parent = t.testdir()
  const captureDir = join(parent, 'x', 'captures')
  const { logger, records, next } = memoryLogger()
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(captureDir), logger)
  // Made uncreatable after the proxy started: a regular file where a parent folder should be.
  await writeFile(join(parent, 'x'), 'not a folder')
  const first = rejectedRecord(Date.UTC(2026, 10, 25, 8, 30, 40) * 1000)
  t.equal(captures.fileFor(first), join(captureDir, '2026-11-25T08-30-40.000000Z-502-CL_NOT_INTEGER-1.capture'), 'announced: nothing failed yet')
  events.emit('exchange', first)
  await next((record) => record.notice === 'capture-not-written')
  await rm(join(parent, 'x'))
  const second = rejectedRecord(Date.UTC(2026, 10, 25, 8, 30, 41) * 1000)
  events.emit('exchange', second)
  t.equal(captures.fileFor(second), null, 'not announced while the directory fails, but still tried')
  await next((record) => record.notice === 'capture-written-again')
  await captures.close()
  t.strictSame(records.map((record) => [record.level, record.msg]), [
    [50, `capture not written: ${captureDir} (ENOTDIR); the proxy keeps serving, and this is reported once per kind of error until a capture is written again`],
    [30, `captures are written to ${captureDir} again; 1 capture(s) were not written before`]
  ])
  t.strictSame(await readdir(captureDir), ['2026-11-25T08-30-41.000000Z-502-CL_NOT_INTEGER-2.capture'])
})

t.test('clb-proxy with --capture-dir under a regular file: reported once, every 502 served, SIGTERM stops it with 0', async (t) => {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined)
    socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello'))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const dir = t.testdir({ 'a-file': 'not a directory' })
  const captureDir = join(dir, 'a-file', 'captures')
  const stdout = new Sink()
  const stderr = Object.assign(new Sink(), { isTTY: true })
  const signals = new EventEmitter()
  const exited = run(['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    '--capture-dir', captureDir, '--access-log', join(dir, 'access.log')], {}, { stdout, stderr, signals })
  const [, proxyUrl = ''] = await stderr.waitFor(/^clb-proxy: listening on (http:\/\/127\.0\.0\.1:\d+), /m)
  for (const path of ['/a', '/b']) {
    const response = await fetch(`${proxyUrl}${path}`)
    t.equal(response.status, 502)
  }
  await stderr.waitFor(/ 502 GET \/b from /)
  signals.emit('SIGTERM')
  t.equal(await exited, 0, 'stopped on the first signal')
  const text = stderr.text.replace(/^\d\d:\d\d:\d\d /gm, 'HH:MM:SS ')
  t.equal(text.split(`capture directory not readable: ${captureDir} (ENOTDIR)`).length - 1, 1, 'reported once')
  t.ok(text.includes(`HH:MM:SS capture directory not readable: ${captureDir} (ENOTDIR); the proxy keeps serving, and this is ` +
    'reported once per kind of error until a capture is written again\n' +
    `         error: ENOTDIR: not a directory, scandir '${captureDir}'\n`), text)
  t.notOk(text.includes('capture:'), 'no diagnostic names a capture file that cannot be written')
  t.ok(text.endsWith(`HH:MM:SS 2 capture(s) were not written to ${captureDir}\n`), text)
})
