import t from 'tap'
import type { Defect, DefectCode } from '../../../validators/defects.js'
import type { AccessLogRecord } from '../../../proxy/core/access-log-record.js'
import { ClbProxyEvents, type ExchangeOutcome, type ExchangeRecord } from '../../../proxy/core/events.js'
import { ClbMetrics, KEPT_MINUTES, subscribeMetrics, type MetricsSnapshot } from '../../../proxy/observers/metrics.js'

// 2026-11-25T08:00:00.000001Z
const SINCE_MICROS = Date.UTC(2026, 10, 25, 8, 0, 0) * 1000 + 1

const BASE_LOG: AccessLogRecord = {
  receivedAtMicros: SINCE_MICROS,
  elbName: 'orders',
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
  target: '/',
  httpVersion: 'HTTP/1.1',
  userAgent: null,
  sslCipher: null,
  sslProtocol: null
}

function defect (code: DefectCode, offset = 0): Defect {
  return { code, offset, message: code }
}

/** A relayed response from the instance. */
function relayed (status: number, latency: number, defects: Defect[] = []): ExchangeRecord {
  return exchange('relayed', false, { elbStatusCode: status, backendStatusCode: status, backendProcessingSeconds: latency }, defects, null)
}

/** A status the load balancer answered without a backend response (503, 504, 400, 405, 408). */
function elbWithoutBackend (outcome: ExchangeOutcome, status: number, defects: Defect[] = []): ExchangeRecord {
  return exchange(outcome, true, {
    backend: null,
    requestProcessingSeconds: null,
    backendProcessingSeconds: null,
    responseProcessingSeconds: null,
    elbStatusCode: status,
    backendStatusCode: 'no-response',
    sentBytes: 0
  }, defects, defects[0] ?? null)
}

function exchange (outcome: ExchangeOutcome, elbGenerated: boolean, log: Partial<AccessLogRecord>, defects: Defect[], primaryDefect: Defect | null): ExchangeRecord {
  return { outcome, cutReason: null, elbGenerated, log: { ...BASE_LOG, ...log }, defects, defectCounts: {}, instance: null, instanceId: null, backendError: null, primaryDefect, responseBytes: null, requestHead: null }
}

const EMPTY: MetricsSnapshot = {
  Namespace: 'AWS/ELB',
  Dimensions: { LoadBalancerName: 'orders' },
  Since: '2026-11-25T08:00:00.000001Z',
  Metrics: {
    RequestCount: { Unit: 'Count', Sum: 0 },
    HTTPCode_ELB_4XX: { Unit: 'Count', Sum: 0 },
    HTTPCode_ELB_5XX: { Unit: 'Count', Sum: 0 },
    HTTPCode_Backend_2XX: { Unit: 'Count', Sum: 0 },
    HTTPCode_Backend_3XX: { Unit: 'Count', Sum: 0 },
    HTTPCode_Backend_4XX: { Unit: 'Count', Sum: 0 },
    HTTPCode_Backend_5XX: { Unit: 'Count', Sum: 0 },
    Latency: { Unit: 'Seconds', SampleCount: 0, Sum: 0, Average: null, Minimum: null, Maximum: null },
    BackendConnectionErrors: { Unit: 'Count', Sum: 0 },
    SpilloverCount: { Unit: 'Count', Sum: 0 },
    SurgeQueueLength: { Unit: 'Count', Maximum: 0, Current: 0 },
    HealthyHostCount: { Unit: 'Count', Average: 0, Minimum: 0, Maximum: 0 },
    UnHealthyHostCount: { Unit: 'Count', Average: 0, Minimum: 0, Maximum: 0 },
    DesyncMitigationMode_NonCompliant_Request_Count: { Unit: 'Count', Sum: 0 }
  },
  ClbProxy: {
    DefectCount: { Unit: 'Count', Sum: 0, ByCode: {} },
    KeepaliveEarlyCloseCount: { Unit: 'Count', Sum: 0 }
  }
}

function newMetrics (): ClbMetrics {
  return new ClbMetrics({ loadBalancerName: 'orders', sinceMicros: SINCE_MICROS })
}

t.test('Latency\'s Sum is a whole number of microseconds, without the noise of adding doubles', async (t) => {
  const metrics = newMetrics()
  // As doubles, 0.1 + 0.2 + 0.011487 is 0.31148700000000007.
  for (const latency of [0.1, 0.2, 0.011487]) metrics.recordExchange(relayed(200, latency))
  t.equal(metrics.snapshot().Metrics.Latency.Sum, 0.311487)
  t.strictSame(metrics.statistics('Latency').Datapoints.map((datapoint) => datapoint.Sum), [0.311487], 'in the per-minute datapoints too')
})

t.test('before any request or instance: every counter is 0, no hosts, Latency has no sample', async (t) => {
  t.strictSame(newMetrics().snapshot(), EMPTY)
})

t.test('one of every outcome: each lands in exactly the CloudWatch counters it belongs to', async (t) => {
  const metrics = newMetrics()
  const records = [
    relayed(200, 0.25),
    relayed(204, 0.5),
    relayed(302, 0.125),
    relayed(404, 0.25, [defect('CL_DUP_SAME', 30)]),
    relayed(502, 0.25), // the instance's own 502: a backend 5XX, not an ELB one
    exchange('cut', false, { elbStatusCode: 200, backendStatusCode: 200, backendProcessingSeconds: 1 }, [defect('CHUNKED_TRUNCATED', 2_000_000)], null),
    exchange('rejected', true, { elbStatusCode: 502, backendStatusCode: 'rejected', backendProcessingSeconds: 0.5 }, [defect('CL_NOT_INTEGER', 40)], defect('CL_NOT_INTEGER', 40)),
    elbWithoutBackend('backend-unreachable', 503),
    elbWithoutBackend('no-healthy-instance', 503),
    elbWithoutBackend('spillover', 503),
    elbWithoutBackend('instance-deregistered', 504),
    elbWithoutBackend('backend-closed', 504),
    elbWithoutBackend('backend-timeout', 504),
    elbWithoutBackend('keepalive-race', 504),
    elbWithoutBackend('bad-request', 400, [defect('REQUEST_LINE_INVALID')]),
    elbWithoutBackend('bad-request', 405, [defect('REQUEST_METHOD_TOO_LONG')]),
    elbWithoutBackend('client-timeout', 408),
    elbWithoutBackend('client-closed', 408)
  ]
  for (const record of records) metrics.recordExchange(record)
  // One refused request connection, retried on another instance, and one refused health check.
  metrics.recordBackendConnectionError({ instanceId: 'i-0a1b2c3d4e5f60718', instance: '127.0.0.1:3000', error: 'ECONNREFUSED', source: 'request' })
  metrics.recordBackendConnectionError({ instanceId: 'i-0a1b2c3d4e5f60718', instance: '127.0.0.1:3000', error: 'ECONNREFUSED', source: 'health-check' })
  const snapshot = metrics.snapshot()
  t.strictSame(snapshot.Metrics, {
    ...EMPTY.Metrics,
    // 6 answered by an instance (cut included), 8 answered 502/503/504 by the load balancer.
    RequestCount: { Unit: 'Count', Sum: 14 },
    HTTPCode_ELB_4XX: { Unit: 'Count', Sum: 4 },
    HTTPCode_ELB_5XX: { Unit: 'Count', Sum: 8 },
    HTTPCode_Backend_2XX: { Unit: 'Count', Sum: 3 },
    HTTPCode_Backend_3XX: { Unit: 'Count', Sum: 1 },
    HTTPCode_Backend_4XX: { Unit: 'Count', Sum: 1 },
    HTTPCode_Backend_5XX: { Unit: 'Count', Sum: 1 },
    // Only where an instance answered: the six relayed/cut responses and the rejected one.
    Latency: { Unit: 'Seconds', SampleCount: 7, Sum: 2.875, Average: 2.875 / 7, Minimum: 0.125, Maximum: 1 },
    // One per failed connection attempt, from the 'backend-connection-error' events, not per request.
    BackendConnectionErrors: { Unit: 'Count', Sum: 2 },
    SpilloverCount: { Unit: 'Count', Sum: 1 }
  })
  t.strictSame(snapshot.ClbProxy.DefectCount, {
    Unit: 'Count',
    Sum: 5,
    ByCode: { CL_DUP_SAME: 1, CHUNKED_TRUNCATED: 1, CL_NOT_INTEGER: 1, REQUEST_LINE_INVALID: 1, REQUEST_METHOD_TOO_LONG: 1 }
  })
  const m = snapshot.Metrics
  t.equal(m.RequestCount.Sum,
    m.HTTPCode_Backend_2XX.Sum + m.HTTPCode_Backend_3XX.Sum + m.HTTPCode_Backend_4XX.Sum + m.HTTPCode_Backend_5XX.Sum + m.HTTPCode_ELB_5XX.Sum,
    'RequestCount = HTTPCode_Backend_* + HTTPCode_ELB_5XX (the documented choice)')
})

t.test('a defect code counts once per exchange, however often it appears in that response', async (t) => {
  const metrics = newMetrics()
  metrics.recordExchange(relayed(200, 0.25, [defect('HDR_OBS_FOLD', 20), defect('HDR_OBS_FOLD', 40), defect('LINE_BARE_LF', 10)]))
  metrics.recordExchange(relayed(200, 0.25, [defect('HDR_OBS_FOLD', 20)]))
  t.strictSame(metrics.snapshot().ClbProxy.DefectCount, { Unit: 'Count', Sum: 3, ByCode: { HDR_OBS_FOLD: 2, LINE_BARE_LF: 1 } })
})

t.test('idle-connection events: an early close counts as KeepaliveEarlyCloseCount, idle bytes as EXTRA_BYTES_AFTER_RESPONSE', async (t) => {
  const metrics = newMetrics()
  metrics.recordBackendIdleEvent({ backend: '127.0.0.1:3000', event: 'closed', bytes: 0, idleSeconds: 5 })
  metrics.recordBackendIdleEvent({ backend: '127.0.0.1:3000', event: 'closed', bytes: 0, idleSeconds: 1 })
  metrics.recordBackendIdleEvent({ backend: '127.0.0.1:3000', event: 'extra-bytes', bytes: 7, idleSeconds: 0 })
  t.strictSame(metrics.snapshot().ClbProxy, {
    DefectCount: { Unit: 'Count', Sum: 1, ByCode: { EXTRA_BYTES_AFTER_RESPONSE: 1 } },
    KeepaliveEarlyCloseCount: { Unit: 'Count', Sum: 2 }
  })
  t.strictSame(metrics.snapshot().Metrics, EMPTY.Metrics, 'no request counter moved')
})

t.test('snapshots are copies: a later request does not change an earlier snapshot', async (t) => {
  const metrics = newMetrics()
  metrics.recordExchange(relayed(200, 0.5, [defect('CL_DUP_SAME')]))
  const before = metrics.snapshot()
  metrics.recordExchange(relayed(200, 0.5, [defect('CL_DUP_SAME')]))
  t.equal(before.Metrics.RequestCount.Sum, 1)
  t.strictSame(before.ClbProxy.DefectCount.ByCode, { CL_DUP_SAME: 1 })
  t.equal(metrics.snapshot().Metrics.RequestCount.Sum, 2)
})

t.test('subscribeMetrics counts the lifecycle events until unsubscribed', async (t) => {
  const events = new ClbProxyEvents()
  const metrics = newMetrics()
  const unsubscribe = subscribeMetrics(events, metrics)
  events.emit('exchange', relayed(200, 0.25))
  events.emit('backend-idle-event', { backend: '127.0.0.1:3000', event: 'closed', bytes: 0, idleSeconds: 2 })
  unsubscribe()
  events.emit('exchange', relayed(200, 0.25))
  events.emit('backend-idle-event', { backend: '127.0.0.1:3000', event: 'closed', bytes: 0, idleSeconds: 2 })
  const snapshot = metrics.snapshot()
  t.equal(snapshot.Metrics.RequestCount.Sum, 1)
  t.equal(snapshot.ClbProxy.KeepaliveEarlyCloseCount.Sum, 1)
  t.equal(events.listenerCount('exchange'), 0)
  t.equal(events.listenerCount('backend-idle-event'), 0)
})

t.test('HealthyHostCount and UnHealthyHostCount follow the instance-state events; SurgeQueueLength keeps its maximum', async (t) => {
  const metrics = newMetrics()
  const state = (id: string, State: 'InService' | 'OutOfService' | 'Unknown', registered = true) => ({
    instanceId: id,
    instance: '127.0.0.1:3000',
    previous: null,
    current: { InstanceId: id, State, ReasonCode: 'N/A' as const, Description: 'N/A' },
    registered,
    lastCheck: null
  })
  metrics.recordInstanceState(state('i-00000000000000001', 'OutOfService'))
  metrics.recordInstanceState(state('i-00000000000000002', 'InService'))
  metrics.recordInstanceState(state('i-00000000000000003', 'InService'))
  metrics.recordInstanceState(state('i-00000000000000001', 'InService'))
  metrics.recordInstanceState(state('i-00000000000000002', 'OutOfService'))
  metrics.recordInstanceState(state('i-00000000000000004', 'Unknown'))
  let m = metrics.snapshot().Metrics
  t.strictSame(m.HealthyHostCount, { Unit: 'Count', Average: 2, Minimum: 2, Maximum: 2 })
  t.strictSame(m.UnHealthyHostCount, { Unit: 'Count', Average: 1, Minimum: 1, Maximum: 1 }, 'Unknown counts in neither')
  metrics.recordInstanceState(state('i-00000000000000002', 'OutOfService', false))
  metrics.recordInstanceState(state('i-00000000000000003', 'OutOfService', false))
  m = metrics.snapshot().Metrics
  t.strictSame(m.HealthyHostCount.Maximum, 1, 'a deregistered instance is no longer counted')
  t.strictSame(m.UnHealthyHostCount.Maximum, 0)
  for (const length of [1, 2, 5, 3]) metrics.recordSurgeQueueLength(length)
  t.strictSame(metrics.snapshot().Metrics.SurgeQueueLength, { Unit: 'Count', Maximum: 5, Current: 3 })
  metrics.recordSurgeQueueLength(0)
  t.strictSame(metrics.snapshot().Metrics.SurgeQueueLength, { Unit: 'Count', Maximum: 5, Current: 0 }, 'the queue emptied: Current falls, Maximum stays')
})

t.test('per-minute datapoints like get-metric-statistics: SampleCount, Sum, Average, Minimum, Maximum per period', async (t) => {
  const MINUTE = 60_000_000
  const start = Date.UTC(2026, 10, 25, 8, 0, 0) * 1000
  let now = start + 5_000_000
  const metrics = new ClbMetrics({ loadBalancerName: 'orders', sinceMicros: start, nowMicros: () => now })
  metrics.recordInstanceState({ instanceId: 'i-00000000000000001', instance: '127.0.0.1:3000', previous: null, current: { InstanceId: 'i-00000000000000001', State: 'InService', ReasonCode: 'N/A', Description: 'N/A' }, registered: true, lastCheck: null })
  metrics.recordExchange(relayed(200, 0.25))
  metrics.recordExchange(relayed(500, 0.75))
  now = start + 2 * MINUTE + 1
  metrics.recordExchange(relayed(200, 0.5))
  metrics.recordExchange(elbWithoutBackend('spillover', 503))
  metrics.recordSurgeQueueLength(3)
  metrics.recordSurgeQueueLength(0)

  t.strictSame(metrics.statistics('RequestCount'), {
    Label: 'RequestCount',
    Datapoints: [
      { Timestamp: '2026-11-25T08:00:00.000000Z', SampleCount: 2, Sum: 2, Average: 1, Minimum: 1, Maximum: 1, Unit: 'Count' },
      { Timestamp: '2026-11-25T08:02:00.000000Z', SampleCount: 2, Sum: 2, Average: 1, Minimum: 1, Maximum: 1, Unit: 'Count' }
    ]
  }, 'a minute without traffic has no datapoint (CLB-CW: no data, not reported)')
  t.strictSame(metrics.statistics('Latency', { period: 300 }).Datapoints, [
    { Timestamp: '2026-11-25T08:00:00.000000Z', SampleCount: 3, Sum: 1.5, Average: 0.5, Minimum: 0.25, Maximum: 0.75, Unit: 'Seconds' }
  ], 'minutes add up into longer periods')
  t.strictSame(metrics.statistics('HTTPCode_Backend_5XX').Datapoints.map((d) => d.Sum), [1])
  t.strictSame(metrics.statistics('SpilloverCount').Datapoints.map((d) => [d.Timestamp, d.Sum]), [['2026-11-25T08:02:00.000000Z', 1]])
  t.strictSame(metrics.statistics('SurgeQueueLength').Datapoints.map((d) => d.Maximum), [3], 'Maximum is the useful statistic')
  t.strictSame(metrics.statistics('HealthyHostCount').Datapoints.map((d) => [d.Timestamp, d.Average]),
    [['2026-11-25T08:00:00.000000Z', 1], ['2026-11-25T08:02:00.000000Z', 1]], 'a gauge has a value in every minute with traffic')
  t.strictSame(metrics.statistics('RequestCount', { startMicros: start + MINUTE }).Datapoints.length, 1, 'start bounds the query')
  t.strictSame(metrics.statistics('RequestCount', { endMicros: start + MINUTE }).Datapoints.length, 1, 'end bounds it (exclusive)')

  for (let minute = 3; minute < KEPT_MINUTES + 3; minute++) {
    now = start + minute * MINUTE
    metrics.recordExchange(relayed(200, 0.1))
  }
  const kept = metrics.statistics('RequestCount').Datapoints
  t.equal(kept.length, KEPT_MINUTES, 'bounded: the last 24 hours of minutes')
  t.equal(kept[0]?.Timestamp, '2026-11-25T08:03:00.000000Z', 'the oldest minutes were dropped first')
})

t.test('DesyncMitigationMode_NonCompliant_Request_Count: every request whose tier is not Compliant, blocked or not', async (t) => {
  const metrics = newMetrics()
  const classified = (tier: 'Compliant' | 'Acceptable' | 'Ambiguous' | 'Severe', outcome: ExchangeOutcome = 'relayed'): ExchangeRecord =>
    ({ ...(outcome === 'relayed' ? relayed(200, 0.1) : elbWithoutBackend(outcome, 400)), desync: { tier, reason: tier === 'Compliant' ? 'Compliant' : 'BadHeader', offset: null, message: null } })
  for (const record of [classified('Compliant'), classified('Acceptable'), classified('Ambiguous'), classified('Severe', 'desync-blocked'), relayed(200, 0.1)]) metrics.recordExchange(record)
  const m = metrics.snapshot().Metrics
  t.strictSame(m.DesyncMitigationMode_NonCompliant_Request_Count, { Unit: 'Count', Sum: 3 })
  t.equal(m.HTTPCode_ELB_4XX.Sum, 1, 'the blocked one is a load balancer 4XX')
  t.equal(metrics.statistics('DesyncMitigationMode_NonCompliant_Request_Count').Datapoints[0]?.Sum, 3)
})
