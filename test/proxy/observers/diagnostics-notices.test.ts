/**
 * The once-per-cause notices (proxy/observers/diagnostics-keepalive.ts, proxy/observers/diagnostics-upgrade.ts): an
 * instance that closes kept-alive connections early is reported once with the fix and a running
 * count, and again only when the idle time changes; a dropped Upgrade is reported once per path.
 * Real emitters and a pino logger writing into memory; the last test runs a real proxy.
 */
import { once } from 'node:events'
import net from 'node:net'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { keepaliveFix, subscribeKeepaliveDiagnostics } from '../../../proxy/observers/diagnostics-keepalive.js'
import { MAX_UPGRADE_PATHS, UPGRADE_FIX, subscribeUpgradeDiagnostics } from '../../../proxy/observers/diagnostics-upgrade.js'
import { ClbProxyEvents } from '../../../proxy/core/events.js'
import { closedPort } from '../../helpers/raw-backend.js'
import { REPEAT_AFTER_MS, subscribeConnectionDiagnostics } from '../../../proxy/observers/diagnostics-connections.js'

/** A pino logger whose records are kept, parsed, in `records` (pino writes synchronously). */
function memoryLogger (): { logger: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info', base: undefined, timestamp: false }, { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } })
  return { logger, records }
}

const closed = (backend: string, idleSeconds: number) => ({ backend, event: 'closed' as const, bytes: 0, idleSeconds })

const FIX_60 = "set the instance's keep-alive timeout above the 60 s idle timeout, e.g. 65000 ms; " +
  'for Node: server.keepAliveTimeout = 65_000 and server.headersTimeout above it (e.g. 66_000)'

t.test('the fix names 65000 ms for the 60 s default and follows the idle timeout', async (t) => {
  t.equal(keepaliveFix(60), FIX_60)
  t.equal(keepaliveFix(4000), "set the instance's keep-alive timeout above the 4000 s idle timeout, e.g. 4005000 ms; " +
    'for Node: server.keepAliveTimeout = 4_005_000 and server.headersTimeout above it (e.g. 4_006_000)')
})

t.test('early closes: one line per instance with the count, again only when the idle time moves by 1 s, totals at the end', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeKeepaliveDiagnostics(events, logger, { idleTimeoutSeconds: 60, keepaliveRace: 'detect' })
  // 236 closes after about 5.7 s, as a default Node server behind a busy proxy gives in half an hour.
  for (let n = 0; n < 236; n++) events.emit('backend-idle-event', closed('127.0.0.1:3000', 5.7 + (n % 5) / 10 - 0.2))
  events.emit('backend-idle-event', closed('127.0.0.1:3001', 5.01))
  events.emit('backend-idle-event', closed('127.0.0.1:3000', 30.2))
  events.emit('backend-idle-event', closed('127.0.0.1:3000', 30.9))
  t.strictSame(records, [
    {
      level: 40,
      notice: 'keepalive-closed',
      backend: '127.0.0.1:3000',
      idleSeconds: 5.5,
      idleTimeoutSeconds: 60,
      keepaliveRace: 'detect',
      count: 1,
      fix: FIX_60,
      msg: 'instance 127.0.0.1:3000 closed a kept-alive connection after 5.5 s idle, before the 60 s idle timeout: on a real CLB ' +
        'a request that reuses such a connection gets a 504. 1 time so far; repeats are counted, and printed again only when ' +
        'the idle time changes by 1 s or more'
    },
    {
      level: 40,
      notice: 'keepalive-closed',
      backend: '127.0.0.1:3001',
      idleSeconds: 5.01,
      idleTimeoutSeconds: 60,
      keepaliveRace: 'detect',
      count: 1,
      fix: FIX_60,
      msg: 'instance 127.0.0.1:3001 closed a kept-alive connection after 5.0 s idle, before the 60 s idle timeout: on a real CLB ' +
        'a request that reuses such a connection gets a 504. 1 time so far; repeats are counted, and printed again only when ' +
        'the idle time changes by 1 s or more'
    },
    {
      level: 40,
      notice: 'keepalive-closed',
      backend: '127.0.0.1:3000',
      idleSeconds: 30.2,
      idleTimeoutSeconds: 60,
      keepaliveRace: 'detect',
      count: 237,
      fix: FIX_60,
      msg: 'instance 127.0.0.1:3000 closed a kept-alive connection after 30.2 s idle, before the 60 s idle timeout: on a real CLB ' +
        'a request that reuses such a connection gets a 504. 237 times so far; repeats are counted, and printed again only when ' +
        'the idle time changes by 1 s or more'
    }
  ], '238 closes, 3 lines: the first of each instance, and the one whose idle time moved by a second or more')
  records.length = 0
  unsubscribe()
  t.equal(events.listenerCount('backend-idle-event'), 0)
  t.strictSame(records, [{
    level: 30,
    notice: 'keepalive-closed-total',
    backend: '127.0.0.1:3000',
    count: 238,
    minIdleSeconds: 5.5,
    maxIdleSeconds: 30.9,
    fix: FIX_60,
    msg: 'instance 127.0.0.1:3000 closed a kept-alive connection before the 60 s idle timeout 238 times in total, after 5.5 to 30.9 s idle'
  }], 'the running count at the end, only for the instance with closes not printed')
})

t.test('emulate mode says so; extra bytes are printed once per instance and byte count', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeKeepaliveDiagnostics(events, logger, { idleTimeoutSeconds: 2, keepaliveRace: 'emulate' })
  events.emit('backend-idle-event', closed('[::1]:3000', 0.25))
  for (const bytes of [2, 2, 2, 7]) events.emit('backend-idle-event', { backend: '[::1]:3000', event: 'extra-bytes', bytes, idleSeconds: 0.5 })
  unsubscribe()
  t.strictSame(records.map((record) => record.msg), [
    'instance [::1]:3000 closed a kept-alive connection after 0.3 s idle, before the 2 s idle timeout: on a real CLB a request ' +
      'that reuses such a connection gets a 504 (keepalive-race emulate: the next request that would reuse it gets that 504 here too). ' +
      '1 time so far; repeats are counted, and printed again only when the idle time changes by 1 s or more',
    'instance [::1]:3000 sent 2 byte(s) on an idle kept-alive connection, after a complete response (EXTRA_BYTES_AFTER_RESPONSE); ' +
      'the connection was closed. 1 time so far; repeats are counted, and printed again only when the number of bytes changes',
    'instance [::1]:3000 sent 7 byte(s) on an idle kept-alive connection, after a complete response (EXTRA_BYTES_AFTER_RESPONSE); ' +
      'the connection was closed. 4 times so far; repeats are counted, and printed again only when the number of bytes changes',
    'instance [::1]:3000 sent bytes on an idle kept-alive connection 4 times in total (EXTRA_BYTES_AFTER_RESPONSE)'
  ])
  t.strictSame(records[0]?.fix, "set the instance's keep-alive timeout above the 2 s idle timeout, e.g. 7000 ms; " +
    'for Node: server.keepAliveTimeout = 7_000 and server.headersTimeout above it (e.g. 8_000)')
  t.strictSame(records.map((record) => [record.notice, record.count]),
    [['keepalive-closed', 1], ['extra-bytes', 1], ['extra-bytes', 4], ['extra-bytes-total', 4]])
})

t.test('upgrades: one line per path without its query, then only a count; the counts when the proxy stops', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeUpgradeDiagnostics(events, logger)
  for (let n = 0; n < 57; n++) events.emit('upgrade-dropped', { method: 'GET', target: `/socket.io/?EIO=4&sid=${n}`, protocol: 'websocket' })
  events.emit('upgrade-dropped', { method: 'GET', target: '/chat#x', protocol: 'h2c' })
  events.emit('upgrade-dropped', { method: 'POST', target: '/socket.io/', protocol: 'websocket' })
  t.strictSame(records, [
    {
      level: 40,
      notice: 'upgrade-dropped',
      request: 'GET /socket.io/',
      protocol: 'websocket',
      count: 1,
      fix: UPGRADE_FIX,
      msg: 'GET /socket.io/ asked to upgrade to websocket: CLB HTTP listeners do not pass protocol upgrades such as WebSocket, ' +
        'so the Upgrade and Connection headers were dropped and the request reached the instance as a plain request, which ' +
        'typically answers 404 or 400. Later requests on this path are counted, not printed'
    },
    {
      level: 40,
      notice: 'upgrade-dropped',
      request: 'GET /chat',
      protocol: 'h2c',
      count: 1,
      fix: UPGRADE_FIX,
      msg: 'GET /chat asked to upgrade to h2c: CLB HTTP listeners do not pass protocol upgrades such as WebSocket, ' +
        'so the Upgrade and Connection headers were dropped and the request reached the instance as a plain request, which ' +
        'typically answers 404 or 400. Later requests on this path are counted, not printed'
    },
    {
      level: 40,
      notice: 'upgrade-dropped',
      request: 'POST /socket.io/',
      protocol: 'websocket',
      count: 1,
      fix: UPGRADE_FIX,
      msg: 'POST /socket.io/ asked to upgrade to websocket: CLB HTTP listeners do not pass protocol upgrades such as WebSocket, ' +
        'so the Upgrade and Connection headers were dropped and the request reached the instance as a plain request, which ' +
        'typically answers 404 or 400. Later requests on this path are counted, not printed'
    }
  ])
  t.equal(UPGRADE_FIX, 'for WebSocket or another upgrade behind a Classic Load Balancer, use a TCP or SSL listener ' +
    "(optionally with proxy protocol, to keep the client's address), or an Application Load Balancer, which supports WebSockets")
  records.length = 0
  unsubscribe()
  t.equal(events.listenerCount('upgrade-dropped'), 0)
  t.strictSame(records, [{
    level: 30,
    notice: 'upgrade-dropped-total',
    total: 59,
    paths: 3,
    fix: UPGRADE_FIX,
    msg: 'upgrade requests whose Upgrade header was dropped: 59 in total; GET /socket.io/ x 57'
  }])
})

t.test('upgrades: at most MAX_UPGRADE_PATHS paths are remembered; foreign bytes in a path are escaped and bounded', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeUpgradeDiagnostics(events, logger)
  for (let n = 0; n < MAX_UPGRADE_PATHS + 5; n++) events.emit('upgrade-dropped', { method: 'GET', target: `/ws/${n}`, protocol: 'websocket' })
  t.equal(records.length, MAX_UPGRADE_PATHS + 1, 'one line per remembered path, one saying the rest are counted together')
  t.strictSame(records.at(-1), {
    level: 40,
    notice: 'upgrade-dropped-paths-full',
    maxPaths: 1000,
    msg: 'upgrade requests came on more than 1000 paths: requests on further paths are counted together, not printed'
  })
  records.length = 0
  unsubscribe()
  t.strictSame(records.map((record) => record.msg), ['upgrade requests whose Upgrade header was dropped: 1005 in total; 5 request(s) on paths not remembered'])

  records.length = 0
  const again = subscribeUpgradeDiagnostics(events, logger)
  events.emit('upgrade-dropped', { method: 'GET', target: `/\x1b]0;owned\x07\r${'a'.repeat(1000)}`, protocol: 'web\x1b[2Jsocket' })
  again()
  t.equal(records[0]?.request, `GET /\\x1b]0;owned\\x07\\r${'a'.repeat(177)}...(823 more characters)`)
  t.equal(records[0]?.protocol, 'web\\x1b[2Jsocket')
})

/** A raw instance on 127.0.0.1 whose every connection is handed to `serve`; closed on teardown. Resolves with its `host:port`. */
async function rawInstance (t: Test, serve: (socket: net.Socket) => void): Promise<string> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined)
    serve(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

t.test('through a real proxy: an instance that closes every kept-alive connection gives one line, and its total at close', async (t) => {
  // Answers each connection's request with a keep-alive 200, then closes it (FIN), as a backend
  // whose keep-alive timeout is shorter than the idle timeout does.
  const backend = await rawInstance(t, (socket) => socket.once('data', () => socket.end(OK)))
  const { logger, records } = memoryLogger()
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [`http://${backend}`], accessLog: null, captureDir: null },
    { logger, clock: { nowMicros: () => Date.UTC(2026, 10, 25, 8, 0, 0) * 1000 } })
  for (let n = 0; n < 3; n++) {
    const closedWhileIdle = once(proxy.events, 'backend-idle-event')
    const response = await fetch(`${proxy.url}/a`)
    t.equal(await response.text(), 'ok')
    await closedWhileIdle
  }
  await proxy.close()
  t.strictSame(records.map((record) => [record.notice, record.backend, record.count]), [
    ['keepalive-closed', backend, 1],
    ['keepalive-closed-total', backend, 3]
  ], 'three early closes (frozen clock: 0 s idle each), one warning, one total')
})

t.test('through a real proxy: an instance that refuses connections is said once, though every request retried on the other one answered', async (t) => {
  const alive = await rawInstance(t, (socket) => socket.on('data', () => socket.write(OK)))
  const dead = `127.0.0.1:${await closedPort()}`
  const { logger, records } = memoryLogger()
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [`http://${dead}`, `http://${alive}`], accessLog: null, captureDir: null }, { logger })
  for (let n = 0; n < 4; n++) {
    const response = await fetch(`${proxy.url}/a${n}`)
    t.equal(await response.text(), 'ok', 'answered: retried on the instance that listens when the other refused')
  }
  const failures = proxy.metrics().Metrics.BackendConnectionErrors.Sum
  t.ok(failures >= 2, `the dead instance was tried and refused (${failures} times)`)
  await proxy.close()
  const [deadId] = proxy.instances().map((instance) => instance.InstanceId)
  t.strictSame(records, [
    {
      level: 40,
      notice: 'backend-connection-error',
      instanceId: deadId,
      instance: dead,
      error: 'ECONNREFUSED',
      count: 1,
      msg: `connection to ${dead} refused (ECONNREFUSED): nothing listens on that address. A request whose connection is refused or ` +
        'unreachable is retried on another instance in service when there is one; any other failure the load balancer answers itself, ' +
        'and its own line says how (CLB-CW BackendConnectionErrors counts each failed connection). Without a health ' +
        'check it stays in service and every request routed to it is tried there first: --health-check (healthCheck) takes it out of service while it fails'
    },
    {
      level: 30,
      notice: 'backend-connection-error-total',
      instance: dead,
      count: failures,
      msg: `connections to ${dead} failed for requests ${failures} time(s) in total`
    }
  ], 'one warning for the instance, the total when the proxy stops; the retried requests said nothing else')
})

t.test('refused connections: said again when the error changes or a minute has passed, with the count since; a total for what was not said', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  let now = 0
  const unsubscribe = subscribeConnectionDiagnostics(events, logger, { healthChecked: true, nowMs: () => now })
  const refused = { instanceId: 'i-0123456789abcdef0', instance: '10.0.0.9:3000', error: 'ECONNREFUSED', source: 'request' } as const
  events.emit('backend-connection-error', refused)
  events.emit('backend-connection-error', refused)
  events.emit('backend-connection-error', { ...refused, source: 'health-check' })
  now = REPEAT_AFTER_MS - 1
  events.emit('backend-connection-error', refused)
  now = REPEAT_AFTER_MS
  events.emit('backend-connection-error', refused)
  events.emit('backend-connection-error', { ...refused, error: 'EHOSTUNREACH' })
  events.emit('backend-connection-error', { ...refused, error: 'EHOSTUNREACH' })
  unsubscribe()
  t.strictSame(records.map((record) => [record.notice, record.error, record.count, String(record.msg).split('. ')[0]]), [
    ['backend-connection-error', 'ECONNREFUSED', 1, 'connection to 10.0.0.9:3000 refused (ECONNREFUSED): nothing listens on that address'],
    ['backend-connection-error', 'ECONNREFUSED', 4, 'connection to 10.0.0.9:3000 refused (ECONNREFUSED): nothing listens on that address (3 failed connection(s) to it since it was last said)'],
    ['backend-connection-error', 'EHOSTUNREACH', 5, '10.0.0.9:3000 is unreachable (EHOSTUNREACH): no route to the host (1 failed connection(s) to it since it was last said)'],
    ['backend-connection-error-total', undefined, 6, 'connections to 10.0.0.9:3000 failed for requests 6 time(s) in total']
  ], 'a health check\'s failure is not this line\'s; the last unsaid failure is in the total')
  t.notMatch(String(records[0]?.msg), /Without a health check/, 'with health checks, no advice to add them')
})
