/**
 * The demo backend's health check: `GET /health` and its switch (`/demo/health/fail`,
 * `/demo/health/pass`) on one instance, the x-demo-instance header of a named instance, and the
 * walk-through the CLI's banner promises, end to end through a real proxy: two demo instances
 * behind the demo's health check (serve-command's DEMO_HEALTH_CHECK), one made to fail, its state
 * going OutOfService and requests going to the other, CLB's 503 when both fail, and back.
 * Real sockets on port 0; the health intervals are CLB's run 50 times faster through the
 * timeScale hook, so every wait is for an event, never a sleep.
 */
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { setImmediate as setImmediatePromise } from 'node:timers/promises'
import { pino } from 'pino'
import { startDemoBackend, type DemoBackend } from '../../../proxy/byte-servers/demo-backend.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { DEMO_HEALTH_CHECK } from '../../../proxy/commands/serve-command.js'

const TIME_SCALE = 0.02

const FAIL_TEXT = 'demo-a: /health answers 500 from now on; after UnhealthyThreshold failed checks in a row ' +
  'demo-a goes OutOfService and requests go to the other instances (undo: /demo/health/pass)\n'
const PASS_TEXT = 'demo-a: /health answers 200 from now on; after HealthyThreshold passed checks in a row ' +
  'demo-a goes InService and gets requests again\n'
const FAILING_HEALTH_TEXT = 'demo-a fails its health check on purpose (GET /demo/health/pass to stop)\n'

interface Answer {
  readonly status: number
  readonly statusLine: string
  readonly instance: string | undefined
  readonly body: string
}

/** One GET on its own connection (Connection: close); resolves once that connection is closed. */
async function get (url: string): Promise<Answer> {
  const request = http.get(url, { agent: false })
  const [socket] = await once(request, 'socket') as [net.Socket]
  const socketClosed = once(socket, 'close')
  const [response] = await once(request, 'response') as [http.IncomingMessage]
  const chunks: Buffer[] = []
  for await (const chunk of response) chunks.push(chunk as Buffer)
  await socketClosed
  // The header as written on the wire (rawHeaders keeps the case): what `curl -i` shows.
  const headerAt = response.rawHeaders.indexOf('x-demo-instance')
  return {
    status: response.statusCode ?? 0,
    statusLine: `HTTP/${response.httpVersion} ${response.statusCode ?? 0} ${response.statusMessage ?? ''}`,
    instance: headerAt === -1 ? undefined : response.rawHeaders[headerAt + 1],
    body: Buffer.concat(chunks).toString('utf8')
  }
}

/** TCP handles this process holds, by kind (process.getActiveResourcesInfo()). */
function tcpHandles (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind.startsWith('TCP')) counts[kind] = (counts[kind] ?? 0) + 1
  }
  return counts
}

t.test('an unnamed demo backend answers /health 200 ok, and sends no x-demo-instance header', async (t) => {
  const backend = await startDemoBackend()
  t.teardown(() => backend.close())
  t.equal(backend.name, null)
  t.strictSame(await get(`${backend.url}/health`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: undefined, body: 'ok\n' })
  t.strictSame(await get(`${backend.url}/`), {
    status: 200, statusLine: 'HTTP/1.1 200 OK', instance: undefined, body: 'hello from the clb-proxy demo backend\n'
  }, 'the healthy route is unchanged')
  const fail = await get(`${backend.url}/demo/health/fail`)
  t.equal(fail.body, 'this demo instance: /health answers 500 from now on; after UnhealthyThreshold failed checks in a row ' +
    'this demo instance goes OutOfService and requests go to the other instances (undo: /demo/health/pass)\n')
  t.equal((await get(`${backend.url}/health`)).body, 'this demo instance fails its health check on purpose (GET /demo/health/pass to stop)\n')
})

t.test('the /health switch flips one instance only: fail gives 500 from then on, pass gives 200 again', async (t) => {
  const a = await startDemoBackend({ name: 'demo-a' })
  t.teardown(() => a.close())
  const b = await startDemoBackend({ name: 'demo-b' })
  t.teardown(() => b.close())
  t.equal(a.name, 'demo-a')

  t.strictSame(await get(`${a.url}/health`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-a', body: 'ok\n' })

  t.strictSame(await get(`${a.url}/demo/health/fail`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-a', body: FAIL_TEXT })
  const failing = { status: 500, statusLine: 'HTTP/1.1 500 Internal Server Error', instance: 'demo-a', body: FAILING_HEALTH_TEXT }
  t.strictSame(await get(`${a.url}/health`), failing)
  t.strictSame(await get(`${a.url}/health`), failing, 'from then on, not once')
  t.strictSame(await get(`${a.url}/demo/health/fail`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-a', body: FAIL_TEXT },
    'failing again changes nothing')
  t.strictSame(await get(`${b.url}/health`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-b', body: 'ok\n' },
    'the other instance still passes')
  t.strictSame(await get(`${a.url}/`), {
    status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-a', body: 'hello from the clb-proxy demo backend\n'
  }, 'only /health fails; the other routes answer as before')

  t.strictSame(await get(`${a.url}/demo/health/pass`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-a', body: PASS_TEXT })
  t.strictSame(await get(`${a.url}/health`), { status: 200, statusLine: 'HTTP/1.1 200 OK', instance: 'demo-a', body: 'ok\n' })
})

t.test('a named instance leaves the defect routes\' exact bytes alone (no header added to them)', async (t) => {
  const a = await startDemoBackend({ name: 'demo-a' })
  t.teardown(() => a.close())
  const socket = net.connect(a.port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  socket.write('GET /defects/content-length-not-integer HTTP/1.1\r\nHost: demo.test\r\n\r\n')
  await once(socket, 'close')
  t.equal(Buffer.concat(chunks).toString('latin1'),
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5x\r\nConnection: close\r\n\r\nhello')
})

t.test('a name that is not 1 to 32 letters, digits or hyphens is refused before listening', async (t) => {
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  for (const name of ['', 'demo a', 'demo\r\nX-Injected: 1', 'x'.repeat(33)]) {
    await t.rejects(startDemoBackend({ name }), new TypeError(`the demo backend's name must be 1 to 32 ASCII letters, digits or hyphens, got ${JSON.stringify(name)}`))
  }
  t.equal(listenCalls.args().length, 0)
})

t.test('through the proxy: demo-a fails, goes OutOfService, requests go to demo-b; both failing give CLB\'s 503; demo-a comes back', async (t) => {
  await setImmediatePromise()
  await setImmediatePromise()
  const baseline = tcpHandles()
  const instances: DemoBackend[] = [await startDemoBackend({ name: 'demo-a' }), await startDemoBackend({ name: 'demo-b' })]
  const [a, b] = instances as [DemoBackend, DemoBackend]
  const diagnostics: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { diagnostics.push((JSON.parse(line) as { msg: string }).msg) } })
  const proxy = await startClbProxy({
    listen: '127.0.0.1:0',
    accessLog: null,
    captureDir: null,
    ...DEMO_HEALTH_CHECK,
    backends: [a.url, b.url]
  }, { logger, timeScale: TIME_SCALE })
  const [aId, bId] = proxy.instances().map((instance) => instance.InstanceId) as [string, string]
  t.strictSame(proxy.instances().map((instance) => instance.Address), [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`])

  await Promise.all([proxy.waitForInstanceState(aId, 'InService'), proxy.waitForInstanceState(bId, 'InService')])
  const both = [await get(`${proxy.url}/`), await get(`${proxy.url}/`)]
  t.strictSame(both.map((answer) => answer.status), [200, 200])
  t.strictSame(both.map((answer) => answer.instance).sort(), ['demo-a', 'demo-b'], 'in service, both get requests (ties take turns)')

  t.equal((await get(`${a.url}/demo/health/fail`)).body, FAIL_TEXT, 'the switch, asked of demo-a directly')
  const out = await proxy.waitForInstanceState(aId, 'OutOfService')
  t.strictSame(out, {
    InstanceId: aId,
    State: 'OutOfService',
    ReasonCode: 'Instance',
    Description: 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.'
  })
  t.strictSame(proxy.instances()[0]?.LastChecks.slice(-2).map((check) => check.summary), ['500, not 200', '500, not 200'],
    'exactly UnhealthyThreshold (2) failed checks')
  t.ok(diagnostics.includes(`instance ${aId} (127.0.0.1:${a.port}): InService -> OutOfService (Instance: Instance has failed at least ` +
    'the UnhealthyThreshold number of health checks consecutively.); last health check: 500, not 200'),
  'the diagnostic line the banner shows')

  const afterFailure = [await get(`${proxy.url}/`), await get(`${proxy.url}/`), await get(`${proxy.url}/`)]
  t.strictSame(afterFailure.map((answer) => [answer.status, answer.instance]), [[200, 'demo-b'], [200, 'demo-b'], [200, 'demo-b']],
    'every request goes to demo-b')

  await get(`${b.url}/demo/health/fail`)
  await proxy.waitForInstanceState(bId, 'OutOfService')
  t.strictSame(await get(`${proxy.url}/`), {
    status: 503, statusLine: 'HTTP/1.1 503 Service Unavailable: Back-end server is at capacity', instance: undefined, body: ''
  }, "no instance in service: CLB's 503, from the proxy itself")

  t.equal((await get(`${a.url}/demo/health/pass`)).body, PASS_TEXT)
  await proxy.waitForInstanceState(aId, 'InService')
  t.strictSame(proxy.instances()[0]?.LastChecks.slice(-2).map((check) => check.passed), [true, true],
    'back in service after HealthyThreshold (2) passed checks')
  t.strictSame([await get(`${proxy.url}/`), await get(`${proxy.url}/`)].map((answer) => [answer.status, answer.instance]),
    [[200, 'demo-a'], [200, 'demo-a']], 'demo-a serves again, alone')

  await proxy.close()
  t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 }, 'the proxy has no socket open after close()')
  await Promise.all(instances.map((instance) => instance.close()))
  for (let turn = 0; turn < 10 && JSON.stringify(tcpHandles()) !== JSON.stringify(baseline); turn++) await setImmediatePromise()
  t.strictSame(tcpHandles(), baseline, 'no TCP handle left over')
})
