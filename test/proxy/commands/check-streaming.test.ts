/**
 * `clb-proxy check` on a response that never ends (issue 7): SSE and chunked streams from real
 * servers on port 0 that write an event, then another on a timer of their own, forever. A small
 * --max-time ends the check; each test waits on the command's promise, never on a sleep.
 */
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import t, { type Test } from 'tap'
import type { checkReportJson } from '../../../proxy/commands/check.js'
import { run } from '../../../proxy/commands/cli.js'
import { readVersion } from '../../../proxy/commands/version.js'
import { Sink } from '../../helpers/sink.js'

interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Through the real dispatch in cli.ts: `clb-proxy check ...`. */
async function runCheckCli (argv: string[]): Promise<Outcome> {
  const stdout = new Sink()
  const stderr = new Sink()
  const code = await run(['check', ...argv], {}, { stdout, stderr })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

type CheckJson = ReturnType<typeof checkReportJson>

interface StreamingBackend {
  readonly port: number
  readonly url: string
  /** Resolves when every connection the backend accepted has closed, with the count still open. */
  allClosed (): Promise<number>
}

/**
 * A raw `net` backend: once the request head has arrived it writes `first`, then `next(1)`,
 * `next(2)`, ... every `everyMs` on its own timer until the connection closes. `next` returning
 * null stops the timer (the connection stays open and silent).
 */
async function streamingBackend (t: Test, first: string, next: (n: number) => string | null, everyMs: number): Promise<StreamingBackend> {
  const sockets: net.Socket[] = []
  const server = net.createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => undefined)
    let received = ''
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('latin1')
      if (!received.includes('\r\n\r\n')) return
      socket.off('data', onData)
      socket.write(Buffer.from(first, 'latin1'))
      let n = 0
      const timer = setInterval(() => {
        const piece = next(++n)
        if (piece === null) return clearInterval(timer)
        socket.write(Buffer.from(piece, 'latin1'))
      }, everyMs)
      socket.on('close', () => clearInterval(timer))
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
    async allClosed () {
      await Promise.all(sockets.map((socket) => socket.closed ? undefined : once(socket, 'close')))
      return new Promise((resolve, reject) => server.getConnections((error, count) => error ? reject(error) : resolve(count)))
    }
  }
}

const SSE_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n'
/** Every event has the same length, so the count follows from the bytes received. */
const sseEvent = (n: number): string => `data: tick ${String(n).padStart(4, '0')}\n\n`

t.test('an SSE stream that never ends: the check ends after --max-time, shows what arrived and passes', async (t) => {
  // No Content-Length and no chunked coding: the body runs until the close (BODY_UNTIL_CLOSE, a warning).
  const backend = await streamingBackend(t, SSE_HEAD + sseEvent(0), sseEvent, 100)
  const outcome = await runCheckCli([`${backend.url}/events`, '--max-time', '0.3'])
  t.equal(outcome.code, 0, 'a stream well-framed so far passes')
  t.equal(outcome.stderr, '')
  const bytesReceived = Number(/^< (\d+) bytes from /m.exec(outcome.stdout)?.[1])
  const bodyBytes = bytesReceived - SSE_HEAD.length
  const events = bodyBytes / sseEvent(0).length
  t.ok(Number.isInteger(events) && events >= 2, `read past the first event, up to the deadline: ${events} event(s)`)
  const eventLines: string[] = []
  for (let n = 0; n < events; n++) {
    const offset = SSE_HEAD.length + n * sseEvent(0).length
    eventLines.push(`  ${String(offset).padStart(5, '0')}  ${sseEvent(n).slice(0, -2)}\\n`)
    if (n === 0) eventLines.push('         ^ BODY_UNTIL_CLOSE: no Content-Length or Transfer-Encoding: the body runs until the connection closes')
    eventLines.push(`  ${String(offset + sseEvent(0).length - 1).padStart(5, '0')}  \\n`)
  }
  t.equal(outcome.stdout, [
    `checking ${backend.url}/events (profile clb, idle timeout 60 s)`,
    '> GET /events HTTP/1.1',
    `> Host: 127.0.0.1:${backend.port}`,
    `> User-Agent: clb-proxy-check/${readVersion()}`,
    '> Connection: keep-alive',
    '>',
    '',
    `< ${bytesReceived} bytes from 127.0.0.1:${backend.port}: still streaming when --max-time 0.3 s ran out (body delimited by the connection closing); offsets count from its first byte`,
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '  00017  Content-Type: text/event-stream\\r\\n',
    '  00050  Cache-Control: no-cache\\r\\n',
    '  00075  \\r\\n',
    ...eventLines,
    '',
    'defects (profile clb):',
    '  BODY_UNTIL_CLOSE at offset 77, warn: no Content-Length or Transfer-Encoding: the body runs until the connection closes',
    "    not in the AWS docs; clb-proxy's choice (docs/defects.md)",
    '',
    `passes with warnings so far: still streaming after ${bytesReceived} bytes when --max-time 0.3 s ran out; CLB would stream the 200 response to the client as it arrives (1 warning above)`,
    '',
    'keep-alive: not measured: the response was still streaming when --max-time ran out',
    ''
  ].join('\n'))
  t.equal(await backend.allClosed(), 0, 'the check closed its connection')
})

t.test('a chunked SSE stream from a Node http server: --json says ending "deadline" and passes', async (t) => {
  const timers = new Set<NodeJS.Timeout>()
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/event-stream' })
    response.write(sseEvent(0))
    let n = 0
    const timer = setInterval(() => response.write(sseEvent(++n)), 50)
    timers.add(timer)
    request.socket.on('close', () => { clearInterval(timer); timers.delete(timer) })
  })
  const connections: net.Socket[] = []
  server.on('connection', (socket: net.Socket) => connections.push(socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const timer of timers) clearInterval(timer)
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as net.AddressInfo).port
  const outcome = await runCheckCli([`http://127.0.0.1:${port}/events`, '--max-time', '0.2', '--json'])
  t.equal(outcome.code, 0)
  const json = JSON.parse(outcome.stdout) as CheckJson
  t.equal(json.ending, 'deadline')
  t.equal(json.head?.framing, 'chunked')
  t.strictSame(json.defects, [])
  t.strictSame(json.verdict, {
    action: 'pass',
    status: null,
    primary: null,
    summary: `passes so far: still streaming after ${json.bytesReceived} bytes when --max-time 0.2 s ran out; CLB would stream the 200 response to the client as it arrives`
  })
  t.equal(json.keepAlive.note, 'the response was still streaming when --max-time ran out')
  t.ok(json.rawExcerpt.includes('data: tick 0000\\n\\n'), json.rawExcerpt)
  t.equal(connections.length, 1)
  await Promise.all(connections.map((socket) => socket.closed ? undefined : once(socket, 'close')))
  t.equal(timers.size, 0, 'the check closed its connection, and the server stopped its timer')
})

t.test('--max-time never cuts a silence short: a stream that stops sending is cut at the idle timeout, as the proxy cuts it', async (t) => {
  const backend = await streamingBackend(t, SSE_HEAD + sseEvent(0), () => null, 1000)
  const outcome = await runCheckCli([`${backend.url}/`, '--max-time', '0.05', '--timeout', '0.3'])
  t.equal(outcome.code, 1)
  t.ok(outcome.stdout.includes(`< ${SSE_HEAD.length + sseEvent(0).length} bytes from 127.0.0.1:${backend.port}, then nothing for 0.3 s;`), outcome.stdout)
  t.ok(outcome.stdout.includes(
    `CLB would stream the 200 response, then close the connection: the client gets the head and ${sseEvent(0).length} body byte(s), ` +
    'then the instance sent nothing for 0.3 s (--timeout; CLB itself waits for the idle timeout, 60 s) and the response stays incomplete (logged 200 200)\n'
  ), outcome.stdout)
  t.equal(await backend.allClosed(), 0)
})

t.test('a head still trickling in at --max-time: 504, exit 1', async (t) => {
  const backend = await streamingBackend(t, 'HTTP/1.1 200 OK\r\n', (n) => `X-Trickle-${n}: a\r\n`, 20)
  const outcome = await runCheckCli([`${backend.url}/`, '--max-time', '0.1', '--json'])
  t.equal(outcome.code, 1)
  const json = JSON.parse(outcome.stdout) as CheckJson
  t.equal(json.ending, 'deadline')
  t.equal(json.head, null)
  t.strictSame(json.verdict, {
    action: 'reject',
    status: 504,
    primary: null,
    summary: 'CLB would answer 504 GATEWAY_TIMEOUT once the instance goes silent for the idle timeout (60 s): ' +
      `the response head was still incomplete after ${json.bytesReceived} bytes when --max-time 0.1 s ran out`
  })
  t.equal(json.keepAlive.note, 'CLB closes the backend connection after answering 504')
  t.equal(await backend.allClosed(), 0)
})

t.test('a defect in a stream still decides before the deadline: a bad chunk size is a 502', async (t) => {
  const chunk = (text: string): string => `${text.length.toString(16)}\r\n${text}\r\n`
  const head = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n'
  const backend = await streamingBackend(t, head + chunk(sseEvent(0)), (n) => n < 3 ? chunk(sseEvent(n)) : 'zz\r\n', 20)
  const outcome = await runCheckCli([`${backend.url}/`, '--max-time', '30'])
  t.equal(outcome.code, 1, 'ended by the defect, long before --max-time')
  t.match(outcome.stdout, /\n< \d+ bytes from 127\.0\.0\.1:\d+: invalid, reading stopped at the defect;/)
  t.match(outcome.stdout, /\nCLB would answer 502 BAD_GATEWAY \(ELB-generated\): /)
  t.equal(await backend.allClosed(), 0)
})

t.test('--max-time takes seconds greater than 0', async (t) => {
  const rule = 'must be a number of seconds greater than 0 and at most 4000'
  for (const value of ['0', 'soon', '4001']) {
    t.strictSame(await runCheckCli(['http://127.0.0.1/', '--max-time', value]), {
      code: 2,
      stdout: '',
      stderr: `clb-proxy check: --max-time ${rule}, got "${value}"\nTry 'clb-proxy check --help'\n`
    }, value)
  }
})
