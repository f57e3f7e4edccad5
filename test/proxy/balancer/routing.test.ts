/**
 * The balancer beyond health: the surge queue and spillover, connection draining with and without
 * a timeout, both kinds of stickiness (cookie bytes asserted whole), and registration and
 * deregistration through the library handle and the admin API. Real sockets on port 0; draining
 * timeouts are CLB's seconds run 50 times faster through the timeScale hook.
 */
import t from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture } from '../../helpers/proxy-fixture.js'
import net from 'node:net'
import { once } from 'node:events'
import { closedPort, startInstanceServer } from '../../helpers/instance-server.js'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'
import { stickinessCookieValue } from '../../../proxy/balancer/stickiness.js'

const TIME_SCALE = 0.02

function bodyOf (bytes: Buffer): string {
  return bytes.toString('latin1').split('\r\n\r\n')[1] ?? ''
}

t.test('surge queue: one request per instance, a queue of 1, the third request spills over with CLB\'s 503', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [app.url], maxInstanceConnections: 1, surgeQueueSize: 1 } })
  const first = await f.connect()
  first.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await app.whenHeld(1)
  const second = await f.connect()
  second.write('GET /queued HTTP/1.1\r\nHost: shop\r\n\r\n')
  await f.until(() => f.proxy.metrics().Metrics.SurgeQueueLength.Maximum === 1)
  const third = await f.request('GET /spilled HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.equal(third.bytes.toString('latin1'), SYNTHETIC_RESPONSES[503].toString('latin1'), "spillover: CLB's 503 bytes")
  t.equal(third.records[0]?.outcome, 'spillover')
  t.equal(app.heads.filter((head) => head.startsWith('GET /queued')).length, 0, 'the queued request waits: the instance has not seen it')

  app.release()
  const [firstResponse, secondResponse] = await Promise.all([first.response(), second.response()])
  t.equal(bodyOf(firstResponse.bytes), 'app')
  t.equal(bodyOf(secondResponse.bytes), 'app', 'the queued request went out when the slot freed')
  const metrics = f.proxy.metrics().Metrics
  t.strictSame(metrics.SpilloverCount, { Unit: 'Count', Sum: 1 })
  t.strictSame(metrics.SurgeQueueLength, { Unit: 'Count', Maximum: 1, Current: 0 }, 'the queue was one long, and is empty now')
  t.match(f.logLines.find((line) => line.includes('/spilled')), new RegExp(`^${FIXED_TIMESTAMP} ${ELB_NAME} 127\\.0\\.0\\.1:\\d+ - -1 -1 -1 503 0 0 0 "GET http://shop:${f.port}/spilled HTTP/1.1" "-" - -$`))
  t.match(f.diagnostics.find((d) => d.outcome === 'spillover')?.msg, /spillover: every instance in service was serving as many requests at once as it may \(1\) and the surge queue was full \(1\)/)
  first.end()
  second.end()
  await f.close(t)
})

t.test('a queued request whose client leaves is taken out of the queue and logged once', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [app.url], maxInstanceConnections: 1, surgeQueueSize: 4 } })
  const first = await f.connect()
  first.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await app.whenHeld(1)
  const leaving = await f.connect()
  leaving.write('GET /queued HTTP/1.1\r\nHost: shop\r\n\r\n')
  await f.until(() => f.proxy.metrics().Metrics.SurgeQueueLength.Maximum === 1)
  // A reset, as a browser tab that is closed sends: a FIN alone would be a half-close, after which
  // a client may still read its answer (the proxy runs with allowHalfOpen).
  leaving.socket.resetAndDestroy()
  await f.waitForExchanges(1)
  t.equal(f.records[0]?.outcome, 'client-closed')
  app.release()
  await first.response()
  t.equal(app.heads.filter((head) => head.startsWith('GET /queued')).length, 0, 'the departed client\'s request never reached the instance')
  first.end()
  await f.close(t)
})

t.test('a queued request whose client closes its side (a timed-out curl) is dropped too, never sent, and frees its place', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [app.url], maxInstanceConnections: 1, surgeQueueSize: 1 } })
  const first = await f.connect()
  first.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await app.whenHeld(1)
  const leaving = await f.connect()
  leaving.write('GET /queued HTTP/1.1\r\nHost: shop\r\n\r\n')
  await f.until(() => f.proxy.metrics().Metrics.SurgeQueueLength.Maximum === 1)
  leaving.end()
  await f.waitForExchanges(1)
  t.equal(f.records[0]?.outcome, 'client-closed')
  t.match(f.logLines[0], / - -1 -1 -1 408 0 0 0 "GET http:\/\/shop:\d+\/queued HTTP\/1\.1"/)
  const next = await f.connect()
  next.write('GET /next HTTP/1.1\r\nHost: shop\r\n\r\n')
  await f.until(() => f.proxy.metrics().Metrics.SurgeQueueLength.Maximum === 1 && f.records.length === 1)
  t.equal(f.proxy.metrics().Metrics.SpilloverCount.Sum, 0, 'its place in the queue was freed: no spillover')
  app.release()
  await Promise.all([first.response(), next.response()])
  t.strictSame(app.heads.filter((head) => !head.startsWith('GET /hold')).map((head) => head.split('\r\n')[0]), ['GET /next HTTP/1.1'],
    'the request of the client that left never reached the instance')
  first.end()
  next.end()
  await f.close(t)
})

t.test('draining: a deregistered instance takes no new request, finishes the one in flight, then is removed', async (t) => {
  const a = await startInstanceServer(t, 'a')
  const b = await startInstanceServer(t, 'b')
  const f = await startProxyFixture(t, { backend: false, timeScale: TIME_SCALE, proxy: { backends: [a.url, b.url], drainingTimeoutSeconds: 300 } })
  const [aId] = f.proxy.instances().map((i) => i.InstanceId) as [string]
  const inFlight = await f.connect()
  inFlight.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await a.whenHeld(1)
  t.equal(f.proxy.deregister(aId), true)
  t.strictSame(f.proxy.instances().map((i) => [i.InstanceId === aId, i.State, i.ReasonCode, i.Description]), [
    [true, 'InService', 'ELB', 'Instance deregistration currently in progress.'],
    [false, 'InService', 'N/A', 'N/A']
  ])
  for (let i = 0; i < 3; i++) t.equal(bodyOf((await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')).bytes), 'b', 'new requests go to the other instance')
  a.release()
  const finished = await inFlight.response()
  t.equal(bodyOf(finished.bytes), 'a', 'the request in flight finished on the draining instance')
  const gone = await f.proxy.waitForInstanceState(aId, 'OutOfService')
  t.equal(gone.Description, 'Instance is not currently registered with the LoadBalancer.')
  t.strictSame(f.proxy.instances().map((i) => i.Url), [b.url], 'removed once its last request finished')
  inFlight.end()
  await f.close(t)
})

t.test('draining timeout: a request still in flight when it passes gets CLB\'s 504', async (t) => {
  const a = await startInstanceServer(t, 'a')
  // 1 s, CLB's minimum, run as 20 ms.
  const f = await startProxyFixture(t, { backend: false, timeScale: TIME_SCALE, proxy: { backends: [a.url], drainingTimeoutSeconds: 1 } })
  const id = f.proxy.instances()[0]?.InstanceId as string
  const client = await f.connect()
  client.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await a.whenHeld(1)
  f.proxy.deregister(id)
  const response = await client.response()
  t.equal(response.bytes.toString('latin1'), SYNTHETIC_RESPONSES[504].toString('latin1'))
  t.equal(response.records[0]?.outcome, 'instance-deregistered')
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${client.port} - -1 -1 -1 504 0 0 0 "GET http://shop:${f.port}/hold HTTP/1.1" "-" - -`])
  await f.proxy.waitForInstanceState(id, 'OutOfService')
  const after = await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.equal(after.records[0]?.outcome, 'no-healthy-instance', 'no instance registered any more: 503')
  client.end()
  await f.close(t)
})

t.test('draining disabled: in-flight requests get CLB\'s 504 at once', async (t) => {
  const a = await startInstanceServer(t, 'a')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [a.url], drainingTimeoutSeconds: 0 } })
  const id = f.proxy.instances()[0]?.InstanceId as string
  const client = await f.connect()
  client.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await a.whenHeld(1)
  t.equal(f.proxy.deregister(id), true)
  t.equal(f.records.length, 1, 'answered synchronously, before deregister() returned')
  const response = await client.response()
  t.equal(response.bytes.toString('latin1'), SYNTHETIC_RESPONSES[504].toString('latin1'))
  t.strictSame(f.proxy.instances(), [])
  t.equal(f.proxy.deregister(id), false, 'an unknown id')
  client.end()
  await f.close(t)
})

t.test('duration-based stickiness: AWSELB and AWSELBCORS bytes, the cookie routes, a failed instance re-picks', async (t) => {
  const a = await startInstanceServer(t, 'a')
  const b = await startInstanceServer(t, 'b')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [a.url, b.url], stickyDurationSeconds: 600 } })
  const [aId, bId] = f.proxy.instances().map((i) => i.InstanceId) as [string, string]
  const value = (id: string): string => stickinessCookieValue(ELB_NAME, id)
  const first = await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')
  const picked = bodyOf(first.bytes)
  const pickedId = picked === 'a' ? aId : bId
  t.equal(first.bytes.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n' +
    `Set-Cookie: AWSELB=${value(pickedId)};PATH=/;MAX-AGE=600\r\n` +
    `Set-Cookie: AWSELBCORS=${value(pickedId)};PATH=/;MAX-AGE=600;SECURE;SAMESITE=None\r\n` +
    'Cache-control: no-cache="set-cookie"\r\n' +
    `\r\n${picked}`, 'the cookies are inserted before the blank line; the rest is unchanged')
  t.match(value(pickedId), /^[0-9A-F]{128,}$/)
  t.match(f.logLines[0], / 200 200 0 1 "GET /, 'sent_bytes counts the body only, as before')

  for (let i = 0; i < 4; i++) {
    const again = await f.request(`GET / HTTP/1.1\r\nHost: shop\r\nCookie: theme=dark; AWSELB=${value(pickedId)}\r\n\r\n`)
    t.equal(bodyOf(again.bytes), picked, 'the cookie routes to its instance')
    t.notOk(again.bytes.toString('latin1').includes('Set-Cookie'), 'and is not refreshed (CLB-STICKY)')
  }
  f.proxy.deregister(pickedId)
  const moved = await f.request(`GET / HTTP/1.1\r\nHost: shop\r\nCookie: AWSELB=${value(pickedId)}\r\n\r\n`)
  const other = picked === 'a' ? 'b' : 'a'
  const otherId = picked === 'a' ? bId : aId
  t.equal(bodyOf(moved.bytes), other, 'its instance is gone: routed as usual')
  t.ok(moved.bytes.toString('latin1').includes(`Set-Cookie: AWSELB=${value(otherId)};PATH=/;MAX-AGE=600\r\n`), 'and the cookie replaced')
  await f.close(t)
})

t.test('duration 0: a browser-session cookie without MAX-AGE', async (t) => {
  const a = await startInstanceServer(t, 'a')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [a.url], stickyDurationSeconds: 0 } })
  const id = f.proxy.instances()[0]?.InstanceId as string
  const response = await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')
  const v = stickinessCookieValue(ELB_NAME, id)
  t.ok(response.bytes.toString('latin1').startsWith(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\nSet-Cookie: AWSELB=${v};PATH=/\r\nSet-Cookie: AWSELBCORS=${v};PATH=/;SECURE;SAMESITE=None\r\n`))
  await f.close(t)
})

t.test('application-controlled stickiness follows the app cookie, its attributes copied and the path re-encoded', async (t) => {
  const f = await startProxyFixture(t, { proxy: { stickyAppCookie: 'SESSION' } })
  const id = f.proxy.instances()[0]?.InstanceId as string
  const v = stickinessCookieValue(ELB_NAME, id)
  f.replies.push({ pieces: [Buffer.from('HTTP/1.1 200 OK\r\nSet-Cookie: SESSION=abc; Path=/my_path; Max-Age=600; HttpOnly\r\nContent-Length: 2\r\n\r\nhi')] })
  const login = await f.request('GET /login HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.equal(login.bytes.toString('latin1'), 'HTTP/1.1 200 OK\r\nSet-Cookie: SESSION=abc; Path=/my_path; Max-Age=600; HttpOnly\r\nContent-Length: 2\r\n' +
    `Set-Cookie: AWSELB=${v};PATH=/my%5Fpath;MAX-AGE=600;HTTPONLY\r\nCache-control: no-cache="set-cookie"\r\n\r\nhi`)
  f.replies.push({ pieces: [Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')] })
  const next = await f.request(`GET /cart HTTP/1.1\r\nHost: shop\r\nCookie: SESSION=abc; AWSELB=${v}\r\n\r\n`)
  t.equal(next.bytes.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'no app cookie set: nothing inserted')
  f.replies.push({ pieces: [Buffer.from('HTTP/1.1 200 OK\r\nSet-Cookie: SESSION=def;\r\nContent-Length: 2\r\n\r\nok')] })
  const quirk = await f.request('GET /again HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.notOk(quirk.bytes.toString('latin1').includes('AWSELB'), 'a trailing ";" makes the load balancer ignore the app cookie (CLB-STICKY)')
  await f.close(t)
})

t.test('register and deregister through the admin API and the library; GET /instances is DescribeInstanceHealth-shaped', async (t) => {
  const a = await startInstanceServer(t, 'a')
  const b = await startInstanceServer(t, 'b')
  const c = await startInstanceServer(t, 'c')
  const f = await startProxyFixture(t, {
    backend: false,
    timeScale: TIME_SCALE,
    proxy: { backends: [a.url], admin: '127.0.0.1:0', healthCheck: 'HTTP:/health', healthIntervalSeconds: 5, healthTimeoutSeconds: 4, healthyThreshold: 2 }
  })
  const admin = f.proxy.adminUrl as string
  const aId = f.proxy.instances()[0]?.InstanceId as string
  await f.proxy.waitForInstanceState(aId, 'InService')

  const listed = await (await fetch(`${admin}/instances`)).json() as { InstanceStates: Array<Record<string, unknown>> }
  t.equal(listed.InstanceStates.length, 1)
  t.match(listed.InstanceStates[0], { InstanceId: aId, State: 'InService', ReasonCode: 'N/A', Description: 'N/A', Address: `127.0.0.1:${a.port}`, Url: a.url, OutstandingRequests: 0, Routable: true })
  t.match((listed.InstanceStates[0]?.LastChecks as unknown[])[0], { passed: true, status: 200, error: null })

  const created = await fetch(`${admin}/instances`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: b.url }) })
  t.equal(created.status, 201)
  const bState = await created.json() as { InstanceId: string, State: string, Description: string }
  t.match(bState, { State: 'OutOfService', Description: 'Instance registration is still in progress.' }, 'registered, waiting for its first check')
  await f.proxy.waitForInstanceState(bState.InstanceId, 'InService')
  const again = await fetch(`${admin}/instances`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: b.url }) })
  t.equal(again.status, 200, 'an instance registered again: 200, nothing created')
  t.match(await again.json(), { InstanceId: bState.InstanceId, State: 'InService' })
  const unpaired = await fetch(`${admin}/instances`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: `tcp://127.0.0.1:${b.port}` }) })
  t.equal(unpaired.status, 400, 'no listener routes to a tcp:// instance here')
  t.strictSame(await unpaired.json(), { error: `url is a tcp:// instance, which only TCP or SSL listeners route to (CLB's listener pairing), and no listener is one: add a TCP or SSL listener, or leave the instance out, got "tcp://127.0.0.1:${b.port}"` })
  t.throws(() => f.proxy.register(`ssl://127.0.0.1:${b.port}`), { code: 'CLB_INVALID_OPTION', message: /^url is an ssl:\/\/ instance, which only TCP or SSL listeners route to/ })

  const bad = await fetch(`${admin}/instances`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: 'ftp://x' }) })
  t.equal(bad.status, 400)
  t.match(await bad.json(), { error: /^url must be an http:\/\/, https:\/\/, tcp:\/\/ or ssl:\/\/ HOST:PORT URL/ })
  const missing = await fetch(`${admin}/instances`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(missing.status, 400, 'the JSON schema requires url')

  const removed = await fetch(`${admin}/instances/${aId}`, { method: 'DELETE' })
  t.equal(removed.status, 202)
  t.match(await removed.json(), { InstanceId: aId, State: 'OutOfService', Description: 'Instance is not currently registered with the LoadBalancer.' }, 'idle: removed at once')
  t.equal((await fetch(`${admin}/instances/${aId}`, { method: 'DELETE' })).status, 404)
  t.equal((await fetch(`${admin}/instances/not-an-id`, { method: 'DELETE' })).status, 400, 'the id pattern is checked')

  const viaLibrary = f.proxy.register(c.url)
  t.equal(f.proxy.register({ host: '127.0.0.1', port: c.port }).InstanceId, viaLibrary.InstanceId, 'the same address is the same instance')
  await f.proxy.waitForInstanceState(viaLibrary.InstanceId, 'InService')
  t.throws(() => f.proxy.register('http://127.0.0.1:0'), { code: 'CLB_INVALID_OPTION' })
  t.strictSame(f.proxy.instances().map((i) => i.Url), [b.url, c.url])
  const bodies = new Set<string>()
  for (let i = 0; i < 4; i++) bodies.add(bodyOf((await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')).bytes))
  t.strictSame([...bodies].sort(), ['b', 'c'], 'both registered instances take requests; the deregistered one none')
  t.equal(a.heads.filter((head) => !head.startsWith('GET /health')).length, 0)
  await t.rejects(f.proxy.waitForInstanceState(viaLibrary.InstanceId, 'Unknown', { timeoutMs: 50 }), { code: 'CLB_WAIT_FOR_TIMEOUT' })
  // Nothing to wait for: a state that does not exist, an id never given. Refused at once, not after the timeout.
  // @ts-expect-error a state name from another API
  await t.rejects(f.proxy.waitForInstanceState(viaLibrary.InstanceId, 'Healthy'), new TypeError('waitForInstanceState: state must be one of InService, OutOfService, Unknown, got "Healthy"'))
  await t.rejects(f.proxy.waitForInstanceState('i-00000000000000000', 'InService'),
    new RangeError(`waitForInstanceState: no instance "i-00000000000000000" was ever registered with this proxy (registered now: ${bState.InstanceId}, ${viaLibrary.InstanceId})`))
  t.equal((await f.proxy.waitForInstanceState(aId, 'OutOfService', { timeoutMs: 50 })).Description, 'Instance is not currently registered with the LoadBalancer.',
    'a deregistered instance is still known: it reads OutOfService')
  await f.close(t)
  t.throws(() => f.proxy.deregister(bState.InstanceId), new Error('the proxy is closed: no instance can be deregistered'), 'after close(), as register()')
})

t.test('a retried request reaches the next instance once, body included, and its bytes are counted once', async (t) => {
  const received: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const live = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk)
      if (Buffer.concat(received).toString('latin1').endsWith('x'.repeat(1000))) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
  })
  live.listen(0, '127.0.0.1')
  await once(live, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => live.close(() => resolve()))
  })
  const dead = await closedPort()
  const f = await startProxyFixture(t, {
    backend: false,
    proxy: { backends: [`http://127.0.0.1:${dead}`, `http://127.0.0.1:${(live.address() as net.AddressInfo).port}`] }
  })
  // The request routed to the dead instance first (the round-robin turn at 0 goes to it).
  const response = await f.request(`POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(1000)}`)
  t.equal(response.bytes.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  const bytes = Buffer.concat(received).toString('latin1')
  t.equal(bytes.split('POST /upload').length - 1, 1, 'one request reached the live instance')
  t.equal(bytes.slice(bytes.indexOf('\r\n\r\n') + 4), 'x'.repeat(1000), 'with its body once')
  t.match(f.logLines[0], / 200 200 1000 2 "POST /, 'received_bytes: the body, once')
  t.ok(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum >= 1, 'the refused attempt counted')
  await f.close(t)
})

t.test('a request with a body that waited in the surge queue is counted once and sent whole', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [app.url], maxInstanceConnections: 1, surgeQueueSize: 1 } })
  const first = await f.connect()
  first.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await app.whenHeld(1)
  const queued = await f.connect()
  queued.write('POST /queued HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhel')
  await f.until(() => f.proxy.metrics().Metrics.SurgeQueueLength.Maximum === 1)
  queued.write('lo')
  await f.until(() => queued.proxyBytesRead() > 0 && queued.proxyBytesRead() >= Buffer.byteLength('POST /queued HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello'))
  app.release()
  await Promise.all([first.response(), queued.response()])
  t.match(f.logLines.find((line) => line.includes('/queued')), / 200 200 5 3 "POST /, 'received_bytes 5, not 8 (the body of the instance "app": 3 bytes)')
  first.end()
  queued.end()
  await f.close(t)
})

t.test('a retry takes no round-robin turn: with a refused and a live instance, every other request tries the refused one first', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const dead = await closedPort()
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${dead}`, app.url] } })
  for (let i = 0; i < 6; i++) t.equal(bodyOf((await f.request('GET / HTTP/1.1\r\nHost: shop\r\n\r\n')).bytes), 'app')
  t.equal(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum, 3, 'the turns alternate: 3 of 6 requests met the refused instance first')
  await f.close(t)
})

t.test('re-registering a draining instance restarts its health checks; register() after close() is refused', async (t) => {
  const a = await startInstanceServer(t, 'a')
  const f = await startProxyFixture(t, {
    backend: false,
    timeScale: TIME_SCALE,
    proxy: { backends: [a.url], healthCheck: 'HTTP:/health', healthIntervalSeconds: 5, healthTimeoutSeconds: 4, drainingTimeoutSeconds: 300 }
  })
  const id = f.proxy.instances()[0]?.InstanceId as string
  await f.proxy.waitForInstanceState(id, 'InService')
  const client = await f.connect()
  client.write('GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n')
  await a.whenHeld(1)
  f.proxy.deregister(id)
  t.equal(f.proxy.instances()[0]?.Description, 'Instance deregistration currently in progress.')
  f.proxy.register(a.url)
  // A check after the registration (the interval is 100 ms): without the restart none would come.
  const checked = await new Promise<boolean>((resolve) => {
    const guard = setTimeout(() => resolve(false), 3000)
    f.proxy.on('health-check', (check) => {
      if (check.instanceId !== id) return
      clearTimeout(guard)
      resolve(true)
    })
  })
  t.ok(checked, 'checked again after the new registration')
  a.release()
  await client.response()
  client.end()
  await f.close(t)
  t.throws(() => f.proxy.register(a.url), /the proxy is closed/)
})
