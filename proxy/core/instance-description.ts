import type { HealthCheckResult, InstanceState } from './events.js'

/**
 * One registered instance as the admin API and the library describe it: DescribeInstanceHealth's
 * InstanceState fields (InstanceId, State, ReasonCode, Description), then what a laptop adds: its
 * address, the requests it is serving and its last health checks.
 */
export interface InstanceDescription extends InstanceState {
  /** `host:port`, IPv6 in brackets. */
  readonly Address: string
  /** `protocol://host:port` (http, https, tcp or ssl, as registered): what `register()` and `--backend` take. */
  readonly Url: string
  /** Requests it is serving now (least outstanding requests routes by this). */
  readonly OutstandingRequests: number
  /** Whether it is routable now: in service and not deregistering. */
  readonly Routable: boolean
  /** The last health checks, newest last (empty without health checks). */
  readonly LastChecks: readonly HealthCheckResult[]
}
