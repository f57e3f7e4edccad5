/**
 * Health checks through a running proxy: instance states and their thresholds both ways, failures
 * of every kind (a redirect, a malformed 200, a close, a refused TCP check), routing around an
 * instance out of service, and CLB's 503 when none is in service. Real sockets on port 0; the
 * intervals are CLB's (5 s interval, 4 s timeout) run faster through the timeScale hook,
 * so every wait is a health-check interval under test, never a sleep.
 */
import t, { type Test } from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'
import { closedPort, startInstanceServer, type InstanceServer } from '../../helpers/instance-server.js'
import type { ClbProxyOptions } from '../../../proxy/core/options.js'
import type { HealthCheckResult, InstanceStateChange } from '../../../proxy/core/events.js'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'

// 5 s interval and 4 s timeout run as 300 ms and 240 ms: short, yet far above a loopback check's few ms
// even on a loaded machine, so no check times out by accident.
const TIME_SCALE = 0.06
const CHECKS: ClbProxyOptions = {
  healthCheck: 'HTTP:/health',
  healthIntervalSeconds: 5,
  healthTimeoutSeconds: 4,
  healthyThreshold: 3,
  unhealthyThreshold: 2
}

async function balancer (t: Test, instances: readonly InstanceServer[], options: ClbProxyOptions = {}): Promise<ProxyFixture> {
  return await startProxyFixture(t, {
    backend: false,
    timeScale: TIME_SCALE,
    proxy: { ...CHECKS, ...options, backends: instances.map((instance) => instance.url) }
  })
}

/** Resolves once the instance at `index` is out of service for failing its checks (ReasonCode Instance). */
async function failedChecks (f: ProxyFixture, index: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (f.proxy.instances()[index]?.ReasonCode !== 'Instance') return
      f.proxy.off('instance-state', check)
      resolve()
    }
    f.proxy.on('instance-state', check)
    check()
  })
}

/** Records every state change and health check of the proxy. */
function watch (f: ProxyFixture): { changes: InstanceStateChange[], checks: Array<{ instanceId: string, result: HealthCheckResult }> } {
  const changes: InstanceStateChange[] = []
  const checks: Array<{ instanceId: string, result: HealthCheckResult }> = []
  f.proxy.on('instance-state', (change) => changes.push(change))
  f.proxy.on('health-check', (check) => checks.push(check))
  return { changes, checks }
}

t.test('thresholds both ways: in service after the first pass, out after 2 failures, back after 3 passes', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const f = await balancer(t, [app])
  const seen = watch(f)
  const [registered] = f.proxy.instances()
  const id = registered?.InstanceId as string
  t.match(id, /^i-[0-9a-f]{17}$/, 'an EC2-style instance id')
  t.strictSame(f.proxy.instances().map((i) => [i.State, i.ReasonCode, i.Description]),
    [['OutOfService', 'ELB', 'Instance registration is still in progress.']], 'a new instance waits for its first check')

  await f.proxy.waitForInstanceState(id, 'InService')
  const checksSoFar = f.proxy.instances()[0]?.LastChecks ?? []
  t.equal(checksSoFar.filter((c) => c.passed).length, 1, 'one passing check was enough (CLB-CW: "after it passes the first health check")')
  t.equal(checksSoFar.at(-1)?.passed, true)

  app.health = 'error'
  const out = await f.proxy.waitForInstanceState(id, 'OutOfService')
  t.strictSame(out, { InstanceId: id, State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.' })
  const failures = seen.checks.filter((c) => !c.result.passed)
  t.equal(failures.length, 2, 'exactly the unhealthy threshold of failing checks')
  t.equal(failures[0]?.result.summary, '500, not 200')
  const wentOut = seen.changes.at(-1) as InstanceStateChange
  t.equal(wentOut.previous?.State, 'InService')
  t.equal(wentOut.lastCheck?.status, 500, 'the change carries the check that caused it')

  const failuresBefore = seen.checks.length
  app.health = 'ok'
  await f.proxy.waitForInstanceState(id, 'InService')
  const passes = seen.checks.slice(failuresBefore)
  t.equal(passes.length, 3, 'exactly the healthy threshold of passing checks')
  t.ok(passes.every((c) => c.result.passed))
  t.ok(seen.changes.some((c) => c.current.Description === 'Instance has not passed the configured HealthyThreshold number of health checks consecutively.'),
    'between the passes the description says the threshold is not reached yet')

  const diagnostics = f.diagnostics.filter((d) => d.notice === 'instance-state').map((d) => d.msg)
  t.ok(diagnostics.includes(`instance ${id} (127.0.0.1:${app.port}): InService -> OutOfService (Instance: Instance has failed at least the UnhealthyThreshold number of health checks consecutively.); last health check: 500, not 200`),
    'one diagnostic line per state change, with the reason and the last check')
  t.ok(diagnostics.some((line) => String(line).startsWith(`instance ${id} (127.0.0.1:${app.port}): still OutOfService (Instance: Instance has not passed the configured HealthyThreshold`)),
    'a new reason in the same state is said as one ("still OutOfService"), not as a change of state')
  t.notOk(diagnostics.some((line) => /OutOfService -> OutOfService|InService -> InService/.test(String(line))), 'no line shows a state turning into itself')
  t.ok(app.heads.some((head) => head.startsWith('GET /health HTTP/1.1\r\n') && head.includes('\r\nUser-Agent: ELB-HealthChecker/1.0\r\n')),
    "the check is CLB's: GET PATH HTTP/1.1 with User-Agent: ELB-HealthChecker/1.0")
  await f.close(t)
})

t.test('a redirect, a malformed 200 and a close are failures, each with its reason', async (t) => {
  for (const [mode, expected] of [['redirect', '302 to /login, not 200'], ['malformed', /CL_NOT_INTEGER/], ['close', /EMPTY_RESPONSE|closed/]] as const) {
    await t.test(mode, async (t) => {
      const app = await startInstanceServer(t, 'app')
      app.health = mode
      const f = await balancer(t, [app])
      await failedChecks(f, 0)
      const described = f.proxy.instances()[0]
      const first = described?.LastChecks[0]
      t.equal(described?.Description, 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.')
      t.match(first?.summary, expected, `the check says why: ${first?.summary ?? ''}`)
      if (mode === 'malformed') t.equal(first?.defect?.code, 'CL_NOT_INTEGER', 'the same validators judge the health check')
      t.equal(described?.LastChecks.length, 2)
      t.equal(f.proxy.metrics().Metrics.UnHealthyHostCount.Maximum, 1)
      t.equal(f.proxy.metrics().Metrics.HealthyHostCount.Maximum, 0)
      await f.close(t)
    })
  }
})

t.test('no instance in service: CLB\'s exact 503 bytes and the line "- -1 -1 -1 503 0"; the diagnostic names each instance and its last check', async (t) => {
  const app = await startInstanceServer(t, 'app')
  app.health = 'redirect'
  const f = await balancer(t, [app])
  const response = await f.request('GET /orders HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.equal(response.bytes.toString('latin1'), SYNTHETIC_RESPONSES[503].toString('latin1'))
  t.equal(response.bytes.toString('latin1'), 'HTTP/1.1 503 Service Unavailable: Back-end server is at capacity\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n')
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${response.clientPort} - -1 -1 -1 503 0 0 0 "GET http://shop:${f.port}/orders HTTP/1.1" "-" - -`])
  t.equal(response.records[0]?.outcome, 'no-healthy-instance')
  const id = f.proxy.instances()[0]?.InstanceId as string
  await failedChecks(f, 0)
  const second = await f.request('GET /orders HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.equal(second.records[0]?.outcome, 'no-healthy-instance')
  const diagnostic = f.diagnostics.filter((d) => d.outcome === 'no-healthy-instance').at(-1)
  t.match(diagnostic?.msg, new RegExp(`^503 from the load balancer: no registered instance can take requests \\(CLB-HTTPERR 503: "There are no healthy instances"\\): ${id} \\(127\\.0\\.0\\.1:${app.port}\\) OutOfService: .*last health check: 302 to \\/login, not 200`))
  t.equal(app.heads.filter((head) => !head.startsWith('GET /health ')).length, 0, 'no request reached the instance')
  await f.close(t)
})

t.test('one instance failing, one healthy: every request goes to the healthy one; HealthyHostCount 1, UnHealthyHostCount 1', async (t) => {
  const good = await startInstanceServer(t, 'good')
  const bad = await startInstanceServer(t, 'bad')
  bad.health = 'error'
  const f = await balancer(t, [good, bad])
  const [goodId, badId] = f.proxy.instances().map((i) => i.InstanceId) as [string, string]
  await f.proxy.waitForInstanceState(goodId, 'InService')
  await failedChecks(f, 1)
  const bodies: string[] = []
  for (let i = 0; i < 6; i++) {
    const response = await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')
    bodies.push(response.bytes.toString('latin1').split('\r\n\r\n')[1] ?? '')
  }
  t.strictSame(bodies, ['good', 'good', 'good', 'good', 'good', 'good'])
  t.equal(f.proxy.instances().find((i) => i.InstanceId === badId)?.State, 'OutOfService')
  const metrics = f.proxy.metrics().Metrics
  t.equal(metrics.HealthyHostCount.Maximum, 1)
  t.equal(metrics.UnHealthyHostCount.Maximum, 1)
  await f.close(t)
})

t.test('a TCP check passes on a listening port and fails on a closed one (ECONNREFUSED counts in BackendConnectionErrors)', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const gone = await closedPort()
  const f = await startProxyFixture(t, {
    backend: false,
    timeScale: TIME_SCALE,
    proxy: { ...CHECKS, healthCheck: 'TCP', backends: [app.url, `http://127.0.0.1:${gone}`] }
  })
  const [upId, downId] = f.proxy.instances().map((i) => i.InstanceId) as [string, string]
  await f.proxy.waitForInstanceState(upId, 'InService')
  await failedChecks(f, 1)
  const down = f.proxy.instances().find((i) => i.InstanceId === downId)
  t.equal(down?.LastChecks.at(-1)?.error, 'ECONNREFUSED')
  t.ok(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum >= 2, 'health-check connection errors count (CLB-CW)')
  t.equal(app.heads.length, 0, 'a TCP check sends no bytes')
  await f.close(t)
})

t.test('a refused connection is retried on another instance in service before any 503', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const gone = await closedPort()
  // No health checks: both instances are in service, and the refused one is found by a request.
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${gone}`, app.url] } })
  const bodies: string[] = []
  for (let i = 0; i < 4; i++) {
    const response = await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')
    bodies.push(response.bytes.toString('latin1').split('\r\n\r\n')[1] ?? '')
    t.equal(response.records[0]?.outcome, 'relayed')
  }
  t.strictSame(bodies, ['app', 'app', 'app', 'app'], 'every request answered by the live instance')
  const metrics = f.proxy.metrics().Metrics
  t.ok(metrics.BackendConnectionErrors.Sum >= 1, `each refused attempt counts (${metrics.BackendConnectionErrors.Sum})`)
  t.equal(metrics.HTTPCode_ELB_5XX.Sum, 0, 'no 503')
  await f.close(t)
})

t.test('when every instance refuses, the 503\'s diagnostic names each one tried and its error', async (t) => {
  const first = await closedPort()
  const second = await closedPort()
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${first}`, `http://127.0.0.1:${second}`] } })
  const response = await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.equal(response.records[0]?.outcome, 'backend-unreachable')
  t.strictSame(response.records[0]?.connectionFailures, [
    { instance: `127.0.0.1:${first}`, error: 'ECONNREFUSED' },
    { instance: `127.0.0.1:${second}`, error: 'ECONNREFUSED' }
  ])
  t.equal(f.diagnostics.find((d) => d.outcome === 'backend-unreachable')?.msg,
    `503 from the load balancer: no instance could be connected to; tried 2: connection to 127.0.0.1:${first} refused (ECONNREFUSED): nothing listens on that address; ` +
    `connection to 127.0.0.1:${second} refused (ECONNREFUSED): nothing listens on that address`)
  t.equal(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum, 2)
  await f.close(t)
})

t.test('a new instance\'s first failing check is said at once, with its reason, before the threshold changes anything', async (t) => {
  const app = await startInstanceServer(t, 'app')
  app.health = 'redirect'
  const f = await balancer(t, [app])
  const id = f.proxy.instances()[0]?.InstanceId as string
  await failedChecks(f, 0)
  const said = f.diagnostics.filter((d) => d.notice === 'health-check-failed')
  t.equal(said.length, 1, 'once, not at every failing check')
  t.equal(said[0]?.msg, `instance ${id} (127.0.0.1:${app.port}) failed its first health check: 302 to /login, not 200; it stays out of service until a check passes`)
  await f.close(t)
})
