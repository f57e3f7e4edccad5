/**
 * The report of `clb-proxy analyze`, built once from AnalyzeStats: the JSON shape (`--json`), and
 * what the text and HTML renderings show. Each error signature carries its likely cause in the
 * words of the spec (docs/clb-behavior.md §2, §3.3, §3.4) and where that is said.
 */
import { LatencyHistogram, TOP_LISTED, type AnalyzeStats, type UnparseableLine } from './analyze-stats.js'
import { CLB_DEFAULTS } from '../core/options.js'

/** CLB's default idle timeout (CLB-IDLE), what a report assumes unless told otherwise. */
const CLB_DEFAULT_IDLE_TIMEOUT_SECONDS = CLB_DEFAULTS.idleTimeoutSeconds

export interface SignatureRow {
  readonly elbStatus: string
  readonly backendStatus: string
  readonly backend: 'instance' | 'none'
  readonly timings: 'measured' | 'all -1'
  readonly count: number
  readonly generatedBy: 'elb' | 'backend'
  readonly cause: string
  readonly source: string
}

export interface AnalyzeReport {
  readonly files: number
  readonly lines: number
  /** HTTP/HTTPS requests; TCP/SSL listener lines are connections (totals.tcp), apart. */
  readonly requests: number
  /** The `elb` field: the load balancers whose lines were read, with their line counts (more than one is warned of). */
  readonly loadBalancers: { readonly rows: ReadonlyArray<{ readonly name: string, readonly lines: number }>, readonly count: number, readonly approximate: boolean }
  readonly blankLines: number
  readonly unparseable: { readonly count: number, readonly listed: readonly UnparseableLine[] }
  readonly firstMinute: string | null
  readonly lastMinute: string | null
  readonly bucketMinutes: number
  readonly perMinute: ReadonlyArray<{ readonly minute: string, readonly requests: number, readonly connections: number, readonly errors: number, readonly errorRate: number, readonly elb4xx: number, readonly elb5xx: number, readonly backend4xx: number, readonly backend5xx: number }>
  readonly totals: { readonly tcp: number, readonly noStatus: number, readonly elb4xx: number, readonly elb5xx: number, readonly backend4xx: number, readonly backend5xx: number, readonly both502: number }
  readonly backendProcessingTime: { readonly count: number, readonly p50: number, readonly p90: number, readonly p99: number, readonly max: number } | null
  readonly topInstances: { readonly rows: ReadonlyArray<{ readonly instance: string, readonly errors: number }>, readonly approximate: boolean }
  readonly topPaths: { readonly rows: ReadonlyArray<{ readonly path: string, readonly errors: number }>, readonly approximate: boolean }
  readonly signatures: readonly SignatureRow[]
  readonly otherSignatures: number
  readonly keepAlive: {
    readonly count: number
    /** Requests an instance answered; with none, there is no answered request to compare with the idle timeout. */
    readonly answeredRequests: number
    readonly slowestAnsweredSeconds: number
    /** The idle timeout the report was built for (`--idle-timeout`; CLB's default 60 s). */
    readonly idleTimeoutSeconds: number
    /**
     * true: the slowest answered request took less than half the idle timeout, so these 504s are
     * most likely the keep-alive race; false: requests slower than the idle timeout may explain
     * some or all; null: no request was answered, so the log cannot tell.
     */
    readonly likelyKeepAliveRace: boolean | null
    /** The verdict behind likelyKeepAliveRace, by name (docs/analyze.md). */
    readonly verdict: 'no answered request' | 'paths never answered' | 'keep-alive race' | 'slow requests possible'
    /**
     * The 504s of the signature on paths no request of the input was answered on (a request that
     * timed out is logged -1 too), and the first of those paths; at least half of the 504s there
     * makes them the likely idle-timeout cause (likelyKeepAliveRace false).
     */
    readonly neverAnsweredPaths: { readonly count: number, readonly paths: number, readonly rows: ReadonlyArray<{ readonly path: string, readonly errors: number }> }
    readonly advice: string
  } | null
}

/** What the report is built for: the load balancer's idle timeout, which the log lines do not carry. */
export interface ReportSettings {
  readonly idleTimeoutSeconds: number
}

/** The fix of the keep-alive race for a load balancer whose idle timeout is `idleTimeoutSeconds`. */
export function keepAliveAdvice (idleTimeoutSeconds: number): string {
  return `Set the backend keep-alive timeout greater than the load balancer idle timeout (${idleTimeoutSeconds} s${idleTimeoutSeconds === CLB_DEFAULT_IDLE_TIMEOUT_SECONDS ? ', the default' : ''}), ` +
    'so the load balancer is the one that closes idle connections (CLB-IDLE); CLB-BACKEND: "The keep-alive timeout should be at least 60 seconds".'
}

/** Requests slower than this share of the idle timeout make a slow application a plausible cause of 504s too. */
const SLOW_SHARE_OF_IDLE_TIMEOUT = 0.5
/** Our choice: this share of the keep-alive 504s on never-answered paths makes those paths the likely cause (docs/analyze.md). */
const NEVER_ANSWERED_SHARE = 0.5
/** Never-answered paths listed. */
const NEVER_ANSWERED_LISTED = 5

/** The keep-alive 504s on paths that no request of the input was answered on; none said when the answered paths overflowed. */
function neverAnsweredPaths (stats: AnalyzeStats): { count: number, paths: number, rows: Array<{ path: string, errors: number }> } {
  if (stats.answeredPathsOverflow) return { count: 0, paths: 0, rows: [] }
  const rows = stats.keepAlivePaths.top(Number.POSITIVE_INFINITY).flatMap(([key, errors]) => {
    const space = key.indexOf(' ')
    return stats.answeredPaths.has(Number(key.slice(0, space))) ? [] : [{ path: key.slice(space + 1), errors }]
  }).sort((a, b) => b.errors - a.errors || (a.path < b.path ? -1 : 1))
  return { count: rows.reduce((sum, row) => sum + row.errors, 0), paths: rows.length, rows: rows.slice(0, NEVER_ANSWERED_LISTED) }
}

function cause (elb: number, backend: number, hasBackend: boolean, allMinusOne: boolean): { generatedBy: 'elb' | 'backend', cause: string, source: string } {
  if (backend === elb) return { generatedBy: 'backend', cause: `the instance itself answered ${elb}; the load balancer passed it on (counted in HTTPCode_Backend_${Math.floor(elb / 100)}XX)`, source: 'KC-502, spec §2.1, §3.4' }
  if (elb === 504 && !hasBackend && allMinusOne) return { generatedBy: 'elb', cause: 'the instance closed a kept-alive connection before the idle timeout (the load balancer reused it: a fast 504, never logged by the backend), or did not answer within the idle timeout', source: 'CLB-HTTPERR 504, CLB-LOGS rows 4-7, spec §2.2' }
  if (elb === 504) return { generatedBy: 'elb', cause: 'the instance did not answer within the idle timeout, or closed the connection without a response (or was deregistered with the request in flight)', source: 'spec §2.2' }
  // CLB-HTTPERR 503, its four causes in its words.
  if (elb === 503 && !hasBackend) return { generatedBy: 'elb', cause: '"There are no registered instances", or no healthy instance ("There are no healthy instances", per Availability Zone unless cross-zone load balancing is on), or "The surge queue is full" (spillover), or "Insufficient capacity in the load balancer to handle the request"', source: 'CLB-HTTPERR 503, CLB-CW SpilloverCount, spec §2.3' }
  if (elb === 503) return { generatedBy: 'elb', cause: 'the load balancer answered 503 itself: "There are no registered instances", no healthy instance, spillover ("The surge queue is full") or capacity', source: 'CLB-HTTPERR 503, spec §2.3' }
  if (elb === 502 && (backend === -1 || backend === 0)) return { generatedBy: 'elb', cause: 'the instance sent a response the load balancer could not parse (a malformed response: e.g. more than one CRLF between headers, a non-integer Content-Length, more body bytes than Content-Length)', source: 'KC-502, spec §2.1' }
  if (elb === 502) return { generatedBy: 'elb', cause: 'the load balancer answered 502: a response it could not parse', source: 'KC-502, spec §2.1' }
  // CLB-HTTPERR 408: "the client cancelled the request or failed to send a full request", its two causes.
  if (elb === 408) return { generatedBy: 'elb', cause: 'the client stopped sending its request (head or body) for the idle timeout ("A network interruption or a bad request construction"), or "Connection to the client is closed (load balancer could not send a response)"', source: 'CLB-HTTPERR 408, spec §2.4' }
  if (elb === 400) return { generatedBy: 'elb', cause: 'a malformed request (request line, header, framing, CONNECT) or a request rejected by desync mitigation', source: 'CLB-HTTPERR 400, spec §2.5' }
  if (elb === 405) return { generatedBy: 'elb', cause: 'a method longer than 127 characters', source: 'CLB-HTTPERR 405, spec §2.5' }
  return { generatedBy: 'elb', cause: `the load balancer answered ${elb} and the instance ${backend < 0 ? 'did not' : `answered ${backend}`}`, source: 'spec §3.3' }
}

function minuteIso (minute: number): string {
  return new Date(minute * 60000).toISOString().slice(0, 16) + 'Z'
}

function seconds (micros: number): number {
  return micros / 1e6
}

export function buildReport (stats: AnalyzeStats, files: number, settings: ReportSettings = { idleTimeoutSeconds: CLB_DEFAULT_IDLE_TIMEOUT_SECONDS }): AnalyzeReport {
  const perMinute = [...stats.buckets].sort((a, b) => a[0] - b[0]).map(([minute, b]) => {
    const errors = b.elb4xx + b.elb5xx + b.backend4xx + b.backend5xx
    return { minute: minuteIso(minute), errors, errorRate: b.requests === 0 ? 0 : errors / b.requests, ...b }
  })
  const signatures: SignatureRow[] = [...stats.signatures].map(([key, count]) => {
    const [elb, backend, hasBackend, allMinusOne] = key.split(' ').map(Number) as [number, number, number, number]
    return {
      elbStatus: String(elb),
      backendStatus: backend < 0 ? '-' : String(backend),
      backend: hasBackend === 1 ? 'instance' as const : 'none' as const,
      timings: allMinusOne === 1 ? 'all -1' as const : 'measured' as const,
      count,
      ...cause(elb, backend, hasBackend === 1, allMinusOne === 1)
    }
  }).sort((a, b) => b.count - a.count || (a.elbStatus < b.elbStatus ? -1 : 1))
  const keepAliveCount = signatures.filter((s) => s.elbStatus === '504' && s.backend === 'none' && s.timings === 'all -1').reduce((sum, s) => sum + s.count, 0)
  const latency: LatencyHistogram = stats.latency
  const neverAnswered = neverAnsweredPaths(stats)
  // A 504 of an idle timeout is logged -1 (CLB-LOGS rows 5-7): its time is in no answered line.
  const verdict = stats.answeredRequests === 0
    ? 'no answered request' as const
    : neverAnswered.count >= keepAliveCount * NEVER_ANSWERED_SHARE
      ? 'paths never answered' as const
      : seconds(stats.answeredMaxMicros) < settings.idleTimeoutSeconds * SLOW_SHARE_OF_IDLE_TIMEOUT ? 'keep-alive race' as const : 'slow requests possible' as const
  return {
    files,
    lines: stats.lines,
    requests: stats.requests,
    loadBalancers: { rows: stats.loadBalancers.top(TOP_LISTED).map(([name, lines]) => ({ name, lines })), count: stats.loadBalancers.counts.size, approximate: stats.loadBalancers.prunedMax > 0 },
    blankLines: stats.blankLines,
    unparseable: { count: stats.unparseable, listed: stats.unparseableListed },
    firstMinute: stats.clbLines > 0 ? minuteIso(stats.firstMinute) : null,
    lastMinute: stats.clbLines > 0 ? minuteIso(stats.lastMinute) : null,
    bucketMinutes: stats.bucketMinutes,
    perMinute,
    totals: { tcp: stats.tcp, noStatus: stats.noStatus, elb4xx: stats.elb4xx, elb5xx: stats.elb5xx, backend4xx: stats.backend4xx, backend5xx: stats.backend5xx, both502: stats.both502 },
    backendProcessingTime: latency.count === 0
      ? null
      : { count: latency.count, p50: seconds(latency.quantile(0.5)), p90: seconds(latency.quantile(0.9)), p99: seconds(latency.quantile(0.99)), max: seconds(latency.max) },
    topInstances: { rows: stats.instanceErrors.top(TOP_LISTED).map(([instance, errors]) => ({ instance, errors })), approximate: stats.instanceErrors.prunedMax > 0 },
    topPaths: { rows: stats.pathErrors.top(TOP_LISTED).map(([path, errors]) => ({ path, errors })), approximate: stats.pathErrors.prunedMax > 0 },
    signatures,
    otherSignatures: stats.otherSignatures,
    keepAlive: keepAliveCount === 0
      ? null
      : {
          count: keepAliveCount,
          answeredRequests: stats.answeredRequests,
          slowestAnsweredSeconds: seconds(stats.answeredMaxMicros),
          idleTimeoutSeconds: settings.idleTimeoutSeconds,
          likelyKeepAliveRace: verdict === 'no answered request' ? null : verdict === 'keep-alive race',
          verdict,
          neverAnsweredPaths: neverAnswered,
          advice: keepAliveAdvice(settings.idleTimeoutSeconds)
        }
  }
}
