/**
 * The load balancer's routing over its registered instances: least outstanding requests, the
 * surge queue and spillover, registration and deregistration with connection draining, and the
 * health states the health checks move.
 */
import type { HealthCheckResult, InstanceState } from '../core/events.js'
import type { HealthCheckTarget } from '../core/health-check-target.js'
import type { BackendAddress } from '../core/options.js'
import { HealthMonitor } from './health-monitor.js'
import { INSTANCE_DESCRIPTIONS, afterHealthCheck } from './instance-health.js'
import { instanceIdFor } from './instance-id.js'
import { Instance, KEPT_HEALTH_CHECKS, type InFlightRequest, type PoolSettings, type QueuedRequest } from './instance.js'

export interface BalancerSettings extends PoolSettings {
  /** Requests one instance serves at once; beyond it requests wait in the surge queue. */
  readonly maxInstanceConnections: number
  /** Requests that may wait in the surge queue; beyond it, spillover (503). */
  readonly surgeQueueSize: number
  /** Connection draining timeout (ms); 0: draining disabled. */
  readonly drainingTimeoutMs: number
  /** null: no health checks, every registered instance is in service. */
  readonly healthCheck: {
    readonly target: HealthCheckTarget
    readonly intervalMs: number
    readonly timeoutMs: number
    readonly healthyThreshold: number
    readonly unhealthyThreshold: number
    readonly maxHeadBytes: number
  } | null
}

/** What route() decided for one request: the instance it now holds a slot of, or why none (no object per request). */
export type Routed = Instance | 'queued' | 'no-instance-in-service' | 'spillover'

/**
 * The registered instances: their health, routing by least outstanding requests (ELB-HOW: "least
 * outstanding requests routing algorithm for HTTP and HTTPS listeners"), the surge queue
 * (CLB-CW SurgeQueueLength: requests "pending routing to a healthy instance"; SpilloverCount:
 * "rejected because the surge queue is full"), registration and deregistration with connection
 * draining (CLB-DRAIN).
 */
export class BackendPool {
  private readonly registered: Instance[] = []
  private readonly queue: QueuedRequest[] = []
  private readonly drainingTimers = new Map<Instance, NodeJS.Timeout>()
  /** Removed instances whose connections are still closing. */
  private readonly leaving = new Set<Instance>()
  private readonly monitor: HealthMonitor | null
  private nextTieBreak = 0
  /** Round robin over the TCP/SSL instances, for the connections of TCP and SSL listeners. */
  private nextConnectionTurn = 0
  private started = false
  private closed = false

  constructor (private readonly initial: readonly BackendAddress[], private readonly settings: BalancerSettings) {
    const check = settings.healthCheck
    this.monitor = check === null
      ? null
      : new HealthMonitor(
        { target: check.target, intervalMs: check.intervalMs, timeoutMs: check.timeoutMs, maxHeadBytes: check.maxHeadBytes, clock: settings.clock, backendCa: settings.backendCa },
        (id, result) => this.applyHealthCheck(id, result)
      )
  }

  /** Registers the configured instances (each an 'instance-state' event) and starts the health checks. */
  start (): void {
    if (this.started) return
    this.started = true
    for (const address of this.initial) this.register(address)
  }

  /** Registered instances, including those draining, in registration order. */
  get instances (): readonly Instance[] {
    return this.registered
  }

  get surgeQueueLength (): number {
    return this.queue.length
  }

  find (id: string): Instance | undefined {
    return this.registered.find((instance) => instance.id === id)
  }

  /**
   * Registers an instance (RegisterInstancesWithLoadBalancer). Registering an address already
   * registered returns that instance; one still draining is registered again and stops draining.
   */
  register (address: BackendAddress): Instance {
    if (this.closed) throw new Error('the proxy is closed: no instance can be registered')
    const id = instanceIdFor(address)
    const existing = this.find(id)
    if (existing !== undefined) {
      if (existing.deregistering) {
        const previous = existing.state
        existing.deregistering = false
        this.clearDrainingTimer(existing)
        // deregister() stopped its health checks: they start again with the registration.
        this.monitor?.start(existing.id, existing.address)
        this.emitState(existing, previous, true, null)
        this.dispatchQueued()
      }
      return existing
    }
    const instance = new Instance(address, this.settings, this.monitor !== null)
    this.registered.push(instance)
    this.emitState(instance, null, true, null)
    this.monitor?.start(instance.id, address)
    this.dispatchQueued()
    return instance
  }

  /**
   * Deregisters an instance (DeregisterInstancesFromLoadBalancer). CLB-DRAIN: with connection
   * draining, no new request goes to it and in-flight requests may finish until the timeout, when
   * the load balancer "forcibly closes connections to the de-registering instance"; without, in-flight
   * requests "are not completed" (CLB's 504, observed in O-CTB). Returns false for an unknown id.
   */
  deregister (id: string): boolean {
    if (this.closed) throw new Error('the proxy is closed: no instance can be deregistered')
    const instance = this.find(id)
    if (instance === undefined) return false
    if (instance.deregistering) return true
    const previous = instance.state
    instance.deregistering = true
    this.monitor?.stop(instance.id)
    if (instance.outstanding === 0) {
      this.remove(instance, previous)
      return true
    }
    if (this.settings.drainingTimeoutMs === 0) {
      for (const request of instance.inFlight.snapshot()) request.instanceGone()
      this.remove(instance, previous)
      return true
    }
    this.emitState(instance, previous, true, null)
    this.drainingTimers.set(instance, setTimeout(() => {
      this.drainingTimers.delete(instance)
      for (const request of instance.inFlight.snapshot()) request.instanceGone()
      this.remove(instance, instance.state)
    }, this.settings.drainingTimeoutMs))
    if (this.routableCount() === 0) this.failQueued()
    return true
  }

  /**
   * Picks the instance for one request: `preferred` (a sticky session's instance) when it is
   * routable and has a free slot; else the routable instance with the fewest outstanding requests
   * below maxInstanceConnections, ties round robin; else the surge queue; else spillover.
   */
  route (request: QueuedRequest, preferred: Instance | null): Routed {
    const limit = this.settings.maxInstanceConnections
    let instance: Instance | null = preferred !== null && preferred.routable && preferred.outstanding < limit && preferred.servesHttp ? preferred : null
    if (instance === null) {
      if (this.routableCount() === 0) return 'no-instance-in-service'
      // Requests already waiting go first: a new one may not overtake the queue.
      instance = this.queue.length === 0 ? this.pick() : null
    }
    if (instance !== null) {
      instance.inFlight.add(request)
      return instance
    }
    if (this.queue.length >= this.settings.surgeQueueSize) return 'spillover'
    this.queue.push(request)
    this.settings.events.emit('surge-queue', { length: this.queue.length })
    return 'queued'
  }

  /**
   * Another attempt for a request whose connection to `failed` could not be established:
   * CLB-CW BackendConnectionErrors, "Because the load balancer retries the connection when there
   * are errors, this count can exceed the request rate." The request keeps its slot on `failed`
   * until it has one elsewhere; null when no other routable instance has a free slot.
   */
  retry (request: InFlightRequest, failed: Instance, tried: readonly Instance[]): Instance | null {
    // The round-robin turn was taken when the request was routed: a retry does not take another.
    const instance = this.pick(tried, false)
    failed.inFlight.delete(request)
    if (instance === null) {
      this.afterSlotFreed(failed)
      return null
    }
    instance.inFlight.add(request)
    this.afterSlotFreed(failed)
    return instance
  }

  /** The request is over: frees its slot (or its place in the queue). */
  finished (request: InFlightRequest, instance: Instance | null): void {
    if (instance === null) {
      const index = this.queue.indexOf(request as QueuedRequest)
      if (index !== -1) {
        this.queue.splice(index, 1)
        this.settings.events.emit('surge-queue', { length: this.queue.length })
      }
      return
    }
    if (!instance.inFlight.delete(request)) return
    this.afterSlotFreed(instance)
  }

  /**
   * The instance for one connection of a TCP or SSL listener: round robin over the routable tcp/ssl
   * instances (CLB-LISTEN: "the load balancer uses the round robin routing algorithm for TCP
   * listeners"), skipping those already `tried` for this connection; the connection holds a slot
   * there until finished() (draining and deregistration tell it through instanceGone()). Null when
   * none is left. Connections have no surge queue and no per-instance limit (docs/listeners.md).
   */
  routeConnection (connection: InFlightRequest, tried: readonly Instance[] = []): Instance | null {
    const count = this.registered.length
    for (let k = 0; k < count; k++) {
      const candidate = this.registered[(this.nextConnectionTurn + k) % count] as Instance
      if (!candidate.routable || candidate.servesHttp || tried.includes(candidate)) continue
      // A retry (a refused connection, as for HTTP requests) takes no turn of its own.
      if (tried.length === 0) this.nextConnectionTurn = (this.nextConnectionTurn + k + 1) % count
      candidate.inFlight.add(connection)
      return candidate
    }
    return null
  }

  /** The least outstanding requests among routable http/https instances with a free slot, ties round robin. */
  private pick (exclude?: readonly Instance[], takeTurn = true): Instance | null {
    const count = this.registered.length
    const limit = this.settings.maxInstanceConnections
    let best: Instance | null = null
    for (let k = 0; k < count; k++) {
      const candidate = this.registered[(this.nextTieBreak + k) % count] as Instance
      if (!candidate.routable || candidate.outstanding >= limit || !candidate.servesHttp || exclude?.includes(candidate) === true) continue
      if (best === null || candidate.outstanding < best.outstanding) best = candidate
    }
    if (count > 0 && takeTurn) this.nextTieBreak = (this.nextTieBreak + 1) % count
    return best
  }

  /** Routable http/https instances: the ones HTTP requests (and the surge queue) may go to. */
  private routableCount (): number {
    let count = 0
    for (const instance of this.registered) if (instance.routable && instance.servesHttp) count++
    return count
  }

  private afterSlotFreed (instance: Instance): void {
    // The last in-flight request of a draining instance: deregistration completes now.
    if (instance.outstanding === 0 && this.drainingTimers.has(instance)) {
      this.remove(instance, instance.state)
      return
    }
    this.dispatchQueued()
  }

  /** Hands free slots to the requests waiting in the surge queue, oldest first. */
  private dispatchQueued (): void {
    let changed = false
    while (this.queue.length > 0) {
      const instance = this.pick()
      if (instance === null) break
      const request = this.queue.shift() as QueuedRequest
      changed = true
      instance.inFlight.add(request)
      request.dispatch(instance)
    }
    if (changed) this.settings.events.emit('surge-queue', { length: this.queue.length })
  }

  /** No instance is in service any more: the waiting requests get CLB's 503 (CLB-HTTPERR 503, "no healthy instances"). */
  private failQueued (): void {
    if (this.queue.length === 0) return
    const waiting = this.queue.splice(0)
    this.settings.events.emit('surge-queue', { length: 0 })
    for (const request of waiting) request.noInstanceInService()
  }

  private applyHealthCheck (id: string, result: HealthCheckResult): void {
    const instance = this.find(id)
    if (instance === undefined) return
    const { events } = this.settings
    events.emit('health-check', { instanceId: id, instance: instance.label, result })
    if (result.error !== null && CONNECTION_ERRORS.has(result.error)) {
      events.emit('backend-connection-error', { instanceId: id, instance: instance.label, error: result.error, source: 'health-check' })
    }
    instance.lastChecks.push(result)
    if (instance.lastChecks.length > KEPT_HEALTH_CHECKS) instance.lastChecks.shift()
    const check = this.settings.healthCheck
    if (check === null) return
    const previous = instance.state
    const wasInService = instance.health.inService
    instance.health = afterHealthCheck(instance.health, result, check)
    const current = instance.state
    if (previous.State !== current.State || previous.Description !== current.Description || previous.ReasonCode !== current.ReasonCode) {
      this.emitState(instance, previous, true, result)
    }
    if (!wasInService && instance.health.inService) this.dispatchQueued()
    if (wasInService && !instance.health.inService) {
      // CLB-DRAIN: with draining disabled, in-flight requests to unhealthy instances "are not
      // completed"; with draining, they complete ("The maximum timeout limit does not apply to
      // connections to unhealthy instances").
      if (this.settings.drainingTimeoutMs === 0) for (const request of instance.inFlight.snapshot()) request.instanceGone()
      if (this.routableCount() === 0) this.failQueued()
    }
  }

  private remove (instance: Instance, previous: InstanceState): void {
    const index = this.registered.indexOf(instance)
    if (index === -1) return
    this.registered.splice(index, 1)
    this.monitor?.stop(instance.id)
    this.clearDrainingTimer(instance)
    instance.retired = true
    this.leaving.add(instance)
    void instance.destroyAll().then(() => this.leaving.delete(instance))
    this.emitState(instance, previous, false, null)
    if (this.routableCount() === 0) this.failQueued()
  }

  private clearDrainingTimer (instance: Instance): void {
    const timer = this.drainingTimers.get(instance)
    if (timer === undefined) return
    clearTimeout(timer)
    this.drainingTimers.delete(instance)
  }

  private emitState (instance: Instance, previous: InstanceState | null, registered: boolean, lastCheck: HealthCheckResult | null): void {
    const current: InstanceState = registered
      ? instance.state
      : { InstanceId: instance.id, State: 'OutOfService', ReasonCode: 'ELB', Description: INSTANCE_DESCRIPTIONS.notRegistered }
    this.settings.events.emit('instance-state', { instanceId: instance.id, instance: instance.label, previous, current, registered, lastCheck })
  }

  /** Open backend sockets, including those of removed instances still closing. */
  get openConnections (): number {
    let open = 0
    for (const instance of this.registered) open += instance.openConnections
    for (const instance of this.leaving) open += instance.openConnections
    return open
  }

  /** Stops the health checks and draining timers; destroys every backend connection. */
  async destroyAll (): Promise<void> {
    this.closed = true
    for (const instance of [...this.drainingTimers.keys()]) this.clearDrainingTimer(instance)
    await this.monitor?.close()
    await Promise.all([...this.registered, ...this.leaving].map((instance) => instance.destroyAll()))
  }
}

/** Health-check errors that mean no connection was established (CLB-CW BackendConnectionErrors). */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'])
