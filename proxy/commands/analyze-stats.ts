/**
 * What `clb-proxy analyze` counts, in memory that does not grow with the input: a fixed
 * log-scale histogram for latency percentiles, time buckets that double in width past
 * MAX_TIME_BUCKETS, top-N maps pruned to TOP_CAPACITY keys, the first MAX_UNPARSEABLE_LISTED
 * unparseable lines (all are counted).
 *
 * The questions come from AWS (spec §2): "Differentiate with logs: elb_status_code vs
 * backend_status_code" (KC-502), the per-instance view, `Latency` = backend_processing_time
 * (CLB-LOGS row 6), and the signatures of spec §2.2, §2.3, §3.4.
 */
import type { ClbLineFields } from './analyze-parse.js'

export const MAX_TIME_BUCKETS = 4096
export const TOP_CAPACITY = 1000
export const TOP_LISTED = 10
export const MAX_UNPARSEABLE_LISTED = 20
const MAX_SIGNATURES = 256
/** Our choice: answered paths remembered (as 32-bit hashes, about 2 MB); past it, a path not among them is not called never answered. */
export const MAX_ANSWERED_PATHS = 65536
const UNPARSEABLE_TEXT_MAX = 200
/**
 * The start of an ALB access-log line: "type time elb ..." where type is one of "http", "https",
 * "h2", "grpcs", "ws", "wss" (ALB-DOCS, "Access log entries": the first field is the type of
 * request or connection); a CLB line starts with its timestamp.
 */
const ALB_LINE_START = /^(?:https?|h2|grpcs|wss?) \d{4}-\d\d-\d\dT/

/** Log-scale histogram of microseconds: 32 buckets per power of two, ±1.1% (fixed size). */
export class LatencyHistogram {
  static readonly SUB = 32
  readonly counts = new Float64Array(64 * LatencyHistogram.SUB + 1)
  count = 0
  max = 0
  min = Number.POSITIVE_INFINITY

  add (micros: number): void {
    this.count++
    if (micros > this.max) this.max = micros
    if (micros < this.min) this.min = micros
    const index = micros < 1 ? 0 : 1 + Math.floor(Math.log2(micros) * LatencyHistogram.SUB)
    this.counts[index] = (this.counts[index] as number) + 1
  }

  merge (other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = (this.counts[i] as number) + (other.counts[i] as number)
    this.count += other.count
    if (other.max > this.max) this.max = other.max
    if (other.min < this.min) this.min = other.min
  }

  /** The value at quantile q, in microseconds: the middle of its bucket, within [min, max] (exact when every value is the same). */
  quantile (q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.count))
    if (rank >= this.count) return this.max
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] as number
      if (seen >= rank) {
        if (i === 0) return 0
        const low = 2 ** ((i - 1) / LatencyHistogram.SUB)
        const high = 2 ** (i / LatencyHistogram.SUB)
        return Math.max(this.min, Math.min(this.max, Math.round((low + high) / 2)))
      }
    }
    return this.max
  }
}

/** Counts per key, pruned to the `capacity` largest when it holds twice as many (Misra-Gries-like). */
export class BoundedTop {
  readonly counts = new Map<string, number>()
  /** The largest count ever pruned: counts are exact when it is 0, else may miss up to it. */
  prunedMax = 0
  constructor (readonly capacity: number = TOP_CAPACITY) {}

  add (key: string, by = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + by)
    if (this.counts.size >= this.capacity * 2) this.prune()
  }

  private prune (): void {
    const sorted = [...this.counts].sort((a, b) => b[1] - a[1])
    this.counts.clear()
    for (const [key, count] of sorted.slice(0, this.capacity)) this.counts.set(key, count)
    for (const [, count] of sorted.slice(this.capacity)) if (count > this.prunedMax) this.prunedMax = count
  }

  top (n: number): Array<[string, number]> {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n)
  }
}

/** Per time bucket: HTTP/HTTPS requests, 4XX/5XX by who generated them, and TCP/SSL connections. */
export interface TimeBucket {
  requests: number
  connections: number
  elb4xx: number
  elb5xx: number
  backend4xx: number
  backend5xx: number
}

export interface UnparseableLine {
  readonly file: string
  readonly line: number
  /** The line's text, cut to UNPARSEABLE_TEXT_MAX characters. */
  readonly text: string
  /** The text was cut: the renderings mark it `…` after escaping it. */
  readonly truncated: boolean
  /** Why it is not a CLB line: the first field that failed (analyze-parse.ts), or its length. */
  readonly reason: string
}

/** The running totals; `add()` is called once per parsed line. */
export class AnalyzeStats {
  lines = 0
  blankLines = 0
  unparseable = 0
  readonly unparseableListed: UnparseableLine[] = []
  /** HTTP/HTTPS requests: the lines error rates are over. */
  requests = 0
  /** TCP/SSL listener lines: connections, counted apart from requests. */
  tcp = 0
  elb4xx = 0
  elb5xx = 0
  backend4xx = 0
  backend5xx = 0
  both502 = 0
  /** elb_status_code `-` on an HTTP line: nothing was sent (clb-proxy's lines, docs/access-log.md choice 3). */
  noStatus = 0
  firstMinute = Infinity
  lastMinute = -Infinity
  bucketMinutes = 1
  readonly buckets = new Map<number, TimeBucket>()
  readonly latency = new LatencyHistogram()
  /** Lines per `elb` field: logs of several load balancers read together are counted together. */
  readonly loadBalancers = new BoundedTop()
  readonly instanceErrors = new BoundedTop()
  readonly pathErrors = new BoundedTop()
  /** Key `elb backend hasBackend allMinusOne`, see signatureOf(). */
  readonly signatures = new Map<string, number>()
  otherSignatures = 0
  /** Requests an instance answered (a backend status the load balancer passed on, or an ELB status below 400 with one). */
  answeredRequests = 0
  /** Slowest measured backend_processing_time of a request the backend answered, in microseconds. */
  answeredMaxMicros = 0
  /** Hashes of the paths of answered requests (hashPath, analyze-parse.ts), up to MAX_ANSWERED_PATHS. */
  readonly answeredPaths = new Set<number>()
  answeredPathsOverflow = false
  /** 504s of the keep-alive signature by `hash path`: the paths they were on, to check against answeredPaths. */
  readonly keepAlivePaths = new BoundedTop()

  /** Unparseable lines that begin as an Application Load Balancer line does: `type timestamp` (ALB_LINE_START). */
  albLines = 0

  /** Lines read as CLB lines, whatever their listener. */
  get clbLines (): number {
    return this.lines - this.blankLines - this.unparseable
  }

  /** `startOnly`: `text` is only the start of the line (an over-long line), so the listing marks it cut whatever its length. */
  addUnparseable (file: string, line: number, text: string, reason: string, startOnly = false): void {
    this.lines++
    this.unparseable++
    if (ALB_LINE_START.test(text)) this.albLines++
    if (this.unparseableListed.length < MAX_UNPARSEABLE_LISTED) {
      const truncated = startOnly || text.length > UNPARSEABLE_TEXT_MAX
      // Not between the two halves of a surrogate pair.
      const cut = truncated && /[\ud800-\udbff]/.test(text[UNPARSEABLE_TEXT_MAX - 1] as string) ? UNPARSEABLE_TEXT_MAX - 1 : UNPARSEABLE_TEXT_MAX
      this.unparseableListed.push({ file, line, text: truncated ? text.slice(0, cut) : text, truncated, reason })
    }
  }

  addBlank (): void {
    this.lines++
    this.blankLines++
  }

  /** One parsed line of the load balancer named `loadBalancer`; `text(start, end)` gives a field as a string (called only for errors). */
  add (f: ClbLineFields, text: (start: number, end: number) => string, loadBalancer: string): void {
    this.lines++
    this.loadBalancers.add(loadBalancer)
    const minute = f.minute
    if (minute < this.firstMinute) this.firstMinute = minute
    if (minute > this.lastMinute) this.lastMinute = minute
    const key = minute - (minute % this.bucketMinutes)
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = { requests: 0, connections: 0, elb4xx: 0, elb5xx: 0, backend4xx: 0, backend5xx: 0 }
      this.buckets.set(key, bucket)
      if (this.buckets.size > MAX_TIME_BUCKETS) {
        this.widenBuckets()
        bucket = this.buckets.get(minute - (minute % this.bucketMinutes)) as TimeBucket
      }
    }
    // [TCP] backend_processing_time is "the time to establish the backend connection" (CLB-LOGS
    // row 6), not the Latency of a request; and a connection has no status to count as an error.
    if (f.isTcp) {
      this.tcp++
      bucket.connections++
      return
    }
    this.requests++
    bucket.requests++
    if (f.backendMicros >= 0) this.latency.add(f.backendMicros)
    const elb = f.elbStatus
    const backend = f.backendStatus
    if (elb < 0) this.noStatus++
    // Backend-generated: the load balancer passed on the instance's own status (KC-502).
    const fromBackend = backend === elb
    if (backend >= 100 && (elb < 400 || fromBackend)) {
      this.answeredRequests++
      if (f.backendMicros > this.answeredMaxMicros) this.answeredMaxMicros = f.backendMicros
      if (this.answeredPaths.size < MAX_ANSWERED_PATHS) this.answeredPaths.add(f.pathHash)
      else if (!this.answeredPaths.has(f.pathHash)) this.answeredPathsOverflow = true
    }
    if (elb < 400) return
    if (elb < 500) {
      if (fromBackend) { this.backend4xx++; bucket.backend4xx++ } else { this.elb4xx++; bucket.elb4xx++ }
    } else {
      if (fromBackend) { this.backend5xx++; bucket.backend5xx++ } else { this.elb5xx++; bucket.elb5xx++ }
      if (elb === 502 && backend === 502) this.both502++
    }
    const allMinusOne = f.requestMicros === -1 && f.backendMicros === -1 && f.responseMicros === -1
    const signature = `${elb} ${backend} ${f.hasBackend ? 1 : 0} ${allMinusOne ? 1 : 0}`
    const seen = this.signatures.get(signature)
    if (seen !== undefined) this.signatures.set(signature, seen + 1)
    else if (this.signatures.size < MAX_SIGNATURES) this.signatures.set(signature, 1)
    else this.otherSignatures++
    if (f.hasBackend) this.instanceErrors.add(text(f.backendStart, f.backendEnd))
    if (f.urlEnd > f.urlStart) {
      const path = pathOfUrl(text(f.urlStart, f.urlEnd))
      this.pathErrors.add(path)
      if (elb === 504 && !f.hasBackend && allMinusOne) this.keepAlivePaths.add(`${f.pathHash} ${path}`)
    }
  }

  private widenBuckets (): void {
    while (this.buckets.size > MAX_TIME_BUCKETS) {
      this.bucketMinutes *= 2
      const old = [...this.buckets]
      this.buckets.clear()
      for (const [minute, counts] of old) {
        const key = minute - (minute % this.bucketMinutes)
        const into = this.buckets.get(key)
        if (into === undefined) { this.buckets.set(key, counts); continue }
        into.requests += counts.requests
        into.connections += counts.connections
        into.elb4xx += counts.elb4xx
        into.elb5xx += counts.elb5xx
        into.backend4xx += counts.backend4xx
        into.backend5xx += counts.backend5xx
      }
    }
  }

  /** The sizes of everything kept, to show (and test) that memory is bounded. */
  sizes (): { buckets: number, instances: number, paths: number, signatures: number, unparseableListed: number } {
    return {
      buckets: this.buckets.size,
      instances: this.instanceErrors.counts.size,
      paths: this.pathErrors.counts.size,
      signatures: this.signatures.size,
      unparseableListed: this.unparseableListed.length
    }
  }
}

/** The path of a logged URL (`http://host:80/a/b?q=1` -> `/a/b`), to group errors by path. */
export function pathOfUrl (url: string): string {
  let from = 0
  const scheme = url.indexOf('://')
  if (scheme > 0 && scheme < 8) {
    const slash = url.indexOf('/', scheme + 3)
    if (slash < 0) return '/'
    from = slash
  }
  const query = url.indexOf('?', from)
  const path = url.slice(from, query >= 0 ? query : url.length) || '/'
  // Bounded by bytes, not only by keys: a hostile log of 1 MiB unique paths would otherwise hold
  // TOP_CAPACITY of them; longer paths are counted by their first MAX_PATH_CHARS characters.
  return path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}...` : path
}

/** Our choice: characters of a path kept as a key of the top lists. */
export const MAX_PATH_CHARS = 512
