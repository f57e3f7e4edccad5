/**
 * CLB HTTP listeners do not pass protocol upgrades (clb-behavior.md section 5.10): a WebSocket
 * handshake reaches the instance as a plain GET without Upgrade and Connection, the instance's
 * answer is relayed, and the data path emits one 'upgrade-dropped' event per such request for the
 * observers that explain it (diagnostics).
 */
import t from 'tap'
import { startProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

t.test('a WebSocket handshake is forwarded as a plain GET, answered by the app, and reported as a dropped upgrade', async (t) => {
  const f = await startProxyFixture(t)
  const dropped: unknown[] = []
  f.proxy.on('upgrade-dropped', (event) => dropped.push(event))
  const notFound = 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'
  f.replies.push(reply([notFound]))
  const client = await f.connect()
  client.write('GET /socket?room=1 HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  const response = await client.response()
  t.equal(response.bytes.toString('latin1'), notFound, 'the app\'s answer to a plain GET, as on a real CLB')
  t.equal(f.backend.requests[0]?.bytes.toString('latin1'),
    'GET /socket?room=1 HTTP/1.1\r\nHost: example.test\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
    `X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ${f.port}\r\n\r\n`, 'Upgrade and Connection are not forwarded')
  t.strictSame(dropped, [{ method: 'GET', target: '/socket?room=1', protocol: 'websocket' }])
  client.end()
  await client.whenClosed()
  await f.close(t)
})
