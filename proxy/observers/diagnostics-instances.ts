/**
 * The diagnostics of the instance model, a subscriber of the 'instance-state' lifecycle event:
 * one line per registration, state change and removal (instance, old and new state, reason, the
 * last health check's result), and what the 503 of "no instance in service" needs to say why
 * (each registered instance's state and last check).
 */
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import type { ClbProxyEvents, HealthCheckResult, InstanceState, InstanceStateChange } from '../core/events.js'
import { escapeForeign } from './diagnostics-escape.js'

/** Our choice: characters of a health check's summary kept (it can quote a defect message). */
const MAX_CHECK_CHARS = 200
/** InstanceState's description of a registered instance not yet checked (API InstanceState). */
const REGISTRATION_IN_PROGRESS = 'Instance registration is still in progress.'
/** Instances named in a 503's diagnostic; the rest are counted. */
const MAX_INSTANCES_LISTED = 5

interface Known {
  readonly label: string
  readonly state: InstanceState
  readonly lastCheck: HealthCheckResult | null
}

export interface InstanceDiagnostics {
  /** Why no instance could take a request: each registered instance's state and last check, in one sentence. */
  describeInstances (): string
  unsubscribe (): void
}

/** `last check: 302, not 200 (4 ms)` */
export function describeCheck (check: HealthCheckResult): string {
  return `last health check: ${escapeForeign(check.summary, MAX_CHECK_CHARS)}`
}

function stateText (state: InstanceState): string {
  return `${state.State} (${state.ReasonCode}: ${state.Description})`
}

export function subscribeInstanceDiagnostics (events: ClbProxyEvents, logger: DiagnosticsLogger): InstanceDiagnostics {
  const known = new Map<string, Known>()
  // A new instance's failing checks change no state until the unhealthy threshold: its first
  // failure is said at once, so a wrong health path does not stay silent for a whole interval.
  const toldFirstFailure = new Set<string>()

  const onState = (change: InstanceStateChange): void => {
    const name = `instance ${change.instanceId} (${change.instance})`
    const fields = {
      notice: 'instance-state',
      instanceId: change.instanceId,
      instance: change.instance,
      from: change.previous?.State ?? null,
      to: change.current.State,
      reasonCode: change.current.ReasonCode,
      description: change.current.Description,
      registered: change.registered,
      ...(change.lastCheck === null ? {} : { lastCheck: { ...change.lastCheck, summary: escapeForeign(change.lastCheck.summary, MAX_CHECK_CHARS) } })
    }
    const check = change.lastCheck === null ? '' : `; ${describeCheck(change.lastCheck)}`
    if (!change.registered) {
      known.delete(change.instanceId)
      toldFirstFailure.delete(change.instanceId)
      // A registration never announced (no health checks): its removal is still worth a line.
      logger.info(fields, `${name} deregistered: ${stateText(change.current)}`)
      return
    }
    known.set(change.instanceId, { label: change.instance, state: change.current, lastCheck: change.lastCheck ?? known.get(change.instanceId)?.lastCheck ?? null })
    if (change.previous === null) {
      // Without health checks an instance is simply in service from the start: nothing to say.
      if (change.current.ReasonCode !== 'N/A') logger.info(fields, `${name} registered: ${stateText(change.current)}`)
      return
    }
    // The same state with a new reason (a registration's checks failing) is not a transition.
    const transition = change.previous.State === change.current.State ? 'still ' : `${change.previous.State} -> `
    const message = `${name}: ${transition}${stateText(change.current)}${check}`
    if (change.current.State === 'InService') logger.info(fields, message)
    else logger.warn(fields, message)
  }
  const onCheck = ({ instanceId, instance, result }: { readonly instanceId: string, readonly instance: string, readonly result: HealthCheckResult }): void => {
    const entry = known.get(instanceId)
    if (entry !== undefined) known.set(instanceId, { ...entry, lastCheck: result })
    if (result.passed || entry === undefined || entry.state.Description !== REGISTRATION_IN_PROGRESS || toldFirstFailure.has(instanceId)) return
    toldFirstFailure.add(instanceId)
    logger.warn({ notice: 'health-check-failed', instanceId, instance, lastCheck: { ...result, summary: escapeForeign(result.summary, MAX_CHECK_CHARS) } },
      `instance ${instanceId} (${instance}) failed its first health check: ${escapeForeign(result.summary, MAX_CHECK_CHARS)}; it stays out of service until a check passes`)
  }
  events.on('instance-state', onState)
  events.on('health-check', onCheck)

  return {
    describeInstances () {
      if (known.size === 0) return 'no instance is registered (CLB-HTTPERR 503: "There are no registered instances")'
      const listed = [...known.entries()].slice(0, MAX_INSTANCES_LISTED).map(([id, entry]) =>
        `${id} (${entry.label}) ${entry.state.State}: ${entry.state.Description.replace(/\.$/, '')}${entry.lastCheck === null ? '' : `, ${describeCheck(entry.lastCheck)}`}`)
      const more = known.size > MAX_INSTANCES_LISTED ? `; and ${known.size - MAX_INSTANCES_LISTED} more` : ''
      return `no registered instance can take requests (CLB-HTTPERR 503: "There are no healthy instances"): ${listed.join('; ')}${more}`
    },
    unsubscribe () {
      events.off('instance-state', onState)
      events.off('health-check', onCheck)
    }
  }
}
