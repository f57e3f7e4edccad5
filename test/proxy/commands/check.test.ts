/**
 * `clb-proxy check URL`: raw `net` backends on port 0 send exact bytes; the command's whole output
 * is compared with text written by hand. The keep-alive measurement waits on a timer by design
 * (--keepalive-wait); those waits are short and bounded, and the clock that measures them is
 * injected where the number matters.
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { checkBackend, checkReportJson, renderCheckReport, renderKeepAlivePart, renderResponsePart, type CheckReport } from '../../../proxy/commands/check.js'
import { checkHelpText } from '../../../proxy/commands/check-command.js'
import { run } from '../../../proxy/commands/cli.js'
import type { Clock } from '../../../proxy/core/clock.js'
import { REPO_URL } from '../../helpers/repo.js'

const VERSION = (JSON.parse(readFileSync(new URL('package.json', REPO_URL), 'utf8')) as { version: string }).version
const TRY_HELP = "Try 'clb-proxy check --help'\n"

class Sink extends Writable {
  text = ''
  override _write (chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.text += chunk.toString()
    callback()
  }
}

interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Through the real dispatch in cli.ts: `clb-proxy check ...`. */
async function runCheckCli (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const stdout = new Sink()
  const stderr = new Sink()
  const code = await run(['check', ...argv], env, { stdout, stderr })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

/** Bytes written escaped (\r \n \t \xHH) so a reviewer reads them as bytes. */
function raw (escaped: string): Buffer {
  return Buffer.from(escaped.replace(/\\r/g, '\r').replace(/\\n/g, '\n').replace(/\\t/g, '\t').replace(/\\x([0-9a-f]{2})/g, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16))), 'latin1')
}

interface Backend {
  readonly port: number
  readonly url: string
  /** Every request the backend received, as raw bytes (head and body). */
  readonly requests: Buffer[]
  /** Resolves when every connection the backend accepted has closed; then asserts none is left. */
  allClosed (): Promise<number>
}

/**
 * A raw TCP backend: once a whole request (head and Content-Length body) has arrived, `answer`
 * gets the socket. It writes bytes, and may end or destroy the socket, or keep it open.
 */
async function rawBackend (t: Test, answer: (socket: net.Socket) => void): Promise<Backend> {
  const sockets: net.Socket[] = []
  const requests: Buffer[] = []
  const server = net.createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => undefined)
    let received = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk])
      const headEnd = received.indexOf('\r\n\r\n')
      if (headEnd === -1) return
      const length = /\r\ncontent-length: *(\d+)/i.exec(received.toString('latin1', 0, headEnd))
      if (received.length < headEnd + 4 + Number(length?.[1] ?? 0)) return
      socket.off('data', onData)
      requests.push(received)
      answer(socket)
    }
    socket.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    async allClosed () {
      await Promise.all(sockets.map((socket) => socket.closed ? undefined : once(socket, 'close')))
      return new Promise((resolve, reject) => server.getConnections((error, count) => error ? reject(error) : resolve(count)))
    }
  }
}

/** Writes `bytes` and keeps the connection open. */
function answerWith (escaped: string): (socket: net.Socket) => void {
  return (socket) => { socket.write(raw(escaped)) }
}

/** Writes `bytes` and closes the connection (FIN) right after. */
function answerAndClose (escaped: string): (socket: net.Socket) => void {
  return (socket) => { socket.end(raw(escaped)) }
}

function requestLines (port: number, target = '/'): string {
  return [
    `checking http://127.0.0.1:${port}${target} (profile clb, idle timeout 60 s)`,
    `> GET ${target} HTTP/1.1`,
    `> Host: 127.0.0.1:${port}`,
    `> User-Agent: clb-proxy-check/${VERSION}`,
    '> Connection: keep-alive',
    '>',
    ''
  ].join('\n')
}

t.test('a valid response passes: exit 0, the whole output, and the exact request the backend saw', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nhello'))
  const outcome = await runCheckCli([`${backend.url}/path?q=1`, '--keepalive-wait', '0'])
  const port = backend.port
  t.strictSame(outcome, {
    code: 0,
    stderr: '',
    stdout: requestLines(port, '/path?q=1') + [
      '',
      `< 43 bytes from 127.0.0.1:${port}: a complete response (Content-Length: 5); offsets count from its first byte`,
      '  00000  HTTP/1.1 200 OK\\r\\n',
      '  00017  Content-Length: 5\\r\\n',
      '  00036  \\r\\n',
      '  ... (5 more bytes not shown)',
      '',
      'defects (profile clb): none',
      '',
      'passes: CLB would relay the 200 response unchanged',
      '',
      'keep-alive: not measured (--keepalive-wait 0)',
      ''
    ].join('\n')
  })
  t.strictSame(backend.requests.map((request) => request.toString('latin1')), [
    `GET /path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: clb-proxy-check/${VERSION}\r\nConnection: keep-alive\r\n\r\n`
  ])
  t.equal(await backend.allClosed(), 0, 'no connection left open')
})

t.test('--method, --header and --data: a header replaces the default of its name; Content-Length counts bytes', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.1 204 No Content\\r\\n\\r\\n'))
  const outcome = await runCheckCli([
    `${backend.url}/submit`, '--method', 'POST', '--header', 'Host: example.com', '--header', 'X-Trace:  a b ', '--data', 'h\u00e9', '--keepalive-wait', '0'
  ])
  t.equal(outcome.code, 0)
  t.strictSame(backend.requests.map((request) => request.toString('latin1')), [
    `POST /submit HTTP/1.1\r\nUser-Agent: clb-proxy-check/${VERSION}\r\nConnection: keep-alive\r\nHost: example.com\r\nX-Trace: a b\r\nContent-Length: 3\r\n\r\nh\u00c3\u00a9`
  ])
  t.ok(outcome.stdout.includes('> Host: example.com\n> X-Trace: a b\n> Content-Length: 3\n> (3 body bytes)\n'), outcome.stdout)
  t.ok(outcome.stdout.includes('passes: CLB would relay the 204 response unchanged\n'), 'a 204 has no body')
  t.equal(await backend.allClosed(), 0)
})

t.test('Content-Length: abc: exit 1, 502, and the marker under the "a"', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\nhello'))
  const outcome = await runCheckCli([`${backend.url}/`])
  const port = backend.port
  t.strictSame(outcome, {
    code: 1,
    stderr: '',
    stdout: requestLines(port) + [
      '',
      `< 45 bytes from 127.0.0.1:${port}: invalid, reading stopped at the defect; offsets count from the first byte`,
      '  00000  HTTP/1.1 200 OK\\r\\n',
      '  00017  Content-Length: abc\\r\\n',
      '                         ^ CL_NOT_INTEGER: Content-Length value "abc" is not an integer',
      '  00038  \\r\\n',
      '  ... (5 more bytes not shown)',
      '',
      'defects (profile clb):',
      '  CL_NOT_INTEGER at offset 33, reject: Content-Length value "abc" is not an integer',
      '    AWS lists this among the causes of ELB-generated 502s (KC-502)',
      '',
      'CLB would answer 502 BAD_GATEWAY (ELB-generated): Content-Length value "abc" is not an integer',
      '',
      'keep-alive: not measured: CLB closes the backend connection after answering 502',
      ''
    ].join('\n')
  })
  const lines = outcome.stdout.split('\n')
  const headerLine = lines.findIndex((line) => line.startsWith('  00017  Content-Length: abc'))
  t.equal(lines[headerLine + 1]?.indexOf('^'), lines[headerLine]?.indexOf('abc'), 'the ^ is in the column of the "a"')
  t.equal(await backend.allClosed(), 0)
})

t.test('a blank line inside the header block: HDR_BLANK_LINE decides the 502', async (t) => {
  const backend = await rawBackend(t, answerAndClose('HTTP/1.1 200 OK\\r\\nConnection: close\\r\\n\\r\\nContent-Length: 5\\r\\n\\r\\nhello'))
  const outcome = await runCheckCli([`${backend.url}/`])
  const port = backend.port
  const message = 'header line "Content-Length: 5" follows the blank line at offset 36 that ended the head'
  t.strictSame(outcome, {
    code: 1,
    stderr: '',
    stdout: requestLines(port) + [
      '',
      `< 64 bytes from 127.0.0.1:${port}: a complete response (body delimited by the connection closing); offsets count from its first byte`,
      '  00000  HTTP/1.1 200 OK\\r\\n',
      '  00017  Connection: close\\r\\n',
      '  00036  \\r\\n',
      '  00038  Content-Length: 5\\r\\n',
      '         ^ BODY_UNTIL_CLOSE: no Content-Length or Transfer-Encoding: the body runs until the connection closes',
      `         ^ HDR_BLANK_LINE: ${message}`,
      '  00057  \\r\\n',
      '  ... (5 more bytes not shown)',
      '',
      'defects (profile clb):',
      '  BODY_UNTIL_CLOSE at offset 38, warn: no Content-Length or Transfer-Encoding: the body runs until the connection closes',
      "    not in the AWS docs; clb-proxy's choice (docs/defects.md)",
      `  HDR_BLANK_LINE at offset 38, reject: ${message}`,
      '    AWS lists this among the causes of ELB-generated 502s (KC-502)',
      '',
      `CLB would answer 502 BAD_GATEWAY (ELB-generated): ${message}`,
      '',
      'keep-alive: not measured: CLB closes the backend connection after answering 502',
      ''
    ].join('\n')
  })
  t.equal(await backend.allClosed(), 0)
})

t.test('more body bytes than Content-Length: BODY_EXCEEDS_CL, marked at the first extra byte', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nhello world'))
  const outcome = await runCheckCli([`${backend.url}/`])
  t.equal(outcome.code, 1)
  t.ok(outcome.stdout.endsWith([
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '  00017  Content-Length: 5\\r\\n',
    '  00036  \\r\\n',
    '  00038  hello world',
    '              ^ BODY_EXCEEDS_CL: 6 more byte(s) arrived after the 5 bytes of Content-Length',
    '',
    'defects (profile clb):',
    '  BODY_EXCEEDS_CL at offset 43, reject: 6 more byte(s) arrived after the 5 bytes of Content-Length',
    '    AWS lists this among the causes of ELB-generated 502s (KC-502)',
    '',
    'CLB would answer 502 BAD_GATEWAY (ELB-generated): 6 more byte(s) arrived after the 5 bytes of Content-Length',
    '',
    'keep-alive: not measured: CLB closes the backend connection after answering 502',
    ''
  ].join('\n')), outcome.stdout)
  t.equal(await backend.allClosed(), 0)
})

t.test('the instance closes without a byte: 504, exit 1', async (t) => {
  const backend = await rawBackend(t, (socket) => socket.end())
  const outcome = await runCheckCli([`${backend.url}/`])
  const port = backend.port
  t.strictSame(outcome, {
    code: 1,
    stderr: '',
    stdout: requestLines(port) + [
      '',
      `< 127.0.0.1:${port} closed the connection without sending a byte`,
      '',
      'defects (profile clb):',
      '  EMPTY_RESPONSE at offset 0, reject: the connection closed before any response byte',
      '    AWS: an instance closing the connection makes CLB answer 504 (CLB-HTTPERR)',
      '',
      'CLB would answer 504 GATEWAY_TIMEOUT: the instance closed the connection without a response',
      '',
      'keep-alive: not measured: CLB closes the backend connection after answering 504',
      ''
    ].join('\n')
  })
  t.equal(await backend.allClosed(), 0)
})

t.test('the instance resets the connection without a byte: the same 504', async (t) => {
  const backend = await rawBackend(t, (socket) => socket.resetAndDestroy())
  const outcome = await runCheckCli([`${backend.url}/`, '--json'])
  t.equal(outcome.code, 1)
  const report = JSON.parse(outcome.stdout) as ReturnType<typeof checkReportJson>
  t.strictSame(report.verdict, {
    action: 'reject',
    status: 504,
    primary: { code: 'EMPTY_RESPONSE', offset: 0, message: 'the connection closed before any response byte', action: 'reject' },
    summary: 'CLB would answer 504 GATEWAY_TIMEOUT: the instance closed the connection without a response'
  })
  t.equal(await backend.allClosed(), 0)
})

t.test('the head stops mid-line and the instance closes: the marker sits after the last byte', async (t) => {
  const backend = await rawBackend(t, answerAndClose('HTTP/1.1 200 OK\\r\\nContent-Le'))
  const outcome = await runCheckCli([`${backend.url}/`])
  t.equal(outcome.code, 1)
  t.ok(outcome.stdout.includes([
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '  00017  Content-Le',
    '                   ^ HEADERS_TRUNCATED: the connection closed after 27 bytes of an incomplete head',
    ''
  ].join('\n')), outcome.stdout)
  t.equal(await backend.allClosed(), 0)
})

t.test('no byte within --timeout: 504, exit 1', async (t) => {
  const backend = await rawBackend(t, () => undefined)
  const outcome = await runCheckCli([`${backend.url}/`, '--timeout', '0.1'])
  t.equal(outcome.code, 1)
  t.ok(outcome.stdout.includes(`< nothing from 127.0.0.1:${backend.port} within 0.1 s\n`), outcome.stdout)
  t.ok(outcome.stdout.includes(
    'CLB would answer 504 GATEWAY_TIMEOUT: the instance sent no response within 0.1 s (--timeout; CLB itself waits for the idle timeout, 60 s)\n'
  ), outcome.stdout)
  t.equal(await backend.allClosed(), 0)
})

t.test('a refused connection is a connection error: exit 2, not a verdict', async (t) => {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  t.strictSame(await runCheckCli([`http://127.0.0.1:${port}/`]), {
    code: 2,
    stdout: '',
    stderr: `clb-proxy check: cannot connect to 127.0.0.1:${port}: ECONNREFUSED (connection refused: nothing listens on that port)\n`
  })
})

t.test('usage mistakes exit 2 and name the argument or flag', async (t) => {
  const urlRule = 'the URL must be an http://HOST[:PORT][/path] URL (port 1 to 65535; https is not supported: CLB speaks HTTP to instances behind an HTTP listener)'
  const cases: ReadonlyArray<readonly [string[], string]> = [
    [[], 'missing the URL to check (e.g. clb-proxy check http://127.0.0.1:3000/)'],
    [['https://example.com/'], `${urlRule}, got "https://example.com/"`],
    [['localhost:3000/'], `${urlRule} (did you mean "http://localhost:3000/"?), got "localhost:3000/"`],
    [['http://user:pw@127.0.0.1/'], 'the URL must be an http:// URL without a user name or password, got "http://user:pw@127.0.0.1/"'],
    [['http://127.0.0.1:0/'], `${urlRule}, got "http://127.0.0.1:0/"`],
    [['http://127.0.0.1/', 'extra'], 'unexpected argument "extra" (check takes one URL)'],
    [['http://127.0.0.1/', '--bogus'], "unknown option '--bogus'"],
    [['http://127.0.0.1/', '--json=yes'], "option '--json' does not take a value"],
    [['http://127.0.0.1/', '--timeout'], "option '--timeout' needs a value (--timeout SECONDS)"],
    [['http://127.0.0.1/', '--header', 'NoColon'], `--header must be 'Name: value' with a token name and no CR, LF or NUL in the value, got "NoColon"`],
    [['http://127.0.0.1/', '--header', 'Bad Name: x'], `--header must be 'Name: value' with a token name and no CR, LF or NUL in the value, got "Bad Name: x"`],
    [['http://127.0.0.1/', '--header', 'X-A: a\r\nX-B: b'], `--header must be 'Name: value' with a token name and no CR, LF or NUL in the value, got "X-A: a\\r\\nX-B: b"`],
    [['http://127.0.0.1/', '--method', 'G T'], '--method must be an HTTP method: letters, digits and !#$%&\'*+-.^_`|~ only, got "G T"'],
    [['http://127.0.0.1/', '--profile', 'loose'], `--profile must be 'clb' or 'strict', got "loose"`],
    [['http://127.0.0.1/', '--idle-timeout', '0'], `--idle-timeout must be an integer from 1 to 4000 (CLB's range), got "0"`],
    [['http://127.0.0.1/', '--max-head', '12'], '--max-head must be an integer from 1024 to 1048576 bytes (1 KiB to 1 MiB), got "12"'],
    [['http://127.0.0.1/', '--timeout', '0'], '--timeout must be a number of seconds greater than 0 and at most 4000, got "0"'],
    [['http://127.0.0.1/', '--keepalive-wait=-1'], '--keepalive-wait must be a number of seconds from 0 to 4000 (0 skips the keep-alive measurement), got "-1"'],
    [['http://127.0.0.1/', '--keepalive-wait', 'soon'], '--keepalive-wait must be a number of seconds from 0 to 4000 (0 skips the keep-alive measurement), got "soon"']
  ]
  for (const [argv, message] of cases) {
    t.strictSame(await runCheckCli(argv), { code: 2, stdout: '', stderr: `clb-proxy check: ${message}\n${TRY_HELP}` }, argv.join(' '))
  }
})

t.test('CLB_PROFILE and CLB_IDLE_TIMEOUT apply as for the proxy; a flag wins', async (t) => {
  t.strictSame(await runCheckCli(['http://127.0.0.1/'], { CLB_IDLE_TIMEOUT: 'x' }), {
    code: 2,
    stdout: '',
    stderr: `clb-proxy check: CLB_IDLE_TIMEOUT must be an integer from 1 to 4000 (CLB's range), got "x"\n${TRY_HELP}`
  })
  const backend = await rawBackend(t, answerWith('HTTP/1.1 200 OK\\nContent-Length: 0\\r\\n\\r\\n'))
  const strict = await runCheckCli([`${backend.url}/`, '--keepalive-wait', '0'], { CLB_PROFILE: 'strict', CLB_IDLE_TIMEOUT: '120' })
  t.equal(strict.code, 1, 'strict rejects a bare LF')
  t.ok(strict.stdout.startsWith(`checking ${backend.url}/ (profile strict, idle timeout 120 s)\n`), strict.stdout)
  t.ok(strict.stdout.includes('CLB would answer 502 BAD_GATEWAY (ELB-generated): line ends in LF without CR\n'), strict.stdout)
  const clb = await runCheckCli([`${backend.url}/`, '--keepalive-wait', '0', '--profile', 'clb'], { CLB_PROFILE: 'strict' })
  t.equal(clb.code, 0, 'clb warns')
  t.ok(clb.stdout.includes('  LINE_BARE_LF at offset 15, warn: line ends in LF without CR\n'), clb.stdout)
  t.ok(clb.stdout.includes('passes with warnings: CLB would relay the 200 response (1 warning above)\n'), clb.stdout)
  t.equal(await backend.allClosed(), 0)
})

t.test('--json prints the report with its stable field names', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\nhello'))
  const outcome = await runCheckCli([`${backend.url}/x`, '--json'])
  t.equal(outcome.code, 1)
  t.equal(outcome.stderr, '')
  t.strictSame(JSON.parse(outcome.stdout), {
    url: `${backend.url}/x`,
    profile: 'clb',
    idleTimeoutSeconds: 60,
    request: {
      method: 'GET',
      target: '/x',
      host: '127.0.0.1',
      port: backend.port,
      headers: [
        { name: 'Host', value: `127.0.0.1:${backend.port}` },
        { name: 'User-Agent', value: `clb-proxy-check/${VERSION}` },
        { name: 'Connection', value: 'keep-alive' }
      ],
      bodyBytes: 0
    },
    bytesReceived: 45,
    ending: 'invalid',
    head: null,
    defects: [{ code: 'CL_NOT_INTEGER', offset: 33, message: 'Content-Length value "abc" is not an integer', action: 'reject' }],
    verdict: {
      action: 'reject',
      status: 502,
      primary: { code: 'CL_NOT_INTEGER', offset: 33, message: 'Content-Length value "abc" is not an integer', action: 'reject' },
      summary: 'CLB would answer 502 BAD_GATEWAY (ELB-generated): Content-Length value "abc" is not an integer'
    },
    keepAlive: {
      measured: false,
      closedAfterSeconds: null,
      waitedSeconds: 0,
      outcome: 'not-reusable',
      note: 'CLB closes the backend connection after answering 502',
      extraBytes: 0,
      extraExcerpt: null
    },
    rawExcerpt: 'HTTP/1.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\nhello'
  })
  t.equal(await backend.allClosed(), 0)
})

t.test('keep-alive: a backend that closes right after the response gets the race warning', async (t) => {
  const backend = await rawBackend(t, answerAndClose('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'))
  // The backend closes at once, so the wait ends long before this bound.
  const json = JSON.parse((await runCheckCli([`${backend.url}/`, '--json', '--keepalive-wait', '30'])).stdout) as ReturnType<typeof checkReportJson>
  t.equal(json.keepAlive.measured, true)
  t.equal(json.keepAlive.outcome, 'closed')
  t.ok(json.keepAlive.closedAfterSeconds !== null && json.keepAlive.closedAfterSeconds < 1, `closed after ${String(json.keepAlive.closedAfterSeconds)} s`)
  t.equal(json.keepAlive.waitedSeconds, json.keepAlive.closedAfterSeconds)

  const text = await runCheckCli([`${backend.url}/`, '--keepalive-wait', '30'])
  t.equal(text.code, 0, 'the response itself passes')
  t.match(text.stdout, /\npasses: CLB would relay the 200 response unchanged\n\nwaiting up to 30 s to see whether the backend closes the idle connection; --keepalive-wait 0 skips\nkeep-alive: WARNING: the backend closed the idle connection [0-9.]+ s after the response, before CLB's idle timeout \(60 s\)\.\n/)
  t.ok(text.stdout.includes('"The keep-alive timeout should be at\n  least 60 seconds" (CLB-BACKEND)'), 'cites CLB-BACKEND')
  t.ok(text.stdout.includes('(CLB-IDLE)'), 'cites CLB-IDLE')
  t.ok(text.stdout.includes('server.keepAliveTimeout = 5000'), "names Node's default")
  t.equal(await backend.allClosed(), 0)
})

t.test('keep-alive: a backend that keeps the connection open for the whole (short) wait', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'))
  const outcome = await runCheckCli([`${backend.url}/`, '--keepalive-wait', '0.2'])
  t.equal(outcome.code, 0)
  t.ok(outcome.stdout.endsWith([
    'passes: CLB would relay the 200 response unchanged',
    '',
    'waiting up to 0.2 s to see whether the backend closes the idle connection; --keepalive-wait 0 skips',
    'keep-alive: the backend kept the idle connection open for the whole wait (0.2 s); the idle timeout is 60 s, so an earlier close than that is not ruled out (--keepalive-wait 60 waits that long)',
    ''
  ].join('\n')), outcome.stdout)
  const json = JSON.parse((await runCheckCli([`${backend.url}/`, '--keepalive-wait', '0.2', '--idle-timeout', '1', '--json'])).stdout) as ReturnType<typeof checkReportJson>
  t.strictSame(json.keepAlive, {
    measured: true, closedAfterSeconds: null, waitedSeconds: 0.2, outcome: 'stayed-open', note: null, extraBytes: 0, extraExcerpt: null
  })
  t.equal(await backend.allClosed(), 0)
})

t.test('keep-alive: not measured when the response says Connection: close', async (t) => {
  const backend = await rawBackend(t, answerAndClose('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok'))
  const outcome = await runCheckCli([`${backend.url}/`])
  t.equal(outcome.code, 0)
  t.ok(outcome.stdout.endsWith('passes: CLB would relay the 200 response unchanged\n\nkeep-alive: not measured: the response says Connection: close\n'), outcome.stdout)
  t.equal(await backend.allClosed(), 0)
})

/** A clock that reads the given microsecond values, one per call. */
function steppingClock (...readings: number[]): Clock {
  return {
    nowMicros () {
      const next = readings.shift()
      if (next === undefined) throw new Error('the test clock ran out of readings')
      return next
    }
  }
}

t.test('checkBackend: the time to the close is measured on the injected clock; the wait line comes first', async (t) => {
  const backend = await rawBackend(t, answerAndClose('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'))
  const judged: CheckReport[] = []
  const report = await checkBackend({
    url: `${backend.url}/`,
    keepaliveWaitSeconds: 30,
    userAgent: 'test',
    clock: steppingClock(1_000_000, 6_002_000),
    onResponseJudged: (partial) => judged.push(partial)
  })
  t.equal(judged.length, 1, 'called once')
  t.equal(judged[0]?.keepAlive.outcome, 'waiting')
  t.strictSame(report.keepAlive, {
    measured: true, closedAfterSeconds: 5.002, waitedSeconds: 5.002, outcome: 'closed', note: null, extraBytes: 0, extraExcerpt: null
  })
  t.equal(renderKeepAlivePart(report), [
    "keep-alive: WARNING: the backend closed the idle connection 5.002 s after the response, before CLB's idle timeout (60 s).",
    '  CLB keeps backend connections open after a response and reuses them for later requests. When it',
    '  sends a request on a connection just as the backend closes it, CLB answers 504 GATEWAY_TIMEOUT and',
    '  the backend never logs the request: the most common cause of intermittent CLB 504s',
    '  (CLB-HTTPERR 504: "Registered instances closing the connection to Elastic Load Balancing").',
    "  Fix: make the backend's keep-alive timeout greater than the idle timeout (e.g. 65 s), so that",
    '  CLB is the one that closes idle connections (CLB-IDLE); AWS: "The keep-alive timeout should be at',
    '  least 60 seconds" (CLB-BACKEND). Node\'s http server closes idle connections after 5 s by default',
    '  (server.keepAliveTimeout = 5000 in Node 20 and 22): set server.keepAliveTimeout = 65000.',
    '  Elsewhere: nginx keepalive_timeout, gunicorn --keep-alive, Apache KeepAliveTimeout.',
    ''
  ].join('\n'))
  t.equal(renderCheckReport(report), renderResponsePart(judged[0] as CheckReport) +
    '\nwaiting up to 30 s to see whether the backend closes the idle connection; --keepalive-wait 0 skips\n' +
    renderKeepAlivePart(report), 'the full render is what the command streamed')
  t.equal(await backend.allClosed(), 0)
})

t.test('checkBackend: bytes on the idle connection end the wait as extra-bytes', async (t) => {
  let backendSocket: net.Socket | null = null
  const backend = await rawBackend(t, (socket) => {
    backendSocket = socket
    socket.write(raw('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'))
  })
  const report = await checkBackend({
    url: `${backend.url}/`,
    keepaliveWaitSeconds: 30,
    // Written only once the check is waiting: a later read, not part of the response.
    onResponseJudged: () => (backendSocket as net.Socket | null)?.write('HTTP/1.1 200 OK\r\n')
  })
  t.equal(report.verdict.action, 'pass')
  t.equal(report.keepAlive.outcome, 'extra-bytes')
  t.equal(report.keepAlive.extraBytes, 17)
  t.equal(checkReportJson(report).keepAlive.extraExcerpt, 'HTTP/1.1 200 OK\\r\\n')
  t.match(renderKeepAlivePart(report), /^keep-alive: the backend sent 17 more bytes on the idle connection [0-9.]+ s after the response \(EXTRA_BYTES_AFTER_RESPONSE, warn\): CLB does not reuse such a connection\. They start: "HTTP\/1\.1 200 OK\\r\\n"\n$/)
  t.equal(await backend.allClosed(), 0)
})

t.test('a defect past the first 64 KiB is still shown with its line and marker', async (t) => {
  const line = `${'x'.repeat(99)}\n`
  const body = line.repeat(700) // 70000 bytes
  const backend = await rawBackend(t, (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length - 10}\r\n\r\n`)
    socket.write(body)
  })
  const outcome = await runCheckCli([`${backend.url}/`])
  t.equal(outcome.code, 1)
  const headLength = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length - 10}\r\n\r\n`.length
  const offset = headLength + body.length - 10
  t.ok(outcome.stdout.includes(`  BODY_EXCEEDS_CL at offset ${offset}, reject: 10 more byte(s) arrived after the 69990 bytes of Content-Length\n`), outcome.stdout)
  const lines = outcome.stdout.split('\n')
  const marker = lines.findIndex((text) => text.includes('^ BODY_EXCEEDS_CL'))
  const dumped = lines[marker - 1] ?? ''
  const dumpedOffset = Number(/^ {2}(\d+)[ +] /.exec(dumped)?.[1])
  t.equal((lines[marker] ?? '').indexOf('^'), 9 + (offset - dumpedOffset), 'the ^ is under the first extra byte')
  t.ok(lines.some((text) => /^ {2}\.\.\. \(\d+ bytes not shown\)$/.test(text)), 'the gap is said')
  t.equal(await backend.allClosed(), 0)
})

t.test('check --help prints the usage and exits 0', async (t) => {
  t.strictSame(await runCheckCli(['--help']), { code: 0, stdout: checkHelpText(), stderr: '' })
  t.strictSame(await runCheckCli(['http://127.0.0.1/', '-h']), { code: 0, stdout: checkHelpText(), stderr: '' })
  t.strictSame(checkHelpText().split('\n').filter((line) => line.length > 100), [], 'no line is wider than 100 columns')
})

// --- the pure renderer, on reports written by hand ---------------------------------------

function handReport (overrides: Partial<CheckReport>): CheckReport {
  return {
    url: 'http://10.0.0.5:8080/health',
    address: { host: '10.0.0.5', port: 8080 },
    profile: 'clb',
    idleTimeoutSeconds: 60,
    timeoutSeconds: 60,
    keepaliveWaitSeconds: 60,
    maxTimeSeconds: 60,
    request: {
      method: 'GET',
      target: '/health',
      headers: [{ name: 'Host', value: '10.0.0.5:8080' }, { name: 'User-Agent', value: 'clb-proxy-check/1.2.3' }, { name: 'Connection', value: 'keep-alive' }],
      bodyBytes: 0
    },
    bytesReceived: 0,
    ending: 'complete',
    head: null,
    interimResponses: 0,
    defects: [],
    verdict: { action: 'pass', status: null, primary: null, summary: 'passes: CLB would relay the 200 response unchanged' },
    keepAlive: { measured: true, closedAfterSeconds: null, waitedSeconds: 60, outcome: 'stayed-open', note: null, extraBytes: 0, extraExcerpt: null },
    captured: [],
    ...overrides
  }
}

const HAND_REQUEST = [
  'checking http://10.0.0.5:8080/health (profile clb, idle timeout 60 s)',
  '> GET /health HTTP/1.1',
  '> Host: 10.0.0.5:8080',
  '> User-Agent: clb-proxy-check/1.2.3',
  '> Connection: keep-alive',
  '>',
  ''
].join('\n')

t.test('renderCheckReport: wrapping at 79 columns, escapes, a marker on a continuation, the stayed-open line', async (t) => {
  const bytes = raw(`HTTP/1.1 200 OK\\r\\nX-Long: ${'a'.repeat(80)}\\x01\\tb\\r\\nContent-Length: 0\\r\\n\\r\\n`)
  const defects = [
    { code: 'HDR_VALUE_CTL' as const, offset: 17 + 8 + 80, message: 'control character in a header value', action: 'warn' as const }
  ]
  const report = handReport({
    bytesReceived: bytes.length,
    head: { version: 'HTTP/1.1', statusCode: 200, reason: 'OK', headers: [], end: bytes.length, framing: { kind: 'content-length', length: 0 }, reusable: true },
    defects,
    verdict: { action: 'warn', status: null, primary: null, summary: 'passes with warnings: CLB would relay the 200 response (1 warning above)' },
    captured: [{ start: 0, bytes }]
  })
  t.equal(renderCheckReport(report), HAND_REQUEST + [
    '',
    '< 131 bytes from 10.0.0.5:8080: a complete response (Content-Length: 0); offsets count from its first byte',
    '  00000  HTTP/1.1 200 OK\\r\\n',
    `  00017  X-Long: ${'a'.repeat(62)}`,
    `  00087+ ${'a'.repeat(18)}\\x01\\tb\\r\\n`,
    `${' '.repeat(9 + 18)}^ HDR_VALUE_CTL: control character in a header value`,
    '  00110  Content-Length: 0\\r\\n',
    '  00129  \\r\\n',
    '',
    'defects (profile clb):',
    '  HDR_VALUE_CTL at offset 105, warn: control character in a header value',
    '    not in the AWS docs; proxies disagree, so the clb profile warns and strict rejects',
    '',
    'passes with warnings: CLB would relay the 200 response (1 warning above)',
    '',
    'waiting up to 60 s to see whether the backend closes the idle connection; --keepalive-wait 0 skips',
    'keep-alive: the backend kept the idle connection open for the whole wait (60 s, at least the idle timeout of 60 s): good, CLB closes idle connections first',
    ''
  ].join('\n'))
})

t.test('renderCheckReport: a defect at the end of the bytes, after a line end; JSON of the same report', async (t) => {
  const bytes = raw('HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\n\\r\\n')
  const defect = { code: 'BODY_SHORT_CL' as const, offset: 38, message: 'the connection closed 9 bytes short of Content-Length 9', action: 'reject' as const }
  const report = handReport({
    bytesReceived: 38,
    ending: 'closed',
    head: { version: 'HTTP/1.1', statusCode: 200, reason: 'OK', headers: [{ name: 'Content-Length', value: '9' }], end: 38, framing: { kind: 'content-length', length: 9 }, reusable: true },
    defects: [defect],
    verdict: { action: 'reject', status: 502, primary: defect, summary: `CLB would answer 502 BAD_GATEWAY (ELB-generated): ${defect.message}` },
    keepAlive: { measured: false, closedAfterSeconds: null, waitedSeconds: 0, outcome: 'not-reusable', note: 'CLB closes the backend connection after answering 502', extraBytes: 0, extraExcerpt: null },
    captured: [{ start: 0, bytes }]
  })
  t.equal(renderCheckReport(report), HAND_REQUEST + [
    '',
    '< 38 bytes from 10.0.0.5:8080, then it closed the connection; offsets count from the first byte',
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '  00017  Content-Length: 9\\r\\n',
    '  00036  \\r\\n',
    '  00038',
    `         ^ BODY_SHORT_CL: ${defect.message}`,
    '',
    'defects (profile clb):',
    `  BODY_SHORT_CL at offset 38, reject: ${defect.message}`,
    '    not in the AWS docs; every strict proxy (HAProxy, nginx, Envoy, llhttp) rejects it',
    '',
    `CLB would answer 502 BAD_GATEWAY (ELB-generated): ${defect.message}`,
    '',
    'keep-alive: not measured: CLB closes the backend connection after answering 502',
    ''
  ].join('\n'))
  t.strictSame(checkReportJson(report).head, {
    statusLine: 'HTTP/1.1 200 OK',
    version: 'HTTP/1.1',
    statusCode: 200,
    reason: 'OK',
    headers: [{ name: 'Content-Length', value: '9' }],
    bytes: 38,
    framing: 'content-length',
    contentLength: 9
  })
  t.equal(checkReportJson(report).rawExcerpt, 'HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\n\\r\\n')
})

t.test('renderKeepAlivePart: every outcome of the keep-alive measurement', async (t) => {
  const measured = { measured: true, extraBytes: 0, extraExcerpt: null, note: null }
  const cases: ReadonlyArray<readonly [CheckReport['keepAlive'], string]> = [
    [
      { ...measured, closedAfterSeconds: 75, waitedSeconds: 75, outcome: 'closed' },
      "keep-alive: the backend closed the idle connection 75 s after the response, not before CLB's idle timeout (60 s): good, CLB closes idle connections first\n"
    ],
    [
      { ...measured, closedAfterSeconds: null, waitedSeconds: 90, outcome: 'stayed-open' },
      'keep-alive: the backend kept the idle connection open for the whole wait (90 s, at least the idle timeout of 60 s): good, CLB closes idle connections first\n'
    ],
    [
      { measured: false, closedAfterSeconds: null, waitedSeconds: 0, outcome: 'skipped', note: null, extraBytes: 0, extraExcerpt: null },
      '\nkeep-alive: not measured (--keepalive-wait 0)\n'
    ],
    [
      { measured: false, closedAfterSeconds: null, waitedSeconds: 0, outcome: 'waiting', note: null, extraBytes: 0, extraExcerpt: null },
      ''
    ]
  ]
  for (const [keepAlive, text] of cases) {
    t.equal(renderKeepAlivePart(handReport({ keepAlive })), text, keepAlive.outcome)
  }
})

t.test('an HTTP/1.0 response without keep-alive is not measured, and says why', async (t) => {
  const backend = await rawBackend(t, answerWith('HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'))
  const outcome = await runCheckCli([`${backend.url}/`, '--json'])
  t.equal(outcome.code, 0)
  t.equal((JSON.parse(outcome.stdout) as ReturnType<typeof checkReportJson>).keepAlive.note,
    'an HTTP/1.0 response without Connection: keep-alive ends the connection (RFC 9112 section 9.3)')
  t.equal(await backend.allClosed(), 0)
})
