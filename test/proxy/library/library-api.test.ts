import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { AssertionError } from 'node:assert'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { startClbProxy, type ClbProxy, type ClbProxyHooks } from '../../../proxy/library/clb-proxy.js'
import type { ClbProxyOptions } from '../../../proxy/core/options.js'
import { Recorder, subscribeRecorder, WaitForError, type AccessLogEntry } from '../../../proxy/observers/recorder.js'
import { ClbProxyEvents, type ExchangeRecord } from '../../../proxy/core/events.js'
import { assertElbGenerated, assertRelayed, describeEntry, findEntry } from '../../../proxy/library/assertions.js'

const silent = pino({ level: 'silent' })

/** Each path's exact response bytes; every response closes its connection, so nothing stays pooled. */
const ROUTES: Readonly<Record<string, string>> = {
  '/ok': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
  '/created': 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  '/missing': 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  // CLB-KC-502: "a Content-Length header which contains a non-integer".
  '/not-integer': 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\nConnection: close\r\n\r\nok'
}

interface RawBackend {
  readonly url: string
  readonly requests: () => number
  readonly close: () => Promise<number>
}

/** A raw `net` backend answering ROUTES by request path; close() resolves with the connections still open (expected 0). */
async function startRawBackend (): Promise<RawBackend> {
  let requests = 0
  const server = net.createServer((socket) => {
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      requests++
      const path = head.split(' ')[1] ?? ''
      socket.end(ROUTES[path] ?? 'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests: () => requests,
    close: async () => {
      const open = await new Promise<number>((resolve, reject) => server.getConnections((error, count) => error === null ? resolve(count) : reject(error)))
      await new Promise<void>((resolve) => server.close(() => resolve()))
      return open
    }
  }
}

/** One request with Connection: close; resolves with every byte the client got. */
function request (proxy: ClbProxy, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxy.address.port, proxy.address.host, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n`))
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
  })
}

function start (backend: RawBackend, options: ClbProxyOptions = {}, hooks: ClbProxyHooks = {}): Promise<ClbProxy> {
  return startClbProxy({ listen: '127.0.0.1:0', backends: [backend.url], accessLog: null, captureDir: null, ...options }, { logger: silent, ...hooks })
}

const byTarget = (target: string) => (entry: AccessLogEntry): boolean => entry.record.target === target

t.test("on('request'), entries() and lines(): one entry per request, its line identical to the access log's", async (t) => {
  const backend = await startRawBackend()
  const written: string[] = []
  const accessLogStream = new Writable({ write (chunk, _encoding, done) { written.push(...String(chunk).split('\n').filter(Boolean)); done() } })
  const proxy = await start(backend, {}, { accessLogStream })
  const heard: AccessLogEntry[] = []
  const listener = (entry: AccessLogEntry): void => { heard.push(entry) }
  t.equal(proxy.on('request', listener), proxy, 'on() returns the handle')

  t.equal(await request(proxy, '/ok'), ROUTES['/ok'])
  t.equal(await request(proxy, '/not-integer'), 'HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n')
  t.equal(await request(proxy, '/missing'), ROUTES['/missing'])
  await proxy.waitFor(byTarget('/missing'))
  t.equal(proxy.off('request', listener), proxy, 'off() returns the handle')
  t.equal(await request(proxy, '/created'), ROUTES['/created'])
  await proxy.waitFor(byTarget('/created'))
  await proxy.close()

  t.equal(heard.length, 3, "the listener heard the three requests before off(), not the fourth")
  t.strictSame(heard.map((entry) => entry.record.target), ['/ok', '/not-integer', '/missing'])
  const entries = proxy.entries()
  t.strictSame(entries.map((entry) => entry.record.target), ['/ok', '/not-integer', '/missing', '/created'])
  t.equal(entries[0], heard[0], 'the listener got the very entry entries() keeps')
  t.strictSame(proxy.lines(), written, 'lines() are byte-identical to the access-log lines')
  t.equal(written.length, 4)

  const ok = entries[0] as AccessLogEntry
  t.strictSame({ outcome: ok.outcome, elbGenerated: ok.elbGenerated, defects: ok.defects, primaryDefect: ok.primaryDefect },
    { outcome: 'relayed', elbGenerated: false, defects: [], primaryDefect: null })
  t.strictSame([ok.record.elbStatusCode, ok.record.backendStatusCode, ok.record.sentBytes], [200, 200, 2])
  const rejected = entries[1] as AccessLogEntry
  t.strictSame({ outcome: rejected.outcome, elbGenerated: rejected.elbGenerated, primary: rejected.primaryDefect?.code, codes: rejected.defects.map((d) => d.code) },
    { outcome: 'rejected', elbGenerated: true, primary: 'CL_NOT_INTEGER', codes: ['CL_NOT_INTEGER'] })
  t.match(rejected.line, / 502 - 0 0 "GET http:\/\/app:\d+\/not-integer HTTP\/1\.1" "-" - -$/)
  t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 })
  t.equal(await backend.close(), 0, 'no backend connection left open')
})

t.test('waitFor resolves with a kept entry or a future one, without polling', async (t) => {
  const backend = await startRawBackend()
  const proxy = await start(backend)
  t.teardown(async () => { await proxy.close(); await backend.close() })

  const future = proxy.waitFor(byTarget('/created'))
  await request(proxy, '/ok')
  await request(proxy, '/created')
  const created = await future
  t.equal(created.record.elbStatusCode, 201)
  t.equal(created, proxy.entries()[1], 'the future entry is the kept one')

  const past = await proxy.waitFor(byTarget('/ok'))
  t.equal(past, proxy.entries()[0], 'an entry kept before the call resolves at once')

  const both = await Promise.all([proxy.waitFor(byTarget('/missing')), proxy.waitFor((entry) => entry.record.elbStatusCode === 404), request(proxy, '/missing')])
  t.equal(both[0], both[1], 'two waiters for one entry both get it')
})

t.test('waitFor rejects: on timeout, on close, and with the predicate\'s own error', async (t) => {
  const backend = await startRawBackend()
  const proxy = await start(backend)
  await request(proxy, '/ok')
  await proxy.waitFor(byTarget('/ok'))

  const timeout = await proxy.waitFor(byTarget('/never'), { timeoutMs: 1 }).catch((error: unknown) => error)
  t.type(timeout, WaitForError)
  t.equal((timeout as WaitForError).code, 'CLB_WAIT_FOR_TIMEOUT')
  t.equal((timeout as WaitForError).message, `waitFor: no access-log entry matched within 1 ms (1 entry seen; the last 1:\n  ${proxy.lines()[0] ?? ''})`)

  const boom = new Error('predicate bug')
  await t.rejects(proxy.waitFor(() => { throw boom }), boom, 'a throwing predicate rejects with its error (kept entries)')
  const laterBoom = t.rejects(proxy.waitFor((entry) => { if (entry.record.target === '/created') throw boom; return false }),
    boom, 'a throwing predicate rejects with its error (future entries)')
  await request(proxy, '/created')
  await laterBoom

  const pending = proxy.waitFor(byTarget('/never'))
  await proxy.close()
  const closed = await pending.catch((error: unknown) => error)
  t.type(closed, WaitForError)
  t.equal((closed as WaitForError).code, 'CLB_WAIT_FOR_CLOSED')
  t.match((closed as WaitForError).message, /^waitFor: the proxy was closed before an access-log entry matched \(2 entries seen; the last 2:\n/)
  await t.rejects(proxy.waitFor(byTarget('/never')), { code: 'CLB_WAIT_FOR_CLOSED' }, 'after close(), no match rejects at once')
  t.equal((await proxy.waitFor(byTarget('/ok'))).record.target, '/ok', 'after close(), a kept entry still resolves')

  const rangeError = await proxy.waitFor(byTarget('/ok'), { timeoutMs: -1 }).catch((error: unknown) => error)
  t.type(rangeError, RangeError)
  t.equal(await backend.close(), 0)
})

t.test('entries are bounded by maxRecordedEntries: the oldest go first; 0 keeps none but waitFor still sees new ones', async (t) => {
  const backend = await startRawBackend()
  const two = await start(backend, {}, { maxRecordedEntries: 2 })
  for (const path of ['/ok', '/created', '/missing']) await request(two, path)
  await two.waitFor(byTarget('/missing'))
  t.strictSame(two.entries().map((entry) => entry.record.target), ['/created', '/missing'])
  t.equal(two.lines().length, 2)
  await two.close()

  const none = await start(backend, {}, { maxRecordedEntries: 0 })
  const next = none.waitFor(byTarget('/ok'))
  await request(none, '/ok')
  t.equal((await next).record.target, '/ok')
  t.strictSame(none.entries(), [])
  t.strictSame(none.lines(), [])
  await none.close()

  await t.rejects(start(backend, {}, { maxRecordedEntries: -1 }), new RangeError('maxRecordedEntries must be an integer >= 0, got -1'))
  t.equal(backend.requests(), 4)
  t.equal(await backend.close(), 0)
})

t.test('hooks.logger: null silences the diagnostics; anything but a pino-like logger is refused before any socket opens', async (t) => {
  const backend = await startRawBackend()
  // An ELB-generated 502 is a diagnostic: with null, nothing is written and nothing throws.
  const quiet = await start(backend, {}, { logger: null })
  t.equal(await request(quiet, '/not-integer'), 'HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n')
  await quiet.close()
  for (const [label, logger, missing, kind] of [
    ['an options object', { level: 'silent' }, 'info', 'undefined'],
    ['console.log', console.log, 'info', 'undefined'],
    ['a logger without error', { info () {}, warn () {} }, 'error', 'undefined']
  ] as const) {
    // @ts-expect-error what a plain-JavaScript test can pass
    await t.rejects(start(backend, {}, { logger }), new TypeError(`hooks.logger must be a pino logger (an object with info, warn and error methods) or null for none; its ${missing} is ${kind}`), label)
  }
  t.equal(backend.requests(), 1, 'only the quiet proxy forwarded a request')
  t.equal(await backend.close(), 0)
})

t.test('metrics(): CloudWatch counters of this proxy', async (t) => {
  const backend = await startRawBackend()
  const proxy = await start(backend, { name: 'orders' })
  for (const path of ['/ok', '/created', '/missing', '/not-integer', '/elsewhere']) await request(proxy, path)
  await proxy.waitFor(byTarget('/elsewhere'))
  const snapshot = proxy.metrics()
  t.equal(snapshot.Dimensions.LoadBalancerName, 'orders')
  const counts = Object.fromEntries(Object.entries(snapshot.Metrics).filter(([, metric]) => 'Sum' in metric && metric.Unit === 'Count').map(([name, metric]) => [name, (metric as { Sum: number }).Sum]))
  t.strictSame(counts, {
    RequestCount: 5,
    HTTPCode_ELB_4XX: 0,
    HTTPCode_ELB_5XX: 1,
    HTTPCode_Backend_2XX: 2,
    HTTPCode_Backend_3XX: 0,
    HTTPCode_Backend_4XX: 1,
    HTTPCode_Backend_5XX: 1,
    BackendConnectionErrors: 0,
    SpilloverCount: 0,
    DesyncMitigationMode_NonCompliant_Request_Count: 0
  })
  t.equal(snapshot.Metrics.Latency.SampleCount, 5, 'every request reached the instance')
  t.strictSame(snapshot.Metrics.HealthyHostCount, { Unit: 'Count', Average: 1, Minimum: 1, Maximum: 1 })
  t.strictSame(snapshot.ClbProxy.DefectCount, { Unit: 'Count', Sum: 1, ByCode: { CL_NOT_INTEGER: 1 } })
  await proxy.close()

  // An instance that refuses connections: CLB's 503 and a BackendConnectionErrors.
  const refusing = await startRawBackend()
  await refusing.close()
  const unreachable = await startClbProxy({ listen: '127.0.0.1:0', backends: [refusing.url], accessLog: null, captureDir: null }, { logger: silent })
  t.equal(await request(unreachable, '/ok'), 'HTTP/1.1 503 Service Unavailable: Back-end server is at capacity\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n')
  await unreachable.waitFor(byTarget('/ok'))
  const down = unreachable.metrics().Metrics
  t.strictSame([down.RequestCount.Sum, down.HTTPCode_ELB_5XX.Sum, down.BackendConnectionErrors.Sum, down.Latency.SampleCount], [1, 1, 1, 0])
  await unreachable.close()
  t.equal(await backend.close(), 0)
})

t.test('captures(): the capture store\'s summaries, newest first', async (t) => {
  const backend = await startRawBackend()
  const captureDir = await mkdtemp(join(tmpdir(), 'clb-proxy-library-api-'))
  t.teardown(() => rm(captureDir, { recursive: true, force: true }))
  const proxy = await start(backend, { captureDir })
  t.strictSame(proxy.captures(), [])
  await request(proxy, '/ok')
  await request(proxy, '/not-integer')
  await proxy.waitFor(byTarget('/not-integer'))
  // close() waits for queued captures to be written; the summaries stay readable afterwards.
  await proxy.close()
  const captures = proxy.captures()
  t.equal(captures.length, 1, 'only the rejected response is captured')
  t.match(captures[0], { outcome: 'rejected', elbStatus: 502, primaryDefect: 'CL_NOT_INTEGER' })
  t.strictSame(await readdir(captureDir), [captures[0]?.file.slice(captureDir.length + 1)])
  t.equal(await backend.close(), 0)
})

t.test('five proxies in one process at once: own ports, own entries, own metrics', async (t) => {
  const backend = await startRawBackend()
  const names = ['p0', 'p1', 'p2', 'p3', 'p4']
  const proxies = await Promise.all(names.map((name) => start(backend, { name })))
  t.equal(new Set(proxies.map((proxy) => proxy.address.port)).size, 5, 'five different ports')
  // Proxy i gets i + 1 requests, all in flight at the same time.
  await Promise.all(proxies.flatMap((proxy, i) => Array.from({ length: i + 1 }, (_, n) => request(proxy, n % 2 === 0 ? '/ok' : '/not-integer'))))
  await Promise.all(proxies.map((proxy, i) => proxy.waitFor(() => proxy.entries().length === i + 1)))
  proxies.forEach((proxy, i) => {
    const name = names[i] as string
    t.equal(proxy.entries().length, i + 1, `${name}: its own requests only`)
    t.ok(proxy.entries().every((entry) => entry.record.elbName === name && entry.record.listenerPort === proxy.address.port), `${name}: every entry is its own`)
    t.ok(proxy.lines().every((line) => line.split(' ')[1] === name), `${name}: every line names it`)
    t.equal(proxy.metrics().Metrics.RequestCount.Sum, i + 1, `${name}: its own RequestCount`)
    t.equal(proxy.metrics().Metrics.HTTPCode_ELB_5XX.Sum, Math.floor((i + 1) / 2), `${name}: its own HTTPCode_ELB_5XX`)
  })
  await Promise.all(proxies.map((proxy) => proxy.close()))
  t.strictSame(proxies.map((proxy) => proxy.openSockets()), names.map(() => ({ clients: 0, backends: 0 })))
  t.equal(backend.requests(), 15)
  t.equal(await backend.close(), 0)
})

t.test('assertion helpers: pass silently on a match; otherwise an AssertionError showing the line and defects', async (t) => {
  const backend = await startRawBackend()
  const proxy = await start(backend)
  await request(proxy, '/ok')
  await request(proxy, '/not-integer')
  const rejected = await proxy.waitFor(byTarget('/not-integer'))
  await proxy.close()
  const ok = findEntry(proxy, byTarget('/ok')) as AccessLogEntry
  t.equal(ok.record.target, '/ok')
  t.equal(findEntry(proxy, byTarget('/nowhere')), undefined)

  t.doesNotThrow(() => assertRelayed(ok, { status: 200 }))
  t.doesNotThrow(() => assertRelayed(ok))
  t.doesNotThrow(() => assertElbGenerated(rejected, { status: 502, defect: 'CL_NOT_INTEGER' }))
  t.doesNotThrow(() => assertElbGenerated(rejected))

  const caught = (fn: () => void): AssertionError => {
    try { fn() } catch (error) { if (error instanceof AssertionError) return error }
    throw new Error('expected an AssertionError')
  }
  const wrongDefect = caught(() => assertElbGenerated(rejected, { status: 502, defect: 'BODY_EXCEEDS_CL' }))
  t.equal(wrongDefect.message,
    'expected an ELB-generated 502 decided by BODY_EXCEEDS_CL: the deciding defect is CL_NOT_INTEGER, expected BODY_EXCEEDS_CL\n' +
    `  line:      ${rejected.line}\n` +
    '  outcome:   rejected (ELB-generated)\n' +
    `  defects:   CL_NOT_INTEGER@${rejected.primaryDefect?.offset ?? -1} (deciding): ${rejected.primaryDefect?.message ?? ''}`)
  t.equal(wrongDefect.operator, 'assertElbGenerated')
  t.strictSame(wrongDefect.actual, { elbGenerated: true, outcome: 'rejected', status: 502, backendStatus: 'rejected', defect: 'CL_NOT_INTEGER' })
  t.strictSame(wrongDefect.expected, { elbGenerated: true, status: 502, defect: 'BODY_EXCEEDS_CL' })
  t.notMatch(wrongDefect.stack ?? '', /assertions\.ts/, 'the stack starts at the caller')

  const notElb = caught(() => assertElbGenerated(ok, { status: 502 }))
  t.equal(notElb.message,
    "expected an ELB-generated 502: the status was not generated by the load balancer (outcome 'relayed'); elb_status_code is 200, expected 502\n" +
    `  line:      ${ok.line}\n  outcome:   relayed\n  defects:   none`)

  const notRelayed = caught(() => assertRelayed(rejected, { status: 200 }))
  t.equal(notRelayed.message.split('\n')[0],
    "expected a relayed 200: the load balancer answered 502 itself (outcome 'rejected', defect CL_NOT_INTEGER); backend_status_code is rejected, expected 200")
  t.ok(notRelayed.message.includes(`\n  line:      ${rejected.line}\n`))
  t.equal(caught(() => assertRelayed(ok, { status: 201 })).message.split('\n')[0], 'expected a relayed 201: backend_status_code is 200, expected 201')

  // findEntry's undefined, passed on: an AssertionError that says no entry matched, not a TypeError.
  const none = caught(() => assertElbGenerated(findEntry(proxy, byTarget('/nowhere')), { status: 502 }))
  t.equal(none.message, 'expected an ELB-generated 502: no entry (findEntry found none; a request still in flight is not logged yet: waitFor waits for its entry)')
  t.equal(none.operator, 'assertElbGenerated')
  t.equal(caught(() => assertRelayed(undefined)).message.split(':')[0], 'expected a relayed response')
  t.equal(describeEntry(undefined), '  (no entry)', 'describeEntry never throws, as documented')

  // An expectation the helper cannot judge is a bug in the test: a TypeError that names it.
  const typeError = (fn: () => void): string => {
    try { fn() } catch (error) { if (error instanceof TypeError) return error.message }
    throw new Error('expected a TypeError')
  }
  // @ts-expect-error the misspelled key a plain-JavaScript test can pass
  t.equal(typeError(() => assertElbGenerated(rejected, { statusCode: 504 })), "assertElbGenerated: unknown expectation 'statusCode' (known: status, defect)")
  // @ts-expect-error a status given as text
  t.equal(typeError(() => assertElbGenerated(rejected, { status: '502' })), 'assertElbGenerated: status must be an HTTP status number such as 502, got "502"')
  // @ts-expect-error a defect code that does not exist
  t.equal(typeError(() => assertElbGenerated(rejected, { defect: 'CL_NOT_AN_INTEGER' })), "assertElbGenerated: defect must be a defect code such as 'CL_NOT_INTEGER' (docs/defects.md), got \"CL_NOT_AN_INTEGER\"")
  // @ts-expect-error assertRelayed judges no defect
  t.equal(typeError(() => assertRelayed(ok, { defect: 'CL_NOT_INTEGER' })), "assertRelayed: unknown expectation 'defect' (known: status)")
  t.equal(await backend.close(), 0)
})

t.test("a throwing 'request' listener does not break the exchange that emitted it: its error is reported after", async (t) => {
  const events = new ClbProxyEvents()
  const recorder = new Recorder(10)
  const reported: unknown[] = []
  const unsubscribe = subscribeRecorder(events, recorder, (error) => reported.push(error))
  const bug = new Error('listener bug')
  recorder.on('entry', () => { throw bug })
  const record: ExchangeRecord = {
    outcome: 'relayed', cutReason: null,
    elbGenerated: false,
    log: {
      receivedAtMicros: 0, elbName: 'clb-proxy', clientAddress: '127.0.0.1', clientPort: 1, backend: null,
      requestProcessingSeconds: null, backendProcessingSeconds: null, responseProcessingSeconds: null,
      elbStatusCode: 200, backendStatusCode: 200, receivedBytes: 0, sentBytes: 0, method: 'GET', scheme: 'http',
      host: 'app', listenerPort: 80, target: '/', httpVersion: 'HTTP/1.1', userAgent: null, sslCipher: null, sslProtocol: null
    },
    defects: [],
    defectCounts: {},
    instance: null,
    instanceId: null,
    backendError: null,
    primaryDefect: null,
    responseBytes: null,
    requestHead: null
  }
  t.doesNotThrow(() => events.emit('exchange', record), 'the emitting exchange sees no error')
  t.strictSame(reported, [bug])
  t.equal(recorder.entries().length, 1, 'the entry was kept before the listener ran')
  t.equal(recorder.lines()[0], '1970-01-01T00:00:00.000000Z clb-proxy 127.0.0.1:1 - -1 -1 -1 200 200 0 0 "GET http://app:80/ HTTP/1.1" "-" - -')
  unsubscribe()
  t.equal(events.listenerCount('exchange'), 0)
})
