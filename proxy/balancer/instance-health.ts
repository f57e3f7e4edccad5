/**
 * The health of one registered instance as CLB reports it (DescribeInstanceHealth's InstanceState)
 * and how one health check moves it. Pure: the health monitor runs the checks, the pool applies
 * the results. The descriptions are the API's own strings (API InstanceState: "This string can
 * contain one or more of the following messages").
 */
import type { HealthCheckResult, InstanceReasonCode, InstanceStateName } from '../core/events.js'

export const INSTANCE_DESCRIPTIONS = Object.freeze({
  notApplicable: 'N/A',
  transientError: 'A transient error occurred. Please try again later.',
  failedUnhealthyThreshold: 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.',
  notPassedHealthyThreshold: 'Instance has not passed the configured HealthyThreshold number of health checks consecutively.',
  registrationInProgress: 'Instance registration is still in progress.',
  notRegistered: 'Instance is not currently registered with the LoadBalancer.',
  deregistrationInProgress: 'Instance deregistration currently in progress.'
})

export interface HealthStatus {
  readonly State: InstanceStateName
  readonly ReasonCode: InstanceReasonCode
  readonly Description: string
  /** Whether requests may be routed to the instance (InService by its health checks). */
  readonly inService: boolean
  /** Whether it has ever been in service since registration (a new instance needs one pass, CLB-CW). */
  readonly everInService: boolean
  readonly consecutivePasses: number
  readonly consecutiveFailures: number
}

export interface Thresholds {
  readonly healthyThreshold: number
  readonly unhealthyThreshold: number
}

/** Without health checks every registered instance is in service (docs/clb-choices.md). */
export const ALWAYS_IN_SERVICE: HealthStatus = Object.freeze({
  State: 'InService',
  ReasonCode: 'N/A',
  Description: INSTANCE_DESCRIPTIONS.notApplicable,
  inService: true,
  everInService: true,
  consecutivePasses: 0,
  consecutiveFailures: 0
})

/** A newly registered instance with health checks: out of service until its first passing check. */
export const REGISTERING: HealthStatus = Object.freeze({
  State: 'OutOfService',
  ReasonCode: 'ELB',
  Description: INSTANCE_DESCRIPTIONS.registrationInProgress,
  inService: false,
  everInService: false,
  consecutivePasses: 0,
  consecutiveFailures: 0
})

// Errors of this machine, not of the instance: the check could not be made (API InstanceState
// "A transient error occurred"); the state reads Unknown until a check can be made again.
const LOCAL_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'EADDRNOTAVAIL', 'ENOMEM'])

/**
 * The status after one health check.
 * - CLB-CW HealthyHostCount: a new instance is healthy "after it passes the first health check";
 * - CLB-HC: an instance in service goes OutOfService after UnhealthyThreshold consecutive failures,
 *   and back InService after HealthyThreshold consecutive passes;
 * - a check that could not be made for a local reason leaves the counters alone and reads Unknown.
 */
export function afterHealthCheck (status: HealthStatus, result: HealthCheckResult, thresholds: Thresholds): HealthStatus {
  if (!result.passed && result.error !== null && LOCAL_ERRORS.has(result.error)) {
    return { ...status, State: 'Unknown', ReasonCode: 'ELB', Description: INSTANCE_DESCRIPTIONS.transientError }
  }
  if (result.passed) {
    const consecutivePasses = status.consecutivePasses + 1
    if (!status.everInService || status.inService || consecutivePasses >= thresholds.healthyThreshold) {
      return { ...ALWAYS_IN_SERVICE, everInService: true, consecutivePasses, consecutiveFailures: 0 }
    }
    return {
      ...status,
      State: 'OutOfService',
      ReasonCode: 'Instance',
      Description: INSTANCE_DESCRIPTIONS.notPassedHealthyThreshold,
      consecutivePasses,
      consecutiveFailures: 0
    }
  }
  const consecutiveFailures = status.consecutiveFailures + 1
  if (consecutiveFailures >= thresholds.unhealthyThreshold) {
    return {
      State: 'OutOfService',
      ReasonCode: 'Instance',
      Description: INSTANCE_DESCRIPTIONS.failedUnhealthyThreshold,
      inService: false,
      everInService: status.everInService,
      consecutivePasses: 0,
      consecutiveFailures
    }
  }
  // Below the threshold nothing changes but the count: an instance in service stays in service.
  const unchanged = status.State === 'Unknown' ? (status.everInService ? { ...status, ...inServiceOrOut(status) } : { ...status, ...REGISTERING_LABEL }) : status
  return { ...unchanged, consecutivePasses: 0, consecutiveFailures }
}

const REGISTERING_LABEL = { State: REGISTERING.State, ReasonCode: REGISTERING.ReasonCode, Description: REGISTERING.Description }

function inServiceOrOut (status: HealthStatus): Pick<HealthStatus, 'State' | 'ReasonCode' | 'Description'> {
  return status.inService
    ? { State: 'InService', ReasonCode: 'N/A', Description: INSTANCE_DESCRIPTIONS.notApplicable }
    : { State: 'OutOfService', ReasonCode: 'Instance', Description: INSTANCE_DESCRIPTIONS.failedUnhealthyThreshold }
}
