import { execFileSync, spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { open, readFile, rename } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Sink } from '../../helpers/sink.js'
import { forTheCommandLine, run } from '../../../proxy/commands/cli.js'
import { OPTION_RULES } from '../../../proxy/core/resolve-options.js'
import { OPTION_FLAGS, helpText } from '../../../proxy/commands/option-flags.js'
import { REPO_URL } from '../../helpers/repo.js'


interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const stdout = new Sink()
  const stderr = new Sink()
  const code = await run(argv, env, { stdout, stderr, signals: new EventEmitter() })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

const TRY_HELP = "Try 'clb-proxy --help'\n"
const packageVersion = (JSON.parse(readFileSync(new URL('package.json', REPO_URL), 'utf8')) as { version: string })
  .version

/** A plain TCP server on port 0, tracked for teardown. */
async function listeningServer(t: Test, onConnection: (socket: net.Socket) => void = () => undefined): Promise<net.Server> {
  const server = net.createServer(onConnection)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

/** A backend that answers each connection's first request with a 200 `ok` and closes it. */
function answeringOk(t: Test): Promise<net.Server> {
  return listeningServer(t, (socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'))
  })
}

function portOf(server: net.Server): number {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('bug: a TCP server without a port')
  return address.port
}

async function connectionCount(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))))
}

/** Whether something accepts TCP connections on host:port (ECONNREFUSED means nothing listens). */
async function isListening(host: string, port: number): Promise<boolean> {
  const socket = net.connect(port, host)
  try {
    await once(socket, 'connect')
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return false
    throw error
  } finally {
    socket.destroy()
  }
}

t.test('--help lists every flag with its environment variable, default and unit', async (t) => {
  for (const argv of [['--help'], ['-h'], ['--idle-timeout', '0', '--help']]) {
    const outcome = await runCli(argv)
    t.strictSame(outcome, { code: 0, stdout: helpText(), stderr: '' }, argv.join(' '))
  }
  const help = helpText()
  for (const option of OPTION_FLAGS) {
    t.ok(help.includes(`  --${option.flag} ${option.valueName}\n`), `--${option.flag}`)
    const list = option.multiple ? ' (comma-separated)' : ''
    t.ok(help.includes(`      env ${option.env}${list}; default ${option.defaultText}\n`), option.env)
  }
  for (const command of ['check', 'replay', 'analyze']) t.match(help, new RegExp(`^ +clb-proxy ${command} \\S+ .*\\(clb-proxy ${command} --help\\)$`, 'm'), `the usage names ${command}`)
  t.strictSame(help.split('\n').filter((line) => line.length > 100), [], 'no line is wider than 100 columns')
  t.ok(help.includes('env CLB_IDLE_TIMEOUT; default 60 s\n'), 'the idle timeout says its unit')
  t.ok(help.includes('env CLB_MAX_HEAD; default 65536 bytes (64 KiB)\n'), 'sizes say their unit')
})

t.test('--version prints the version from package.json', async (t) => {
  t.strictSame(await runCli(['--version']), { code: 0, stdout: `clb-proxy ${packageVersion}\n`, stderr: '' })
})

t.test('command-line mistakes exit 2 and name the argument', async (t) => {
  const cases: ReadonlyArray<readonly [string[], string]> = [
    [['--idel-timeout', '5'], "unknown option '--idel-timeout'"],
    [['-x'], "unknown option '-x'"],
    [['--constructor'], "unknown option '--constructor'"],
    [['--listen'], "option '--listen' needs a value (--listen HOST:PORT)"],
    [['--backend'], "option '--backend' needs a value (--backend URL)"],
    [
      ['--listen', '--backend', 'http://a'],
      "option '--listen' needs a value, but the next argument \"--backend\" looks like an option (write --listen=--backend if it is the value)"
    ],
    [
      ['--idle-timeout', '-1'],
      "option '--idle-timeout' needs a value, but the next argument \"-1\" looks like an option (write --idle-timeout=-1 if it is the value)"
    ],
    [['--help=yes'], "option '--help' does not take a value"],
    [['serve'], 'unexpected argument "serve" (clb-proxy takes options, or a command first: check, replay, analyze)'],
    [['analyse', 'x.log'], 'unexpected argument "analyse" (clb-proxy takes options, or a command first: check, replay, analyze)'],
    [['--', '--listen'], 'unexpected argument "--listen" (clb-proxy takes options, or a command first: check, replay, analyze)']
  ]
  for (const [argv, message] of cases) {
    t.strictSame(await runCli(argv), { code: 2, stdout: '', stderr: `clb-proxy: ${message}\n${TRY_HELP}` }, argv.join(' '))
  }
})

t.test('a bad flag value exits 2 naming the flag and quoting the text typed', async (t) => {
  const cases: ReadonlyArray<readonly [string[], string]> = [
    [
      ['--listen', 'nope'],
      '--listen must be HOST:PORT with a port from 0 to 65535 (IPv6 as [::1]:8080; port 0 picks a free port), got "nope"'
    ],
    [
      ['--backend', 'http://127.0.0.1:3000', '--backend', 'tcp://a'],
      '--backend must name a port: tcp:// has no default port, got "tcp://a"'
    ],
    [
      ['--backend', 'http://127.0.0.1:3000', '--listener', 'tcp://127.0.0.1:0'],
      '--listener has no instance it may route to: a TCP listener routes to TCP or SSL instances only (CLB\'s listener pairing), so give a tcp:// or ssl:// --backend, got "tcp://127.0.0.1:0"'
    ],
    [['--listen', '127.0.0.1:0', '--listener', 'http://127.0.0.1:0'], '--listen cannot be combined with --listener: give one HTTP listener with --listen, or every listener with --listener, got "127.0.0.1:0"'],
    [['--security-policy', 'ELBSecurityPolicy-2015-05'], '--security-policy must be one of CLB\'s predefined security policies: ELBSecurityPolicy-2016-08, ELBSecurityPolicy-TLS-1-2-2017-01, got "ELBSecurityPolicy-2015-05"'],
    [['--listener', 'http://127.0.0.1:7001', '--listener', 'tcp://127.0.0.1:7001', '--backend', 'http://a:1', '--backend', 'tcp://a:2'], '--listener uses the same address as --listener number 1: each listener needs its own port, got "tcp://127.0.0.1:7001"'],
    [['--max-headers', 'many'], '--max-headers must be an integer from 1 to 10000, got "many"'],
    [['--sticky-app-cookie', 'AWSELB'], '--sticky-app-cookie must be a cookie name (RFC 6265 token characters, not AWSELB or AWSELBCORS), got "AWSELB"'],
    [
      ['--health-check', 'FOO'],
      '--health-check must be a CLB health-check target: HTTP:PORT/PATH, HTTPS:PORT/PATH, TCP:PORT or SSL:PORT (without PORT: each instance\'s own port, e.g. HTTP:/health or TCP) ' +
        '(unknown protocol "FOO": expected PROTOCOL:PORT/PATH (HTTP, HTTPS) or PROTOCOL:PORT (TCP, SSL), e.g. HTTP:80/health or TCP:5000), got "FOO"'
    ],
    // API-HC: the timeout must be less than the interval. The user typed the interval: it is named, with the default timeout it meets.
    [['--health-check', 'TCP', '--health-interval', '5'], '--health-interval must be more than the health-check timeout (5 s, --health-timeout\'s default, to be lowered too for a shorter interval; API-HC: "This value must be less than the Interval value"), got "5"'],
    [['--health-check', 'TCP', '--health-timeout', '30'], '--health-timeout must be less than the health-check interval (30 s; API-HC: "This value must be less than the Interval value"), got "30"'],
    [['--tls-cert', 'c.pem'], '--tls-cert must be given together with --tls-key (a certificate and its private key), got "c.pem"'
    ],
    // CLB-LISTEN pairing, the mirror of a listener with no instance: an instance no listener routes to.
    [['--backend', 'http://127.0.0.1:9', '--backend', 'tcp://127.0.0.1:9'], '--backend is a tcp:// instance, which only TCP or SSL listeners route to (CLB\'s listener pairing), and no listener is one: add a TCP or SSL listener, or leave the instance out, got "tcp://127.0.0.1:9"'],
    [['--access-log='], "--access-log must be a file path or '-' for stdout, got \"\""],
    [
      ['--name=-elb'],
      '--name must be 1 to 32 characters, only ASCII letters, digits or hyphens, not starting or ending with a hyphen (CLB load balancer name rules), got "-elb"'
    ],
    [['--idle-timeout', '0'], `--idle-timeout must be an integer from 1 to 4000 (CLB's range), got "0"`],
    [['--idle-timeout', '1.5'], `--idle-timeout must be an integer from 1 to 4000 (CLB's range), got "1.5"`],
    [['--idle-timeout', 'soon'], `--idle-timeout must be an integer from 1 to 4000 (CLB's range), got "soon"`],
    [['--idle-timeout=-5'], `--idle-timeout must be an integer from 1 to 4000 (CLB's range), got "-5"`],
    [['--response-buffer', '2g'], '--response-buffer must be an integer from 0 to 1073741824 bytes (1 GiB), got "2g"'],
    [
      ['--response-buffer', '1MB'],
      '--response-buffer must be an integer from 0 to 1073741824 bytes (1 GiB); sizes may be written 65536, 64k, 64KiB, 1m or 1MiB, got "1MB"'
    ],
    [['--max-head', '2m'], '--max-head must be an integer from 1024 to 1048576 bytes (1 KiB to 1 MiB), got "2m"'],
    [['--max-head', '512'], '--max-head must be an integer from 1024 to 1048576 bytes (1 KiB to 1 MiB), got "512"'],
    [['--profile', 'loose'], `--profile must be 'clb' or 'strict', got "loose"`],
    [['--drain-timeout', '3601'], '--drain-timeout must be a number of seconds from 0 to 3600, got "3601"']
  ]
  for (const [argv, message] of cases) {
    t.strictSame(await runCli(argv), { code: 2, stdout: '', stderr: `clb-proxy: ${message}\n${TRY_HELP}` }, argv.join(' '))
  }
})

t.test('a bad environment value exits 2 naming the variable and quoting its text', async (t) => {
  const cases: ReadonlyArray<readonly [NodeJS.ProcessEnv, string]> = [
    [
      { CLB_LISTEN: 'nope' },
      'CLB_LISTEN must be HOST:PORT with a port from 0 to 65535 (IPv6 as [::1]:8080; port 0 picks a free port), got "nope"'
    ],
    [
      { CLB_BACKENDS: 'http://a:1, ftp://b' },
      'CLB_BACKENDS entry 2 must be an http://, https://, tcp:// or ssl:// HOST:PORT URL (port 1 to 65535; http and https default to 80 and 443; no path or query), got "ftp://b"'
    ],
    [
      { CLB_BACKENDS: 'http://a:1,' },
      'CLB_BACKENDS entry 2 must be an http://, https://, tcp:// or ssl:// HOST:PORT URL (port 1 to 65535; http and https default to 80 and 443; no path or query), got ""'
    ],
    [{ CLB_PROXY_PROTOCOL: 'maybe' }, 'CLB_PROXY_PROTOCOL must be on or off, got "maybe"'],
    [
      { CLB_LISTENERS: 'http://127.0.0.1:0, udp://127.0.0.1:0' },
      'CLB_LISTENERS entry 2 must be PROTOCOL://HOST:PORT with PROTOCOL http, https, tcp or ssl and a port from 0 to 65535 (IPv6 as [::1]), got "udp://127.0.0.1:0"'
    ],
    [{ CLB_ACCESS_LOG: 'a\0b' }, `CLB_ACCESS_LOG must be a file path or '-' for stdout, got "a\\u0000b"`],
    [
      { CLB_NAME: 'my_elb' },
      'CLB_NAME must be 1 to 32 characters, only ASCII letters, digits or hyphens, not starting or ending with a hyphen (CLB load balancer name rules), got "my_elb"'
    ],
    [{ CLB_IDLE_TIMEOUT: '4001' }, `CLB_IDLE_TIMEOUT must be an integer from 1 to 4000 (CLB's range), got "4001"`],
    [{ CLB_IDLE_TIMEOUT: ' 60' }, `CLB_IDLE_TIMEOUT must be an integer from 1 to 4000 (CLB's range), got " 60"`],
    [
      { CLB_RESPONSE_BUFFER: 'lots' },
      'CLB_RESPONSE_BUFFER must be an integer from 0 to 1073741824 bytes (1 GiB); sizes may be written 65536, 64k, 64KiB, 1m or 1MiB, got "lots"'
    ],
    [{ CLB_MAX_HEAD: '1023b' }, 'CLB_MAX_HEAD must be an integer from 1024 to 1048576 bytes (1 KiB to 1 MiB), got "1023b"'],
    [{ CLB_PROFILE: 'CLB' }, `CLB_PROFILE must be 'clb' or 'strict', got "CLB"`],
    [{ CLB_DRAIN_TIMEOUT: '-1' }, 'CLB_DRAIN_TIMEOUT must be a number of seconds from 0 to 3600, got "-1"']
  ]
  for (const [env, message] of cases) {
    t.strictSame(await runCli([], env), { code: 2, stdout: '', stderr: `clb-proxy: ${message}\n${TRY_HELP}` }, JSON.stringify(env))
  }
})

t.test('flags override environment variables; an empty variable counts as unset', async (t) => {
  const profileError = `clb-proxy: --profile must be 'clb' or 'strict', got "loose"\n${TRY_HELP}`
  t.strictSame(
    await runCli(['--idle-timeout', '4001'], { CLB_IDLE_TIMEOUT: '0' }),
    { code: 2, stdout: '', stderr: `clb-proxy: --idle-timeout must be an integer from 1 to 4000 (CLB's range), got "4001"\n${TRY_HELP}` },
    'the flag, not the variable, is named'
  )
  // The only bad value left is --profile: so the bad CLB_IDLE_TIMEOUT was overridden, and the
  // empty CLB_NAME and CLB_LISTEN were not read as "" (which would be invalid).
  t.strictSame(
    await runCli(['--idle-timeout', '60', '--profile', 'loose'], { CLB_IDLE_TIMEOUT: '0', CLB_NAME: '', CLB_LISTEN: '' }),
    { code: 2, stdout: '', stderr: profileError }
  )
  t.strictSame(
    await runCli(['--backend', 'http://127.0.0.1:1', '--profile', 'loose'], { CLB_BACKENDS: 'ftp://ignored' }),
    { code: 2, stdout: '', stderr: profileError },
    '--backend replaces CLB_BACKENDS'
  )
})

t.test('every option rule reads as a command-line rule: no null to type, no alternative turned into an "or"', async (t) => {
  const rewritten = Object.entries(OPTION_RULES).map(([field, rule]) => [field, forTheCommandLine(rule)])
  t.strictSame(rewritten.filter(([, rule]) => /\bnull\b|or given|\(\s*\)|, *\)/.test(rule as string)), [])
  t.strictSame(Object.fromEntries(rewritten.filter(([field]) => ['accessLog', 'tlsCert', 'backendCa', 'stickyAppCookie'].includes(field as string))), {
    accessLog: "must be a file path or '-' for stdout",
    tlsCert: 'must be the path of a PEM certificate file (given together with tlsKey)',
    backendCa: 'must be the path of a PEM CA certificate file',
    stickyAppCookie: 'must be a cookie name (RFC 6265 token characters, not AWSELB or AWSELBCORS)'
  })
})

t.test('a bad value is reported before any socket opens', async (t) => {
  // We hold the port ourselves: had the CLI tried to listen first, it would fail with
  // EADDRINUSE (exit 1) instead of reporting the option (exit 2).
  const held = await listeningServer(t)
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  const outcome = await runCli(['--listen', `127.0.0.1:${portOf(held)}`, '--drain-timeout', 'forever'])
  t.strictSame(outcome, {
    code: 2,
    stdout: '',
    stderr: `clb-proxy: --drain-timeout must be a number of seconds from 0 to 3600, got "forever"\n${TRY_HELP}`
  })
  t.equal(listenCalls.args().length, 0, 'no server called listen()')
  t.equal(await connectionCount(held), 0, 'nothing connected to the held port')
})

t.test('the demo\'s health check is checked with the user\'s health options before any socket opens', async (t) => {
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  const outcome = await runCli(['--listen', '127.0.0.1:0', '--health-interval', '5', '--health-timeout', '5'])
  t.strictSame(outcome, {
    code: 2,
    stdout: '',
    stderr: `clb-proxy: --health-timeout must be less than the health-check interval (5 s; API-HC: "This value must be less than the Interval value"), got "5"\n${TRY_HELP}`
  })
  t.equal(listenCalls.args().length, 0, 'no demo instance, no listener')
})

t.test('docs/options.md has one row per option, matching flag, variable and default', async (t) => {
  const markdown = await readFile(new URL('docs/options.md', REPO_URL), 'utf8')
  const rows = markdown
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replaceAll('\\|', '|').replaceAll('`', ''))
    )
  const optionRows = rows.filter((cells) => cells.length === 6)
  t.strictSame(
    optionRows.map((cells) => cells[0]),
    OPTION_FLAGS.map((option) => option.field),
    'one row per option field, in the same order'
  )
  for (const option of OPTION_FLAGS) {
    const cells = optionRows.find((row) => row[0] === option.field) ?? []
    t.ok(cells[1]?.startsWith(`--${option.flag} ${option.valueName}`), `${option.field}: flag`)
    t.ok(cells[2]?.startsWith(option.env), `${option.field}: env var`)
    t.equal(cells[3], option.defaultText, `${option.field}: default`)
  }
})

t.test('starts with the given backend, stops on SIGTERM and exits 0', async (t) => {
  const backend = await answeringOk(t)
  const accessLog = join(t.testdir(), 'access.log')
  const stdout = new Sink()
  const stderr = new Sink()
  const signals = new EventEmitter()
  const backendUrl = `http://127.0.0.1:${portOf(backend)}`
  const exited = run(
    ['--listen', '127.0.0.1:0', '--backend', backendUrl, '--access-log', accessLog],
    { CLB_NAME: 'cli-test' },
    { stdout, stderr, signals }
  )

  const [, proxyUrl = '', port = ''] = await stderr.waitFor(/^clb-proxy: listening on (http:\/\/127\.0\.0\.1:(\d+)), /)
  t.equal(
    stderr.text,
    `clb-proxy: listening on ${proxyUrl}, forwarding to ${backendUrl} (access log: ${accessLog})\n`,
    'a one-line banner'
  )
  t.equal(signals.listenerCount('SIGTERM'), 1, 'waits for SIGTERM')
  t.equal(signals.listenerCount('SIGINT'), 1, 'waits for SIGINT')
  const response = await fetch(`${proxyUrl}/`)
  t.equal(response.status, 200)
  t.equal(await response.text(), 'ok')

  signals.emit('SIGTERM')
  t.equal(await exited, 0)
  t.equal(stderr.text.split('\n').at(-2), 'clb-proxy: SIGTERM received; letting in-flight requests finish (up to 5 s)')
  t.equal(stdout.text, '', 'the access log went to its file, nothing to stdout')
  const logLines = (await readFile(accessLog, 'utf8')).split('\n')
  t.equal(logLines.length, 2, 'one access-log line, then the final newline')
  t.equal(logLines[1], '')
  const fields = logLines[0]?.split(' ') ?? []
  t.equal(fields[1], 'cli-test', 'CLB_NAME reached the elb field')
  t.equal(fields[3], `127.0.0.1:${portOf(backend)}`, 'the backend:port field names the --backend')
  t.equal(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT'), 0, 'signal listeners removed')
  t.equal(await isListening('127.0.0.1', Number(port)), false, 'the proxy port is closed')
  t.equal(await connectionCount(backend), 0, 'no connection to the backend left open')
})

/** The CLI serving in this process with `args`, once its banner says it listens. */
async function serving (args: string[], signals = new EventEmitter()): Promise<{ stderr: Sink, signals: EventEmitter, proxyUrl: string, exited: Promise<number> }> {
  const stderr = new Sink()
  const exited = run(['--listen', '127.0.0.1:0', ...args], {}, { stdout: new Sink(), stderr, signals })
  const [, proxyUrl = ''] = await stderr.waitFor(/^clb-proxy: listening on (http:\/\/127\.0\.0\.1:\d+), /m)
  return { stderr, signals, proxyUrl, exited }
}

t.test('SIGUSR2 reopens the access-log file by its path (log rotation): lines before in the moved file, after at the path', async (t) => {
  const backend = await answeringOk(t)
  const accessLog = join(t.testdir(), 'access.log')
  const { stderr, signals, proxyUrl, exited } = await serving(['--backend', `http://127.0.0.1:${portOf(backend)}`, '--access-log', accessLog])
  t.equal(signals.listenerCount('SIGUSR2'), 1, 'waits for SIGUSR2')
  t.equal((await fetch(`${proxyUrl}/before`)).status, 200)
  await rename(accessLog, `${accessLog}.1`)
  signals.emit('SIGUSR2')
  t.equal(stderr.text.split('\n').at(-2), 'clb-proxy: SIGUSR2 received; access log reopened')
  t.equal((await fetch(`${proxyUrl}/after`)).status, 200)
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
  const targetOf = (line: string): string | undefined => line.split(' ')[12]?.replace(/^http:\/\/127\.0\.0\.1:\d+/, '')
  const moved = (await readFile(`${accessLog}.1`, 'utf8')).split('\n').filter((line) => line !== '')
  const atPath = (await readFile(accessLog, 'utf8')).split('\n').filter((line) => line !== '')
  t.strictSame(moved.map(targetOf), ['/before'], 'the line before the signal, in the moved file')
  t.strictSame(atPath.map(targetOf), ['/after'], 'the line after it, in a new file at the path')
  t.equal(signals.listenerCount('SIGUSR2'), 0, 'the SIGUSR2 listener removed')
})

t.test('SIGUSR2 without an access-log file says so and goes on serving', async (t) => {
  const backend = await answeringOk(t)
  const { stderr, signals, proxyUrl, exited } = await serving(['--backend', `http://127.0.0.1:${portOf(backend)}`])
  signals.emit('SIGUSR2')
  t.equal(stderr.text.split('\n').at(-2), 'clb-proxy: SIGUSR2 received; no access-log file was reopened (stdout, no file open yet, or its open failed: see above)')
  t.equal((await fetch(`${proxyUrl}/`)).status, 200, 'still serving')
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('SIGUSR2 while the proxy starts is answered, not left to the default action (which terminates)', async (t) => {
  const backend = await answeringOk(t)
  const signals = new EventEmitter()
  // As soon as the command listens for SIGUSR2: a microtask runs before serve() reaches its first
  // await, so the proxy has certainly not started.
  signals.on('newListener', (event) => { if (event === 'SIGUSR2') queueMicrotask(() => signals.emit('SIGUSR2')) })
  const { stderr, proxyUrl, exited } = await serving(['--backend', `http://127.0.0.1:${portOf(backend)}`, '--access-log', join(t.testdir(), 'access.log')], signals)
  t.equal(stderr.text.split('\n')[0], 'clb-proxy: SIGUSR2 received while starting; the access log is not reopened')
  t.equal((await fetch(`${proxyUrl}/`)).status, 200, 'it started and serves')
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('several listeners: the banner lists each, the proxy-protocol misconfiguration and the certificate', async (t) => {
  const backend = await answeringOk(t)
  const stdout = new Sink()
  const stderr = new Sink()
  const signals = new EventEmitter()
  const exited = run(
    ['--listener', 'http://127.0.0.1:0', '--listener', 'tcp://127.0.0.1:0', '--listener', 'ssl://127.0.0.1:0',
      '--backend', `http://127.0.0.1:${portOf(backend)}`, '--backend', `tcp://127.0.0.1:${portOf(backend)}`, '--access-log', '-'],
    { CLB_PROXY_PROTOCOL: 'on' },
    { stdout, stderr, signals }
  )
  await stderr.waitFor(/security policy ELBSecurityPolicy-2016-08\n/)
  const [, http = '', tcp = '', ssl = ''] = /^clb-proxy: listening on (http:\/\/127\.0\.0\.1:\d+), (tcp:\/\/127\.0\.0\.1:\d+), (ssl:\/\/127\.0\.0\.1:\d+), forwarding to http:\/\/127\.0\.0\.1:\d+, tcp:\/\/127\.0\.0\.1:\d+ \(access log: stdout\)\n/.exec(stderr.text) ?? []
  t.ok(http !== '' && tcp !== '' && ssl !== '', 'one line names every listener and every instance with its protocol')
  t.match(stderr.text, new RegExp(`\\n  ${tcp.replaceAll('.', '\\.')} +TCP, bytes passed through to tcp/ssl instances, round robin; a log line per connection\\n` +
    '      proxy protocol v1 is on: each connection starts with "PROXY TCP4 <client> <listener> <ports>"\\n' +
    '      An instance that does not expect it answers 400 to every request \\(the classic misconfiguration\\):\\n' +
    `        curl -i ${tcp.replace('tcp://', 'http://').replaceAll('.', '\\.')}/\\n`))
  t.match(stderr.text, /\nHTTPS and SSL listeners use your self-signed certificate for localhost, 127\.0\.0\.1, ::1 \(made (now|earlier, reused)\);\n  trust it with curl --cacert \S+clb-proxy-\S+\/self-signed\.pem\n  SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}\n/)
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('--listen beats CLB_LISTENERS, as a flag beats a variable', async (t) => {
  const backend = await listeningServer(t, () => {})
  const stderr = new Sink()
  const signals = new EventEmitter()
  // A TCP listener from the variable would be refused (no tcp instance): only --listen is used.
  const exited = run(['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${portOf(backend)}`], { CLB_LISTENERS: 'tcp://127.0.0.1:0' }, { stdout: new Sink(), stderr, signals })
  await stderr.waitFor(/^clb-proxy: listening on http:\/\/127\.0\.0\.1:\d+, forwarding to/m)
  t.notMatch(stderr.text, /tcp:\/\//, 'no TCP listener')
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('options that change nothing with these listeners and instances are said, not ignored', async (t) => {
  const backend = await listeningServer(t, () => {})
  const stderr = new Sink()
  const signals = new EventEmitter()
  const refused = await runCli(['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${portOf(backend)}`, '--backend-ca', '/dev/null'])
  t.equal(refused.code, 2, 'first: a --backend-ca that is not a certificate exits 2, naming the flag')
  t.match(refused.stderr, /^clb-proxy: --backend-ca must be a PEM CA certificate file \(.+\), got "\/dev\/null"\n/)
  const later = new Sink()
  const running = run(['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${portOf(backend)}`, '--proxy-protocol', '--security-policy', 'ELBSecurityPolicy-TLS-1-2-2017-01'], {}, { stdout: new Sink(), stderr: later, signals })
  await later.waitFor(/--tls-cert, --tls-key and --security-policy apply to https and ssl listeners only: it has no effect here\n/)
  t.match(later.text, /\nclb-proxy: --proxy-protocol applies to tcp and ssl listeners only: it has no effect here\n/)
  signals.emit('SIGTERM')
  t.equal(await running, 0)
})

t.test('a demo behind TCP listeners only: no table of 502s, since bytes pass through', async (t) => {
  const stderr = new Sink()
  const signals = new EventEmitter()
  const exited = run(['--listener', 'tcp://127.0.0.1:0'], {}, { stdout: new Sink(), stderr, signals })
  await stderr.waitFor(/Press Ctrl-C to stop\./)
  t.match(stderr.text, /Your listeners are TCP\/SSL only: bytes pass through unchanged/)
  t.notMatch(stderr.text, /BAD_GATEWAY/)
  // Registered as tcp:// instances only: an http:// one would be an instance no listener routes to.
  t.notMatch(stderr.text, /registered twice/)
  // A TCP listener routes connections in turn, not requests by load (CLB-LISTEN).
  t.match(stderr.text, /Connections go to both in turn \(round robin, as TCP\/SSL listeners route\)/)
  t.notMatch(stderr.text, /Requests go to both/)
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('a demo behind several listeners: the first line names every one of them', async (t) => {
  const stderr = new Sink()
  const signals = new EventEmitter()
  const exited = run(['--listener', 'http://127.0.0.1:0', '--listener', 'tcp://127.0.0.1:0'], {}, { stdout: new Sink(), stderr, signals })
  await stderr.waitFor(/Press Ctrl-C to stop\./)
  t.match(stderr.text.split('\n')[0], /^clb-proxy: listening on http:\/\/127\.0\.0\.1:\d+, tcp:\/\/127\.0\.0\.1:\d+ \(access log: stdout\)$/)
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('without a backend it starts the two demo instances, prints the try table, and closes them all on SIGINT', async (t) => {
  const { formatTryTable } = await import('../../../proxy/byte-servers/demo-backend.js')
  const stdout = new Sink()
  const stderr = new Sink()
  const signals = new EventEmitter()
  const exited = run(['--listen', '127.0.0.1:0'], {}, { stdout, stderr, signals })

  await stderr.waitFor(/Press Ctrl-C to stop\.\n/)
  const [, proxyUrl = '', proxyPort = ''] =
    /^clb-proxy: listening on (http:\/\/127\.0\.0\.1:(\d+)) /.exec(stderr.text) ?? []
  const demoPorts = [...stderr.text.matchAll(/^ {2}demo-[ab] {2}i-[0-9a-f]{17} {2}http:\/\/127\.0\.0\.1:(\d+) /gm)].map((match) => match[1] ?? '')
  const head = [
    `clb-proxy: listening on ${proxyUrl} (access log: stdout)`,
    'clb-proxy: no --backend given, so requests go to the built-in demo backend: two instances, demo-a and demo-b',
    '',
    formatTryTable(proxyUrl).replace(/\n+$/, ''),
    '',
    'Health checks ('
  ].join('\n')
  // The health-check block is asserted whole in serve-demo-health.test.ts.
  t.equal(stderr.text.slice(0, head.length), head, 'the banner starts as before, then the health-check block')
  t.equal(stderr.text.slice(-'\n\nPress Ctrl-C to stop.\n'.length), '\n\nPress Ctrl-C to stop.\n')
  t.equal(demoPorts.length, 2, 'two demo instances')
  t.not(proxyPort, demoPorts[0])
  t.not(proxyPort, demoPorts[1])
  const response = await fetch(`${proxyUrl}/`)
  t.equal(response.status, 200, 'the demo backend answers through the proxy')
  await response.arrayBuffer()

  signals.emit('SIGINT')
  t.equal(await exited, 0)
  const logLines = stdout.text.split('\n')
  t.equal(logLines.length, 2, "one access-log line on the run's stdout, then the final newline")
  const fields = logLines[0]?.split(' ') ?? []
  t.equal(fields[1], 'clb-proxy', 'the default name')
  t.ok(demoPorts.map((port) => `127.0.0.1:${port}`).includes(fields[3] ?? ''), 'the request went to a demo instance')
  t.equal(await isListening('127.0.0.1', Number(proxyPort)), false, 'the proxy port is closed')
  for (const port of demoPorts) t.equal(await isListening('127.0.0.1', Number(port)), false, `the demo instance on ${port} is closed`)
  t.equal(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT'), 0, 'signal listeners removed')
})

t.test('an address in use exits 1 with one line naming the address', async (t) => {
  const held = await listeningServer(t)
  const signals = new EventEmitter()
  const stdout = new Sink()
  const stderr = new Sink()
  const address = `127.0.0.1:${portOf(held)}`
  const accessLog = join(t.testdir(), 'access.log')
  const code = await run(['--listen', address, '--backend', 'http://127.0.0.1:1', '--access-log', accessLog], {}, {
    stdout,
    stderr,
    signals
  })
  t.equal(code, 1)
  t.equal(stderr.text, `clb-proxy: cannot listen on ${address}: the address is already in use (EADDRINUSE)\n`)
  t.equal(stdout.text, '')
  t.equal(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT'), 0, 'signal listeners removed')
})

t.test('an admin address in use exits 1 with one line naming it as the admin listener', async (t) => {
  const held = await listeningServer(t)
  const address = `127.0.0.1:${portOf(held)}`
  const outcome = await runCli(['--listen', '127.0.0.1:0', '--admin', address, '--backend', 'http://127.0.0.1:1', '--access-log', join(t.testdir(), 'access.log')])
  t.strictSame(outcome, { code: 1, stdout: '', stderr: `clb-proxy: cannot listen on ${address} for the admin listener: the address is already in use (EADDRINUSE)\n` })
  // A host name that does not resolve (.invalid never does: RFC 6761 section 6.4) is named too, not the proxy's own address.
  const unresolved = await runCli(['--listen', '127.0.0.1:0', '--admin', 'nosuchhost.invalid:0', '--backend', 'http://127.0.0.1:1', '--access-log', join(t.testdir(), 'b.log')])
  t.strictSame([unresolved.code, unresolved.stdout], [1, ''])
  // Without a name server the lookup fails as EAI_AGAIN instead.
  t.match(unresolved.stderr, /^clb-proxy: cannot listen on nosuchhost\.invalid:0 for the admin listener: the host name (was not found \(ENOTFOUND\)|could not be resolved right now \(EAI_AGAIN\))\n$/)
})

t.test('an access log that cannot be opened exits 1 with one line naming the file, before listening', async (t) => {
  const directory = t.testdir()
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  const outcome = await runCli(['--listen', '127.0.0.1:0', '--backend', 'http://127.0.0.1:1', '--access-log', directory])
  t.strictSame(outcome, {
    code: 1,
    stdout: '',
    stderr: `clb-proxy: cannot open the access log ${directory}: it is a directory (EISDIR)\n`
  })
  t.equal(listenCalls.args().length, 0, 'no server called listen()')
})

t.test('a folder an option needs that cannot be created exits 1 with one line naming the folder and the option', async (t) => {
  const directory = t.testdir({ logs: 'a file, not a folder' })
  const inTheWay = join(directory, 'logs')
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  t.strictSame(await runCli(['--listen', '127.0.0.1:0', '--backend', 'http://127.0.0.1:1', '--access-log', join(inTheWay, 'access.log')]), {
    code: 1,
    stdout: '',
    stderr: `clb-proxy: cannot create the folder ${inTheWay} for --access-log: a file of that name is in the way (EEXIST)\n`
  })
  t.strictSame(await runCli(['--listen', '127.0.0.1:0', '--backend', 'http://127.0.0.1:1', '--access-log-dir', inTheWay, '--capture-dir', join(directory, 'captures')]), {
    code: 1,
    stdout: '',
    stderr: `clb-proxy: cannot create the folder ${inTheWay} for --access-log-dir: a file of that name is in the way (EEXIST)\n`
  })
  if (existsSync('/proc/self/stat')) {
    // mkdir under /proc answers ENOENT although /proc exists: Node's recursive mkdir never returned.
    t.strictSame(await runCli(['--listen', '127.0.0.1:0', '--backend', 'http://127.0.0.1:1', '--access-log-dir', '/proc/clb-proxy-cli-test']), {
      code: 1,
      stdout: '',
      stderr: 'clb-proxy: cannot create the folder /proc/clb-proxy-cli-test for --access-log-dir: no such file or directory (ENOENT)\n'
    })
  }
  t.equal(listenCalls.args().length, 0, 'no server called listen()')
})

t.test('a file or folder set by an environment variable is named by that variable when it cannot be used (docs/options.md, Errors: the variable that was set)', async (t) => {
  const directory = t.testdir({ logs: 'a file, not a folder' })
  const inTheWay = join(directory, 'logs')
  const missing = join(directory, 'missing.pem')
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  const backends = { CLB_LISTEN: '127.0.0.1:0', CLB_BACKENDS: 'http://127.0.0.1:1' }
  t.strictSame(await runCli([], { ...backends, CLB_BACKEND_CA: missing }), {
    code: 2,
    stdout: '',
    stderr: `clb-proxy: CLB_BACKEND_CA must be a readable file (ENOENT), got "${missing}"\n${TRY_HELP}`
  })
  t.strictSame(await runCli([], { ...backends, CLB_ACCESS_LOG: join(inTheWay, 'access.log') }), {
    code: 1,
    stdout: '',
    stderr: `clb-proxy: cannot create the folder ${inTheWay} for CLB_ACCESS_LOG: a file of that name is in the way (EEXIST)\n`
  })
  // The other option a rule names is named the same way as the one the user set.
  t.strictSame(await runCli([], { ...backends, CLB_TLS_CERT: 'c.pem' }), {
    code: 2,
    stdout: '',
    stderr: `clb-proxy: CLB_TLS_CERT must be given together with CLB_TLS_KEY (a certificate and its private key), got "c.pem"\n${TRY_HELP}`
  })
  t.equal(listenCalls.args().length, 0, 'no server called listen()')
})

t.test('--admin starts the admin listener and prints its URL', async (t) => {
  const backend = await answeringOk(t)
  const stdout = new Sink()
  const stderr = new Sink()
  const signals = new EventEmitter()
  const exited = run(
    ['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${portOf(backend)}`, '--admin', '127.0.0.1:0', '--capture-dir', t.testdir()],
    {},
    { stdout, stderr, signals }
  )
  const [, adminUrl = '', adminPort = ''] = await stderr.waitFor(/^clb-proxy: admin listener on (http:\/\/127\.0\.0\.1:(\d+)) /m)
  const health = await fetch(`${adminUrl}/healthz`)
  t.equal(health.status, 200)
  t.strictSame(await health.json(), { status: 'ok' })
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
  t.equal(await isListening('127.0.0.1', Number(adminPort)), false, 'the admin port is closed after the stop')
})

t.test('on a terminal, diagnostics are plain text lines on stderr', async (t) => {
  const backend = await listeningServer(t, (socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello'))
  })
  const stdout = new Sink()
  const stderr = Object.assign(new Sink(), { isTTY: true })
  const signals = new EventEmitter()
  const exited = run(
    ['--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${portOf(backend)}`, '--capture-dir', t.testdir()],
    {},
    { stdout, stderr, signals }
  )
  const [, proxyUrl = ''] = await stderr.waitFor(/^clb-proxy: listening on (http:\/\/127\.0\.0\.1:\d+), /)
  const response = await fetch(`${proxyUrl}/orders`)
  t.equal(response.status, 502)
  const [diagnostic = ''] = await stderr.waitFor(/^\d\d:\d\d:\d\d 502 GET \/orders from 127\.0\.0\.1:\d+: CL_NOT_INTEGER at byte 33 \(aws-documented\)\n {9}Content-Length value "abc" is not an integer\n {9}bytes 0-: HTTP\/1\.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\nhello\n/m)
  t.ok(diagnostic.length > 0, 'one text diagnostic with the defect, the reason and the bytes')
  t.notMatch(stderr.text, /"level":/, 'no JSON lines on a terminal')
  signals.emit('SIGTERM')
  t.equal(await exited, 0)
})

t.test('a health-check setting without --health-check gets one notice; --health-check gets one line saying how instances are checked', async (t) => {
  const backend = await listeningServer(t, (socket) => {
    socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
  })
  const backendUrl = `http://127.0.0.1:${portOf(backend)}`
  const cases: ReadonlyArray<readonly [string[], NodeJS.ProcessEnv, string]> = [
    [['--health-interval', '10'], {}, 'clb-proxy: --health-interval has no effect without --health-check: no health check runs, every instance is in service\n'],
    [['--healthy-threshold', '3'], { CLB_UNHEALTHY_THRESHOLD: '4' }, 'clb-proxy: --healthy-threshold, --unhealthy-threshold have no effect without --health-check: no health check runs, every instance is in service\n'],
    [['--health-check', 'tcp'], {}, 'clb-proxy: health check TCP every 30 s, timeout 5 s, healthy threshold 10, unhealthy threshold 2; each instance is OutOfService until its first check passes\n']
  ]
  for (const [flags, env, notice] of cases) {
    const stderr = new Sink()
    const signals = new EventEmitter()
    const exited = run(['--listen', '127.0.0.1:0', '--backend', backendUrl, '--backend', backendUrl, '--access-log', '/dev/null', ...flags], env, { stdout: new Sink(), stderr, signals })
    const [banner = ''] = await stderr.waitFor(/^clb-proxy: listening on http:\/\/127\.0\.0\.1:\d+, forwarding to .*\n.*\n/)
    t.equal(banner.split('\n')[1] + '\n', notice, flags.join(' '))
    t.match(banner, new RegExp(`forwarding to ${backendUrl} \\(`), 'a backend given twice is named once')
    signals.emit('SIGTERM')
    t.equal(await exited, 0)
  }
})

t.test('an access log whose reader went away: the stop says lines were lost and exits 1', async (t) => {
  const backend = await answeringOk(t)
  const fifo = join(t.testdir(), 'access.fifo')
  execFileSync('mkfifo', [fifo])
  const cases: ReadonlyArray<readonly [string[], string, string]> = [
    [[], 'stdout', 'the access log on stdout lost lines: its reader went away while the proxy ran (EPIPE, reported then); ' +
      'to keep every line, log to a file (--access-log FILE) or keep the reader until the proxy stops'],
    // A path that is a pipe (a FIFO): the advice to log to a file would be no advice.
    [['--access-log', fifo], fifo, `the access log ${fifo} lost lines: its reader went away while the proxy ran (EPIPE, reported then)`]
  ]
  for (const [flags, where, words] of cases) {
    // The CLI runs in a child whose stdout is a pipe, as `clb-proxy | head -1` runs it; this side
    // closes its end of that pipe before any line is written.
    const cli = new URL('proxy/commands/cli.js', REPO_URL).href
    const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', `
      const { run } = await import(${JSON.stringify(cli)})
      process.exitCode = await run(process.argv.slice(1), {}, { stdout: process.stdout, stderr: process.stderr })
    `, '--', '--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${portOf(backend)}`, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { child.kill() })
    child.stdout.destroy()
    // The FIFO's reader: the child's open for writing waits for it, and it leaves once the proxy listens.
    const reader = where === fifo ? open(fifo, 'r') : null
    const stderr = new Sink()
    child.stderr.pipe(stderr)
    const closed = once(child, 'close')
    const [, proxyUrl = ''] = await stderr.waitFor(/^clb-proxy: listening on (http:\/\/127\.0\.0\.1:\d+), /m)
    await (await reader)?.close()
    t.equal((await fetch(`${proxyUrl}/`)).status, 200)
    // Reported when it happens (a JSON line: stderr is not a terminal).
    await stderr.waitFor(new RegExp(`"notice":"access-log".*"msg":"access log ${where.replaceAll('/', '\\/')} cannot be written \\(EPIPE`))
    child.kill('SIGTERM')
    const [code] = await closed
    t.equal(code, 1, where)
    t.equal(stderr.text.split('\n').at(-2), `clb-proxy: error while stopping: ${words}`)
  }
})
