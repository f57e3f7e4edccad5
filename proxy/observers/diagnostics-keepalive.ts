/**
 * The diagnostics of pooled (kept-alive) backend connections, a subscriber of the
 * 'backend-idle-event' lifecycle event:
 *
 * - an instance that closes a kept-alive connection before the idle timeout: the cause of CLB's
 *   intermittent 504s (CLB-HTTPERR 504 cause 2: "Registered instances closing the connection to
 *   Elastic Load Balancing"; solution: "make sure that the keep-alive timeout is greater than the
 *   idle timeout settings of your load balancer");
 * - an instance that sends bytes on an idle kept-alive connection (EXTRA_BYTES_AFTER_RESPONSE);
 * - an instance that closes several idle connections at once ('backend-closed-together': it
 *   restarted or stopped, e.g. a dev server reloading on save): said as that, one line each time, without the
 *   keep-alive advice, which would be wrong for it.
 *
 * A default Node server closes every idle connection after 5 s, so a busy proxy sees this on
 * almost every connection: printed per connection, it was hundreds of identical lines an hour.
 * Each is printed once per instance, with the fix and a running count, and again only when what
 * was observed changes (docs/architecture.md, "Diagnostics"):
 * - an early close: when its idle time differs by IDLE_CHANGE_SECONDS or more from the idle time
 *   of the last printed one (a backend whose keep-alive timeout was changed, or a second server
 *   behind the same address). The keepaliveRace mode is fixed for a proxy's life and named in
 *   every line;
 * - extra bytes: when the number of bytes differs from the last printed one.
 * When the proxy stops (unsubscribe), one line per instance gives the totals of what was not printed.
 */
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import type { ClbProxyEventMap, ClbProxyEvents } from '../core/events.js'
import type { ResolvedOptions } from '../core/options.js'

type BackendIdleEvent = ClbProxyEventMap['backend-idle-event'][0]
type ClosedTogetherEvent = ClbProxyEventMap['backend-closed-together'][0]

export type KeepaliveDiagnosticsOptions = Pick<ResolvedOptions, 'idleTimeoutSeconds' | 'keepaliveRace'>

/** Our choice: an early close is printed again when its idle time moves by a second or more. */
export const IDLE_CHANGE_SECONDS = 1

/**
 * Our choice: the keep-alive timeout we suggest is the idle timeout plus 5 s (65 000 ms for CLB's
 * default 60 s), so the load balancer, not the instance, is always the side that closes an idle
 * connection (CLB-IDLE: the keep-alive timeout must be greater than the idle timeout).
 */
const KEEPALIVE_MARGIN_MS = 5000
/**
 * Node closes a kept-alive connection when the next request's headers do not arrive within
 * server.headersTimeout, so that must exceed keepAliveTimeout too (nodejs/node#27363); our
 * suggestion is one second more.
 */
const HEADERS_MARGIN_MS = 1000

interface InstanceState {
  closedCount: number
  /** Idle time of the last printed early close; null before the first. */
  printedIdleSeconds: number | null
  closedPrinted: number
  minIdleSeconds: number
  maxIdleSeconds: number
  extraBytesCount: number
  printedExtraBytes: number | null
  extraBytesPrinted: number
}

/** What to set on the instance: the keep-alive timeout above the idle timeout, and Node's two settings. */
export function keepaliveFix (idleTimeoutSeconds: number): string {
  const keepAliveMs = idleTimeoutSeconds * 1000 + KEEPALIVE_MARGIN_MS
  return `set the instance's keep-alive timeout above the ${idleTimeoutSeconds} s idle timeout, e.g. ${keepAliveMs} ms; ` +
    `for Node: server.keepAliveTimeout = ${withDigitSeparators(keepAliveMs)} and server.headersTimeout above it ` +
    `(e.g. ${withDigitSeparators(keepAliveMs + HEADERS_MARGIN_MS)})`
}

/** 65000 as a JavaScript numeric literal with separators: 65_000. */
function withDigitSeparators (value: number): string {
  return String(value).replace(/\B(?=(\d{3})+$)/g, '_')
}

function times (count: number): string {
  return count === 1 ? '1 time' : `${count} times`
}

export function subscribeKeepaliveDiagnostics (events: ClbProxyEvents, logger: DiagnosticsLogger, options: KeepaliveDiagnosticsOptions): () => void {
  // One entry per instance: the configured backends, a bounded set.
  const instances = new Map<string, InstanceState>()
  const stateOf = (backend: string): InstanceState => {
    let state = instances.get(backend)
    if (state === undefined) {
      state = {
        closedCount: 0,
        printedIdleSeconds: null,
        closedPrinted: 0,
        minIdleSeconds: Number.POSITIVE_INFINITY,
        maxIdleSeconds: 0,
        extraBytesCount: 0,
        printedExtraBytes: null,
        extraBytesPrinted: 0
      }
      instances.set(backend, state)
    }
    return state
  }
  const fix = keepaliveFix(options.idleTimeoutSeconds)
  const emulated = options.keepaliveRace === 'emulate'
    ? ' (keepalive-race emulate: the next request that would reuse it gets that 504 here too)'
    : ''

  const onIdleEvent = (event: BackendIdleEvent): void => {
    const state = stateOf(event.backend)
    if (event.event === 'extra-bytes') {
      state.extraBytesCount++
      if (state.printedExtraBytes === event.bytes) return
      state.printedExtraBytes = event.bytes
      state.extraBytesPrinted++
      logger.warn({
        notice: 'extra-bytes',
        backend: event.backend,
        defect: 'EXTRA_BYTES_AFTER_RESPONSE',
        bytes: event.bytes,
        idleSeconds: event.idleSeconds,
        count: state.extraBytesCount
      }, `instance ${event.backend} sent ${event.bytes} byte(s) on an idle kept-alive connection, after a complete ` +
        `response (EXTRA_BYTES_AFTER_RESPONSE); the connection was closed. ${times(state.extraBytesCount)} so far; ` +
        'repeats are counted, and printed again only when the number of bytes changes')
      return
    }
    state.closedCount++
    state.minIdleSeconds = Math.min(state.minIdleSeconds, event.idleSeconds)
    state.maxIdleSeconds = Math.max(state.maxIdleSeconds, event.idleSeconds)
    const printed = state.printedIdleSeconds
    if (printed !== null && Math.abs(event.idleSeconds - printed) < IDLE_CHANGE_SECONDS) return
    state.printedIdleSeconds = event.idleSeconds
    state.closedPrinted++
    logger.warn({
      notice: 'keepalive-closed',
      backend: event.backend,
      idleSeconds: event.idleSeconds,
      idleTimeoutSeconds: options.idleTimeoutSeconds,
      keepaliveRace: options.keepaliveRace,
      count: state.closedCount,
      fix
    }, `instance ${event.backend} closed a kept-alive connection after ${event.idleSeconds.toFixed(1)} s idle, before the ` +
      `${options.idleTimeoutSeconds} s idle timeout: on a real CLB a request that reuses such a connection gets a 504${emulated}. ` +
      `${times(state.closedCount)} so far; repeats are counted, and printed again only when the idle time changes by ` +
      `${IDLE_CHANGE_SECONDS} s or more`)
  }

  // CLB's lifecycle has no such event: clb-proxy's own, when an instance restarted or stopped.
  const onClosedTogether = (event: ClosedTogetherEvent): void => {
    logger.info({
      notice: 'instance-closed-together',
      backend: event.backend,
      connections: event.connections,
      minIdleSeconds: event.minIdleSeconds,
      maxIdleSeconds: event.maxIdleSeconds
    }, `instance ${event.backend} closed ${event.connections} idle kept-alive connections at once, idle for ` +
      `${event.minIdleSeconds.toFixed(1)} to ${event.maxIdleSeconds.toFixed(1)} s: it restarted or stopped (a keep-alive ` +
      'timeout closes each connection when its own idle time runs out); the next requests open new connections')
  }

  events.on('backend-idle-event', onIdleEvent)
  events.on('backend-closed-together', onClosedTogether)
  return () => {
    events.off('backend-idle-event', onIdleEvent)
    events.off('backend-closed-together', onClosedTogether)
    // The totals the lines above did not show: the running counts at the end.
    for (const [backend, state] of instances) {
      if (state.closedCount > state.closedPrinted) {
        logger.info({ notice: 'keepalive-closed-total', backend, count: state.closedCount, minIdleSeconds: state.minIdleSeconds, maxIdleSeconds: state.maxIdleSeconds, fix },
          `instance ${backend} closed a kept-alive connection before the ${options.idleTimeoutSeconds} s idle timeout ` +
          `${times(state.closedCount)} in total, after ${state.minIdleSeconds.toFixed(1)} to ${state.maxIdleSeconds.toFixed(1)} s idle`)
      }
      if (state.extraBytesCount > state.extraBytesPrinted) {
        logger.info({ notice: 'extra-bytes-total', backend, defect: 'EXTRA_BYTES_AFTER_RESPONSE', count: state.extraBytesCount },
          `instance ${backend} sent bytes on an idle kept-alive connection ${times(state.extraBytesCount)} in total ` +
          '(EXTRA_BYTES_AFTER_RESPONSE)')
      }
    }
    instances.clear()
  }
}
