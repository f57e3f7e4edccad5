import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import type { KeepaliveRaceMode } from '../../../proxy/core/options.js'

// 2026-11-25T08:00:00.000000Z, frozen so access-log lines are exact.
const FROZEN_MICROS = Date.UTC(2026, 10, 25, 8, 0, 0) * 1000

/** A backend that answers each connection's first request with a keep-alive 200, then closes it (FIN). */
async function earlyClosingBackend (): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let accepted = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

function request (port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /a HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n'))
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
  })
}

async function scenario (mode: KeepaliveRaceMode) {
  const backend = await earlyClosingBackend()
  const lines: string[] = []
  const accessLogStream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done() } })
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backend.port}`], keepaliveRace: mode, captureDir: null },
    { logger: pino({ level: 'silent' }), clock: { nowMicros: () => FROZEN_MICROS }, accessLogStream })
  const closedWhileIdle = once(proxy.events, 'backend-idle-event')
  const first = await request(proxy.address.port)
  const [idleEvent] = await closedWhileIdle
  const second = await request(proxy.address.port)
  await proxy.close()
  const open = proxy.openSockets()
  await backend.close()
  return { first, second, idleEvent, lines, backendConnections: backend.connections(), open, port: proxy.address.port }
}

t.test('detect: an instance closing an idle kept-alive connection is reported; the next request opens a new connection', async (t) => {
  const result = await scenario('detect')
  t.equal(result.first, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  t.match(result.idleEvent, { event: 'closed', bytes: 0 })
  t.equal(result.second, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'no 504 in detect mode')
  t.equal(result.backendConnections, 2, 'the closed connection was not reused')
  t.strictSame(result.open, { clients: 0, backends: 0 })
})

t.test('emulate: the request that would have reused the closed connection gets CLB 504, logged as CLB logs it', async (t) => {
  const result = await scenario('emulate')
  t.equal(result.first, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  t.equal(result.second, 'HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n')
  t.equal(result.backendConnections, 1, 'the 504 was answered without contacting the instance')
  t.equal(result.lines.length, 2)
  t.match(result.lines[1], new RegExp(`^2026-11-25T08:00:00\\.000000Z clb-proxy 127\\.0\\.0\\.1:\\d+ - -1 -1 -1 504 0 0 0 "GET http://app:${result.port}/a HTTP/1\\.1" "-" - -$`))
  t.strictSame(result.open, { clients: 0, backends: 0 })
})

t.test('a request answered at once with Connection: close ends the connection: pipelined requests behind it are not dispatched', async (t) => {
  const backend = await earlyClosingBackend()
  const lines: string[] = []
  const accessLogStream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done() } })
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backend.port}`], keepaliveRace: 'emulate', captureDir: null },
    { logger: pino({ level: 'silent' }), clock: { nowMicros: () => FROZEN_MICROS }, accessLogStream })
  const closedWhileIdle = once(proxy.events, 'backend-idle-event')
  await request(proxy.address.port)
  await closedWhileIdle
  // The first pipelined request meets the emulated race and is answered synchronously (504).
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(proxy.address.port, '127.0.0.1', () => socket.write(
      'GET /first HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\nGET /second HTTP/1.1\r\nHost: app\r\n\r\n'))
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
  })
  await proxy.close()
  await backend.close()
  t.equal(answer, 'HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n', 'only the first request was answered')
  t.equal(lines.length, 2, 'the warm-up request and /first; /second was never dispatched')
  t.match(lines[1], /"GET http:\/\/app:\d+\/first HTTP\/1\.1"/)
  t.equal(backend.connections(), 1, 'the instance saw no request for /second')
  t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 })
})

/**
 * A backend holding each request until told to answer, keep-alive, and closing every connection at
 * once on restart() (what a process that exits, or a Node server.close(), does to its idle connections).
 */
async function restartingBackend (): Promise<{ port: number; waiting: () => number; answerNext: () => void; restart: () => void; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const waiting: net.Socket[] = []
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('data', () => waiting.push(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as net.AddressInfo).port,
    waiting: () => waiting.length,
    answerNext: () => { waiting.shift()?.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok') },
    restart: () => { for (const socket of sockets) socket.end() },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

for (const [name, secondsBetweenAnswers] of [['restarted', 2], ['keep-alive timeouts that fall together', 0]] as const) {
  t.test(`three idle connections closed at once, idle for times ${secondsBetweenAnswers === 0 ? 'alike' : 'far apart'}: ${name}`, async (t) => {
    const backend = await restartingBackend()
    let now = FROZEN_MICROS
    const records: Array<Record<string, unknown>> = []
    const logger = pino({ level: 'info', base: undefined, timestamp: false }, { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } })
    const proxy = await startClbProxy(
      { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backend.port}`], keepaliveRace: 'emulate', accessLog: null, captureDir: null },
      { logger, clock: { nowMicros: () => now } })
    const seen: unknown[] = []
    proxy.events.on('backend-idle-event', (event) => seen.push(event))
    proxy.events.on('backend-closed-together', (event) => seen.push({ together: event }))
    // Three requests at once: three connections to the instance, answered one by one; the clock
    // moves between the answers, so each connection goes back to the pool at its own time.
    let answered = 0
    const responses = [0, 1, 2].map(() => request(proxy.address.port).then((answer) => { answered++; return answer }))
    const turn = (): Promise<unknown> => new Promise((resolve) => setImmediate(resolve))
    while (backend.waiting() < 3) await turn()
    for (let k = 1; k <= 3; k++) {
      backend.answerNext()
      while (answered < k) await turn()
      now += secondsBetweenAnswers * 1_000_000
    }
    t.strictSame(await Promise.all(responses), [0, 1, 2].map(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
    // Idle for 5, 3 and 1 s (answers 2 s apart), or for 1 s each (answered together).
    now += 1_000_000 - secondsBetweenAnswers * 1_000_000
    let nextResponse: Promise<string>
    if (secondsBetweenAnswers > 0) {
      // The next request as soon as the proxy has seen the closes: before the burst is judged (50 ms)
      // or after, a restart leaves no marker, so it opens a new connection.
      const told = once(proxy.events, 'backend-closed-together')
      backend.restart()
      while (proxy.openSockets().backends > 0) await turn()
      let settled = false
      nextResponse = request(proxy.address.port).finally(() => { settled = true })
      // Answered by the instance, unless the proxy answered alone (a 504 here would be the bug).
      while (backend.waiting() < 1 && !settled) await turn()
      backend.answerNext()
      await told
    } else {
      const told = once(proxy.events, 'backend-idle-event')
      backend.restart()
      await told
      nextResponse = request(proxy.address.port)
    }
    const next = await nextResponse
    if (secondsBetweenAnswers === 0) {
      t.strictSame(seen, [1, 1, 1].map(() => ({ backend: `127.0.0.1:${backend.port}`, event: 'closed', bytes: 0, idleSeconds: 1 })), 'three early closes, told one by one')
      t.equal(next, 'HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n', 'emulate: the keep-alive race')
      t.equal(proxy.metrics().ClbProxy.KeepaliveEarlyCloseCount.Sum, 3)
      t.match(records.map((record) => record.notice), ['keepalive-closed'])
    } else {
      t.strictSame(seen, [{ together: { backend: `127.0.0.1:${backend.port}`, connections: 3, minIdleSeconds: 1, maxIdleSeconds: 5 } }], 'one event for the three, none one by one')
      t.equal(next, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'a restart is not the keep-alive race: the next request opens a new connection, even in emulate mode')
      t.equal(proxy.metrics().ClbProxy.KeepaliveEarlyCloseCount.Sum, 0, 'not counted as early closes')
      const said = records.filter((record) => record.notice !== undefined)
      t.strictSame(said.map((record) => record.notice), ['instance-closed-together'])
      t.equal(said[0]?.msg, `instance 127.0.0.1:${backend.port} closed 3 idle kept-alive connections at once, idle for 1.0 to 5.0 s: it restarted ` +
        'or stopped (a keep-alive timeout closes each connection when its own idle time runs out); the next requests open new connections')
      t.equal(said[0]?.fix, undefined, 'no keep-alive advice: it would be wrong here')
    }
    await proxy.close()
    await backend.close()
    t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 })
  })
}
