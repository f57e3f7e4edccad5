/**
 * The demo backend's WebSocket echo (/ws, RFC 6455), used to show that a WebSocket works through a
 * TCP listener and not through an HTTP one (spec §5.10).
 */
import { once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import { WebSocket } from 'ws'
import { startDemoBackend } from '../../../proxy/byte-servers/demo-backend.js'
import { DEMO_WEBSOCKET_MAX_PAYLOAD, websocketAccept } from '../../../proxy/byte-servers/demo-websocket.js'
import { readUntilClosed, startListenerProxy } from '../../helpers/listener-proxy.js'

t.test('RFC 6455 section 1.3: the accept value of the RFC\'s own example', async (t) => {
  t.equal(websocketAccept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
})

t.test('text and binary messages are echoed, a ping gets its pong, a close its close', async (t) => {
  const demo = await startDemoBackend()
  t.teardown(() => demo.close())
  const client = new WebSocket(`ws://127.0.0.1:${demo.port}/ws`)
  await once(client, 'open')
  client.send('hello')
  t.equal(String((await once(client, 'message'))[0]), 'hello')
  const binary = Buffer.alloc(70000 - 10000, 7)
  client.send(binary)
  const [echoed, isBinary] = await once(client, 'message') as [Buffer, boolean]
  t.ok(isBinary)
  t.same(echoed, binary, 'a payload over 125 bytes uses the 16-bit length')
  client.ping('are you there')
  t.equal(String((await once(client, 'pong'))[0]), 'are you there')
  client.close(1000, 'bye')
  const [code] = await once(client, 'close') as [number]
  t.equal(code, 1000)
})

t.test('an unmasked frame closes with 1002, a payload over the limit with 1009, another path gets 400', async (t) => {
  const demo = await startDemoBackend()
  t.teardown(() => demo.close())
  const handshake = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
  const raw = async (bytes: Buffer): Promise<Buffer> => {
    const socket = net.connect(demo.port, '127.0.0.1')
    socket.write(bytes)
    return (await readUntilClosed(socket)).bytes
  }
  const unmasked = await raw(Buffer.concat([Buffer.from(handshake('/ws')), Buffer.from([0x81, 0x02, 0x68, 0x69])]))
  t.same(unmasked.subarray(unmasked.indexOf('\r\n\r\n') + 4), Buffer.from([0x88, 0x02, 0x03, 0xea]), 'close 1002')
  const header = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0x01, 1, 2, 3, 4])
  t.ok(DEMO_WEBSOCKET_MAX_PAYLOAD < 0x100001)
  const tooBig = await raw(Buffer.concat([Buffer.from(handshake('/ws')), header]))
  t.same(tooBig.subarray(tooBig.indexOf('\r\n\r\n') + 4), Buffer.from([0x88, 0x02, 0x03, 0xf1]), 'close 1009')
  const other = await raw(Buffer.from(handshake('/other')))
  t.equal(other.toString('latin1'), 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
})

t.test('through a TCP listener the echo works; through an HTTP listener the demo answers the plain GET with 426', async (t) => {
  const demo = await startDemoBackend()
  t.teardown(() => demo.close())
  const f = await startListenerProxy({ listeners: ['http://127.0.0.1:0', 'tcp://127.0.0.1:0'], backends: [demo.url, `tcp://127.0.0.1:${demo.port}`] })
  const [http, tcp] = f.proxy.listeners
  const client = new WebSocket(`ws://127.0.0.1:${tcp?.port}/ws`)
  await once(client, 'open')
  client.send('through tcp')
  t.equal(String((await once(client, 'message'))[0]), 'through tcp')
  client.close()
  await once(client, 'close')
  const socket = net.connect(http?.port as number, '127.0.0.1')
  socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  const first = (await once(socket, 'data'))[0] as Buffer
  t.match(first.toString('latin1'), /^HTTP\/1\.1 426 Upgrade Required\r\n/)
  const closed = readUntilClosed(socket)
  socket.end()
  await closed
  await f.waitForExchanges(2)
  t.match(f.logLines.find((line) => line.includes('GET http')), / 426 426 0 \d+ "GET http:\/\/x:\d+\/ws HTTP\/1\.1" "-" - -$/)
  await f.close(t)
})
