import { EventEmitter } from 'node:events'
import type { Defect, DefectCode } from '../../validators/defects.js'
import type { AccessLogRecord } from './access-log-record.js'
import type { DesyncTier } from '../../validators/desync-classifier.js'

/**
 * How an exchange ended, by stage (docs/architecture.md):
 * - 'relayed': the backend's response went to the client unchanged;
 * - 'rejected': the backend's response was malformed; the client got CLB's 502;
 * - 'cut': a defect appeared after the response was committed; the client connection was aborted;
 * - 'backend-closed': the instance closed the connection without a response byte; 504;
 * - 'keepalive-race': (keepaliveRace 'emulate') the request would have reused a kept-alive
 *   connection the instance had closed before the idle timeout; 504, as on a real CLB;
 * - 'backend-timeout': no response within the idle timeout; 504;
 * - 'backend-unreachable': the instance could not be connected to (nor any other in service); 503;
 * - 'backend-tls-failed': the TLS handshake with an https instance failed (its certificate not
 *   trusted by backendCa or not naming its host, no TLS version or cipher in common, the instance
 *   not speaking TLS, a close or reset during the handshake) or did not complete within the idle
 *   timeout; 408, as observed on a CLB whose HTTPS instance could not complete the handshake (O-408);
 *   not retried on another instance;
 * - 'no-healthy-instance': no registered instance was in service (none registered, every one failing
 *   its health checks, or deregistering); 503 (CLB-HTTPERR 503 causes 2 and 3);
 * - 'spillover': every instance in service was at maxInstanceConnections and the surge queue was
 *   full; 503, counted in SpilloverCount (CLB-CW);
 * - 'instance-deregistered': the instance was deregistered (draining disabled, or its draining
 *   timeout passed) before it answered; 504, as observed (O-CTB);
 * - 'drain-timeout': close() reached drainTimeoutSeconds with the response not yet committed (504), or
 *   with a request head still arriving (408, CLB-HTTPERR 408);
 * - 'bad-request': the client's request was malformed; 400 or 405;
 * - 'desync-blocked': desync mitigation blocked the request (its tier is blocked by desyncMode); 400
 *   and the client connection is closed (CLB-DESYNC);
 * - 'client-timeout': the client did not finish its request within the idle timeout; 408;
 * - 'client-closed': the client went away before a response could be sent; logged as 408.
 */
export type ExchangeOutcome = 'relayed' | 'rejected' | 'cut' | 'backend-closed' | 'keepalive-race' | 'backend-timeout' |
'backend-unreachable' | 'no-healthy-instance' | 'spillover' | 'instance-deregistered' | 'drain-timeout' | 'bad-request' |
'desync-blocked' | 'client-timeout' | 'client-closed' | 'backend-tls-failed' |
/** A TCP/SSL listener's connection that was joined to an instance; `cutReason` says what ended it early, null for a close by either side. */
'passthrough' |
/** A TCP/SSL listener's connection closed because no instance could be connected to: none in service (backendError null), or the connection or handshake failed. */
'passthrough-refused'

/**
 * Why a committed response was cut ('cut' outcomes only):
 * - 'defect': a rejecting defect arrived after the commit;
 * - 'instance-closed': the instance closed (or reset) before the end of the response;
 * - 'client-gone': the client closed or reset its connection while the response was being sent;
 * - 'idle-timeout': nothing moved for the idle timeout (CLB-IDLE);
 * - 'shutdown': the proxy's drain deadline came with the response still being sent;
 * - 'request-abandoned': the client stopped sending its request body while the response was being sent;
 * - 'instance-deregistered': the instance was deregistered (draining disabled or timed out) while the response was being sent.
 */
export type CutReason = 'defect' | 'instance-closed' | 'client-gone' | 'idle-timeout' | 'shutdown' | 'request-abandoned' |
'instance-deregistered'

/** DescribeInstanceHealth InstanceState.State (API: "Valid values: InService | OutOfService | Unknown"). */
export type InstanceStateName = 'InService' | 'OutOfService' | 'Unknown'
/** InstanceState.ReasonCode: "whether the cause is Elastic Load Balancing or the instance" (ELB | Instance | N/A). */
export type InstanceReasonCode = 'ELB' | 'Instance' | 'N/A'

/** One instance's health, in DescribeInstanceHealth's InstanceState shape. */
export interface InstanceState {
  readonly InstanceId: string
  readonly State: InstanceStateName
  readonly ReasonCode: InstanceReasonCode
  readonly Description: string
}

/** The result of one health check of one instance. */
export interface HealthCheckResult {
  readonly passed: boolean
  /** When the check started (clock microseconds). */
  readonly startedAtMicros: number
  /** From the start to the decision, milliseconds. */
  readonly durationMs: number
  /** The HTTP status, when a status line was read. */
  readonly status: number | null
  /** The first rejecting defect of a malformed response. */
  readonly defect: { readonly code: string, readonly offset: number, readonly message: string } | null
  /** A system error code (ECONNREFUSED...), 'timeout', 'aborted' or a TLS error code; null when none. */
  readonly error: string | null
  /** One short sentence: '200 in 3 ms', '302, not 200', 'no answer within 5 s'. */
  readonly summary: string
}

export interface ExchangeRecord {
  readonly outcome: ExchangeOutcome
  /** For a 'cut' outcome, what ended the response early; null otherwise. */
  readonly cutReason: CutReason | null
  /** True when the status the client got was generated by the load balancer (HTTPCode_ELB_*). */
  readonly elbGenerated: boolean
  readonly log: AccessLogRecord
  /**
   * The defects found in the backend's response (or the client's request for 'bad-request'): the
   * first few of each code (the parser keeps a bounded number per code; `defectCounts` has the totals).
   */
  readonly defects: readonly Defect[]
  /** How many times each code was found in total, including occurrences `defects` does not list. */
  readonly defectCounts: Readonly<Partial<Record<DefectCode, number>>>
  /** The instance the request was sent to or meant for (`host:port`), even when it was not reached; null when none was picked. */
  readonly instance: string | null
  /** That instance's id (`i-` and 17 hex digits); null when none was picked. */
  readonly instanceId: string | null
  /**
   * The system or TLS error of the backend connection (e.g. ECONNREFUSED, ENOTFOUND, ECONNRESET,
   * UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_SSL_WRONG_VERSION_NUMBER), when one ended it; else null.
   */
  readonly backendError: string | null
  /**
   * Node's words for backendError (OpenSSL's reason for a TLS error: "wrong version number",
   * "unable to verify the first certificate"); null or absent when there are none.
   */
  readonly backendErrorMessage?: string | null
  /**
   * When connections to more than one instance failed for this request (a refused connection is
   * retried on another): each, in order; absent otherwise.
   */
  readonly connectionFailures?: ReadonlyArray<{ readonly instance: string; readonly error: string }>
  /** A TCP/SSL listener's connection whose ssl instance failed its TLS handshake ('passthrough-refused'); absent otherwise. */
  readonly tlsHandshakeFailed?: true
  /**
   * The defect behind an ELB-generated answer: the one that decided a rejection ('rejected'), or
   * EMPTY_RESPONSE for the 504 of an instance that closed without a byte ('backend-closed'); null otherwise.
   */
  readonly primaryDefect: Defect | null
  /**
   * The first bytes the backend sent (up to captureBytes), for diagnostics and captures; null when
   * none arrived, and for a relayed response without any defect (not copied, to save the work).
   */
  readonly responseBytes: Buffer | null
  /** The request head as the client sent it (bounded), null when nothing parseable arrived. */
  readonly requestHead: Buffer | null
  /**
   * The request's desync classification (CLB-DESYNC: Compliant, Acceptable, Ambiguous, Severe) and
   * the reason that decided it, with its offset in the request head; absent for a request whose
   * head was never complete (a 400 of the parser, a 408).
   */
  readonly desync?: { readonly tier: DesyncTier, readonly reason: string, readonly offset: number | null, readonly message: string | null }
}

export interface ClbProxyEventMap {
  /** One per request, after the client got its answer (or went away). */
  exchange: [ExchangeRecord]
  /** The proxy read `bytes` more bytes from a backend (for tests that deliver a response in pieces). */
  'backend-read': [{ readonly bytes: number }]
  /**
   * A pooled backend connection carried bytes while idle, or the instance closed it before the idle
   * timeout (told CLOSE_BURST_MS after the close, once it is known not to be part of a restart:
   * 'backend-closed-together'); diagnostics only.
   */
  'backend-idle-event': [{ readonly backend: string; readonly event: 'extra-bytes' | 'closed'; readonly bytes: number; readonly idleSeconds: number }]
  /**
   * The instance closed several idle connections at once, idle for times far apart: it restarted or
   * stopped (a process that exits, a server.close()), which is not the keep-alive race. Its closes
   * are not told one by one.
   */
  'backend-closed-together': [{ readonly backend: string; readonly connections: number; readonly minIdleSeconds: number; readonly maxIdleSeconds: number }]
  /**
   * A request asked to switch protocols (an Upgrade header, e.g. WebSocket). CLB HTTP listeners do
   * not pass upgrades (clb-behavior.md section 5.10): Upgrade and Connection are dropped and the
   * request is forwarded as a plain request. One event per such request.
   */
  'upgrade-dropped': [{ readonly method: string; readonly target: string; readonly protocol: string }]
  /**
   * An instance was registered, changed state, or was removed after deregistration (then `current`
   * is OutOfService "Instance is not currently registered with the LoadBalancer." and `registered` false).
   * `previous` is null for a registration.
   */
  'instance-state': [InstanceStateChange]
  /** One health check of one instance finished. */
  'health-check': [{ readonly instanceId: string; readonly instance: string; readonly result: HealthCheckResult }]
  /**
   * A connection to an instance could not be established (CLB-CW BackendConnectionErrors, which
   * "includes health-check connection errors"): for a request (`source` 'request') or a health check.
   * For an https instance a failed TLS handshake is one too (`error` is its TLS error code).
   */
  'backend-connection-error': [{ readonly instanceId: string; readonly instance: string; readonly error: string; readonly source: 'request' | 'health-check' }]
  /** The surge queue's length changed (CLB-CW SurgeQueueLength). */
  'surge-queue': [{ readonly length: number }]
}

export interface InstanceStateChange {
  readonly instanceId: string
  /** `host:port` */
  readonly instance: string
  readonly previous: InstanceState | null
  readonly current: InstanceState
  /** Whether the instance is still registered after this change. */
  readonly registered: boolean
  /** The health check that caused the change, if one did. */
  readonly lastCheck: HealthCheckResult | null
}

export class ClbProxyEvents extends EventEmitter<ClbProxyEventMap> {}
