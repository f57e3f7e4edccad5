import t, { type Test } from 'tap'
import { SAMPLE_RECORD } from '../../helpers/records.js'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { formatAccessLogLine } from '../../../proxy/observers/access-log-format.js'
import type { AccessLogRecord } from '../../../proxy/core/access-log-record.js'
import { AccessLogWriterClosedError, createAccessLogWriter, describeAccessLogProblem, MAX_WAITING_BYTES } from '../../../proxy/observers/access-log-writer.js'
import { REPO_URL } from '../../helpers/repo.js'

const baseRecord: AccessLogRecord = SAMPLE_RECORD

/** N distinct records: every line differs, so a lost, repeated or reordered line shows. */
function records(count: number): AccessLogRecord[] {
  return Array.from({ length: count }, (_, index) => ({
    ...baseRecord,
    receivedAtMicros: baseRecord.receivedAtMicros + index,
    clientPort: 1024 + (index % 60000),
    target: `/item/${index}?pad=${'x'.repeat(index % 300)}`
  }))
}

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clb-access-log-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The open file descriptors of this process that point at `file` (Linux /proc). */
function fdsOpenOn(file: string): string[] {
  const target = fs.realpathSync(file)
  return fs.readdirSync('/proc/self/fd').filter(fd => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === target
    } catch {
      return false // the fd readdir itself used, already closed
    }
  })
}

t.test('file: N records in, exactly N formatted lines out, file closed', async t => {
  const file = path.join(tempDir(t), 'nested', 'dirs', 'access.log')
  const written = records(5000)
  const writer = createAccessLogWriter({ destination: file })
  for (const record of written) writer.write(record)
  t.equal(fdsOpenOn(file).length, 1, 'the writer holds the file open')
  await writer.close()
  t.strictSame(fdsOpenOn(file), [], 'close() closed the file')
  const content = fs.readFileSync(file, 'latin1')
  t.equal(content, written.map(record => `${formatAccessLogLine(record)}\n`).join(''), 'every line, in order, each ending in \\n')
  t.equal(content.split('\n').length - 1, 5000)
})

t.test('file: lines go out in batches, yet a lone line reaches the file without close() (BATCH_MS)', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  t.teardown(() => writer.close())
  const [first, second] = records(2) as [AccessLogRecord, AccessLogRecord]
  const changed = new Promise<void>(resolve => {
    const watcher = fs.watch(file, () => { watcher.close(); resolve() })
  })
  writer.write(first)
  writer.write(second)
  t.equal(fs.statSync(file).size, 0, 'nothing is written while the batch is open')
  // No more lines and no close(): the batch timer alone writes them, in one piece.
  await changed
  t.equal(fs.readFileSync(file, 'latin1'), `${formatAccessLogLine(first)}\n${formatAccessLogLine(second)}\n`)
})

t.test('file: a line longer than a whole batch is written whole, in its place', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  const [before, after] = records(2) as [AccessLogRecord, AccessLogRecord]
  // Every byte of the target and the user agent is percent-encoded: three bytes out for each byte in.
  const long: AccessLogRecord = { ...baseRecord, target: `/${'\x01'.repeat(20_000)}`, userAgent: '\x7f'.repeat(8192) }
  const longLine = formatAccessLogLine(long)
  t.ok(longLine.length > 64 * 1024, `the line is ${longLine.length} bytes, more than a batch`)
  writer.write(before)
  writer.write(long)
  writer.write(after)
  await writer.close()
  t.equal(fs.readFileSync(file, 'latin1'), `${formatAccessLogLine(before)}\n${longLine}\n${formatAccessLogLine(after)}\n`)
})

t.test('file: lines that fill a batch to its last byte, then the next line, are written whole and in order', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  // Two lines whose bytes, newlines included, are exactly one 64 KiB batch: every target char is
  // log-safe, so each adds one byte to the line.
  const lineBytes = (record: AccessLogRecord): number => formatAccessLogLine(record).length + 1
  const first: AccessLogRecord = { ...baseRecord, target: `/first/${'a'.repeat(30_000)}` }
  const unpadded: AccessLogRecord = { ...baseRecord, target: '/second/' }
  const second: AccessLogRecord = { ...unpadded, target: `/second/${'b'.repeat(64 * 1024 - lineBytes(first) - lineBytes(unpadded))}` }
  t.equal(lineBytes(first) + lineBytes(second), 64 * 1024, 'the two lines fill the batch exactly')
  const [third] = records(1) as [AccessLogRecord]
  // A line one byte longer than a whole batch goes alone; one that is a whole batch, newline included, does not.
  const wholeBatch: AccessLogRecord = { ...unpadded, target: `/second/${'c'.repeat(64 * 1024 - lineBytes(unpadded))}` }
  t.equal(lineBytes(wholeBatch), 64 * 1024)
  const overBatch: AccessLogRecord = { ...wholeBatch, target: `${wholeBatch.target ?? ''}d` }
  const written = [first, second, third, wholeBatch, third, overBatch, third]
  for (const record of written) writer.write(record)
  await writer.close()
  t.equal(fs.readFileSync(file, 'latin1'), written.map(record => `${formatAccessLogLine(record)}\n`).join(''))
})

t.test('file: a record that throws (a bug in the caller) leaves no partial line in the batch', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  const [before, after] = records(2) as [AccessLogRecord, AccessLogRecord]
  writer.write(before)
  // The line is written up to its client port before the bad number is found.
  t.throws(() => writer.write({ ...before, clientPort: -1 }), RangeError)
  t.throws(() => writer.write({ ...before, sentBytes: 1.5 }), RangeError)
  writer.write(after)
  await writer.close()
  t.equal(fs.readFileSync(file, 'latin1'), `${formatAccessLogLine(before)}\n${formatAccessLogLine(after)}\n`)
})

t.test('file: a line written from inside a flush (a problem reported while the batch is handed over) is kept', async t => {
  const file = path.join(tempDir(t), 'access.log')
  let dropped = false
  const marker: AccessLogRecord = { ...baseRecord, elbName: 'marker', target: '/marker' }
  // SonicBoom reports its drop from inside write(): a listener that logs a line then writes to the
  // writer while it is between flushing its batch and writing the line that did not fit.
  const writer = createAccessLogWriter({
    destination: file,
    onProblem: problem => {
      if (problem.kind !== 'lines-dropped' || dropped) return
      dropped = true
      writer.write(marker)
    }
  })
  const long: AccessLogRecord = { ...baseRecord, target: `/${'a'.repeat(1000)}` }
  let lines = 0
  while (!dropped && lines < 100_000) {
    writer.write(long)
    lines++
  }
  t.ok(dropped, `the drop was reported after ${lines} lines`)
  await writer.close()
  const content = fs.readFileSync(file, 'latin1')
  t.ok(content.includes(`${formatAccessLogLine(marker)}\n`), 'the line written during the flush is in the file')
  t.ok(content.endsWith(`${formatAccessLogLine(long)}\n`), 'and so is the line being written when it came')
})

t.test('file: a log moved away (log rotation) is reported once; its lines still go to the moved file', async t => {
  const dir = tempDir(t)
  for (const rotation of ['moved', 'moved, then a new file created at the path'] as const) {
    const file = path.join(dir, `${rotation === 'moved' ? 'a' : 'b'}.log`)
    const problems: Array<[string, string]> = []
    let reported: () => void = () => {}
    const heard = new Promise<void>(resolve => { reported = resolve })
    const writer = createAccessLogWriter({ destination: file, onProblem: (problem, message) => { problems.push([problem.kind, message]); reported() } })
    const [before, after] = records(2) as [AccessLogRecord, AccessLogRecord]
    writer.write(before)
    fs.renameSync(file, `${file}.1`)
    if (rotation !== 'moved') fs.writeFileSync(file, '')
    // Found by the periodic check of the open file (every second). Its timer is unref'd (it never
    // keeps a process alive): a ref'd handle does, while this test waits.
    const keepAlive = setInterval(() => {}, 60_000)
    await heard
    clearInterval(keepAlive)
    writer.write(after)
    await writer.close()
    t.strictSame(problems, [['file-moved', `access log ${file} was moved or replaced while the proxy writes to it (log rotation?): ` +
      `the lines still go to the moved file, not to ${file}. Reopen ${file} with SIGUSR2 (kill -USR2 <pid>; reopenAccessLog() in a library), or rotate with copytruncate`]], rotation)
    t.equal(fs.readFileSync(`${file}.1`, 'latin1'), `${formatAccessLogLine(before)}\n${formatAccessLogLine(after)}\n`, `${rotation}: every line in the moved file`)
  }
})

t.test('file: reopen() after a rotation: the lines before go to the moved file, the lines after to a new file at the path', async t => {
  const dir = tempDir(t)
  for (const rotation of ['moved', 'moved, then a new file created at the path'] as const) {
    const file = path.join(dir, `${rotation === 'moved' ? 'a' : 'b'}.log`)
    const problems: string[] = []
    const writer = createAccessLogWriter({ destination: file, onProblem: (problem) => problems.push(problem.kind) })
    const [first, second, third] = records(3) as [AccessLogRecord, AccessLogRecord, AccessLogRecord]
    writer.write(first)
    writer.write(second)
    fs.renameSync(file, `${file}.1`)
    if (rotation !== 'moved') fs.writeFileSync(file, 'made by logrotate\n')
    t.equal(writer.reopen(), true, `${rotation}: reopened`)
    writer.write(third)
    await writer.close()
    t.equal(fs.readFileSync(`${file}.1`, 'latin1'), `${formatAccessLogLine(first)}\n${formatAccessLogLine(second)}\n`, `${rotation}: the lines before, in the moved file`)
    t.equal(fs.readFileSync(file, 'latin1'), `${rotation === 'moved' ? '' : 'made by logrotate\n'}${formatAccessLogLine(third)}\n`, `${rotation}: the line after, appended at the path`)
    t.strictSame(problems, [], `${rotation}: no problem reported`)
    t.strictSame([...fdsOpenOn(file), ...fdsOpenOn(`${file}.1`)], [], `${rotation}: both files closed`)
    t.equal(writer.reopen(), false, `${rotation}: no reopen after close()`)
  }
})

t.test('file: reopen() on a running writer releases the moved file while it goes on writing', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  const [first, second] = records(2) as [AccessLogRecord, AccessLogRecord]
  writer.write(first)
  // Past the stream's first tick (its 'ready'), as in a proxy that has been serving.
  await new Promise(resolve => setImmediate(resolve))
  fs.renameSync(file, `${file}.1`)
  t.equal(writer.reopen(), true)
  // The old fd is closed once the new file is open: a few turns of the event loop.
  let turns = 0
  while (fdsOpenOn(`${file}.1`).length > 0 && turns < 1000) {
    await new Promise(resolve => setImmediate(resolve))
    turns++
  }
  t.strictSame(fdsOpenOn(`${file}.1`), [], 'the moved file is closed')
  t.equal(fdsOpenOn(file).length, 1, 'the new file is open')
  writer.write(second)
  await writer.close()
  t.equal(fs.readFileSync(`${file}.1`, 'latin1'), `${formatAccessLogLine(first)}\n`)
  t.equal(fs.readFileSync(file, 'latin1'), `${formatAccessLogLine(second)}\n`)
  t.strictSame(fdsOpenOn(file), [])
})

t.test('file: a reopen that cannot open the path is reported; the lines keep going to the open file', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const problems: Array<[string, string]> = []
  const writer = createAccessLogWriter({ destination: file, onProblem: (problem, message) => problems.push([problem.kind, message]) })
  const [first, second] = records(2) as [AccessLogRecord, AccessLogRecord]
  writer.write(first)
  await new Promise(resolve => setImmediate(resolve))
  fs.renameSync(file, `${file}.1`)
  fs.mkdirSync(file)
  t.equal(writer.reopen(), false, 'not reopened')
  writer.write(second)
  await writer.close()
  t.strictSame(problems[0], ['reopen-failed', `access log ${file} could not be reopened (EISDIR): the lines still go to the file open before, wherever it was moved`])
  t.strictSame(problems.map(([kind]) => kind), ['reopen-failed', 'file-moved'], 'the moved file is still reported (close() looks once more)')
  t.equal(fs.readFileSync(`${file}.1`, 'latin1'), `${formatAccessLogLine(first)}\n${formatAccessLogLine(second)}\n`, 'every line, in the file still open')
  t.strictSame(fdsOpenOn(`${file}.1`), [])
})

t.test('reopen() where there is no file of ours: stdout and a caller\'s stream', async t => {
  const stream = new PassThrough()
  const writer = createAccessLogWriter({ stream })
  t.equal(writer.reopen(), false, 'a caller\'s stream')
  await writer.close()
  const stdoutWriter = createAccessLogWriter({ destination: '-' })
  t.equal(stdoutWriter.reopen(), false, 'stdout')
  await stdoutWriter.close()
})

t.test('file: appends to an existing log', async t => {
  const file = path.join(tempDir(t), 'access.log')
  fs.writeFileSync(file, 'previous line\n')
  const writer = createAccessLogWriter({ destination: file })
  writer.write(baseRecord)
  await writer.close()
  t.equal(fs.readFileSync(file, 'latin1'), `previous line\n${formatAccessLogLine(baseRecord)}\n`)
})

t.test('file: close() right after creation, with nothing written, leaves an empty closed file', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  await writer.close()
  t.equal(fs.readFileSync(file, 'latin1'), '')
  t.strictSame(fdsOpenOn(file), [])
})

t.test('close is idempotent and write after close is refused', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const writer = createAccessLogWriter({ destination: file })
  writer.write(baseRecord)
  const first = writer.close()
  const second = writer.close()
  t.equal(first, second, 'the same promise')
  await first
  t.equal(await writer.close(), undefined, 'a third call after completion resolves too')
  t.throws(() => writer.write(baseRecord), { name: 'AccessLogWriterClosedError', code: 'ERR_ACCESS_LOG_WRITER_CLOSED' })
  t.equal(fs.readFileSync(file, 'latin1'), `${formatAccessLogLine(baseRecord)}\n`, 'one line, not duplicated by the extra close() calls')
})

t.test('a destination that cannot be opened fails at creation, synchronously', async t => {
  const dir = tempDir(t)
  t.throws(() => createAccessLogWriter({ destination: dir }), { code: 'EISDIR' }, 'a directory')
  const plainFile = path.join(dir, 'plain')
  fs.writeFileSync(plainFile, '')
  t.throws(() => createAccessLogWriter({ destination: path.join(plainFile, 'access.log') }), { code: 'EEXIST' }, 'below a regular file (mkdir -p reports the file as EEXIST)')
})

t.test('file: a write error (ENOSPC from /dev/full) is reported by close(), and the fd is released', async t => {
  const writer = createAccessLogWriter({ destination: '/dev/full' })
  writer.write(baseRecord)
  t.equal(fdsOpenOn('/dev/full').length, 1)
  await t.rejects(writer.close(), { code: 'ENOSPC' })
  t.strictSame(fdsOpenOn('/dev/full'), [], 'closed despite the error')
  await t.rejects(writer.close(), { code: 'ENOSPC' }, 'the same outcome on a second call')
})

t.test('file: past MAX_WAITING_BYTES of lines that cannot be written, new lines are dropped and that is reported once', async t => {
  const problems: string[] = []
  const writer = createAccessLogWriter({ destination: '/dev/full', onProblem: problem => problems.push(problem.kind) })
  const line = `${formatAccessLogLine(baseRecord)}\n`
  const enough = Math.ceil(MAX_WAITING_BYTES / line.length) + 1000
  for (let n = 0; n < enough; n++) writer.write(baseRecord)
  await t.rejects(writer.close(), { code: 'ENOSPC' })
  // All the lines are queued before the first write fails, so the drop is heard of first.
  t.strictSame(problems, ['lines-dropped', 'write-error'], 'the drop and the write error, each once')
})

/** A caller-owned stream that acknowledges each chunk on a later turn, as a slow disk or pipe would. */
function slowSink(): { stream: Writable; acknowledged: string[] } {
  const acknowledged: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      setImmediate(() => {
        acknowledged.push(chunk.toString('latin1'))
        callback()
      })
    }
  })
  return { stream, acknowledged }
}

t.test('stream: close() waits until the stream has taken every line, and does not end the stream', async t => {
  const { stream, acknowledged } = slowSink()
  const written = records(500)
  const writer = createAccessLogWriter({ stream })
  for (const record of written) writer.write(record)
  t.equal(acknowledged.length, 0, 'nothing acknowledged yet when write() returns')
  await writer.close()
  t.strictSame(acknowledged, written.map(record => `${formatAccessLogLine(record)}\n`), 'all lines, in order, one chunk each')
  t.equal(stream.writableEnded, false, 'the caller owns the stream: not ended')
  t.equal(writer.close(), writer.close(), 'idempotent')
  t.throws(() => writer.write(baseRecord), AccessLogWriterClosedError)
  stream.end()
})

t.test('stream: close() with nothing written resolves at once', async t => {
  const { stream, acknowledged } = slowSink()
  await createAccessLogWriter({ stream }).close()
  t.strictSame(acknowledged, [])
  stream.end()
})

t.test('stream: a write error is reported by close()', async t => {
  const failure = new Error('disk full')
  const stream = new Writable({
    write(_chunk, _encoding, callback) {
      callback(failure)
    }
  })
  const streamErrors: Error[] = []
  stream.on('error', error => streamErrors.push(error)) // the stream's owner listens, as any owner must
  const writer = createAccessLogWriter({ stream })
  writer.write(baseRecord)
  await t.rejects(writer.close(), failure)
  t.strictSame(streamErrors, [failure])
})

t.test("stdout ('-'): lines reach fd 1, close() flushes them and stdout stays open", async t => {
  const written = records(3)
  const writerModule = new URL('proxy/observers/access-log-writer.js', REPO_URL).href
  // A child process, so the lines do not mix with this file's TAP output. process.execArgv
  // carries tap's TypeScript loader, which lets the child import the .ts source.
  const childSource = `
    const { createAccessLogWriter } = await import(${JSON.stringify(writerModule)})
    const writer = createAccessLogWriter({ destination: '-' })
    for (const record of JSON.parse(process.env.RECORDS)) writer.write(record)
    await writer.close()
    process.stdout.write('stdout still open after close\\n')
  `
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', childSource], {
    env: { ...process.env, RECORDS: JSON.stringify(written) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('latin1').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exitCode = await new Promise<number | null>(resolve => child.on('close', resolve))
  t.equal(stderr, '', 'no error output')
  t.equal(exitCode, 0)
  t.equal(stdout, `${written.map(record => `${formatAccessLogLine(record)}\n`).join('')}stdout still open after close\n`)
})

/** Runs `source` (an ES module body) in a child process with tap's TypeScript loader; its exit code and signal, and stderr. */
async function runChild(t: Test, source: string, env: Record<string, string>, onSpawn?: (child: ReturnType<typeof spawn>) => void): Promise<{ exit: [number | null, NodeJS.Signals | null]; stderr: string }> {
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', source], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  onSpawn?.(child)
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  // A bound, not a wait: a child that hangs is killed, so the test fails instead of stalling.
  const hung = setTimeout(() => child.kill('SIGKILL'), 20_000)
  t.teardown(() => clearTimeout(hung))
  const exit = await new Promise<[number | null, NodeJS.Signals | null]>(resolve => child.on('close', (code, signal) => resolve([code, signal])))
  return { exit, stderr }
}

const writerModuleUrl = new URL('proxy/observers/access-log-writer.js', REPO_URL).href

/** Runs `body` in a child that has imported createAccessLogWriter and parsed one `record`; it must end by itself, saying nothing. */
async function childEndsByItself(t: Test, body: string, onSpawn?: (child: ReturnType<typeof spawn>) => void): Promise<void> {
  const { exit, stderr } = await runChild(t, `
    const { createAccessLogWriter } = await import(${JSON.stringify(writerModuleUrl)})
    const [record] = JSON.parse(process.env.RECORDS)
    ${body}
  `, { RECORDS: JSON.stringify(records(1)) }, onSpawn)
  t.equal(stderr, '', 'no error output')
  t.strictSame(exit, [0, null], 'exited by itself')
}

t.test('file: a process that exits without close() still writes the lines of its open batch', async t => {
  const file = path.join(tempDir(t), 'access.log')
  const written = records(3)
  // The lines are still in the batch (BATCH_MS has not passed) when the process exits.
  const { exit, stderr } = await runChild(t, `
    const { createAccessLogWriter } = await import(${JSON.stringify(writerModuleUrl)})
    const writer = createAccessLogWriter({ destination: process.env.LOG_FILE })
    for (const record of JSON.parse(process.env.RECORDS)) writer.write(record)
    process.exit(0)
  `, { RECORDS: JSON.stringify(written), LOG_FILE: file })
  t.equal(stderr, '', 'no error output')
  t.strictSame(exit, [0, null])
  t.equal(fs.readFileSync(file, 'latin1'), written.map(record => `${formatAccessLogLine(record)}\n`).join(''), 'all three lines, in order')
})

t.test('file: a process that exits without close() while its log cannot be written still ends', async t => {
  // A synchronous flush at exit that retried ENOSPC would never end.
  await childEndsByItself(t, `
    const writer = createAccessLogWriter({
      destination: '/dev/full',
      onProblem: problem => {
        if (problem.kind !== 'write-error') return
        writer.write(record)
        process.exit(0)
      }
    })
    writer.write(record)
  `)
})

t.test('file: it also ends when the write that fails is still in flight at exit', async t => {
  // More than a batch in one turn: one batch is being written (its ENOSPC not yet known), the
  // next waits in SonicBoom's queue, the last is in the writer's batch when the process exits.
  await childEndsByItself(t, `
    const writer = createAccessLogWriter({ destination: '/dev/full' })
    for (let n = 0; n < 3000; n++) writer.write(record)
    process.exit(0)
  `)
})

t.test("stdout ('-'): a process whose stdout reader went away ends at exit without close()", async t => {
  // The parent closes its end of the child's stdout first, so every write gets EPIPE; the child
  // writes once told to (stdin), then exits before any error has come back.
  await childEndsByItself(t, `
    const writer = createAccessLogWriter({ destination: '-' })
    process.stdin.once('data', () => {
      for (let n = 0; n < 3000; n++) writer.write(record)
      process.exit(0)
    })
  `, child => {
    child.stdout?.destroy()
    child.stdin?.write('go\n')
  })
})

t.test("stdout ('-'): at exit, a reader that stopped reading is waited for a bounded time", async t => {
  // The parent never reads: the pipe fills, and writes to it get EAGAIN (process.stdout, once
  // touched, makes the pipe non-blocking). SonicBoom's own flush retried EAGAIN for ever.
  await childEndsByItself(t, `
    process.stdout.on('error', () => {})
    const writer = createAccessLogWriter({ destination: '-' })
    for (let n = 0; n < 20000; n++) writer.write(record)
    process.exit(0)
  `, child => child.stdout?.pause())
})

t.test('a reader that went away (EPIPE) is described as the end of logging, not as lines that wait', async t => {
  const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })
  t.equal(describeAccessLogProblem({ kind: 'write-error', error: epipe }, 'stdout'),
    'access log stdout cannot be written (EPIPE: its reader went away): the proxy keeps serving; ' +
    'from now on access-log lines are dropped, uncounted. Restart the proxy with a reader to log again')
})

t.test("stdout ('-'): a close() that waits for a reader that stopped reading says so, and ends when it reads again", async t => {
  let stdout = ''
  let readerStarted = false
  const { exit, stderr } = await runChild(t, `
    const { createAccessLogWriter } = await import(${JSON.stringify(writerModuleUrl)})
    const [record] = JSON.parse(process.env.RECORDS)
    const writer = createAccessLogWriter({ destination: '-', onProblem: (problem, message) => process.stderr.write(message + '\\n') })
    // Far more than a pipe holds: the writes wait for the parent, which reads only once told.
    for (let n = 0; n < 20000; n++) writer.write(record)
    await writer.close()
    process.stderr.write('closed\\n')
  `, { RECORDS: JSON.stringify(records(1)) }, child => {
    child.stdout?.pause()
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (readerStarted || !chunk.includes('stopping waits for')) return
      readerStarted = true
      child.stdout?.setEncoding('latin1').on('data', (text: string) => (stdout += text)).resume()
    })
  })
  t.match(stderr, /^access log stdout: stopping waits for \d+ bytes of lines the destination has not taken yet \(a reader that stopped reading\?\)\nclosed\n$/)
  t.strictSame(exit, [0, null])
  t.equal(stdout, `${formatAccessLogLine(records(1)[0] as AccessLogRecord)}\n`.repeat(20000), 'every line, once the reader reads')
})

t.test('one exit listener for all open writers, none once they are closed', async t => {
  const dir = tempDir(t)
  const ours = (): number => process.listeners('exit').filter(listener => listener.name === 'runAll').length
  const writers = Array.from({ length: 12 }, (_, n) => createAccessLogWriter({ destination: path.join(dir, `${n}.log`) }))
  t.equal(ours(), 1, 'twelve writers, one listener')
  await Promise.all(writers.map(writer => writer.close()))
  t.equal(ours(), 0, 'removed with the last writer')
})

t.test("stdout ('-'): a reader that went away (EPIPE) makes close() reject instead of hanging or crashing", async t => {
  const writerModule = new URL('proxy/observers/access-log-writer.js', REPO_URL).href
  // The child waits for 'go' on stdin, sent only after this side has closed the stdout pipe,
  // so its writes meet a pipe without a reader, as with `clb-proxy | head -1`.
  const childSource = `
    const { createAccessLogWriter } = await import(${JSON.stringify(writerModule)})
    const writer = createAccessLogWriter({ destination: '-' })
    process.stderr.write('ready\\n')
    process.stdin.once('data', async () => {
      for (const record of JSON.parse(process.env.RECORDS)) writer.write(record)
      try {
        await writer.close()
        process.stderr.write('close resolved\\n')
      } catch (error) {
        process.stderr.write('close rejected ' + error.code + '\\n')
      }
      process.stdin.destroy()
    })
  `
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', childSource], {
    env: { ...process.env, RECORDS: JSON.stringify(records(100)) },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
    if (stderr === 'ready\n') {
      child.stdout.destroy()
      child.stdin.write('go')
    }
  })
  const exitCode = await new Promise<number | null>(resolve => child.on('close', resolve))
  t.equal(stderr, 'ready\nclose rejected EPIPE\n')
  t.equal(exitCode, 0, 'no uncaught error, no crash at exit')
})
