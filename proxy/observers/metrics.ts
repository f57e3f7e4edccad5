/**
 * Counters named after CLB's CloudWatch metrics (namespace AWS/ELB; CLB-CW, spec §4), kept per
 * load balancer (one proxy is one load balancer), plus two counters of clb-proxy's own.
 * A subscriber of the lifecycle events; `ClbMetrics` itself is pure aggregation, fed
 * ExchangeRecords and idle-connection events, so it is tested without sockets.
 *
 * Choices where CLB-CW is silent or UNCONFIRMED (spec §4), also in docs/library.md:
 * - RequestCount counts the instances' responses (including their own errors) and every
 *   502/503/504 of the load balancer, the 503s of no instance in service and of spillover
 *   included (never routed, but not malformed either). It does not count the 4XX the load balancer answers for a malformed or
 *   incomplete request (400, 405, 408), which is never routed. Why: CLB-CW defines the HTTP
 *   RequestCount as "requests received and routed, including HTTP error responses from the
 *   registered instances", and HTTPCode_ELB_4XX as generated "when a request is malformed or
 *   incomplete". So RequestCount = HTTPCode_Backend_2XX..5XX + HTTPCode_ELB_5XX.
 * - The 408 of a failed TLS handshake with an https instance (outcome 'backend-tls-failed', the
 *   408 observed in O-408) is an HTTPCode_ELB_4XX like the other 408s, not in RequestCount (so the
 *   sum above holds), and its connection counts once in BackendConnectionErrors (the exchange's
 *   'backend-connection-error' event): the connection was "not successfully established".
 * - Counters are cumulative since the proxy started; CloudWatch's 60-second periods are not emulated.
 * - Units: CLB-CW states none; Latency is Seconds and the rest Count, as third-party integrations list them.
 */
import type { DefectCode } from '../../validators/defects.js'
import { formatTimestamp } from './access-log-format.js'
import type { ClbProxyEventMap, ClbProxyEvents, ExchangeRecord, InstanceStateChange, InstanceStateName } from '../core/events.js'

/**
 * A sum of Latency samples, each a whole number of microseconds in seconds (secondsBetween):
 * adding them as doubles leaves binary noise (0.31148699999999996 seen in /metrics.json); the sum is a whole number of
 * microseconds too, and is given as one.
 */
function toWholeMicroseconds (seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6
}

/** A CloudWatch counter: its useful statistic is Sum (CLB-CW). */
export interface CountMetric {
  readonly Unit: 'Count'
  readonly Sum: number
}

/** Latency: Average and Maximum are the useful statistics (CLB-CW); null until the first sample. */
export interface LatencyMetric {
  readonly Unit: 'Seconds'
  readonly SampleCount: number
  readonly Sum: number
  readonly Average: number | null
  readonly Minimum: number | null
  readonly Maximum: number | null
}

/** SurgeQueueLength: Maximum is the useful statistic (CLB-CW: "Sum is not useful"). */
export interface QueueLengthMetric {
  readonly Unit: 'Count'
  /** The longest the queue has been since start. */
  readonly Maximum: number
  /** Its length now: clb-proxy's own field, not a CloudWatch statistic (a Prometheus gauge reads it). */
  readonly Current: number
}

/** Host counts: Average/Maximum (healthy) and Average/Minimum (unhealthy) are the useful statistics. */
export interface HostCountMetric {
  readonly Unit: 'Count'
  readonly Average: number
  readonly Minimum: number
  readonly Maximum: number
}

/** The AWS/ELB metrics, by their CloudWatch names. */
export interface CloudWatchMetrics {
  readonly RequestCount: CountMetric
  readonly HTTPCode_ELB_4XX: CountMetric
  readonly HTTPCode_ELB_5XX: CountMetric
  readonly HTTPCode_Backend_2XX: CountMetric
  readonly HTTPCode_Backend_3XX: CountMetric
  readonly HTTPCode_Backend_4XX: CountMetric
  readonly HTTPCode_Backend_5XX: CountMetric
  readonly Latency: LatencyMetric
  readonly BackendConnectionErrors: CountMetric
  readonly SpilloverCount: CountMetric
  readonly SurgeQueueLength: QueueLengthMetric
  readonly HealthyHostCount: HostCountMetric
  readonly UnHealthyHostCount: HostCountMetric
  /** [HTTP] "The number of requests that do not comply with RFC 7230": every tier but Compliant, whatever the mode (CLB-CW). */
  readonly DesyncMitigationMode_NonCompliant_Request_Count: CountMetric
}

/** Counters of clb-proxy's own, with no CloudWatch equivalent. */
export interface ClbProxyMetrics {
  /** Exchanges in which each defect code was found (a code counts once per exchange), and their total. */
  readonly DefectCount: CountMetric & { readonly ByCode: Readonly<Partial<Record<DefectCode, number>>> }
  /** Kept-alive backend connections an instance closed before the idle timeout (the cause of CLB's intermittent 504s). */
  readonly KeepaliveEarlyCloseCount: CountMetric
}

export interface MetricsSnapshot {
  readonly Namespace: 'AWS/ELB'
  readonly Dimensions: { readonly LoadBalancerName: string }
  /** When counting started (ISO 8601, microseconds): the counters are cumulative since then. */
  readonly Since: string
  readonly Metrics: CloudWatchMetrics
  readonly ClbProxy: ClbProxyMetrics
}

type BackendIdleEvent = ClbProxyEventMap['backend-idle-event'][0]
type BackendConnectionErrorEvent = ClbProxyEventMap['backend-connection-error'][0]
type CounterName = 'RequestCount' | 'HTTPCode_ELB_4XX' | 'HTTPCode_ELB_5XX' | 'HTTPCode_Backend_2XX' | 'HTTPCode_Backend_3XX' |
'HTTPCode_Backend_4XX' | 'HTTPCode_Backend_5XX' | 'BackendConnectionErrors' | 'SpilloverCount' | 'KeepaliveEarlyCloseCount' |
'DesyncMitigationMode_NonCompliant_Request_Count'

const BACKEND_CLASSES = { 2: 'HTTPCode_Backend_2XX', 3: 'HTTPCode_Backend_3XX', 4: 'HTTPCode_Backend_4XX', 5: 'HTTPCode_Backend_5XX' } as const

/** The metrics `statistics()` serves, by their CloudWatch names. */
export const DATAPOINT_METRICS = Object.freeze([
  'RequestCount', 'HTTPCode_ELB_4XX', 'HTTPCode_ELB_5XX', 'HTTPCode_Backend_2XX', 'HTTPCode_Backend_3XX', 'HTTPCode_Backend_4XX',
  'HTTPCode_Backend_5XX', 'Latency', 'BackendConnectionErrors', 'SpilloverCount', 'SurgeQueueLength', 'HealthyHostCount', 'UnHealthyHostCount',
  'DesyncMitigationMode_NonCompliant_Request_Count'
] as const)
export type DatapointMetric = typeof DATAPOINT_METRICS[number]

/** One period of one metric, as `aws cloudwatch get-metric-statistics` returns it. */
export interface Datapoint {
  /** The period's start (ISO 8601). */
  readonly Timestamp: string
  readonly SampleCount: number
  readonly Sum: number
  readonly Average: number
  readonly Minimum: number
  readonly Maximum: number
  readonly Unit: 'Count' | 'Seconds'
}

export interface MetricStatistics {
  readonly Label: DatapointMetric
  /** Oldest first; a period without a sample has no datapoint ("If there are no requests ... the metric is not reported"). */
  readonly Datapoints: Datapoint[]
}

export interface StatisticsQuery {
  /** Seconds, a multiple of 60 (CLB reports "in 60-second intervals"). Default 60. */
  readonly period?: number
  /** Microseconds since the epoch; default: the oldest minute kept. */
  readonly startMicros?: number
  /** Exclusive; default: now. */
  readonly endMicros?: number
}

/** Our choice: per-minute datapoints kept for the last 24 hours (1440 minutes), whatever the traffic. */
export const KEPT_MINUTES = 1440
const MINUTE_MICROS = 60_000_000

interface Stat {
  sampleCount: number
  sum: number
  minimum: number
  maximum: number
}

export interface ClbMetricsSettings {
  /** The LoadBalancerName dimension (options.name). */
  readonly loadBalancerName: string
  /** When each sample is counted (default: the system clock); tests freeze or step it. */
  readonly nowMicros?: () => number
  /** Microseconds since the epoch when counting starts. */
  readonly sinceMicros: number
}

export class ClbMetrics {
  private readonly counters: Record<CounterName, number> = {
    RequestCount: 0,
    HTTPCode_ELB_4XX: 0,
    HTTPCode_ELB_5XX: 0,
    HTTPCode_Backend_2XX: 0,
    HTTPCode_Backend_3XX: 0,
    HTTPCode_Backend_4XX: 0,
    HTTPCode_Backend_5XX: 0,
    BackendConnectionErrors: 0,
    SpilloverCount: 0,
    KeepaliveEarlyCloseCount: 0,
    DesyncMitigationMode_NonCompliant_Request_Count: 0
  }

  private readonly defectsByCode = new Map<DefectCode, number>()
  private defectTotal = 0
  private latencySamples = 0
  private latencySum = 0
  private latencyMin = Infinity
  private latencyMax = -Infinity
  /** Each registered instance's State, from the 'instance-state' events. */
  private readonly instanceStates = new Map<string, InstanceStateName>()
  private surgeQueueMaximum = 0
  private surgeQueueCurrent = 0
  /** Per-minute statistics, oldest first (Map keeps insertion order), at most KEPT_MINUTES. */
  private readonly minutes = new Map<number, Map<DatapointMetric, Stat>>()
  private currentMinute = -1
  private current: Map<DatapointMetric, Stat> = new Map()
  private readonly nowMicros: () => number

  constructor (private readonly settings: ClbMetricsSettings) {
    this.nowMicros = settings.nowMicros ?? (() => Date.now() * 1000)
  }

  /** One sample of one metric in the current minute (CloudWatch's count metrics: each event is a sample of 1). */
  private sample (metric: DatapointMetric, value: number): void {
    this.enterCurrentMinute()
    this.sampleInMinute(metric, value)
  }

  /** Reads the clock and moves to the minute it is in. */
  private enterCurrentMinute (): void {
    const minute = Math.floor(this.nowMicros() / MINUTE_MICROS) * MINUTE_MICROS
    if (minute !== this.currentMinute) this.startMinute(minute)
  }

  /** One sample in the minute entered last (enterCurrentMinute). */
  private sampleInMinute (metric: DatapointMetric, value: number): void {
    const stat = this.current.get(metric)
    if (stat === undefined) {
      this.current.set(metric, { sampleCount: 1, sum: value, minimum: value, maximum: value })
      return
    }
    stat.sampleCount++
    stat.sum += value
    if (value < stat.minimum) stat.minimum = value
    if (value > stat.maximum) stat.maximum = value
  }

  private startMinute (minute: number): void {
    this.currentMinute = minute
    let bucket = this.minutes.get(minute)
    if (bucket === undefined) {
      bucket = new Map()
      this.minutes.set(minute, bucket)
      while (this.minutes.size > KEPT_MINUTES) this.minutes.delete(this.minutes.keys().next().value as number)
    }
    this.current = bucket
    // A gauge has a value in every minute with traffic: its current value starts the minute.
    if (this.instanceStates.size > 0 && !bucket.has('HealthyHostCount')) this.sampleHosts()
  }

  private sampleHosts (): void {
    this.sample('HealthyHostCount', this.countInState('InService'))
    this.sample('UnHealthyHostCount', this.countInState('OutOfService'))
  }

  /**
   * A metric's datapoints, like `aws cloudwatch get-metric-statistics --period P`: per period,
   * SampleCount, Sum, Average, Minimum and Maximum of the samples. Periods are aligned to the epoch.
   */
  statistics (metric: DatapointMetric, query: StatisticsQuery = {}): MetricStatistics {
    const periodMicros = (query.period ?? 60) * 1_000_000
    const start = query.startMicros ?? -Infinity
    const end = query.endMicros ?? Infinity
    const periods = new Map<number, Stat>()
    for (const [minute, bucket] of this.minutes) {
      if (minute < start || minute >= end) continue
      const stat = bucket.get(metric)
      if (stat === undefined) continue
      const period = Math.floor(minute / periodMicros) * periodMicros
      const total = periods.get(period)
      if (total === undefined) {
        periods.set(period, { ...stat })
        continue
      }
      total.sampleCount += stat.sampleCount
      total.sum += stat.sum
      total.minimum = Math.min(total.minimum, stat.minimum)
      total.maximum = Math.max(total.maximum, stat.maximum)
    }
    const unit = metric === 'Latency' ? 'Seconds' : 'Count'
    return {
      Label: metric,
      Datapoints: [...periods].map(([period, stat]) => ({
        Timestamp: formatTimestamp(period),
        SampleCount: stat.sampleCount,
        Sum: unit === 'Seconds' ? toWholeMicroseconds(stat.sum) : stat.sum,
        Average: stat.sum / stat.sampleCount,
        Minimum: stat.minimum,
        Maximum: stat.maximum,
        Unit: unit
      }))
    }
  }

  /** Counts one finished request. */
  recordExchange (exchange: ExchangeRecord): void {
    // One clock reading for every sample of this exchange (this runs once per request).
    this.enterCurrentMinute()
    const status = exchange.log.elbStatusCode
    const statusClass = status === null ? null : Math.floor(status / 100)
    if (exchange.elbGenerated) {
      // CLB-CW HTTPCode_ELB_4XX/5XX: codes generated by the load balancer.
      if (statusClass === 4) this.countInMinute('HTTPCode_ELB_4XX')
      if (statusClass === 5) {
        this.countInMinute('HTTPCode_ELB_5XX')
        this.countInMinute('RequestCount')
      }
    } else if (statusClass !== null && statusClass >= 2 && statusClass <= 5) {
      // CLB-CW HTTPCode_Backend_XXX: "response codes generated by instances; excludes LB-generated codes".
      this.countInMinute(BACKEND_CLASSES[statusClass as 2 | 3 | 4 | 5])
      this.countInMinute('RequestCount')
    }
    // CLB-CW RequestCount: "The number of requests completed or connections made": a TCP/SSL
    // listener's connection joined to an instance counts once.
    if (exchange.outcome === 'passthrough') this.countInMinute('RequestCount')
    // CLB-CW SpilloverCount: "rejected because the surge queue is full".
    if (exchange.outcome === 'spillover') this.countInMinute('SpilloverCount')
    // CLB-CW DesyncMitigationMode_NonCompliant_Request_Count: "requests that do not comply with RFC 7230".
    if (exchange.desync !== undefined && exchange.desync.tier !== 'Compliant') this.countInMinute('DesyncMitigationMode_NonCompliant_Request_Count')
    // CLB-CW Latency [HTTP]: from sending the request to the instance until it started sending
    // response headers; only requests an instance answered have one (the access log's backend_processing_time).
    const latency = exchange.log.backendProcessingSeconds
    if (latency !== null) {
      this.latencySamples++
      this.latencySum += latency
      this.latencyMin = Math.min(this.latencyMin, latency)
      this.latencyMax = Math.max(this.latencyMax, latency)
      this.sampleInMinute('Latency', latency)
    }
    // Most exchanges have no defect: no Set is built for them.
    if (exchange.defects.length > 0) for (const code of new Set(exchange.defects.map((defect) => defect.code))) this.countDefect(code)
  }

  /** Counts one event on an idle kept-alive backend connection. */
  recordBackendIdleEvent (event: BackendIdleEvent): void {
    if (event.event === 'closed') this.counters.KeepaliveEarlyCloseCount++
    // Bytes on an idle connection are the same defect the parser reports within a read (docs/defects.md).
    else this.countDefect('EXTRA_BYTES_AFTER_RESPONSE')
  }

  /**
   * CLB-CW BackendConnectionErrors: connections "not successfully established" to an instance, one
   * per attempt ("Because the load balancer retries the connection when there are errors, this
   * count can exceed the request rate"), health checks included.
   */
  recordBackendConnectionError (_event: BackendConnectionErrorEvent): void {
    this.count('BackendConnectionErrors')
  }

  private count (name: CounterName & DatapointMetric): void {
    this.counters[name]++
    this.sample(name, 1)
  }

  /** count() in the minute recordExchange entered. */
  private countInMinute (name: CounterName & DatapointMetric): void {
    this.counters[name]++
    this.sampleInMinute(name, 1)
  }

  /** CLB-CW HealthyHostCount / UnHealthyHostCount come from the instances' states. */
  recordInstanceState (change: InstanceStateChange): void {
    if (change.registered) this.instanceStates.set(change.instanceId, change.current.State)
    else this.instanceStates.delete(change.instanceId)
    this.sampleHosts()
  }

  /** CLB-CW SurgeQueueLength: Maximum is the useful statistic. */
  recordSurgeQueueLength (length: number): void {
    if (length > this.surgeQueueMaximum) this.surgeQueueMaximum = length
    this.surgeQueueCurrent = length
    this.sample('SurgeQueueLength', length)
  }

  snapshot (): MetricsSnapshot {
    const count = (name: CounterName): CountMetric => ({ Unit: 'Count', Sum: this.counters[name] })
    const hosts = (value: number): HostCountMetric => ({ Unit: 'Count', Average: value, Minimum: value, Maximum: value })
    const sampled = this.latencySamples > 0
    return {
      Namespace: 'AWS/ELB',
      Dimensions: { LoadBalancerName: this.settings.loadBalancerName },
      Since: formatTimestamp(this.settings.sinceMicros),
      Metrics: {
        RequestCount: count('RequestCount'),
        HTTPCode_ELB_4XX: count('HTTPCode_ELB_4XX'),
        HTTPCode_ELB_5XX: count('HTTPCode_ELB_5XX'),
        HTTPCode_Backend_2XX: count('HTTPCode_Backend_2XX'),
        HTTPCode_Backend_3XX: count('HTTPCode_Backend_3XX'),
        HTTPCode_Backend_4XX: count('HTTPCode_Backend_4XX'),
        HTTPCode_Backend_5XX: count('HTTPCode_Backend_5XX'),
        Latency: {
          Unit: 'Seconds',
          SampleCount: this.latencySamples,
          Sum: toWholeMicroseconds(this.latencySum),
          Average: sampled ? this.latencySum / this.latencySamples : null,
          Minimum: sampled ? this.latencyMin : null,
          Maximum: sampled ? this.latencyMax : null
        },
        BackendConnectionErrors: count('BackendConnectionErrors'),
        SpilloverCount: count('SpilloverCount'),
        SurgeQueueLength: { Unit: 'Count', Maximum: this.surgeQueueMaximum, Current: this.surgeQueueCurrent },
        // The current counts (per-period statistics come with the per-minute datapoints).
        HealthyHostCount: hosts(this.countInState('InService')),
        UnHealthyHostCount: hosts(this.countInState('OutOfService')),
        DesyncMitigationMode_NonCompliant_Request_Count: count('DesyncMitigationMode_NonCompliant_Request_Count')
      },
      ClbProxy: {
        DefectCount: { Unit: 'Count', Sum: this.defectTotal, ByCode: Object.fromEntries(this.defectsByCode) },
        KeepaliveEarlyCloseCount: count('KeepaliveEarlyCloseCount')
      }
    }
  }

  private countInState (state: InstanceStateName): number {
    let count = 0
    for (const current of this.instanceStates.values()) if (current === state) count++
    return count
  }

  private countDefect (code: DefectCode): void {
    this.defectsByCode.set(code, (this.defectsByCode.get(code) ?? 0) + 1)
    this.defectTotal++
  }
}

/** Feeds `metrics` from the proxy's lifecycle events; returns the unsubscribe function. */
export function subscribeMetrics (events: ClbProxyEvents, metrics: ClbMetrics): () => void {
  const onExchange = (exchange: ExchangeRecord): void => metrics.recordExchange(exchange)
  const onIdleEvent = (event: BackendIdleEvent): void => metrics.recordBackendIdleEvent(event)
  const onConnectionError = (event: BackendConnectionErrorEvent): void => metrics.recordBackendConnectionError(event)
  const onInstanceState = (change: InstanceStateChange): void => metrics.recordInstanceState(change)
  const onSurgeQueue = ({ length }: { readonly length: number }): void => metrics.recordSurgeQueueLength(length)
  events.on('exchange', onExchange)
  events.on('backend-idle-event', onIdleEvent)
  events.on('backend-connection-error', onConnectionError)
  events.on('instance-state', onInstanceState)
  events.on('surge-queue', onSurgeQueue)
  return () => {
    events.off('exchange', onExchange)
    events.off('backend-idle-event', onIdleEvent)
    events.off('backend-connection-error', onConnectionError)
    events.off('instance-state', onInstanceState)
    events.off('surge-queue', onSurgeQueue)
  }
}
