import t from 'tap'
import { CONTINUE_RESPONSE, SYNTHETIC_RESPONSES, keepsClientConnection } from '../../../proxy/data-path/synthetic-responses.js'

// The exact bytes, written out by hand; docs/clb-choices.md says which were observed on real CLBs.
const EXPECTED: Record<number, string> = {
  400: 'HTTP/1.1 400 BAD_REQUEST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  405: 'HTTP/1.1 405 METHOD_NOT_ALLOWED\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  408: 'HTTP/1.1 408 REQUEST_TIMEOUT\r\nContent-Length:0\r\nConnection: Close\r\n\r\n',
  502: 'HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n',
  503: 'HTTP/1.1 503 Service Unavailable: Back-end server is at capacity\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n',
  504: 'HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'
}

t.test('every synthetic response is exactly the documented bytes', async (t) => {
  t.same(Object.keys(SYNTHETIC_RESPONSES).map(Number).sort(), [400, 405, 408, 502, 503, 504])
  for (const [status, text] of Object.entries(EXPECTED)) {
    const actual = SYNTHETIC_RESPONSES[Number(status) as keyof typeof SYNTHETIC_RESPONSES]
    t.ok(actual.equals(Buffer.from(text, 'latin1')), `${status} bytes`)
  }
  t.ok(CONTINUE_RESPONSE.equals(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1')), '100 Continue bytes')
})

t.test('the Connection header of each response matches what the proxy does with the connection', async (t) => {
  for (const status of [400, 405, 408, 502, 503, 504] as const) {
    const keepAlive = SYNTHETIC_RESPONSES[status].toString('latin1').includes('Connection: keep-alive')
    t.equal(keepsClientConnection(status), keepAlive, `${status}`)
  }
})

t.test('the synthetic responses cannot be modified', async (t) => {
  t.ok(Object.isFrozen(SYNTHETIC_RESPONSES))
})
