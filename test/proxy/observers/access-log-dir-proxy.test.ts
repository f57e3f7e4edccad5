import { EventEmitter, once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { Sink } from '../../helpers/sink.js'
import { run } from '../../../proxy/commands/cli.js'
import type { ClbProxyOptions } from '../../../proxy/core/options.js'
import { OptionError, resolveOptions } from '../../../proxy/core/resolve-options.js'
import { intervalEndMicros, formatEndTime } from '../../../proxy/observers/access-log-dir.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'

const silent = pino({ level: 'silent' })
const MINUTE = 60 * 1_000_000
/** 2014-02-15T23:40:00Z (spec §3.1's doc example end time), in microseconds. */
const DOC_END = Date.UTC(2014, 1, 15, 23, 40) * 1000
const TRY_HELP = "Try 'clb-proxy --help'\n"

/** A backend that answers every request with a 200 and closes. */
async function backend (t: Test): Promise<number> {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as net.AddressInfo).port
}

/** One request on its own connection; resolves when the proxy has closed it (the line is written before). */
async function request (port: number, target: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1')
  socket.end(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
  socket.resume()
  await once(socket, 'close')
}

/** Every file under dir, '/'-separated relative paths, sorted (so by end time). */
function filesUnder (dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((entry) => fs.statSync(path.join(dir, entry)).isFile())
    .map((entry) => entry.split(path.sep).join('/'))
    .sort()
}

function namePattern (name: string, end: string): RegExp {
  return new RegExp(`^AWSLogs/000000000000/elasticloadbalancing/us-east-1/${end.slice(0, 4)}/${end.slice(4, 6)}/${end.slice(6, 8)}/` +
    `000000000000_elasticloadbalancing_us-east-1_${name}_${end}_127\\.0\\.0\\.1_[a-z0-9]{8}\\.log$`)
}

t.test('the proxy: --access-log and --access-log-dir together get identical lines; the boundary splits them by the injected clock', async (t) => {
  const backendPort = await backend(t)
  const dir = path.join(t.testdir(), 'logs')
  const accessLog = path.join(t.testdir(), 'access.log')
  let now = DOC_END - 1
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backendPort}`], accessLog, accessLogDir: dir, emitIntervalMinutes: 5, name: 'dir-test', captureDir: null },
    { logger: silent, clock: { nowMicros: () => now } }
  )
  t.teardown(() => proxy.close())
  t.equal(proxy.options.accessLogDir, dir)
  await request(proxy.address.port, '/1')
  await request(proxy.address.port, '/2')
  now = DOC_END // exactly 23:40:00: the next file
  await request(proxy.address.port, '/3')
  await proxy.close()

  const files = filesUnder(dir)
  t.equal(files.length, 2, 'two files')
  t.match(files[0], namePattern('dir-test', '20140215T2340Z'), 'the interval ending 23:40, named as CLB names it')
  t.match(files[1], namePattern('dir-test', '20140215T2345Z'), 'the interval ending 23:45')
  const contents = files.map((file) => fs.readFileSync(path.join(dir, file), 'latin1'))
  const single = fs.readFileSync(accessLog, 'latin1')
  t.equal(contents.join(''), single, 'the files hold exactly the lines of --access-log, in order')
  t.strictSame(contents.map((content) => content.split('\n').slice(0, -1).map((line) => line.split(' ')[12])), [
    [`http://localhost:${proxy.address.port}/1`, `http://localhost:${proxy.address.port}/2`],
    [`http://localhost:${proxy.address.port}/3`]
  ], 'lines 1 and 2 before the boundary, line 3 after it')
})

t.test('the proxy: files are named with the listener\'s bound address ("localhost" is not an IP)', async (t) => {
  const backendPort = await backend(t)
  const dir = t.testdir()
  const now = DOC_END - MINUTE
  const proxy = await startClbProxy(
    { listen: 'localhost:0', backends: [`http://127.0.0.1:${backendPort}`], accessLog: null, accessLogDir: dir, captureDir: null },
    { logger: silent, clock: { nowMicros: () => now } }
  )
  t.teardown(() => proxy.close())
  const bound = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(proxy.address.port, 'localhost', () => {
      resolve(socket.remoteAddress ?? '')
      socket.end('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
      socket.resume()
    })
    socket.on('error', reject)
  })
  await proxy.waitFor(() => true)
  await proxy.close()
  const files = filesUnder(dir)
  t.equal(files.length, 1)
  t.ok(files[0]?.endsWith(`_clb-proxy_20140216T0000Z_${bound.replace(/:/g, '-')}_${files[0].slice(-12, -4)}.log`), `named with the bound address ${bound}, not "localhost"`)
})

t.test('options: accessLogDir and emitIntervalMinutes are checked like every field', async (t) => {
  const base = { backends: ['http://127.0.0.1:3000'] }
  t.equal(resolveOptions(base).accessLogDir, null, 'no directory by default')
  t.equal(resolveOptions(base).emitIntervalMinutes, 60, "CLB's default: 60 minutes")
  t.equal(resolveOptions({ ...base, emitIntervalMinutes: 5 }).emitIntervalMinutes, 5)
  t.equal(resolveOptions({ ...base, accessLogDir: '/tmp/x' }).accessLogDir, '/tmp/x')
  const cases: Array<[Partial<Record<string, unknown>>, string, string]> = [
    [{ emitIntervalMinutes: 15 }, 'emitIntervalMinutes', 'emitIntervalMinutes must be 5 or 60 minutes (CLB\'s EmitInterval values), got "15"'],
    [{ emitIntervalMinutes: 0 }, 'emitIntervalMinutes', 'emitIntervalMinutes must be 5 or 60 minutes (CLB\'s EmitInterval values), got "0"'],
    [{ emitIntervalMinutes: '5' }, 'emitIntervalMinutes', 'emitIntervalMinutes must be 5 or 60 minutes (CLB\'s EmitInterval values), got the string "5"'],
    [{ accessLogDir: '' }, 'accessLogDir', 'accessLogDir must be a directory path, or null for no access-log files laid out as in S3, got ""'],
    [{ accessLogDir: 7 }, 'accessLogDir', 'accessLogDir must be a directory path, or null for no access-log files laid out as in S3, got the number "7"']
  ]
  for (const [fields, field, message] of cases) {
    t.throws(() => resolveOptions({ ...base, ...fields } as ClbProxyOptions), OptionError, `${field} = ${String(fields[field])}: an OptionError`)
    t.throws(() => resolveOptions({ ...base, ...fields } as ClbProxyOptions), { code: 'CLB_INVALID_OPTION', field, message }, message)
  }
  await t.rejects(startClbProxy({ ...base, emitIntervalMinutes: 1 as 5 }, { logger: silent }), { code: 'CLB_INVALID_OPTION', field: 'emitIntervalMinutes' }, 'the library throws before any socket opens')
})

async function runCli (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  const stdout = new Sink()
  const stderr = new Sink()
  const code = await run(argv, env, { stdout, stderr, signals: new EventEmitter() })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

t.test('the CLI: a bad --emit-interval or CLB_EMIT_INTERVAL exits 2 naming what was set', async (t) => {
  const rule = "must be 5 or 60 minutes (CLB's EmitInterval values)"
  t.strictSame(await runCli(['--emit-interval', '15']), { code: 2, stdout: '', stderr: `clb-proxy: --emit-interval ${rule}, got "15"\n${TRY_HELP}` })
  t.strictSame(await runCli(['--emit-interval', 'hourly']), { code: 2, stdout: '', stderr: `clb-proxy: --emit-interval ${rule}, got "hourly"\n${TRY_HELP}` })
  t.strictSame(await runCli([], { CLB_EMIT_INTERVAL: '10' }), { code: 2, stdout: '', stderr: `clb-proxy: CLB_EMIT_INTERVAL ${rule}, got "10"\n${TRY_HELP}` })
  t.strictSame(await runCli(['--access-log-dir', '']), {
    code: 2,
    stdout: '',
    stderr: `clb-proxy: --access-log-dir must be a directory path, got ""\n${TRY_HELP}`
  })
})

t.test('the CLI: --access-log-dir DIR --emit-interval 5 writes the same lines as --access-log, in a file of the real clock\'s interval', async (t) => {
  const backendPort = await backend(t)
  const dir = path.join(t.testdir(), 'logs')
  const accessLog = path.join(t.testdir(), 'access.log')
  const stderr = new Sink()
  const signals = new EventEmitter()
  const before = Date.now() * 1000
  const exited = run(
    ['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${backendPort}`, '--access-log', accessLog, '--access-log-dir', dir],
    { CLB_EMIT_INTERVAL: '5', CLB_NAME: 'cli-dir' },
    { stdout: new Sink(), stderr, signals }
  )
  const [, port = ''] = await stderr.waitFor(/^clb-proxy: listening on http:\/\/127\.0\.0\.1:(\d+), /)
  await request(Number(port), '/')
  const after = Date.now() * 1000
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
  const files = filesUnder(dir)
  t.equal(files.length, 1, 'one file')
  const ends = new Set([intervalEndMicros(before, 5), intervalEndMicros(after, 5)].map(formatEndTime))
  t.ok([...ends].some((end) => namePattern('cli-dir', end).test(files[0] ?? '')), `${files[0]} is named for the interval ending ${[...ends].join(' or ')}`)
  t.equal(fs.readFileSync(path.join(dir, files[0] ?? ''), 'latin1'), fs.readFileSync(accessLog, 'latin1'), 'the same line as --access-log')
})
