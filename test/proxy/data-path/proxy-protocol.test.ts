/**
 * The proxy protocol v1 line (HAProxy's proxy-protocol.txt section 2.1; CLB-PROXY), byte for byte.
 */
import t from 'tap'
import { proxyProtocolV1Header } from '../../../proxy/data-path/proxy-protocol.js'

t.test('TCP4, TCP6, an IPv4-mapped address and mixed families', async (t) => {
  const line = (clientAddress: string, listenerAddress: string): string =>
    proxyProtocolV1Header({ clientAddress, clientPort: 35646, listenerAddress, listenerPort: 80 }).toString('latin1')
  // CLB-PROXY's own example.
  t.equal(line('198.51.100.22', '203.0.113.7'), 'PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\n')
  t.equal(line('2001:db8::1', '::1'), 'PROXY TCP6 2001:db8::1 ::1 35646 80\r\n')
  t.equal(line('::ffff:127.0.0.1', '::ffff:127.0.0.2'), 'PROXY TCP4 127.0.0.1 127.0.0.2 35646 80\r\n', 'a dual-stack listener\'s IPv4 client is TCP4')
  t.equal(line('::FFFF:10.0.0.1', '10.0.0.2'), 'PROXY TCP4 10.0.0.1 10.0.0.2 35646 80\r\n')
  t.equal(line('10.0.0.1', '::1'), 'PROXY UNKNOWN\r\n', 'families differ')
  t.equal(line('', ''), 'PROXY UNKNOWN\r\n', 'no address')
  // Section 2.1: "a 108-byte buffer is always enough to store all the line and a trailing zero".
  t.ok(line('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff').length <= 107)
})
