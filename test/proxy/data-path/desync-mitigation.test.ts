/**
 * Stage "classify" through a real proxy (CLB-DESYNC): each request's tier decides, by desyncMode,
 * whether it is blocked (400, the connection closed, nothing reaches the instance), routed and then
 * both connections closed (defensive, Ambiguous), or routed as usual; every request that is not
 * Compliant counts in DesyncMitigationMode_NonCompliant_Request_Count, whatever the mode.
 */
import t from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
// UndefinedContentLengthSemantics: a body on GET (HDG: Ambiguous).
const AMBIGUOUS = 'GET /ambiguous HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\nhi'
// GetHeadZeroContentLength: Content-Length: 0 on GET (HDG: Acceptable).
const ACCEPTABLE = 'GET /acceptable HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n\r\n'
const COMPLIANT = 'GET /compliant HTTP/1.1\r\nHost: shop\r\n\r\n'

t.test('defensive (the default): an Ambiguous request is routed, then the client and backend connections are closed', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]))
  const response = await f.request(AMBIGUOUS)
  t.equal(response.bytes.toString('latin1'), OK, 'relayed unchanged')
  t.ok(response.closedByProxy, 'then the client connection is closed ("closes the client and target connections")')
  t.equal(response.records[0]?.outcome, 'relayed')
  t.strictSame(response.records[0]?.desync, { tier: 'Ambiguous', reason: 'UndefinedContentLengthSemantics', offset: response.records[0]?.desync?.offset, message: response.records[0]?.desync?.message })
  t.equal(f.backend.connections.length, 1)
  await f.proxyBackendSocketsClosed()
  t.pass('and the backend connection is not kept')
  t.equal(f.proxy.metrics().Metrics.DesyncMitigationMode_NonCompliant_Request_Count.Sum, 1)
  await f.close(t)
})

t.test('strictest: an Acceptable request gets CLB\'s 400, is logged once, and never reaches the instance', async (t) => {
  const f = await startProxyFixture(t, { proxy: { desyncMode: 'strictest' } })
  const response = await f.request(ACCEPTABLE)
  t.equal(response.bytes.toString('latin1'), SYNTHETIC_RESPONSES[400].toString('latin1'))
  t.ok(response.closedByProxy, 'the client connection is closed')
  t.equal(response.records[0]?.outcome, 'desync-blocked')
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${response.clientPort} - -1 -1 -1 400 0 0 0 "GET http://shop:${f.port}/acceptable HTTP/1.1" "-" - -`])
  t.equal(f.backend.connections.length, 0, 'nothing reached the instance')
  t.match(f.diagnostics.find((d) => d.outcome === 'desync-blocked')?.msg, /^400 from the load balancer: desync mitigation mode strictest blocks Acceptable requests: GetHeadZeroContentLength/)
  const m = f.proxy.metrics().Metrics
  t.equal(m.HTTPCode_ELB_4XX.Sum, 1)
  t.equal(m.DesyncMitigationMode_NonCompliant_Request_Count.Sum, 1)
  f.replies.push(reply([OK]))
  const compliant = await f.request(COMPLIANT)
  t.equal(compliant.bytes.toString('latin1'), OK, 'a Compliant request passes in every mode')
  await f.close(t)
})

t.test('monitor: nothing is blocked or closed, and the non-compliant requests are still counted', async (t) => {
  const f = await startProxyFixture(t, { proxy: { desyncMode: 'monitor' } })
  f.replies.push(reply([OK]), reply([OK]), reply([OK]))
  const client = await f.connect()
  client.write(AMBIGUOUS)
  const first = await client.response()
  t.equal(first.bytes.toString('latin1'), OK)
  t.notOk(first.closedByProxy, 'the connection stays open')
  client.write(ACCEPTABLE)
  t.equal((await client.response()).bytes.toString('latin1'), OK)
  client.write(COMPLIANT)
  t.equal((await client.response()).bytes.toString('latin1'), OK)
  t.equal(f.proxy.metrics().Metrics.DesyncMitigationMode_NonCompliant_Request_Count.Sum, 2)
  t.strictSame(f.records.map((r) => r.desync?.tier), ['Ambiguous', 'Acceptable', 'Compliant'])
  client.end()
  await f.close(t)
})
