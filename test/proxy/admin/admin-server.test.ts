import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { pino } from 'pino'
import { buildAdminApp, type AdminSources } from '../../../proxy/admin/admin-server.js'
import type { AccessLogRecord } from '../../../proxy/core/access-log-record.js'
import { subscribeCaptures } from '../../../proxy/observers/captures.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { ClbProxyEvents, type ExchangeRecord } from '../../../proxy/core/events.js'
import { ClbMetrics } from '../../../proxy/observers/metrics.js'
import { CLB_DEFAULTS } from '../../../proxy/core/options.js'
import { toAccessLogEntry } from '../../../proxy/observers/recorder.js'

const silent = pino({ level: 'silent' })
// 2026-11-25T08:00:00.000000Z
const MICROS = Date.UTC(2026, 10, 25, 8, 0, 0) * 1000

const LOG: AccessLogRecord = {
  receivedAtMicros: MICROS,
  elbName: 'clb-proxy',
  clientAddress: '127.0.0.1',
  clientPort: 50000,
  backend: { address: '127.0.0.1', port: 3000 },
  requestProcessingSeconds: 0.00001,
  backendProcessingSeconds: 0.25,
  responseProcessingSeconds: 0.00001,
  elbStatusCode: 200,
  backendStatusCode: 200,
  receivedBytes: 0,
  sentBytes: 2,
  method: 'GET',
  scheme: 'http',
  host: 'app',
  listenerPort: 8080,
  target: '/one',
  httpVersion: 'HTTP/1.1',
  userAgent: 'curl/8.5.0',
  sslCipher: null,
  sslProtocol: null
}

const REJECTED_BYTES = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok', 'latin1')
const REJECTED: ExchangeRecord = {
  outcome: 'rejected', cutReason: null,
  elbGenerated: true,
  log: { ...LOG, target: '/three', elbStatusCode: 502, backendStatusCode: 'rejected', sentBytes: 0 },
  defects: [{ code: 'CL_NOT_INTEGER', offset: 33, message: 'Content-Length value "2x" is not an integer' }],
  defectCounts: { CL_NOT_INTEGER: 1 },
  instance: '127.0.0.1:3000',
  instanceId: 'i-0a1b2c3d4e5f60718',
  backendError: null,
  primaryDefect: { code: 'CL_NOT_INTEGER', offset: 33, message: 'Content-Length value "2x" is not an integer' },
  responseBytes: REJECTED_BYTES,
  requestHead: Buffer.from('GET /three HTTP/1.1\r\nHost: app\r\n\r\n', 'latin1')
}
const RECORDS: ExchangeRecord[] = [
  { outcome: 'relayed', cutReason: null, elbGenerated: false, log: LOG, defects: [], defectCounts: {}, instance: null, instanceId: null, backendError: null, primaryDefect: null, responseBytes: null, requestHead: null },
  { outcome: 'relayed', cutReason: null, elbGenerated: false, log: { ...LOG, target: '/two' }, defects: [{ code: 'CL_DUP_SAME', offset: 40, message: 'Content-Length twice' }], defectCounts: { CL_DUP_SAME: 1 }, instance: '127.0.0.1:3000', instanceId: 'i-0a1b2c3d4e5f60718', backendError: null, primaryDefect: null, responseBytes: null, requestHead: null },
  REJECTED
]

/** Sources over fixed records, and a real capture store holding one capture in a temp dir. */
async function fixtureSources (t: { teardown (fn: () => unknown): void }): Promise<{ sources: AdminSources; captureDir: string; metrics: ClbMetrics }> {
  const captureDir = await mkdtemp(join(tmpdir(), 'clb-proxy-admin-'))
  t.teardown(() => rm(captureDir, { recursive: true, force: true }))
  const events = new ClbProxyEvents()
  const store = subscribeCaptures(events, { ...CLB_DEFAULTS, captureDir }, silent)
  events.emit('exchange', REJECTED)
  await store.close() // resolves once the queued capture is written
  const metrics = new ClbMetrics({ loadBalancerName: 'clb-proxy', sinceMicros: MICROS })
  for (const record of RECORDS) metrics.recordExchange(record)
  const entries = RECORDS.map(toAccessLogEntry)
  // The instance routes are tested against a running proxy (test/proxy/library/instances.test.ts).
  const sources: AdminSources = {
    metrics: () => metrics.snapshot(),
    metricStatistics: (metric, query) => metrics.statistics(metric, query),
    entries: () => entries,
    captures: () => store.list(),
    instances: () => [],
    register: () => { throw new Error('not used here') },
    deregister: () => false
  }
  return { sources, captureDir, metrics }
}

t.test('inject: /captures says which captures an earlier run left (files found at startup), whatever their time says', async (t) => {
  const { sources, captureDir } = await fixtureSources(t)
  const now = buildAdminApp(sources)
  t.teardown(() => now.close())
  t.match((await now.inject('/captures')).json(), { captures: [{ time: '2026-11-25T08:00:00.000000Z', earlierRun: false }] }, 'written by this run')
  // A leftover whose time cannot be read, and one whose time is later than the restart: both found at startup.
  const [written] = sources.captures()
  const header = (await readFile(written?.file as string, 'latin1'))
  await writeFile(join(captureDir, '2026-11-25T08-00-01.000000Z-502-CL_NOT_INTEGER-90.capture'), header.replace(/^time: .*$/m, 'time: not a time'), 'latin1')
  await writeFile(join(captureDir, '2999-01-01T00-00-00.000000Z-502-CL_NOT_INTEGER-91.capture'), header.replace(/^time: .*$/m, 'time: 2999-01-01T00:00:00.000000Z'), 'latin1')
  const restarted = subscribeCaptures(new ClbProxyEvents(), { ...CLB_DEFAULTS, captureDir }, silent)
  await restarted.settled()
  const later = buildAdminApp({ ...sources, captures: () => restarted.list() })
  t.teardown(() => Promise.all([later.close(), restarted.close()]))
  const listed = (await later.inject('/captures')).json().captures as Array<{ time: string | null, earlierRun: boolean }>
  t.strictSame(listed.map((c) => [c.time, c.earlierRun]), [['2999-01-01T00:00:00.000000Z', true], ['not a time', true], ['2026-11-25T08:00:00.000000Z', true]])
})


t.test('inject: /healthz, /metrics and /entries', async (t) => {
  const { sources, metrics } = await fixtureSources(t)
  const app = buildAdminApp(sources)
  t.teardown(() => app.close())

  const health = await app.inject('/healthz')
  t.equal(health.statusCode, 200)
  t.equal(health.headers['content-type'], 'application/json; charset=utf-8')
  t.strictSame(health.json(), { status: 'ok' })

  const metricsResponse = await app.inject('/metrics.json')
  t.equal(metricsResponse.statusCode, 200)
  t.strictSame(metricsResponse.json(), metrics.snapshot())
  t.match(metricsResponse.json(), { Namespace: 'AWS/ELB', Metrics: { RequestCount: { Unit: 'Count', Sum: 3 }, HTTPCode_ELB_5XX: { Sum: 1 }, Latency: { Unit: 'Seconds' } } })

  const all = await app.inject('/entries')
  t.equal(all.statusCode, 200)
  const expected = RECORDS.map(toAccessLogEntry).map((entry) => ({
    line: entry.line,
    outcome: entry.outcome,
    elbGenerated: entry.elbGenerated,
    primaryDefect: entry.primaryDefect,
    defects: entry.defects,
    record: entry.record
  }))
  t.strictSame(all.json(), { count: 3, entries: JSON.parse(JSON.stringify(expected)) })
  t.equal(all.json().entries[2].line, '2026-11-25T08:00:00.000000Z clb-proxy 127.0.0.1:50000 127.0.0.1:3000 0.00001 0.25 0.00001 502 - 0 0 "GET http://app:8080/three HTTP/1.1" "curl/8.5.0" - -')

  const lastTwo = await app.inject('/entries?limit=2')
  t.strictSame(lastTwo.json().entries.map((entry: { record: { target: string } }) => entry.record.target), ['/two', '/three'])
  for (const limit of ['0', '-1', 'x', '1.5', '10001']) {
    const bad = await app.inject(`/entries?limit=${limit}`)
    t.equal(bad.statusCode, 400, `limit=${limit} is refused`)
  }
  t.equal((await app.inject('/nowhere')).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: '/healthz' })).statusCode, 404, 'the admin API is read-only')
})

t.test('inject: /captures lists the store; /captures/:name serves only listed names', async (t) => {
  const { sources, captureDir } = await fixtureSources(t)
  const app = buildAdminApp(sources)
  t.teardown(() => app.close())

  const summaries = sources.captures()
  t.equal(summaries.length, 1)
  const summary = summaries[0] as (typeof summaries)[number]
  const name = basename(summary.file)
  const list = await app.inject('/captures')
  t.equal(list.statusCode, 200)
  t.strictSame(list.json(), { captures: [{ ...JSON.parse(JSON.stringify(summary)), name, path: `/captures/${name}`, earlierRun: false }] })
  t.match(list.json().captures[0], { outcome: 'rejected', elbStatus: 502, primaryDefect: 'CL_NOT_INTEGER' })

  const text = await app.inject(`/captures/${name}`)
  t.equal(text.statusCode, 200)
  t.equal(text.headers['content-type'], 'text/plain; charset=utf-8')
  t.equal(text.body, await readFile(summary.file, 'utf8'))
  t.match(text.body, /^defect: CL_NOT_INTEGER @33: /m)

  // A file in the directory that the store does not list, and paths that try to leave the directory.
  await writeFile(join(captureDir, 'notes.txt'), 'not a capture')
  for (const url of ['/captures/notes.txt', '/captures/..%2F..%2Fetc%2Fpasswd', '/captures/%2Fetc%2Fpasswd', `/captures/..%2F${basename(captureDir)}%2F${name}`]) {
    const response = await app.inject(url)
    t.equal(response.statusCode, 404, url)
    t.notMatch(response.body, /not a capture|root:/, `${url}: no file content`)
  }
  // `/captures/..` is the path `/` once resolved (RFC 3986 section 5.2.4): the dashboard page, no file.
  const dotDot = await app.inject('/captures/..')
  t.equal(dotDot.headers['content-type'], 'text/html; charset=utf-8', '/captures/..: the dashboard')
  t.notMatch(dotDot.body, /not a capture|root:/, '/captures/..: no file content')

  await unlink(summary.file)
  const removed = await app.inject(`/captures/${name}`)
  t.equal(removed.statusCode, 404)
  t.strictSame(removed.json(), { error: `capture "${name}" was removed` })
})

/** GET over a real socket, without keep-alive. */
function get (url: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, type: response.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }))
    }).on('error', reject)
  })
}

t.test('over a real socket: startClbProxy starts the admin listener with options.admin, close() stops it', async (t) => {
  let backendConnections = 0
  const backend = net.createServer((socket) => {
    backendConnections++
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2x\r\nConnection: close\r\n\r\nok'))
  })
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  const proxy = await startClbProxy({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    backends: [`http://127.0.0.1:${(backend.address() as net.AddressInfo).port}`],
    accessLog: null,
    captureDir: null
  }, { logger: silent })
  const adminUrl = proxy.adminUrl as string
  t.match(adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.not(new URL(adminUrl).port, String(proxy.address.port), 'its own port')

  t.strictSame(await get(`${adminUrl}/healthz`), { status: 200, type: 'application/json; charset=utf-8', body: '{"status":"ok"}' })
  const client = net.connect(proxy.address.port, '127.0.0.1', () => client.write('GET /bad HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n'))
  client.resume() // read (and drop) the 502, so the client sees the proxy's FIN
  await once(client, 'close')
  await proxy.waitFor((entry) => entry.record.target === '/bad')

  const metrics = JSON.parse((await get(`${adminUrl}/metrics.json`)).body)
  t.strictSame([metrics.Metrics.RequestCount.Sum, metrics.Metrics.HTTPCode_ELB_5XX.Sum, metrics.ClbProxy.DefectCount.ByCode], [1, 1, { CL_NOT_INTEGER: 1 }])
  const entries = JSON.parse((await get(`${adminUrl}/entries?limit=1`)).body)
  t.equal(entries.count, 1)
  t.equal(entries.entries[0].line, proxy.lines()[0])
  t.strictSame(entries.entries[0].defects.map((defect: { code: string }) => defect.code), ['CL_NOT_INTEGER'])
  t.strictSame(JSON.parse((await get(`${adminUrl}/captures`)).body), { captures: [] }, 'captureDir null: nothing captured')

  await proxy.close()
  const refused = await get(`${adminUrl}/healthz`).catch((error: NodeJS.ErrnoException) => error.code)
  t.equal(refused, 'ECONNREFUSED', 'the admin listener is closed')
  t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 })
  t.equal(backendConnections, 1)
  await new Promise<void>((resolve) => backend.close(() => resolve()))
})

t.test('without options.admin there is no admin listener; a busy admin port fails the start and leaves nothing listening', async (t) => {
  const backend = 'http://127.0.0.1:9'
  const plain = await startClbProxy({ listen: '127.0.0.1:0', backends: [backend], accessLog: null, captureDir: null }, { logger: silent })
  t.equal(plain.adminUrl, null)
  await plain.close()

  const busy = net.createServer()
  busy.listen(0, '127.0.0.1')
  await once(busy, 'listening')
  const busyPort = (busy.address() as net.AddressInfo).port
  // A port that was free a moment ago, so the test can tell afterwards that nothing listens on it.
  const probe = net.createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const proxyPort = (probe.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  const failure = await startClbProxy({ listen: `127.0.0.1:${proxyPort}`, admin: `127.0.0.1:${busyPort}`, backends: [backend], accessLog: null, captureDir: null }, { logger: silent })
    .catch((error: NodeJS.ErrnoException) => error)
  t.match(failure, { code: 'EADDRINUSE', syscall: 'listen', port: busyPort })
  const connect = net.connect(proxyPort, '127.0.0.1')
  const [connectError] = await once(connect, 'error') as [NodeJS.ErrnoException]
  t.equal(connectError.code, 'ECONNREFUSED', "the proxy's own listener was closed again")
  await new Promise<void>((resolve) => busy.close(() => resolve()))
})

t.test('inject: /metrics in Prometheus text (prom-client) with the CloudWatch names; /metrics.json?metric= like get-metric-statistics', async (t) => {
  const { sources, metrics } = await fixtureSources(t)
  const app = buildAdminApp(sources)
  t.teardown(() => app.close())
  const text = await app.inject('/metrics')
  t.equal(text.statusCode, 200)
  t.match(text.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const snapshot = metrics.snapshot().Metrics
  const lines = text.body.split('\n')
  t.ok(lines.includes('# TYPE aws_elb_RequestCount counter'))
  t.ok(lines.includes(`aws_elb_RequestCount{LoadBalancerName="clb-proxy"} ${snapshot.RequestCount.Sum}`), 'RequestCount, the same count as the snapshot')
  t.ok(lines.includes(`aws_elb_HTTPCode_ELB_5XX{LoadBalancerName="clb-proxy"} ${snapshot.HTTPCode_ELB_5XX.Sum}`))
  t.ok(lines.includes(`aws_elb_Latency_seconds_count{LoadBalancerName="clb-proxy"} ${snapshot.Latency.SampleCount}`))
  t.ok(lines.includes('# TYPE aws_elb_HealthyHostCount gauge'))
  // The surge queue: its length now (a gauge that can fall), and the longest it has been.
  metrics.recordSurgeQueueLength(4)
  metrics.recordSurgeQueueLength(1)
  const queued = (await app.inject('/metrics')).body.split('\n')
  t.ok(queued.includes('aws_elb_SurgeQueueLength{LoadBalancerName="clb-proxy"} 1'), 'SurgeQueueLength: the length now')
  t.ok(queued.includes('aws_elb_SurgeQueueLength_max{LoadBalancerName="clb-proxy"} 4'), 'SurgeQueueLength_max: the longest since start')
  t.ok(lines.some((line) => line.startsWith('clb_proxy_DefectCount{LoadBalancerName="clb-proxy",code="CL_DUP_SAME"} ')), 'defects by code')

  const datapoints = await app.inject('/metrics.json?metric=RequestCount&period=60')
  t.equal(datapoints.statusCode, 200)
  t.strictSame(datapoints.json(), metrics.statistics('RequestCount', { period: 60 }))
  t.equal(datapoints.json().Label, 'RequestCount')
  const bad = await app.inject('/metrics.json?metric=RequestCount&period=30')
  t.equal(bad.statusCode, 400, 'a period is whole minutes')
  t.match(bad.json(), { error: /period must be multiple of 60|period must be >= 60/ })
  t.equal((await app.inject('/metrics.json?metric=NoSuchMetric')).statusCode, 400)
})
