/**
 * Connections, front and back: keep-alive and reuse, the client's Connection header, pipelining,
 * pooled connections the instance closes, the keep-alive race, clients that stop or leave
 * mid-request, and responses larger than the response buffer (streamed, and cut by a late
 * defect). Real sockets, a raw `net` backend, exact bytes and exact access-log lines.
 */
import { once } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import t from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture, type RawClient } from '../../helpers/proxy-fixture.js'
import { CLOSE_WITHOUT_A_BYTE, NEVER_ANSWER, reply } from '../../helpers/raw-backend.js'
import { startListenerProxy, tcpServer } from '../../helpers/listener-proxy.js'

const GATEWAY_TIMEOUT = 'HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'
// Observed on a real CLB (clb-behavior.md §1.1, O-408): no space in "Content-Length:0", "Close".
const REQUEST_TIMEOUT = 'HTTP/1.1 408 REQUEST_TIMEOUT\r\nContent-Length:0\r\nConnection: Close\r\n\r\n'

const USER_AGENT = 'connections-test'

function get (path: string, extraFields = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\n${extraFields}\r\n`
}

function ok (body: string): string {
  return `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`
}

/** What the instance receives for get(path): hop-by-hop fields gone, X-Forwarded-* added (CLB-XFF). */
function forwardedGet (f: ProxyFixture, path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\n` +
    `X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ${f.port}\r\n\r\n`
}

/** The access-log line, written out; `middle` is backend:port through sent_bytes. */
function logLine (f: ProxyFixture, clientPort: number, middle: string, request: string, userAgent = `"${USER_AGENT}"`): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} ${middle} "${request}" ${userAgent} - -`
}

function getField (f: ProxyFixture, path: string): string {
  return `GET http://example.test:${f.port}${path} HTTP/1.1`
}

t.test('keep-alive: requests on one client connection reuse one backend connection (ELB-HOW: pre-open connections)', async (t) => {
  const f = await startProxyFixture(t)
  const client = await f.connect()
  const rounds = 12
  const responses: string[] = []
  const closeListeners: number[] = []
  for (let i = 0; i < rounds; i++) {
    f.replies.push(reply([ok(`body ${i}`)]))
    client.write(get(`/r${i}`))
    const response = await client.response()
    responses.push(`${response.bytes.toString('latin1')}|${String(response.closedByProxy)}`)
    // The pooled connection must not gather a listener per reuse (it did: one 'close' listener each time).
    closeListeners.push(f.proxyBackendSockets[0]?.listenerCount('close') ?? -1)
  }
  t.strictSame(responses, Array.from({ length: rounds }, (_, i) => `${ok(`body ${i}`)}|false`), 'every response relayed, the connection kept')
  t.strictSame(f.logLines, Array.from({ length: rounds }, (_, i) =>
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 ${`body ${i}`.length}`, getField(f, `/r${i}`))))
  t.equal(f.backend.accepted, 1, 'one backend connection')
  t.equal(f.proxyBackendSockets.length, 1, 'the proxy opened one backend connection')
  t.strictSame(f.backend.connections[0]?.requests.map((r) => r.bytes.toString('latin1')),
    Array.from({ length: rounds }, (_, i) => forwardedGet(f, `/r${i}`)), 'every request on it, in order')
  t.strictSame(closeListeners, closeListeners.map(() => closeListeners[0]), `the pooled connection's 'close' listeners do not grow over ${rounds} reuses`)
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('Connection: close from the client closes the client connection after the response, not the backend connection', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([ok('one')]), reply([ok('two')]))
  const first = await f.request(get('/close', 'Connection: close\r\n'))
  const second = await f.request(get('/next'))
  t.strictSame([first.bytes.toString('latin1'), first.closedByProxy], [ok('one'), true],
    'ELB-HOW: the load balancer honors the client\'s Connection header after proxying the response')
  t.strictSame([second.bytes.toString('latin1'), second.closedByProxy], [ok('two'), false])
  t.equal(f.backend.accepted, 1, 'the second request reused the backend connection: Connection is hop-by-hop (RFC 9110 section 7.6.1)')
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')), [forwardedGet(f, '/close'), forwardedGet(f, '/next')],
    'Connection: close was not forwarded')
  t.strictSame(f.logLines, [
    logLine(f, first.clientPort, `${f.backendField} 0 0 0 200 200 0 3`, getField(f, '/close')),
    logLine(f, second.clientPort, `${f.backendField} 0 0 0 200 200 0 3`, getField(f, '/next'))
  ])
  await f.close(t)
})

t.test('pipelined requests in one write are answered in order (ELB-HOW: pipelining on front-end connections)', async (t) => {
  // 3 from the exchange listener, 4 below, 4 from the fixture's teardown.
  t.plan(11)
  const f = await startProxyFixture(t)
  const order = ['/1', '/2', '/3']
  f.proxy.events.on('exchange', (record) => t.equal(record.log.target, order.shift(), 'the exchanges end in request order'))
  f.replies.push(reply([ok('first')]), reply([ok('second!')]), reply([ok('third')]))
  const client = await f.connect()
  client.write(get('/1') + get('/2') + get('/3'))
  const response = await client.response(3)
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], [ok('first') + ok('second!') + ok('third'), false])
  t.strictSame(f.logLines, [
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 5`, getField(f, '/1')),
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 7`, getField(f, '/2')),
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 5`, getField(f, '/3'))
  ])
  // No pipelining on backend connections (ELB-HOW): one at a time, on one kept-alive connection.
  t.equal(f.backend.accepted, 1)
  t.strictSame(f.backend.connections[0]?.requests.map((r) => r.bytes.toString('latin1')), [forwardedGet(f, '/1'), forwardedGet(f, '/2'), forwardedGet(f, '/3')])
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('pipelined requests followed by the client\'s FIN are each answered, in order, then the proxy closes (printf ... | nc -N)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([ok('first')]), reply([ok('second!')]), reply([ok('third')]))
  const client = await f.connect({ allowHalfOpen: true })
  client.write(get('/1') + get('/2') + get('/3'))
  client.end()
  const { reset } = await client.whenClosed()
  t.strictSame([client.received.toString('latin1'), reset], [ok('first') + ok('second!') + ok('third'), false], 'three answers, then a FIN')
  t.strictSame(f.logLines, [
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 5`, getField(f, '/1')),
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 7`, getField(f, '/2')),
    logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 5`, getField(f, '/3'))
  ])
  await f.close(t)
})

for (const thenFin of [false, true]) {
  t.test(`a client that pipelines requests and reads no answer${thenFin ? ', then sends its FIN,' : ''} holds the proxy at the answers its socket can take: the next request waits until they drained, and all are answered in order once it reads`, async (t) => {
    // ClientConnection: the next request is read once the socket has handed the answers before it to
    // the kernel ('drain'), as Node's http server does. Before, every pipelined request was answered
    // at once, and its held answer (up to responseBufferBytes) waited in memory: 12 requests for
    // 2 MiB answers, 24 MiB in the proxy for a client that reads nothing.
    const BODY = 2 * 1024 * 1024
    const COUNT = 12
    const answer = (k: number): Buffer => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY}\r\n\r\n`, 'latin1'), Buffer.alloc(BODY, 0x41 + k)])
    const f = await startProxyFixture(t, { proxy: { responseBufferBytes: 4 * BODY, responseHoldMs: 10_000 } })
    for (let k = 0; k < COUNT; k++) f.replies.push(reply([answer(k)]))
    let turnsSinceRead = 0
    f.proxy.events.on('backend-read', () => { turnsSinceRead = 0 })
    const client = await f.connect({ allowHalfOpen: thenFin })
    client.socket.pause()
    let requests = ''
    for (let k = 0; k < COUNT; k++) requests += get(`/${k}`)
    client.write(requests)
    if (thenFin) client.end()
    // The proxy stopped: no read from the instance for 50 turns of the event loop.
    while (turnsSinceRead < 50) {
      await new Promise((resolve) => setImmediate(resolve))
      turnsSinceRead++
    }
    const answeredWhilePaused = f.records.length
    // The kernel's buffers on loopback take about 4 MiB of a client that does not read, and the
    // socket then holds the rest of the answer being written.
    t.ok(answeredWhilePaused >= 1 && answeredWhilePaused <= 5, `${answeredWhilePaused} of ${COUNT} requests answered while the client read nothing`)
    t.equal(f.backend.requests.length, answeredWhilePaused, 'the next request was not sent to the instance either')
    client.socket.resume()
    const expected = Buffer.concat(Array.from({ length: COUNT }, (_, k) => answer(k)))
    if (thenFin) {
      const { reset } = await client.whenClosed()
      t.equal(reset, false, 'then the proxy\'s FIN')
    } else {
      await f.until(() => client.received.length >= expected.length)
    }
    t.ok(client.received.equals(expected), 'every answer, whole and in order')
    t.strictSame(f.logLines, Array.from({ length: COUNT }, (_, k) => logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 ${BODY}`, getField(f, `/${k}`))), 'one line per request, in order')
    if (!thenFin) {
      client.end()
      await client.whenClosed()
    }
    await f.close(t)
  })
}

t.test('a client that pipelines requests, sends its FIN and reads no answer is closed once the idle timeout passes with none of its answers leaving (after the idle timeout that stopped its requests)', async (t) => {
  // Its answers never leave, so the close never completes by itself, and node:net emits 'timeout'
  // only once without activity: before, the connection stayed open for good.
  const BODY = 2 * 1024 * 1024
  const answer = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY}\r\n\r\n`, 'latin1'), Buffer.alloc(BODY, 0x41)])
  const f = await startProxyFixture(t, { proxy: { responseBufferBytes: 4 * BODY, responseHoldMs: 10_000, idleTimeoutSeconds: 1, lingerSeconds: 0.2 } })
  for (let k = 0; k < 12; k++) f.replies.push(reply([answer]))
  const client = await f.connect({ allowHalfOpen: true })
  client.socket.pause()
  let requests = ''
  for (let k = 0; k < 12; k++) requests += get(`/${k}`)
  client.write(requests)
  client.end()
  await once(client.proxySide(), 'close')
  t.equal(f.proxy.openSockets().clients, 0, 'the proxy closed the connection')
  // The requests it never read (they waited for answers the client did not take) reached no instance.
  t.ok(f.records.length >= 1 && f.records.length < 12, `${f.records.length} requests answered before the client stopped the rest`)
  t.equal(f.backend.requests.length, f.records.length, 'each request sent to the instance was answered')
  t.equal(f.logLines.length, f.records.length, 'one line each')
  f.replies.length = 0
  client.destroy()
  await client.whenClosed()
  await f.close(t)
})

/**
 * Reads `socket` at about `bytesPerMs`: after each chunk it pauses for chunk length / bytesPerMs ms
 * (the reading pace is what the tests below are about), and answers the proxy's FIN with its own.
 */
async function readSlowly (socket: net.Socket, bytesPerMs: number): Promise<{ readonly received: Buffer, readonly reads: number, readonly readingMs: number, readonly reset: boolean }> {
  const chunks: Buffer[] = []
  let reads = 0
  let reset = false
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    reads++
    socket.pause()
    setTimeout(() => socket.resume(), chunk.length / bytesPerMs)
  })
  socket.on('end', () => socket.end())
  socket.on('error', (error: NodeJS.ErrnoException) => { reset ||= error.code === 'ECONNRESET' })
  const started = performance.now()
  socket.resume()
  await once(socket, 'close')
  return { received: Buffer.concat(chunks), reads, readingMs: performance.now() - started, reset }
}

const SLOW_BODY = 8 * 1024 * 1024
const SLOW_ANSWER = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${SLOW_BODY}\r\n\r\n`, 'latin1'), Buffer.alloc(SLOW_BODY, 0x42)])
const LINGER_SECONDS = 0.05
/** The answer is held whole (a response buffer larger than it), then written to the client at once. */
const HELD_WHOLE = { responseBufferBytes: 32 * 1024 * 1024, responseHoldMs: 10_000, lingerSeconds: LINGER_SECONDS }

const finAfterRequest = (client: RawClient): void => { client.write(get('/slow')); client.end() }
const connectionClose = (client: RawClient): void => client.write(get('/slow', 'Connection: close\r\n'))
for (const { how, ask, bytesPerMs, idleTimeoutSeconds, outlasts } of [
  { how: 'sent its FIN after the request', ask: finAfterRequest, bytesPerMs: 16_000, idleTimeoutSeconds: 60, outlasts: 'lingerSeconds' },
  { how: 'asked for Connection: close', ask: connectionClose, bytesPerMs: 16_000, idleTimeoutSeconds: 60, outlasts: 'lingerSeconds' },
  // The idle timeout counts from the last bytes that left, not from the decision to close.
  { how: 'sent its FIN after the request', ask: finAfterRequest, bytesPerMs: 3_000, idleTimeoutSeconds: 1, outlasts: 'the idle timeout' }
] as const) {
  t.test(`a client that ${how} and reads its answer slowly, for longer than ${outlasts}, gets every byte before the close: the socket's held bytes leave before any linger timer starts`, async (t) => {
    // Before, the linger timer started at the decision to close and destroyed the socket with
    // what it still held: the client got the kernel's share of the answer (4 MiB of 8), then a FIN.
    const f = await startProxyFixture(t, { proxy: { ...HELD_WHOLE, idleTimeoutSeconds } })
    f.replies.push(reply([SLOW_ANSWER]))
    const client = await f.connect({ allowHalfOpen: true })
    client.socket.pause()
    ask(client)
    // The exchange is done, the proxy decided to close, and its socket holds what the kernel could not take.
    await f.until(() => f.records.length === 1)
    t.ok(client.proxySide().writableLength > 0, `the proxy's socket holds ${client.proxySide().writableLength} bytes the client has not read`)
    const { received, reads, readingMs, reset } = await readSlowly(client.socket, bytesPerMs)
    const outlastsMs = 2 * (outlasts === 'lingerSeconds' ? LINGER_SECONDS : idleTimeoutSeconds) * 1000
    t.ok(readingMs > outlastsMs, `the client read for ${readingMs.toFixed(0)} ms in ${reads} reads, more than ${outlastsMs} ms`)
    t.equal(received.length, SLOW_ANSWER.length, 'every byte arrived')
    t.ok(received.equals(SLOW_ANSWER), 'in order')
    t.notOk(reset, 'then the proxy\'s FIN, not a reset')
    t.strictSame(f.records.map((record) => [record.outcome, record.log.elbStatusCode, record.log.backendStatusCode]), [['relayed', 200, 200]])
    t.equal(f.logLines.length, 1, 'one line')
    await client.whenClosed()
    await f.close(t)
  })
}

t.test('over an HTTPS listener too: a client that asked for Connection: close and reads its held answer slowly, for longer than the idle timeout, gets every byte', async (t) => {
  // node:net's idle timeout and the TLS handle's write count both stay put while one large
  // encrypted write leaves; only the TCP handle beneath it moves (ClientConnection.sendProgress).
  // Measured before: a reader at 500 KB/s of a 20 MB answer held whole lost its last 6 MB.
  // An answer large enough that the TLS handle has encrypted all of it while much is still to
  // leave (at 8 MiB, its encrypting alone moved the counts at every check).
  const BODY = 24 * 1024 * 1024
  const answer = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY}\r\n\r\n`, 'latin1'), Buffer.alloc(BODY, 0x43)])
  const idleTimeoutSeconds = 1
  const instance = await tcpServer(t, (socket) => socket.once('data', () => socket.write(answer)))
  const f = await startListenerProxy({ ...HELD_WHOLE, idleTimeoutSeconds, listeners: ['https://127.0.0.1:0'], backends: [`http://127.0.0.1:${instance.port}`] })
  const client = tls.connect({ host: '127.0.0.1', port: f.proxy.address.port, servername: 'localhost', ca: f.proxy.certificate?.cert })
  await once(client, 'secureConnect')
  client.pause()
  client.write(get('/slow', 'Connection: close\r\n'))
  await f.waitForExchanges(1)
  const { received, reads, readingMs, reset } = await readSlowly(client, 6_000)
  t.ok(readingMs > 2 * idleTimeoutSeconds * 1000, `the client read for ${readingMs.toFixed(0)} ms in ${reads} reads, more than twice the idle timeout`)
  t.equal(received.length, answer.length, 'every byte arrived')
  t.ok(received.equals(answer), 'in order')
  t.notOk(reset, 'then the proxy\'s close, not a reset')
  t.strictSame(f.records.map((record) => [record.outcome, record.log.elbStatusCode, record.log.backendStatusCode]), [['relayed', 200, 200]])
  t.equal(f.logLines.length, 1, 'one line')
  await f.close(t)
})

/** Reads `length` bytes from `socket` at about `bytesPerMs` (as readSlowly), then stops listening. */
async function readSlowlyUntil (socket: net.Socket, bytesPerMs: number, length: number): Promise<{ readonly received: Buffer, readonly readingMs: number }> {
  const chunks: Buffer[] = []
  let total = 0
  const started = performance.now()
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      total += chunk.length
      socket.pause()
      if (total >= length) {
        socket.off('data', onData)
        socket.off('close', onClose)
        resolve()
        return
      }
      setTimeout(() => socket.resume(), chunk.length / bytesPerMs)
    }
    const onClose = (): void => reject(new Error(`closed after ${total} of ${length} bytes`))
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.resume()
  })
  return { received: Buffer.concat(chunks), readingMs: performance.now() - started }
}

for (const { listener, then } of [
  { listener: 'http', then: 'asks again' },
  { listener: 'https', then: 'asks again' },
  // node:net's idle timeout, which fired while the answer was leaving, fires again an idle
  // timeout after the answer's last write completes.
  { listener: 'https', then: 'sends nothing' }
] as const) {
  const outcome = then === 'asks again' ? 'the next request on it is answered' : 'it is closed once idle for the idle timeout after its answer'
  t.test(`over an ${listener.toUpperCase()} listener, a kept-alive client that reads a held answer slowly, for longer than the idle timeout, keeps its connection, then ${then}: ${outcome}`, async (t) => {
    // CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
    // elapses, the load balancer closes the connection"; bytes leaving are data sent. Before,
    // under TLS, node:net's timeout fired while the answer was still leaving (it reads only the
    // TLS handle's count), and the connection was closed after the answer, unasked.
    const BODY = 24 * 1024 * 1024
    const answer = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY}\r\n\r\n`, 'latin1'), Buffer.alloc(BODY, 0x44)])
    const idleTimeoutSeconds = 1
    let requests = 0
    const instance = await tcpServer(t, (socket) => socket.on('data', () => socket.write(requests++ === 0 ? answer : ok('after'))))
    const f = await startListenerProxy({ ...HELD_WHOLE, idleTimeoutSeconds, listeners: [`${listener}://127.0.0.1:0`], backends: [`http://127.0.0.1:${instance.port}`] })
    // A failed assertion below must not leave the proxy listening (tap would wait for its timeout).
    t.teardown(() => f.proxy.close())
    const client = listener === 'https'
      ? tls.connect({ host: '127.0.0.1', port: f.proxy.address.port, servername: 'localhost', ca: f.proxy.certificate?.cert })
      : net.connect({ host: '127.0.0.1', port: f.proxy.address.port })
    await once(client, listener === 'https' ? 'secureConnect' : 'connect')
    client.pause()
    client.write(get('/slow'))
    await f.waitForExchanges(1)
    const { received, readingMs } = await readSlowlyUntil(client, 6_000, answer.length)
    t.ok(readingMs > 2 * idleTimeoutSeconds * 1000, `the client read for ${readingMs.toFixed(0)} ms, more than twice the idle timeout`)
    t.ok(received.equals(answer), 'every byte, in order')
    const expected: Array<[string, number, number, string, number]> = [['relayed', 200, 200, '/slow', BODY]]
    if (then === 'asks again') {
      client.write(get('/after'))
      t.equal((await readSlowlyUntil(client, 1_000_000, ok('after').length)).received.toString('latin1'), ok('after'), 'the next request on the same connection is answered')
      expected.push(['relayed', 200, 200, '/after', 'after'.length])
    }
    t.strictSame(f.records.map((record) => [record.outcome, record.log.elbStatusCode, record.log.backendStatusCode, record.log.target, record.log.sentBytes]), expected)
    t.equal(f.logLines.length, expected.length, 'one line each')
    // Once nothing moves for the idle timeout, the connection is closed as CLB-IDLE says.
    client.resume()
    await once(client, 'end')
    client.destroy()
    await f.close(t)
  })
}

t.test('a kept-alive client that stops reading a held answer is closed once an idle timeout passes with none of it leaving', async (t) => {
  const f = await startProxyFixture(t, { proxy: { ...HELD_WHOLE, idleTimeoutSeconds: 1 } })
  f.replies.push(reply([SLOW_ANSWER]))
  const client = await f.connect()
  client.socket.pause()
  client.write(get('/slow'))
  await f.until(() => f.records.length === 1)
  t.ok(client.proxySide().writableLength > 0, `the proxy's socket holds ${client.proxySide().writableLength} bytes the client does not read`)
  await once(client.proxySide(), 'close')
  t.equal(f.proxy.openSockets().clients, 0, 'the proxy closed the connection')
  t.strictSame(f.records.map((record) => [record.outcome, record.log.elbStatusCode, record.log.backendStatusCode]), [['relayed', 200, 200]])
  t.equal(f.logLines.length, 1, 'one line')
  client.destroy()
  await client.whenClosed()
  await f.close(t)
})

t.test('a FIN after one request and part of the next: the first is answered, the part gets its 408 (CLB-HTTPERR 408), one line each', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([ok('first')]))
  const client = await f.connect({ allowHalfOpen: true })
  client.write(get('/1') + 'GET /2 HTTP/1.1\r\nHost: exa')
  client.end()
  await client.whenClosed()
  t.equal(client.received.toString('latin1'), ok('first') + REQUEST_TIMEOUT)
  t.strictSame(f.records.map((record) => [record.outcome, record.log.elbStatusCode]), [['relayed', 200], ['client-closed', 408]])
  t.equal(f.logLines.length, 2, 'one line per request')
  await f.close(t)
})

t.test('a pooled connection the instance closes while idle is not reused', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([ok('first')]))
  const first = await f.request(get('/a'))
  const idleEvent = once(f.proxy.events, 'backend-idle-event')
  f.backend.connections[0]?.socket.end()
  const [event] = await idleEvent
  t.strictSame(event, { backend: f.backendField, event: 'closed', bytes: 0, idleSeconds: 0 }, 'reported (frozen clock: 0 s idle)')
  await f.proxyBackendSocketsClosed()
  t.strictSame(f.proxy.openSockets(), { clients: 0, backends: 0 }, 'the proxy dropped it')
  f.replies.push(reply([ok('second')]))
  const second = await f.request(get('/b'))
  t.strictSame([first.bytes.toString('latin1'), second.bytes.toString('latin1')], [ok('first'), ok('second')])
  t.equal(f.backend.accepted, 2, 'the second request opened a new connection')
  t.strictSame(f.backend.requests.map((r) => [r.connection, r.bytes.toString('latin1')]), [[0, forwardedGet(f, '/a')], [1, forwardedGet(f, '/b')]])
  t.strictSame(f.logLines, [
    logLine(f, first.clientPort, `${f.backendField} 0 0 0 200 200 0 5`, getField(f, '/a')),
    logLine(f, second.clientPort, `${f.backendField} 0 0 0 200 200 0 6`, getField(f, '/b'))
  ])
  await f.close(t)
})

t.test('keep-alive race: the instance takes a request on a reused connection and closes with zero bytes -> 504 (CLB-HTTPERR 504 cause 2)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([ok('first')]), CLOSE_WITHOUT_A_BYTE)
  const first = await f.request(get('/a'))
  const second = await f.request(get('/b'))
  t.strictSame([first.bytes.toString('latin1'), second.bytes.toString('latin1'), second.closedByProxy, second.records[0]?.outcome],
    [ok('first'), GATEWAY_TIMEOUT, false, 'backend-closed'])
  t.equal(f.backend.accepted, 1, 'both requests went to the same, reused connection')
  t.strictSame(f.backend.requests.map((r) => [r.connection, r.bytes.toString('latin1')]), [[0, forwardedGet(f, '/a')], [0, forwardedGet(f, '/b')]])
  t.strictSame(f.logLines, [
    logLine(f, first.clientPort, `${f.backendField} 0 0 0 200 200 0 5`, getField(f, '/a')),
    // CLB-LOGS: backend:port is "-" "if the instance closes the connection before a response can be sent".
    logLine(f, second.clientPort, '- -1 -1 -1 504 0 0 0', getField(f, '/b'))
  ])
  await f.close(t)
})

t.test('a client that closes mid-request is logged with 408 and leaves nothing open (CLB-HTTPERR 408)', async (t) => {
  t.test('half-close in the middle of the head: 408 bytes, then close', async (t) => {
    const f = await startProxyFixture(t)
    const client = await f.connect()
    client.write('GET /half HTTP/1.1\r\nHost: exam')
    client.end()
    const response = await client.response()
    t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome], [REQUEST_TIMEOUT, true, 'client-closed'])
    // The head never completed: no Host to log, so the listener address stands in (docs/access-log.md choice 6); no User-Agent.
    t.strictSame(f.logLines, [logLine(f, client.port, '- -1 -1 -1 408 0 0 0', `GET http://127.0.0.1:${f.port}/half HTTP/1.1`, '"-"')])
    t.equal(f.backend.accepted, 0, 'nothing reached the instance')
    t.strictSame(f.proxy.openSockets(), { clients: 0, backends: 0 })
    await f.close(t)
  })

  t.test('destroyed in the middle of the body: the backend connection is dropped, received_bytes counts the body so far', async (t) => {
    const f = await startProxyFixture(t)
    const client = await f.connect()
    const head = `POST /upload HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\nContent-Length: 10\r\n\r\n`
    client.write(`${head}abcd`)
    const forwardedHead = `POST /upload HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\nContent-Length: 10\r\n` +
      `X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ${f.port}\r\n\r\n`
    await f.backend.until(() => f.backend.connections[0]?.received.length === forwardedHead.length + 4)
    client.destroy()
    const [record] = await f.waitForExchanges(1)
    t.equal(record?.outcome, 'client-closed')
    t.strictSame(f.logLines, [logLine(f, client.port, '- -1 -1 -1 408 0 4 0', `POST http://example.test:${f.port}/upload HTTP/1.1`)])
    t.equal(f.backend.connections[0]?.received.toString('latin1'), `${forwardedHead}abcd`, 'the instance got the head and the 4 body bytes')
    await client.whenClosed()
    await f.backend.noConnections()
    await f.proxyBackendSocketsClosed()
    t.strictSame(f.proxy.openSockets(), { clients: 0, backends: 0 }, 'nothing left open before close()')
    await f.close(t)
  })

  t.test('reset in the middle of the head: still one 408 line', async (t) => {
    const f = await startProxyFixture(t)
    const client = await f.connect()
    const partial = `GET /reset HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\n`
    client.write(partial)
    // The request line and two header lines reach the proxy before the reset.
    await f.until(() => client.proxyBytesRead() === partial.length)
    client.socket.resetAndDestroy()
    const [record] = await f.waitForExchanges(1)
    t.equal(record?.outcome, 'client-closed')
    t.strictSame(f.logLines, [logLine(f, client.port, '- -1 -1 -1 408 0 0 0', `GET http://127.0.0.1:${f.port}/reset HTTP/1.1`, '"-"')])
    t.equal(f.backend.accepted, 0)
    t.strictSame(f.proxy.openSockets(), { clients: 0, backends: 0 })
    await f.close(t)
  })
})

t.test('a client idle mid-request past the idle timeout gets the 408 bytes, then the connection closes (CLB-IDLE, CLB-HTTPERR 408)', async (t) => {
  const f = await startProxyFixture(t, { proxy: { idleTimeoutSeconds: 1 } })
  const client = await f.connect()
  client.write(`GET /slow HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\n`)
  // No sleep: the proxy's idle timer fires, and the exchange event ends the wait.
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome], [REQUEST_TIMEOUT, true, 'client-timeout'])
  t.strictSame(f.logLines, [logLine(f, client.port, '- -1 -1 -1 408 0 0 0', `GET http://127.0.0.1:${f.port}/slow HTTP/1.1`, '"-"')])
  t.equal(f.backend.accepted, 0)
  await f.close(t)
})

t.test('a client idle mid-body past the idle timeout gets the 408 too, and the instance\'s connection is dropped', async (t) => {
  const f = await startProxyFixture(t, { proxy: { idleTimeoutSeconds: 1 } })
  f.replies.push(NEVER_ANSWER)
  const client = await f.connect()
  client.write(`POST /slow-body HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\nContent-Length: 10\r\n\r\nabcd`)
  const response = await client.response()
  // CLB-HTTPERR 408 cause 1: "specified content size doesn't match the actual content size transmitted".
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome], [REQUEST_TIMEOUT, true, 'client-timeout'])
  t.strictSame(f.logLines, [logLine(f, client.port, '- -1 -1 -1 408 0 4 0', `POST http://example.test:${f.port}/slow-body HTTP/1.1`)])
  await f.backend.noConnections()
  await f.proxyBackendSocketsClosed()
  t.strictSame(f.proxy.openSockets(), { clients: 0, backends: 0 })
  await f.close(t)
})

t.test('a response larger than responseBufferBytes streams through unchanged', async (t) => {
  const f = await startProxyFixture(t, { proxy: { responseBufferBytes: 1024 } })
  const body = Buffer.alloc(5000, 'abcdefghij').toString('latin1')
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'
  const client = await f.connect()
  // The rest of the body goes out only once the client holds the first piece: proof the proxy
  // committed past the buffer cap instead of holding the whole response.
  const firstPiece = head + body.slice(0, 1500)
  f.replies.push({
    pieces: [Buffer.from(firstPiece, 'latin1'), f.until(() => client.received.length >= firstPiece.length), Buffer.from(body.slice(1500), 'latin1')],
    then: 'keep-open'
  })
  client.write(get('/big'))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome], [head + body, false, 'relayed'])
  t.strictSame(f.logLines, [logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 5000`, getField(f, '/big'))])
  // The connection went back to the pool: the next request reuses it.
  f.replies.push(reply([ok('small')]))
  client.write(get('/small'))
  const next = await client.response()
  t.equal(next.bytes.toString('latin1'), ok('small'))
  t.equal(f.backend.accepted, 1)
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('a defect after the commit (body short of Content-Length, then FIN) aborts the client connection and is logged as cut', async (t) => {
  const f = await startProxyFixture(t, { proxy: { responseBufferBytes: 1024 } })
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'
  const firstPiece = head + 'a'.repeat(1500)
  const client = await f.connect()
  f.replies.push({
    pieces: [Buffer.from(firstPiece, 'latin1'), f.until(() => client.received.length >= firstPiece.length), Buffer.from('b'.repeat(500), 'latin1')],
    then: 'fin'
  })
  client.write(get('/short'))
  const response = await client.response()
  // The client has the head and the 2000 body bytes relayed before the FIN, and no more: it can tell the body is short.
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome],
    [firstPiece + 'b'.repeat(500), true, 'cut'])
  t.ok(response.bytes.length < head.length + 5000, 'the connection closed before the full body')
  t.strictSame(response.records[0]?.defects.map((d) => d.code), ['BODY_SHORT_CL'])
  t.strictSame(f.logLines, [logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 2000`, getField(f, '/short'))])
  await f.close(t)
})
