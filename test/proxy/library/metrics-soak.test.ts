/**
 * A soak of mixed traffic through a real proxy: the CloudWatch-named metrics, the Prometheus text
 * and the per-minute datapoints all count from the same lifecycle events as the access log, so
 * RequestCount plus the load balancer's 4XX equals the access-log lines, and every view agrees.
 */
import t from 'tap'
import { startProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply, type Reply } from '../../helpers/raw-backend.js'

const ROUNDS = 40

t.test('mixed traffic: 200s, the instance\'s 500s, 502s, 400s; RequestCount + HTTPCode_ELB_4XX = access-log lines, in every view', async (t) => {
  const replies: Record<string, Reply> = {
    '/ok': reply(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok']),
    '/own-error': reply(['HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n']),
    '/broken': reply(['HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok'])
  }
  const f = await startProxyFixture(t, {
    proxy: { admin: '127.0.0.1:0', accessLog: null },
    respond: (request) => replies[request.bytes.toString('latin1').split(' ')[1] ?? ''] as Reply
  })
  for (let round = 0; round < ROUNDS; round++) {
    await f.request('GET /ok HTTP/1.1\r\nHost: shop\r\n\r\n')
    await f.request('GET /own-error HTTP/1.1\r\nHost: shop\r\n\r\n')
    await f.request('GET /broken HTTP/1.1\r\nHost: shop\r\n\r\n')
    await f.request('GET /has space HTTP/1.1\r\nHost: shop\r\n\r\n')
  }
  t.equal(f.proxy.lines().length, 4 * ROUNDS, 'one access-log line per request')
  const m = f.proxy.metrics().Metrics
  t.strictSame([m.HTTPCode_Backend_2XX.Sum, m.HTTPCode_Backend_5XX.Sum, m.HTTPCode_ELB_5XX.Sum, m.HTTPCode_ELB_4XX.Sum], [ROUNDS, ROUNDS, ROUNDS, ROUNDS])
  t.equal(m.RequestCount.Sum + m.HTTPCode_ELB_4XX.Sum, f.proxy.lines().length, 'RequestCount + HTTPCode_ELB_4XX = the access-log lines')
  // CLB-CW Latency: from sending the request to the instance until its response began: one sample
  // per request an instance answered (relayed or rejected), none for a request never routed.
  t.equal(m.Latency.SampleCount, 3 * ROUNDS, 'Latency: one sample per request that reached an instance')
  t.equal(m.BackendConnectionErrors.Sum, 0, 'no failed connection')
  t.equal(m.SpilloverCount.Sum, 0)

  const admin = f.proxy.adminUrl as string
  const text = await (await fetch(`${admin}/metrics`)).text()
  const value = (name: string): number => Number(new RegExp(`^${name}\\{LoadBalancerName="test-clb"\\} (\\S+)$`, 'm').exec(text)?.[1])
  t.strictSame([value('aws_elb_RequestCount'), value('aws_elb_HTTPCode_ELB_4XX'), value('aws_elb_HTTPCode_ELB_5XX'), value('aws_elb_HTTPCode_Backend_5XX')],
    [m.RequestCount.Sum, m.HTTPCode_ELB_4XX.Sum, m.HTTPCode_ELB_5XX.Sum, m.HTTPCode_Backend_5XX.Sum], 'Prometheus reads the same counters')
  const perMinute = await (await fetch(`${admin}/metrics.json?metric=RequestCount&period=60`)).json() as { Datapoints: Array<{ Sum: number }> }
  t.equal(perMinute.Datapoints.reduce((sum, point) => sum + point.Sum, 0), m.RequestCount.Sum, 'the datapoints add up to the same count')
  await f.close(t)
})
