/**
 * Replay (proxy/byte-servers/replay.ts, proxy/commands/replay-command.ts, docs/captures.md): a capture served by the
 * replay backend, behind clb-proxy, gives the client the same answer for the same defect as the
 * original backend did; the replay backend's own contract (whole request first, exact bytes, then
 * close or hold); and `clb-proxy replay FILE` output and exit codes.
 */
import { EventEmitter, once } from 'node:events'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { Sink } from '../../helpers/sink.js'
import { rawExchange } from '../../helpers/raw-client.js'
import { CaptureFormatError, formatDump, parseCapture } from '../../../proxy/observers/capture-format.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { run } from '../../../proxy/commands/cli.js'
import type { ExchangeRecord } from '../../../proxy/core/events.js'
import { judgingFlagsFrom, replayBanner, replayHelpText } from '../../../proxy/commands/replay-command.js'
import { startReplayBackend } from '../../../proxy/byte-servers/replay.js'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'
import { REPO_URL } from '../../helpers/repo.js'

const silent = pino({ level: 'silent' })
const REQUEST = 'GET /orders?id=7 HTTP/1.1\r\nHost: replay.test\r\n\r\n'
const CL_NOT_INTEGER_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello'

/** A raw backend that answers the first request head with `response`, then FIN. */
async function startRawBackend (t: Test, response: Buffer, after: 'close' | 'hold' = 'close'): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      head = ''
      if (after === 'close') socket.end(response)
      else socket.write(response)
    })
    socket.on('error', () => undefined) // the proxy destroys a connection it has judged
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

function portOf (server: net.Server): number {
  return (server.address() as net.AddressInfo).port
}

async function connectionCount (server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))))
}


/** Sends `request` and its FIN at once; collects every byte until the server ends too. */
async function sendAndEnd (port: number, request: string): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1')
  socket.end(request, 'latin1')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'close')
  return Buffer.concat(chunks)
}

interface Observed {
  readonly clientBytes: string
  readonly outcome: string
  readonly defects: readonly string[]
}

/**
 * One request through a fresh clb-proxy in front of `backendPort`; what the client got (the first
 * `expectedLength` bytes: the client connection is kept alive) and why.
 */
async function throughProxy (t: Test, backendPort: number, expectedLength: number, options: { captureDir: string | null, idleTimeoutSeconds?: number, responseHoldMs?: number }): Promise<Observed> {
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backendPort}`], accessLog: null, ...options },
    { logger: silent }
  )
  t.teardown(() => proxy.close())
  const records: ExchangeRecord[] = []
  proxy.on('exchange', (record) => records.push(record))
  const { received } = await rawExchange(proxy.address.port, REQUEST, expectedLength)
  await proxy.close()
  t.equal(records.length, 1, 'one exchange')
  t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 })
  const record = records[0] as ExchangeRecord
  return { clientBytes: received.toString('latin1'), outcome: record.outcome, defects: record.defects.map((d) => `${d.code}@${d.offset}`) }
}

// --- the failure reproduces -----------------------------------------------------------------

interface ReproCase {
  readonly name: string
  readonly response: string
  readonly expected: Observed
}

const CLB_502 = SYNTHETIC_RESPONSES[502].toString('latin1')
const REPRO_CASES: readonly ReproCase[] = [
  {
    name: 'Content-Length: abc (KC-502 "a Content-Length header which contains a non-integer")',
    response: CL_NOT_INTEGER_RESPONSE,
    expected: { clientBytes: CLB_502, outcome: 'rejected', defects: ['CL_NOT_INTEGER@33'] }
  },
  {
    name: 'a blank line inside the header block (KC-502 "more than one CRLF between each header")',
    response: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nX-Late: 1\r\n\r\nhello',
    expected: { clientBytes: CLB_502, outcome: 'rejected', defects: ['HDR_BLANK_LINE@38', 'BODY_EXCEEDS_CL@43'] }
  },
  {
    name: 'more body than Content-Length (KC-502)',
    response: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world',
    expected: { clientBytes: CLB_502, outcome: 'rejected', defects: ['BODY_EXCEEDS_CL@43'] }
  },
  {
    name: 'the connection ends inside the head',
    response: 'HTTP/1.1 200 OK\r\nContent-Le',
    expected: { clientBytes: CLB_502, outcome: 'rejected', defects: ['HEADERS_TRUNCATED@27'] }
  }
]

for (const repro of REPRO_CASES) {
  t.test(`${repro.name}: capture -> replay backend -> clb-proxy gives the client the same 502 for the same defect`, async (t) => {
    const original = await startRawBackend(t, Buffer.from(repro.response, 'latin1'))
    const captureDir = t.testdir()
    const first = await throughProxy(t, portOf(original), CLB_502.length, { captureDir })
    t.strictSame(first, repro.expected, 'the original backend')
    const [file] = await readdir(captureDir)
    const path = join(captureDir, file as string)

    const replay = await startReplayBackend({ file: path })
    t.teardown(() => replay.close())
    t.equal(replay.afterResponse, 'close')
    t.strictSame(replay.bytes, Buffer.from(repro.response, 'latin1'))
    const again = await throughProxy(t, replay.port, CLB_502.length, { captureDir: null })
    t.strictSame(again, repro.expected, 'the replay backend')
    t.equal(replay.requests, 1)
    await replay.close()
    t.equal(replay.openConnections, 0)
    t.equal(await connectionCount(original), 0)
  })
}

t.test('a backend that stops mid-response: the capture says hold, and the replay gives the same 504 on the idle timeout', async (t) => {
  const partial = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel', 'latin1')
  const original = await startRawBackend(t, partial, 'hold')
  const captureDir = t.testdir()
  const expected = { clientBytes: SYNTHETIC_RESPONSES[504].toString('latin1'), outcome: 'backend-timeout', defects: [] }
  const length = expected.clientBytes.length
  t.strictSame(await throughProxy(t, portOf(original), length, { captureDir, idleTimeoutSeconds: 1, responseHoldMs: 10000 }), expected, 'the original backend')
  const [file] = await readdir(captureDir)
  const replay = await startReplayBackend({ file: join(captureDir, file as string) })
  t.teardown(() => replay.close())
  t.equal(replay.afterResponse, 'hold')
  t.strictSame(await throughProxy(t, replay.port, length, { captureDir: null, idleTimeoutSeconds: 1, responseHoldMs: 10000 }), expected, 'the replay backend')
  await replay.close()
  t.equal(replay.openConnections, 0)
})

t.test('hand-made bytes: a valid response is relayed unchanged, no bytes at all is the 504 of an instance that closed', async (t) => {
  const valid = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
  const replay = await startReplayBackend({ bytes: Buffer.from(valid, 'latin1') })
  t.teardown(() => replay.close())
  t.strictSame(await throughProxy(t, replay.port, valid.length, { captureDir: null }), { clientBytes: valid, outcome: 'relayed', defects: [] })

  const empty = await startReplayBackend({ bytes: Buffer.alloc(0) })
  t.teardown(() => empty.close())
  t.strictSame(await throughProxy(t, empty.port, SYNTHETIC_RESPONSES[504].length, { captureDir: null }), {
    clientBytes: SYNTHETIC_RESPONSES[504].toString('latin1'),
    outcome: 'backend-closed',
    defects: ['EMPTY_RESPONSE@0']
  })
})

t.test('the captures of docs/captures.md read, and the hand-made one replays as the 502 it is meant to show', async (t) => {
  const doc = await readFile(new URL('docs/captures.md', REPO_URL), 'utf8')
  const blocks = [...doc.matchAll(/```\n([\s\S]*?)```/g)].map((match) => match[1] as string)
  const example = blocks.find((block) => block.startsWith('# clb-proxy capture')) as string
  t.strictSame(parseCapture(example).responseBytes, Buffer.from(CL_NOT_INTEGER_RESPONSE, 'latin1'), 'the example capture')
  /** The lines after `heading`, up to the next blank line. */
  const section = (heading: string): string[] => {
    const lines = example.slice(example.indexOf(heading)).split('\n').slice(1)
    return lines.slice(0, lines.indexOf(''))
  }
  const requestHead = parseCapture(example).requestHead as Buffer
  t.strictSame(section('[request head]'), formatDump(requestHead), 'the request head dump is what clb-proxy writes')
  t.strictSame(section('[response]'), formatDump(Buffer.from(CL_NOT_INTEGER_RESPONSE, 'latin1'), [{ offset: 33, label: 'CL_NOT_INTEGER' }]),
    'the response dump and its marker are what clb-proxy writes')
  t.match(example, new RegExp(`\\[request head\\] ${requestHead.length} bytes\n`))
  const handMade = blocks.find((block) => block.startsWith('# hand-made')) as string
  const file = join(t.testdir(), 'hand-made.capture')
  await writeFile(file, handMade)
  const replay = await startReplayBackend({ file })
  t.teardown(() => replay.close())
  t.strictSame(await throughProxy(t, replay.port, CLB_502.length, { captureDir: null }),
    { clientBytes: CLB_502, outcome: 'rejected', defects: ['CL_DUP_DIFFERENT@52'] })
})

// --- the replay backend on its own --------------------------------------------------------------

t.test('every request gets exactly the bytes, then the connection is closed', async (t) => {
  const bytes = Buffer.from('HTTP/1.1 200 OK\r\n\r\nuntil close \x00\xff', 'latin1')
  const replay = await startReplayBackend({ bytes })
  t.teardown(() => replay.close())
  t.match(replay.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(replay.url, `http://127.0.0.1:${replay.port}`)
  for (let n = 1; n <= 2; n++) {
    const { received, ended } = await rawExchange(replay.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', Infinity)
    t.strictSame({ received, ended }, { received: bytes, ended: true }, `request ${n}`)
    t.equal(replay.requests, n)
  }
  await replay.close()
  t.equal(replay.openConnections, 0)
})

t.test('the whole request is read first: a Content-Length or chunked body, not just the head', async (t) => {
  const bytes = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n', 'latin1')
  const replay = await startReplayBackend({ bytes })
  t.teardown(() => replay.close())
  // The head promises 5 body bytes that never come: the client's FIN arrives first, and nothing is answered.
  t.strictSame(await sendAndEnd(replay.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhell'), Buffer.alloc(0))
  t.equal(replay.requests, 0)
  // The same request complete, and the client's FIN right behind it: answered.
  t.strictSame(await sendAndEnd(replay.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello'), bytes)
  t.equal(replay.requests, 1)
  const contentLength = await rawExchange(replay.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', Infinity)
  t.strictSame({ received: contentLength.received, ended: contentLength.ended }, { received: bytes, ended: true })
  const chunked = await rawExchange(replay.port, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', Infinity)
  t.strictSame({ received: chunked.received, ended: chunked.ended }, { received: bytes, ended: true })
  t.equal(replay.requests, 3)
})

t.test("after-response 'hold': the bytes, then an open, silent connection until close()", async (t) => {
  const bytes = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel', 'latin1')
  const replay = await startReplayBackend({ bytes, afterResponse: 'hold', host: '127.0.0.1', port: 0 })
  t.teardown(() => replay.close())
  const socket = net.connect(replay.port, '127.0.0.1')
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  const [chunk] = await once(socket, 'data') as [Buffer]
  t.strictSame(chunk, bytes)
  t.equal(replay.openConnections, 1, 'still open after the bytes')
  const closed = once(socket, 'close')
  await replay.close()
  await closed
  t.equal(replay.openConnections, 0)
  t.equal(replay.requests, 1)
})

t.test('startReplayBackend with a file that is missing or not a capture rejects and listens on nothing', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'hello\n' })
  await t.rejects(startReplayBackend({ file: join(dir, 'missing.capture') }), { code: 'ENOENT' })
  const error = await startReplayBackend({ file: join(dir, 'notes.txt') }).catch((e: unknown) => e)
  t.ok(error instanceof CaptureFormatError)
  t.equal((error as CaptureFormatError).line, 1)
})

// --- clb-proxy replay FILE ------------------------------------------------------------------


async function runCli (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const stdout = new Sink()
  const stderr = new Sink()
  const code = await run(argv, {}, { stdout, stderr, signals: new EventEmitter() })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

/** A capture written by a real proxy for CL_NOT_INTEGER_RESPONSE; returns its path. */
async function captureOne (t: Test): Promise<string> {
  const original = await startRawBackend(t, Buffer.from(CL_NOT_INTEGER_RESPONSE, 'latin1'))
  const captureDir = t.testdir()
  await throughProxy(t, portOf(original), CLB_502.length, { captureDir })
  const [file] = await readdir(captureDir)
  return join(captureDir, file as string)
}

const TRY_HELP = "Try 'clb-proxy replay --help'\n"

t.test('clb-proxy replay FILE serves the capture, prints the proxy and curl lines, and stops on a signal with 0', async (t) => {
  const file = await captureOne(t)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const stdout = new Sink()
    const stderr = new Sink()
    const signals = new EventEmitter()
    const exit = run(['replay', file, '--listen', '127.0.0.1:0'], {}, { stdout, stderr, signals })
    const [, url, port] = await stdout.waitFor(/^clb-proxy replay: (http:\/\/127\.0\.0\.1:(\d+)) /) as [string, string, string]
    await stdout.waitFor(/Press Ctrl-C to stop\.\n/)
    const capture = parseCapture(await readFile(file, 'utf8'))
    t.equal(stdout.text, [
      `clb-proxy replay: ${url} answers every request with the 45 response bytes of ${file}, then closes the connection`,
      `  captured: GET /orders?id=7 HTTP/1.1 -> 502 CL_NOT_INTEGER @33 (rejected)`,
      'Put clb-proxy in front of it:',
      `  clb-proxy --backend ${url}`,
      'Then send the captured request through it:',
      "  curl -v 'http://127.0.0.1:8080/orders?id=7'",
      'Press Ctrl-C to stop.',
      ''
    ].join('\n'))
    const served = await rawExchange(Number(port), REQUEST, Infinity)
    t.strictSame({ received: served.received, ended: served.ended }, { received: capture.responseBytes, ended: true })
    signals.emit(signal)
    t.equal(await exit, 0, signal)
    t.ok(stdout.text.endsWith(`clb-proxy replay: ${signal} received; stopped after 1 request(s)\n`))
    t.equal(stderr.text, '')
    t.equal(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM'), 0, 'signal listeners removed')
    await t.rejects(new Promise((resolve, reject) => {
      const probe = net.connect(Number(port), '127.0.0.1', () => { probe.destroy(); resolve(undefined) })
      probe.on('error', reject)
    }), { code: 'ECONNREFUSED' }, 'nothing listens after the stop')
  }
})

t.test('the banner carries the flags that judged the response and a method other than GET', async (t) => {
  const dir = t.testdir({
    'post.capture': [
      'request: POST /it\'s HTTP/1.1',
      'elb-status: 502',
      'primary-defect: BODY_EXCEEDS_CL @40',
      'outcome: rejected',
      'proxy-options: --profile strict --idle-timeout 5',
      '[response]',
      '  00000  HTTP/1.1 200 OK\\r\\n',
      ''
    ].join('\n'),
    'head.capture': 'request: HEAD / HTTP/1.1\n[response]\n',
    'bare.capture': '[response]\n  00000  x\n'
  })
  const banner = async (name: string): Promise<string[]> => {
    const stdout = new Sink()
    const signals = new EventEmitter()
    const exit = run(['replay', join(dir, name)], {}, { stdout, stderr: new Sink(), signals })
    await stdout.waitFor(/Press Ctrl-C to stop\.\n/)
    signals.emit('SIGINT')
    t.equal(await exit, 0)
    return stdout.text.split('\n').slice(1, -3)
  }
  const post = await banner('post.capture')
  t.match(post[0], /^  captured: POST \/it's HTTP\/1\.1 -> 502 BODY_EXCEEDS_CL @40 \(rejected\)$/)
  t.match(post[2], /^  clb-proxy --backend http:\/\/127\.0\.0\.1:\d+ --profile strict --idle-timeout 5$/)
  t.equal(post[4], "  curl -v -X POST 'http://127.0.0.1:8080/it'\\''s'")
  const head = await banner('head.capture')
  t.equal(head[4], '  curl -v -I http://127.0.0.1:8080/')
  const bare = await banner('bare.capture')
  t.equal(bare[0], 'Put clb-proxy in front of it:', 'no captured line without header fields')
  t.equal(bare[3], '  curl -v http://127.0.0.1:8080/')
})

t.test('a hostile capture: nothing read from it reaches the terminal raw, and nothing in it is offered as our flags', async (t) => {
  const file = '/tmp/shared/evil.capture'
  const capture = parseCapture([
    // A literal escape (\x1b as text, as formatCapture writes it) and raw ESC, BEL and 8-bit bytes.
    'request: -o/tmp/pwned /a\\x1b[2J[1]{x}\x1b]0;x\x07\xff HTTP/1.1',
    'elb-status: 502\x1b[31m',
    'outcome: rejected\u009b',
    'primary-defect: CL_NOT_INTEGER @33',
    'proxy-options: --idle-timeout 5 --access-log /etc/passwd --admin 0.0.0.0:80',
    '[response]',
    '  00000  HTTP/1.1 200 OK\\r\\n',
    ''
  ].join('\n'))
  t.equal(replayBanner(file, capture, { url: 'http://127.0.0.1:40123' }), [
    'clb-proxy replay: http://127.0.0.1:40123 answers every request with the 17 response bytes of /tmp/shared/evil.capture, then closes the connection',
    '  captured: -o/tmp/pwned /a\\x1b[2J[1]{x}\\x1b]0;x\\x07\\xff HTTP/1.1 -> 502\\x1b[31m CL_NOT_INTEGER @33 (rejected\\x9b)',
    'Put clb-proxy in front of it:',
    '  clb-proxy --backend http://127.0.0.1:40123',
    "  (the capture's proxy-options line is not one clb-proxy writes, so none of it is used: --idle-timeout 5 --access-log /etc/passwd --admin 0.0.0.0:80)",
    'Then send the captured request through it:',
    "  curl -v -g 'http://127.0.0.1:8080/a%1B[2J[1]%7Bx%7D%1B]0;x%07%C3%BF'",
    '  (the captured method is not an HTTP token, so curl sends GET: -o/tmp/pwned)',
    '  (bytes of the captured target that a URL cannot hold as they are were percent-encoded: the path is not byte for byte the captured one)',
    'Press Ctrl-C to stop.',
    ''
  ].join('\n'))
  // A file name with control characters: escaped in the banner.
  t.match(replayBanner('/tmp/\x1b[2Jx.capture', capture, { url: 'http://127.0.0.1:1' }), /bytes of \/tmp\/\\x1b\[2Jx\.capture, then/)
  // A dot segment and an absolute-form target.
  const dots = parseCapture('request: GET /a/../b HTTP/1.1\n[response]\n')
  t.match(replayBanner(file, dots, { url: 'http://127.0.0.1:1' }), /\n {2}curl -v --path-as-is http:\/\/127\.0\.0\.1:8080\/a\/\.\.\/b\n/)
  const absolute = parseCapture('request: GET http://other.test/x HTTP/1.1\n[response]\n')
  t.match(replayBanner(file, absolute, { url: 'http://127.0.0.1:1' }),
    /\n {2}curl -v http:\/\/127\.0\.0\.1:8080\/\n {2}\(the captured target is not a path, so curl requests \/: http:\/\/other\.test\/x\)\n/)
})

t.test('proxy-options: only our judging flags with values in range, each once, are kept', async (t) => {
  t.strictSame(judgingFlagsFrom(''), [])
  t.strictSame(judgingFlagsFrom('--profile strict --idle-timeout 5 --max-head 2048 --response-buffer 0 --response-hold 10000'),
    ['--profile', 'strict', '--idle-timeout', '5', '--max-head', '2048', '--response-buffer', '0', '--response-hold', '10000'])
  for (const hostile of ['--idle-timeout 0', '--idle-timeout 5 --idle-timeout 6', '--profile lax', '--idle-timeout', '--idle-timeout 5x',
    '--idle-timeout 5 --access-log /etc/passwd', '--max-head 1', '--response-hold 99999', '--admin 0.0.0.0:80', '--idle-timeout=5', '-h 1']) {
    t.equal(judgingFlagsFrom(hostile), null, hostile)
  }
})

t.test('clb-proxy replay: an error quoting the file never writes its control bytes to the terminal', async (t) => {
  const dir = t.testdir({ 'c1.capture': 'after-response: \u009b2J\n[response]\n' })
  const stderr = new Sink()
  t.equal(await run(['replay', join(dir, 'c1.capture')], {}, { stdout: new Sink(), stderr, signals: new EventEmitter() }), 2)
  t.equal(stderr.text, `clb-proxy replay: "${join(dir, 'c1.capture')}" is not a capture file: line 1: after-response must be 'close' or 'hold', got "\\x9b2J"\n` +
    "Try 'clb-proxy replay --help'\n")
})

t.test('clb-proxy replay: usage errors and unreadable files exit 2 and name the argument', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'hello\n', 'sub': {} })
  const missing = join(dir, 'missing.capture')
  const cases: ReadonlyArray<readonly [string[], string]> = [
    [['replay'], 'missing FILE: the capture file to serve'],
    [['replay', 'a.capture', 'b.capture'], 'unexpected argument "b.capture" (replay takes one FILE)'],
    [['replay', 'a.capture', '--bogus'], "unknown option '--bogus'"],
    [['replay', 'a.capture', '--listen'], "option '--listen' needs a value (--listen HOST:PORT)"],
    [['replay', '--help=yes'], "option '--help' does not take a value"],
    [['replay', missing], `cannot read the capture file "${missing}": no such file or directory (ENOENT)`],
    [['replay', join(dir, 'sub')], `cannot read the capture file "${join(dir, 'sub')}": it is a directory (EISDIR)`],
    [['replay', join(dir, 'notes.txt')],
      `"${join(dir, 'notes.txt')}" is not a capture file: line 1: expected a header line 'name: value', a '#' comment or a section line '[response]'`]
  ]
  for (const [argv, message] of cases) {
    t.strictSame(await runCli(argv), { code: 2, stdout: '', stderr: `clb-proxy replay: ${message}\n${TRY_HELP}` }, argv.join(' '))
  }
  const badListen = await runCli(['replay', missing, '--listen', 'nowhere'])
  t.equal(badListen.code, 2)
  t.match(badListen.stderr, /^clb-proxy replay: --listen must be HOST:PORT .*, got "nowhere"\n/)
})

t.test('clb-proxy replay --help prints its usage; a port in use exits 1', async (t) => {
  t.strictSame(await runCli(['replay', '--help']), { code: 0, stdout: replayHelpText(), stderr: '' })
  t.strictSame(replayHelpText().split('\n').filter((line) => line.length > 100), [], 'no line is wider than 100 columns')
  const file = join(t.testdir(), 'x.capture')
  await writeFile(file, '[response]\n  00000  x\n')
  const taken = net.createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())))
  const port = portOf(taken)
  t.strictSame(await runCli(['replay', file, '--listen', `127.0.0.1:${port}`]), {
    code: 1,
    stdout: '',
    stderr: `clb-proxy replay: cannot listen on 127.0.0.1:${port}: the address is already in use (EADDRINUSE)\n`
  })
})
