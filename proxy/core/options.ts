/**
 * The one options object. CLI flags and environment variables (proxy/commands/cli.ts) and the
 * library API (startClbProxy) both build this shape; `resolveOptions` fills defaults,
 * validates every field and freezes the result before any socket opens.
 */

import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HealthCheckTarget } from './health-check-target.js'
import type { DesyncMode } from '../../validators/desync-classifier.js'

export type Profile = 'clb' | 'strict'
export type KeepaliveRaceMode = 'detect' | 'emulate'
/** CLB-LOGS EmitInterval: "5 or 60 minutes" (spec §3.1). */
export type EmitIntervalMinutes = 5 | 60

/**
 * An instance's protocol (CLB-LISTEN InstanceProtocol), the scheme of its `--backend` URL. HTTP
 * and HTTPS listeners route to http/https instances, TCP and SSL listeners to tcp/ssl instances.
 */
export type InstanceProtocol = 'http' | 'https' | 'tcp' | 'ssl'
/** A listener's protocol (CLB-LISTEN: "HTTP, HTTPS, TCP, or SSL"). */
export type ListenerProtocol = 'http' | 'https' | 'tcp' | 'ssl'
/** CLB's predefined security policies this proxy knows (their protocols and ciphers: proxy/data-path/security-policies.ts). */
export const SECURITY_POLICY_NAMES = Object.freeze(['ELBSecurityPolicy-2016-08', 'ELBSecurityPolicy-TLS-1-2-2017-01'] as const)
export type SecurityPolicyName = typeof SECURITY_POLICY_NAMES[number]

export interface BackendAddress {
  /** Host name or IP literal as given by the user (no brackets for IPv6). */
  readonly host: string
  readonly port: number
  /** Default 'http'; resolved options always carry it. */
  readonly protocol?: InstanceProtocol
}

export interface ListenerAddress {
  readonly protocol: ListenerProtocol
  readonly host: string
  /** 0 asks the OS for a free port. */
  readonly port: number
}

/** CLB-LISTEN: "HTTP/HTTPS front ↔ HTTP/HTTPS back; TCP/SSL front ↔ TCP/SSL back". */
export function listenerPairsWith (listener: ListenerProtocol, instance: InstanceProtocol): boolean {
  return isLayer7(listener) === isLayer7(instance)
}

/** HTTP and HTTPS: the load balancer parses each request (layer 7); TCP and SSL pass bytes (layer 4). */
export function isLayer7 (protocol: ListenerProtocol | InstanceProtocol): boolean {
  return protocol === 'http' || protocol === 'https'
}

/** The instance protocol of an address, 'http' when none is given. */
export function instanceProtocolOf (address: BackendAddress): InstanceProtocol {
  return address.protocol ?? 'http'
}

export interface ListenAddress {
  readonly host: string
  /** 0 asks the OS for a free port; the bound port is reported by the running proxy. */
  readonly port: number
}

/** What a user may pass; every field is optional and falls back to CLB_DEFAULTS. */
export interface ClbProxyOptions {
  /** Where the front-end listener binds. CLI `--listen HOST:PORT`, env `CLB_LISTEN`. */
  listen?: ListenAddress | string
  /**
   * The listeners, each `PROTOCOL://HOST:PORT` (http, https, tcp, ssl) or `{ protocol, host, port }`;
   * instead of `listen` (not both). Each must have an instance it pairs with (CLB-LISTEN).
   * CLI repeatable `--listener`, env `CLB_LISTENERS` (comma-separated).
   */
  listeners?: ReadonlyArray<ListenerAddress | string>
  /**
   * Registered instances. CLI repeatable `--backend URL`, env `CLB_BACKENDS` (comma-separated).
   * Empty: the CLI starts the built-in demo backend; the library requires at least one.
   */
  backends?: ReadonlyArray<BackendAddress | string>
  /** Access-log destination: a file path, or '-' for stdout. CLI `--access-log`, env `CLB_ACCESS_LOG`. */
  accessLog?: string | null
  /**
   * A directory where access-log files are laid out and named as CLB delivers them to S3 (spec
   * §3.1: `AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/<name>.log`), one file per
   * emit interval; null: none. Independent of `accessLog` (both may be on). CLI `--access-log-dir`,
   * env `CLB_ACCESS_LOG_DIR`.
   */
  accessLogDir?: string | null
  /** CLB-LOGS EmitInterval, minutes, 5 or 60: the span of one file in accessLogDir. CLI `--emit-interval`, env `CLB_EMIT_INTERVAL`. */
  emitIntervalMinutes?: EmitIntervalMinutes
  /** The `elb` field of each access-log line (CLB load balancer name rules). CLI `--name`, env `CLB_NAME`. */
  name?: string
  /** CLB ConnectionSettings.IdleTimeout, seconds, 1-4000. CLI `--idle-timeout`, env `CLB_IDLE_TIMEOUT`. */
  idleTimeoutSeconds?: number
  /** Response bytes held back before committing to the client (bytes). CLI `--response-buffer`, env `CLB_RESPONSE_BUFFER`. */
  responseBufferBytes?: number
  /**
   * Streaming rule (docs/architecture.md "The commit rule"): once a response head is complete, how
   * long (ms) the rest of an incomplete response may be held back and judged before the head and
   * what arrived are committed and the rest streams. CLI `--response-hold`, env `CLB_RESPONSE_HOLD`.
   */
  responseHoldMs?: number
  /**
   * After the proxy decides to close a client connection (a 400/408, an early response while the
   * request body is still arriving, `Connection: close`), how long (seconds) it keeps reading and
   * discarding the client's bytes so the client reads the answer instead of a reset (a lingering
   * close, as nginx's lingering_time). CLI `--linger`, env `CLB_LINGER`.
   */
  lingerSeconds?: number
  /** Largest response or request head (status/request line + headers) accepted (bytes). CLI `--max-head`, env `CLB_MAX_HEAD`. */
  maxHeadBytes?: number
  /** How undocumented response defects are judged. CLI `--profile`, env `CLB_PROFILE`. */
  profile?: Profile
  /** Seconds that SIGINT/SIGTERM (and close()) let in-flight exchanges finish before cutting them. */
  drainTimeoutSeconds?: number
  /** Where rejected responses are captured, one file each; null: no captures. CLI `--capture-dir`, env `CLB_CAPTURE_DIR`. */
  captureDir?: string | null
  /** Most capture files kept in captureDir (the oldest are removed). CLI `--max-captures`, env `CLB_MAX_CAPTURES`. */
  maxCaptures?: number
  /** Bytes of a rejected response kept in its capture. CLI `--capture-bytes`, env `CLB_CAPTURE_BYTES`. */
  captureBytes?: number
  /**
   * What to do when an instance closes a kept-alive connection before the idle timeout: 'detect'
   * warns; 'emulate' also answers the next request that would have reused it with CLB's 504.
   * CLI `--keepalive-race`, env `CLB_KEEPALIVE_RACE`.
   */
  keepaliveRace?: KeepaliveRaceMode
  /** Admin HTTP listener (metrics, captures, health); null: none. CLI `--admin HOST:PORT`, env `CLB_ADMIN`. */
  admin?: ListenAddress | string | null
  /**
   * CLB's health-check Target (`HTTP:80/health`, `TCP:5000`; `HTTP:/health` or `TCP` use each
   * instance's own port); null: no health checks, every registered instance is in service.
   * CLI `--health-check`, env `CLB_HEALTH_CHECK`.
   */
  healthCheck?: HealthCheckTarget | string | null
  /** HealthCheck.Interval, seconds, 5-300. CLI `--health-interval`, env `CLB_HEALTH_INTERVAL`. */
  healthIntervalSeconds?: number
  /** HealthCheck.Timeout, seconds, 2-60, less than the interval. CLI `--health-timeout`, env `CLB_HEALTH_TIMEOUT`. */
  healthTimeoutSeconds?: number
  /** HealthCheck.HealthyThreshold, 2-10. CLI `--healthy-threshold`, env `CLB_HEALTHY_THRESHOLD`. */
  healthyThreshold?: number
  /** HealthCheck.UnhealthyThreshold, 2-10. CLI `--unhealthy-threshold`, env `CLB_UNHEALTHY_THRESHOLD`. */
  unhealthyThreshold?: number
  /**
   * Requests one instance serves at once (each holds one backend connection); beyond it requests
   * wait in the surge queue. CLI `--max-instance-connections`, env `CLB_MAX_INSTANCE_CONNECTIONS`.
   */
  maxInstanceConnections?: number
  /** Surge queue size, 0-1024; beyond it, spillover (503). CLI `--surge-queue`, env `CLB_SURGE_QUEUE`. */
  surgeQueueSize?: number
  /**
   * ConnectionDraining.Timeout, seconds, 1-3600; 0 disables connection draining (in-flight requests
   * to a deregistered instance get 504). CLI `--draining-timeout` or `--no-draining`, env `CLB_DRAINING_TIMEOUT`.
   */
  drainingTimeoutSeconds?: number
  /**
   * Duration-based stickiness (LBCookieStickinessPolicy): the AWSELB cookie's CookieExpirationPeriod in
   * seconds, 0 = a browser session; null: off. CLI `--sticky-duration`, env `CLB_STICKY_DURATION`.
   */
  stickyDurationSeconds?: number | null
  /** Application-controlled stickiness (AppCookieStickinessPolicy): the app's cookie name; null: off. CLI `--sticky-app-cookie`, env `CLB_STICKY_APP_COOKIE`. */
  stickyAppCookie?: string | null
  /**
   * Desync mitigation mode (CLB-DESYNC `elb.http.desyncmitigationmode`): which request tiers are
   * blocked with a 400. CLI `--desync-mode`, env `CLB_DESYNC_MODE`.
   */
  desyncMode?: DesyncMode
  /** PEM certificate (chain) file for HTTPS and SSL listeners; null: a self-signed one generated at start. CLI `--tls-cert`, env `CLB_TLS_CERT`. */
  tlsCert?: string | null
  /** PEM private key file for `tlsCert`; both or neither. CLI `--tls-key`, env `CLB_TLS_KEY`. */
  tlsKey?: string | null
  /** The security policy of HTTPS and SSL listeners: the TLS protocols and ciphers offered. CLI `--security-policy`, env `CLB_SECURITY_POLICY`. */
  securityPolicy?: SecurityPolicyName
  /**
   * Proxy protocol v1 on every TCP and SSL listener (CLB's ProxyProtocolPolicyType): a
   * `PROXY TCP4 ...` line before the client's first byte. CLI `--proxy-protocol`, env `CLB_PROXY_PROTOCOL`.
   */
  proxyProtocol?: boolean
  /**
   * A PEM CA file that https/ssl instances' certificates must chain to (like CLB's back-end server
   * authentication); null: any certificate is accepted, CLB's default. CLI `--backend-ca`, env `CLB_BACKEND_CA`.
   */
  backendCa?: string | null
  /** Longest request line, bytes, CRLF excluded; longer: 400. CLI `--max-request-line`, env `CLB_MAX_REQUEST_LINE`. */
  maxRequestLineBytes?: number
  /** Longest request header line, bytes, CRLF excluded; longer: 400. CLI `--max-header-line`, env `CLB_MAX_HEADER_LINE`. */
  maxHeaderLineBytes?: number
  /** Most request header fields; more: 400. CLI `--max-headers`, env `CLB_MAX_HEADERS`. */
  maxHeaderCount?: number
}

/** The validated, frozen form every module reads. */
export interface ResolvedOptions {
  readonly listen: ListenAddress
  /** Never empty: `listeners` as given, or one HTTP listener at `listen`. */
  readonly listeners: readonly ListenerAddress[]
  readonly backends: readonly BackendAddress[]
  readonly accessLog: string | null
  readonly accessLogDir: string | null
  readonly emitIntervalMinutes: EmitIntervalMinutes
  readonly name: string
  readonly idleTimeoutSeconds: number
  readonly responseBufferBytes: number
  readonly responseHoldMs: number
  readonly lingerSeconds: number
  readonly maxHeadBytes: number
  readonly profile: Profile
  readonly drainTimeoutSeconds: number
  readonly captureDir: string | null
  readonly maxCaptures: number
  readonly captureBytes: number
  readonly keepaliveRace: KeepaliveRaceMode
  readonly admin: ListenAddress | null
  readonly healthCheck: HealthCheckTarget | null
  readonly healthIntervalSeconds: number
  readonly healthTimeoutSeconds: number
  readonly healthyThreshold: number
  readonly unhealthyThreshold: number
  readonly maxInstanceConnections: number
  readonly surgeQueueSize: number
  readonly drainingTimeoutSeconds: number
  readonly stickyDurationSeconds: number | null
  readonly stickyAppCookie: string | null
  readonly desyncMode: DesyncMode
  readonly tlsCert: string | null
  readonly tlsKey: string | null
  readonly securityPolicy: SecurityPolicyName
  readonly proxyProtocol: boolean
  readonly backendCa: string | null
  readonly maxRequestLineBytes: number
  readonly maxHeaderLineBytes: number
  readonly maxHeaderCount: number
}

export const CLB_DEFAULTS = Object.freeze({
  listen: Object.freeze({ host: '127.0.0.1', port: 8080 }),
  backends: Object.freeze([]) as readonly BackendAddress[],
  accessLog: '-',
  // Our choice: no S3-style log files unless asked for (the access log above is always on).
  accessLogDir: null as string | null,
  // CLB-LOGS: EmitInterval "5 or 60 minutes", default 60 (spec §3.1).
  emitIntervalMinutes: 60 as EmitIntervalMinutes,
  // CLB names: at most 32 alphanumerics or hyphens, not starting or ending with a hyphen.
  name: 'clb-proxy',
  // CLB-IDLE: "By default, Elastic Load Balancing sets the idle timeout ... to 60 seconds"; range 1-4000 s.
  idleTimeoutSeconds: 60,
  // Our choice (CLB's buffering is undocumented): hold up to 1 MiB so framing defects in
  // ordinary responses are judged before the client sees a byte.
  responseBufferBytes: 1024 * 1024,
  // Our choice (CLB's buffering is undocumented): a response still arriving 50 ms after its head
  // is a stream (SSE, streamed SSR, progress): commit it then so it flows; what arrives with the
  // head, or within 50 ms of it, is judged before the client sees a byte.
  responseHoldMs: 50,
  // Our choice, after nginx's lingering close (lingering_timeout 5 s): the client reads the
  // 400/408/early answer instead of a reset caused by the bytes it was still sending.
  lingerSeconds: 5,
  // Our choice (CLB's limit is undocumented; ALB documents 32 KiB for response headers).
  maxHeadBytes: 64 * 1024,
  profile: 'clb' as Profile,
  // Our choice: CLB's connection-draining default is 300 s, too long for a developer's Ctrl-C.
  drainTimeoutSeconds: 5,
  // Our choice: captures go under the OS temp dir, bounded in count and size (after HAProxy's `show errors`),
  // in a folder per user (its name ends in the uid where there is one, as tmux names its socket folder):
  // the temp dir is shared, and captures hold request heads with cookies.
  captureDir: join(tmpdir(), process.getuid === undefined ? 'clb-proxy-captures' : `clb-proxy-captures-${process.getuid()}`) as string | null,
  maxCaptures: 100,
  captureBytes: 64 * 1024,
  // Our choice: detect and warn; emulating the race is opt-in because it adds 504s on purpose.
  keepaliveRace: 'detect' as KeepaliveRaceMode,
  admin: null as ListenAddress | null,
  // CLB-HC: no health check unless configured here (a CLB always has one; locally, without one,
  // every registered instance is in service, which is what a single dev server wants).
  healthCheck: null as HealthCheckTarget | null,
  // CLB-HC / API-HC defaults: Interval 30 s, Timeout 5 s, HealthyThreshold 10, UnhealthyThreshold 2.
  healthIntervalSeconds: 30,
  healthTimeoutSeconds: 5,
  healthyThreshold: 10,
  unhealthyThreshold: 2,
  // Our choice (CLB does not document how many connections it opens to one instance): 128
  // concurrent requests per instance before requests wait in the surge queue.
  maxInstanceConnections: 128,
  // CLB-CW SurgeQueueLength: "The maximum size of the queue is 1,024."
  surgeQueueSize: 1024,
  // CLB-DRAIN: ConnectionDraining Timeout default 300 s.
  drainingTimeoutSeconds: 300,
  // CLB-STICKY: "By default, a Classic Load Balancer routes each request independently".
  stickyDurationSeconds: null as number | null,
  stickyAppCookie: null as string | null,
  // CLB-DESYNC / BOTO: "defensive" is the default desync mitigation mode.
  desyncMode: 'defensive' as DesyncMode,
  // Our choice: a certificate for localhost and 127.0.0.1 generated at start (docs/listeners.md).
  tlsCert: null as string | null,
  tlsKey: null as string | null,
  // CLB's predefined-policy table marks ELBSecurityPolicy-2016-08 as the default for HTTPS/SSL listeners.
  securityPolicy: 'ELBSecurityPolicy-2016-08' as SecurityPolicyName,
  // CLB-PROXY: proxy protocol is off unless the policy is enabled.
  proxyProtocol: false,
  // CLB: without back-end server authentication, an instance's certificate is not verified.
  backendCa: null as string | null,
  // Our choices (CLB's limits are undocumented; spec §5.9): ALB documents 16 K for the request
  // line and one header, 64 K for all headers; Heroku reports 8 KB per header line on ELB.
  // HAProxy answers 400 past 101 header fields by default (tune.http.maxhdr); we take 100.
  maxRequestLineBytes: 16 * 1024,
  maxHeaderLineBytes: 16 * 1024,
  maxHeaderCount: 100
})
