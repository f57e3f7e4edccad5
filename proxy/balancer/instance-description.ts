import type { InstanceDescription } from '../core/instance-description.js'
import type { Instance } from './instance.js'
import { instanceProtocolOf } from '../core/options.js'

export type { InstanceDescription }

/** The admin API's and the library's view of one registered instance. */
export function describeInstance (instance: Instance): InstanceDescription {
  return {
    ...instance.state,
    Address: instance.label,
    Url: `${instanceProtocolOf(instance.address)}://${instance.label}`,
    OutstandingRequests: instance.outstanding,
    Routable: instance.routable,
    LastChecks: [...instance.lastChecks]
  }
}
