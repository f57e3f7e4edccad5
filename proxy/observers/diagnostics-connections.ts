/**
 * The diagnostics of connections to an instance that failed for a request, a subscriber of the
 * 'backend-connection-error' lifecycle event (source 'request'; health checks say theirs in the
 * instance's state). CLB-CW BackendConnectionErrors: "Because the load balancer retries the
 * connection when there are errors, this count can exceed the request rate": the request goes to
 * another instance in service, whose answer the client gets as if nothing happened, or gets a 503
 * (which the exchange's own diagnostic explains, naming every instance tried); a failed TLS
 * handshake gets its 408, and a TCP listener's client is closed, each with its own line. Without this, an
 * instance that is down behind a healthy one left no trace but a metric.
 *
 * Said once per instance and error, and again when the error changes or REPEAT_AFTER_MS have passed
 * since it was last said (with the count since), so a dead instance is not a line per request.
 * When the proxy stops (unsubscribe), one line per instance gives the failures not said.
 */
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import type { ClbProxyEventMap, ClbProxyEvents } from '../core/events.js'
import { escapeForeign } from './diagnostics-escape.js'

/** Our choice: characters of a system error (a code such as ECONNREFUSED, else Node's message). */
export const MAX_ERROR_CHARS = 80

type BackendConnectionErrorEvent = ClbProxyEventMap['backend-connection-error'][0]

/** Our choice: a failing instance is said again at most once a minute. */
export const REPEAT_AFTER_MS = 60_000

export interface ConnectionDiagnosticsOptions {
  /** Whether health checks run: without them an instance that refuses connections stays in service. */
  readonly healthChecked: boolean
  /** Milliseconds, for REPEAT_AFTER_MS (default Date.now). */
  readonly nowMs?: () => number
}

interface Said {
  error: string
  atMs: number
  /** Failures since it was last said (those not said yet, between two lines), and in all. */
  since: number
  total: number
}

export function subscribeConnectionDiagnostics (events: ClbProxyEvents, logger: DiagnosticsLogger, options: ConnectionDiagnosticsOptions): () => void {
  const nowMs = options.nowMs ?? Date.now
  // One entry per instance that failed: registered instances, a bounded set.
  const said = new Map<string, Said>()
  const advice = options.healthChecked
    ? ''
    : '. Without a health check it stays in service and every request routed to it is tried there first: --health-check (healthCheck) takes it out of service while it fails'
  const onError = (event: BackendConnectionErrorEvent): void => {
    if (event.source !== 'request') return
    const now = nowMs()
    const last = said.get(event.instance)
    if (last !== undefined) {
      last.since++
      last.total++
      if (last.error === event.error && now - last.atMs < REPEAT_AFTER_MS) return
    }
    const entry: Said = last ?? { error: event.error, atMs: now, since: 1, total: 1 }
    const count = last === undefined ? '' : ` (${entry.since} failed connection(s) to it since it was last said)`
    entry.error = event.error
    entry.atMs = now
    entry.since = 0
    said.set(event.instance, entry)
    logger.warn({ notice: 'backend-connection-error', instanceId: event.instanceId, instance: event.instance, error: event.error, count: entry.total },
      `${describeConnectionError(event.instance, event.error)}${count}. A request whose connection is refused or unreachable is ` +
      'retried on another instance in service when there is one; any other failure the load balancer answers itself, and ' +
      `its own line says how (CLB-CW BackendConnectionErrors counts each failed connection)${advice}`)
  }
  events.on('backend-connection-error', onError)
  return () => {
    events.off('backend-connection-error', onError)
    for (const [instance, entry] of said) {
      if (entry.since === 0) continue
      logger.info({ notice: 'backend-connection-error-total', instance, count: entry.total },
        `connections to ${instance} failed for requests ${entry.total} time(s) in total`)
    }
    said.clear()
  }
}

/** What a system error of the backend connection means, with the instance it concerns. */
export function describeConnectionError (instance: string, code: string): string {
  switch (code) {
    case 'ECONNREFUSED': return `connection to ${instance} refused (ECONNREFUSED): nothing listens on that address`
    case 'ENOTFOUND': return `the host name of ${instance} was not found (ENOTFOUND)`
    case 'EAI_AGAIN': return `the host name of ${instance} could not be resolved right now (EAI_AGAIN)`
    case 'ETIMEDOUT': return `connection to ${instance} timed out (ETIMEDOUT)`
    case 'EHOSTUNREACH': return `${instance} is unreachable (EHOSTUNREACH): no route to the host`
    case 'ENETUNREACH': return `${instance} is unreachable (ENETUNREACH): no route to the network`
    case 'EADDRNOTAVAIL': return `connection to ${instance} failed (EADDRNOTAVAIL): the address cannot be used from this machine`
    case 'ECONNRESET': return `connection to ${instance} was reset (ECONNRESET) before it was established`
    default: return `connection to ${instance} failed (${escapeForeign(code, MAX_ERROR_CHARS)})`
  }
}
