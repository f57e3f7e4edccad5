/**
 * close(): stop accepting, let in-flight exchanges finish for up to drainTimeoutSeconds, cut the
 * rest, close every connection and flush the access log (CLB-DRAIN: in-flight requests are let
 * finish, then the load balancer "forcibly closes connections"). After close() resolves, every
 * access-log line is there and nothing is left open.
 */
import net from 'node:net'
import t from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

const REQUEST = 'GET /drain HTTP/1.1\r\nHost: example.test\r\n\r\n'

function logLine (f: ProxyFixture, clientPort: number, middle: string): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} ${middle} "GET http://example.test:${f.port}/drain HTTP/1.1" "-" - -`
}

/** Resolves with the error code of a connection attempt to `port` (or 'connected'). */
async function connectOutcome (port: number): Promise<string> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve('connected') })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
  })
}

t.test('close() with an idle keep-alive client: the client connection is closed, the line is there', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok']))
  const client = await f.connect()
  client.write(REQUEST)
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', false])
  await f.proxy.close()
  t.strictSame(f.logLines, [logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 2`)])
  t.strictSame(await client.whenClosed(), { reset: false }, 'closed by the proxy with a FIN')
  t.equal(await connectOutcome(f.port), 'ECONNREFUSED', 'the listener is closed')
  await f.close(t)
})

t.test('close() lets an in-flight response that completes within drainTimeoutSeconds finish', async (t) => {
  // 1 from the exchange listener (exactly one exchange), 4 below, 4 from the fixture's teardown.
  t.plan(9)
  const f = await startProxyFixture(t)
  f.proxy.events.on('exchange', (record) => t.equal(record.outcome, 'relayed', 'the in-flight exchange completed'))
  let releaseRest: () => void = () => {}
  const rest = new Promise<void>((resolve) => { releaseRest = resolve })
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'
  // The rest of the body waits for the test, which releases it after close() was called.
  f.replies.push({ pieces: [Buffer.from(head + 'hello', 'latin1'), rest, Buffer.from('world', 'latin1')], then: 'keep-open' })
  const client = await f.connect()
  client.write(REQUEST)
  await f.backend.requestsReceived(1)
  const closed = f.proxy.close()
  // Shutdown has begun: the listener takes no new connection, the exchange is still in flight.
  t.equal(await connectOutcome(f.port), 'ECONNREFUSED', 'no new connection once close() was called')
  t.equal(f.logLines.length, 0, 'nothing logged yet')
  releaseRest()
  await closed
  t.strictSame(f.logLines, [logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 10`)], 'the line is written when close() resolves')
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome], [`${head}helloworld`, true, 'relayed'])
  await f.close(t)
})

t.test('close() cuts an in-flight exchange that does not finish by the drain deadline', async (t) => {
  t.test('nothing sent to the client yet (response still buffered): CLB\'s 504, then the connection closes', async (t) => {
    // responseHoldMs above the drain deadline: the incomplete response is still held when it comes.
    const f = await startProxyFixture(t, { proxy: { drainTimeoutSeconds: 0.2, responseHoldMs: 10000 } })
    f.replies.push(reply(['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial']))
    const client = await f.connect()
    client.write(REQUEST)
    await f.backend.requestsReceived(1)
    await f.proxy.close()
    // The drain deadline is the proxy's own timer; close() resolves after it, with the line written.
    t.strictSame(f.logLines, [logLine(f, client.port, '- -1 -1 -1 504 0 0 0')])
    t.equal(f.records[0]?.outcome, 'drain-timeout')
    const response = await client.response()
    t.strictSame([response.bytes.toString('latin1'), response.closedByProxy],
      ['HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n', true], 'CLB-DRAIN: the in-flight request gets the 504, none of the instance\'s bytes')
    await f.close(t)
  })

  t.test('response already committed (streaming): the connection is aborted, logged as cut with what was sent', async (t) => {
    // responseBufferBytes 0: the response is committed as soon as its head is judged.
    const f = await startProxyFixture(t, { proxy: { drainTimeoutSeconds: 0.2, responseBufferBytes: 0 } })
    const sent = 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'
    f.replies.push(reply([sent]))
    const client = await f.connect()
    client.write(REQUEST)
    await f.until(() => client.received.length === sent.length)
    await f.proxy.close()
    t.strictSame(f.logLines, [logLine(f, client.port, `${f.backendField} 0 0 0 200 200 0 7`)])
    t.equal(f.records[0]?.outcome, 'cut')
    const response = await client.response()
    t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], [sent, true], 'the client has the head and 7 of 100 body bytes')
    await f.close(t)
  })
})

t.test('close() with part of a request head at the drain deadline: CLB\'s 408 reaches the client, and one line says so', async (t) => {
  const f = await startProxyFixture(t, { proxy: { drainTimeoutSeconds: 0.2 } })
  const client = await f.connect()
  const partialHead = 'GET /drain HTTP/1.1\r\nHost: example.test\r\n'
  client.write(partialHead)
  await f.until(() => client.proxyBytesRead() >= partialHead.length)
  await f.proxy.close()
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy],
    ['HTTP/1.1 408 REQUEST_TIMEOUT\r\nContent-Length:0\r\nConnection: Close\r\n\r\n', true], 'the 408 the line shows is one the client got')
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${client.port} - -1 -1 -1 408 0 0 0 "GET http://127.0.0.1:${f.port}/drain HTTP/1.1" "-" - -`])
  t.strictSame(f.records.map((record) => record.outcome), ['drain-timeout'], 'not a client that closed: the proxy stopped waiting')
  t.match(f.diagnostics.find((entry) => entry.outcome === 'drain-timeout')?.msg,
    /^408 from the load balancer: the proxy was stopping and the drain timeout passed before the client finished sending its request/)
  await f.close(t)
})
