/**
 * One decision, one line: once the proxy has decided to close a client connection (a 400, a 408,
 * an answer to `Connection: close`), no later byte is read as a request. The client's further
 * bytes are read and discarded in a bounded lingering close, so the client receives the answer
 * instead of a reset (RFC 9112 section 9.6; nginx's lingering_close), and every request is logged
 * exactly once.
 */
import net from 'node:net'
import { once } from 'node:events'
import { setImmediate as setImmediatePromise } from 'node:timers/promises'
import t from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

const BAD_REQUEST = 'HTTP/1.1 400 BAD_REQUEST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
const REQUEST_TIMEOUT = 'HTTP/1.1 408 REQUEST_TIMEOUT\r\nContent-Length:0\r\nConnection: Close\r\n\r\n'
const GOOD_REQUEST = 'GET /after HTTP/1.1\r\nHost: example.test\r\n\r\n'

t.test('bytes after a 400 are not parsed: one 400, one line, the instance sees nothing', async (t) => {
  const f = await startProxyFixture(t)
  // Half-open: the client goes on sending after the proxy's FIN, as a client mid-upload does.
  const client = await f.connect({ allowHalfOpen: true })
  client.write('GET /a b c HTTP/1.1\r\nHost: example.test\r\n\r\n')
  const [record] = await f.waitForExchanges(1)
  await f.until(() => client.received.length >= BAD_REQUEST.length)
  t.equal(record?.outcome, 'bad-request')
  const before = client.proxyBytesRead()
  client.write(GOOD_REQUEST + 'GET /a b c HTTP/1.1\r\n\r\n')
  await f.until(() => client.proxyBytesRead() > before)
  client.end()
  const { reset } = await client.whenClosed()
  t.equal(reset, false, 'closed with a FIN')
  t.equal(client.received.toString('latin1'), BAD_REQUEST, 'nothing after the 400')
  t.equal(f.logLines.length, 1, 'one line')
  t.equal(f.backend.accepted, 0, 'the instance saw nothing')
  await f.close(t)
})

t.test('a 10 MB request head gets the 400, not a reset, in 5 of 5 runs (the rest is discarded while lingering)', async (t) => {
  const f = await startProxyFixture(t)
  const filler = `X-Filler: ${'a'.repeat(1000)}\r\n`
  const block = Buffer.from(filler.repeat(64), 'latin1')
  const outcomes: string[] = []
  for (let run = 0; run < 5; run++) {
    const client = await f.connect()
    client.write(`GET /huge HTTP/1.1\r\nHost: example.test\r\n`)
    let sent = 0
    while (sent < 10 * 1024 * 1024 && !client.closed) {
      sent += block.length
      if (!client.socket.write(block)) await new Promise((resolve) => { client.socket.once('drain', resolve); client.socket.once('close', resolve) })
    }
    client.end()
    const { reset } = await client.whenClosed()
    outcomes.push(`${client.received.toString('latin1')}|reset=${String(reset)}`)
  }
  t.strictSame(outcomes, Array.from({ length: 5 }, () => `${BAD_REQUEST}|reset=false`))
  t.equal(f.logLines.length, 5, 'one line per connection')
  t.ok(f.records.every((r) => r.outcome === 'bad-request' && r.primaryDefect?.code === 'REQUEST_HEAD_TOO_LARGE'))
  await f.close(t)
})

t.test('the rest of a head that stalled past the idle timeout is not dispatched after the 408', async (t) => {
  const f = await startProxyFixture(t, { proxy: { idleTimeoutSeconds: 1 } })
  const client = await f.connect({ allowHalfOpen: true })
  client.write('GET /stalled HTTP/1.1\r\nHost: example.test\r\n')
  const [record] = await f.waitForExchanges(1)
  await f.until(() => client.received.length >= REQUEST_TIMEOUT.length)
  t.strictSame([client.received.toString('latin1'), record?.outcome], [REQUEST_TIMEOUT, 'client-timeout'])
  const before = client.proxyBytesRead()
  client.write('User-Agent: late\r\n\r\n' + GOOD_REQUEST)
  await f.until(() => client.proxyBytesRead() > before)
  client.end()
  await client.whenClosed()
  t.equal(f.backend.accepted, 0, 'the stalled request never reached the instance')
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${client.port} - -1 -1 -1 408 0 0 0 "GET http://127.0.0.1:${f.port}/stalled HTTP/1.1" "-" - -`],
    'the head never completed: Host is the listener address, as for every 408 mid-head')
  await f.close(t)
})

t.test('after a 408 mid-body, the rest of the body and a request behind it are discarded', async (t) => {
  const f = await startProxyFixture(t, { proxy: { idleTimeoutSeconds: 1 } })
  f.replies.push({ pieces: [], then: 'keep-open' })
  const client = await f.connect({ allowHalfOpen: true })
  client.write('POST /slow HTTP/1.1\r\nHost: example.test\r\nContent-Length: 10\r\n\r\nabcd')
  const [record] = await f.waitForExchanges(1)
  await f.until(() => client.received.length >= REQUEST_TIMEOUT.length)
  t.strictSame([client.received.toString('latin1'), record?.outcome], [REQUEST_TIMEOUT, 'client-timeout'])
  const before = client.proxyBytesRead()
  client.write('efghij' + GOOD_REQUEST)
  await f.until(() => client.proxyBytesRead() > before)
  client.end()
  await client.whenClosed()
  t.equal(f.logLines.length, 1, 'one line')
  t.equal(f.backend.requests.length, 0, 'no complete request reached the instance')
  await f.close(t)
})

t.test('a request pipelined behind Connection: close is not processed (RFC 9112 section 9.6)', async (t) => {
  const f = await startProxyFixture(t)
  const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
  f.replies.push(reply([answer]))
  const client = await f.connect()
  client.write('GET /last HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n' + GOOD_REQUEST)
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], [answer, true])
  client.end()
  await client.whenClosed()
  t.equal(f.backend.requests.length, 1, 'only the first request reached the instance')
  t.equal(f.logLines.length, 1)
  await f.close(t)
})

/** A raw client that keeps its side open after the proxy's FIN, as a client that ignores it would. */
async function halfOpenClient (port: number): Promise<{ socket: net.Socket, received: () => string, closed: Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', () => {})
  return { socket, received: () => Buffer.concat(chunks).toString('latin1'), closed: new Promise<void>((resolve) => socket.once('close', () => resolve())) }
}

t.test('lingering is bounded: a client that neither closes nor stops sending is closed after lingerSeconds', async (t) => {
  const f = await startProxyFixture(t, { proxy: { lingerSeconds: 0.2 } })
  const silent = await halfOpenClient(f.port)
  silent.socket.write('BAD\r\n\r\n')
  const talker = await halfOpenClient(f.port)
  talker.socket.write('BAD\r\n\r\n')
  let talkerOpen = true
  void talker.closed.then(() => { talkerOpen = false })
  // Keeps writing while the proxy lingers: one write per event-loop turn (a write callback alone
  // could run without ever letting the proxy's timers fire).
  for (let writes = 0; talkerOpen && writes < 1_000_000; writes++) {
    talker.socket.write('more bytes that will never be read as a request\r\n')
    await setImmediatePromise()
  }
  await talker.closed
  // The silent client is never told (it sends nothing the closed socket could reset): the proxy's side is gone.
  await f.until(() => f.proxy.openSockets().clients === 0)
  silent.socket.destroy()
  await silent.closed
  t.equal(silent.received(), BAD_REQUEST, 'the silent client got its 400, then the proxy closed')
  t.equal(talker.received(), BAD_REQUEST, 'the talker got its 400, then the proxy closed')
  await f.waitForExchanges(2)
  t.equal(f.logLines.length, 2, 'one line each')
  await f.until(() => f.proxy.openSockets().clients === 0)
  t.strictSame(f.proxy.openSockets(), { clients: 0, backends: 0 })
  await f.close(t)
})

t.test('a request that crosses the proxy\'s close of an idle connection is not read (CLB-IDLE): nothing reaches the instance, nothing is logged', async (t) => {
  const f = await startProxyFixture(t, { proxy: { idleTimeoutSeconds: 1 } })
  const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
  f.replies.push(reply([answer]))
  const kept = await halfOpenClient(f.port)
  const fresh = await halfOpenClient(f.port)
  kept.socket.write(GOOD_REQUEST)
  await f.waitForExchanges(1)
  // Both connections go idle; the proxy ends them (FIN) at the idle timeout.
  await Promise.all([once(kept.socket, 'end'), once(fresh.socket, 'end')])
  kept.socket.write('POST /after-idle HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello')
  fresh.socket.write('POST /after-idle HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello')
  kept.socket.end()
  fresh.socket.end()
  await kept.closed
  await fresh.closed
  await f.until(() => f.proxy.openSockets().clients === 0)
  t.equal(kept.received(), answer, 'the kept-alive client got its first answer and nothing else')
  t.equal(fresh.received(), '', 'the fresh client got nothing')
  t.equal(f.backend.requests.length, 1, 'only the first request reached the instance')
  t.equal(f.logLines.length, 1, 'one line')
  await f.close(t)
})

t.test('binary bytes where a method should be get the 400 at once, without waiting for a line end', async (t) => {
  const f = await startProxyFixture(t)
  const client = await f.connect()
  client.write(Buffer.from([0x81, 0x85, 0x61, 0x62, 0x63]))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.primaryDefect],
    [BAD_REQUEST, true, { code: 'REQUEST_LINE_INVALID', offset: 0, message: 'the method is not a token' }])
  t.ok(response.records[0]?.requestHead?.equals(Buffer.from([0x81, 0x85, 0x61, 0x62, 0x63])), 'the bytes go with the record (diagnostic excerpt, capture)')
  await f.close(t)
})
