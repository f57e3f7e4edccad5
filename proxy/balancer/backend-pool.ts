import diagnosticsChannel from 'node:diagnostics_channel'
import net from 'node:net'
import type { Clock } from '../core/clock.js'
import type { BackendAddress, KeepaliveRaceMode } from '../core/options.js'
import type { ClbProxyEvents, HealthCheckResult, InstanceState } from '../core/events.js'
import { instanceIdFor, instanceLabel } from './instance-id.js'
import { ALWAYS_IN_SERVICE, INSTANCE_DESCRIPTIONS, REGISTERING, afterHealthCheck, type HealthStatus } from './instance-health.js'
import { HealthMonitor } from './health-monitor.js'
import type { HealthCheckTarget } from '../core/health-check-target.js'

/**
 * Where a kept-alive connection was until the instance closed it early. In 'emulate' mode the
 * next request that would have reused it gets CLB's 504, as on a real CLB when the close and
 * the reuse cross (CLB-HTTPERR 504 cause 2).
 */
interface ClosedByInstance {
  readonly closedAtMicros: number
  readonly idleSeconds: number
}

// node:net publishes every socket net.connect() creates on this channel; a BackendSocket is
// created with `new` and published here the same way, so tools that watch the channel still see it.
const clientSocketChannel = diagnosticsChannel.channel('net.client.socket')

/** Write errors that mean the instance reset the connection: it may still have sent bytes we have not read. */
const PEER_GONE_ON_WRITE = new Set(['EPIPE', 'ECONNRESET'])

/**
 * A backend socket whose writes never destroy it when the instance has reset the connection.
 *
 * An instance that answers early (a 413 or 401 before reading an upload) and closes with unread
 * request bytes in its buffer resets the connection (RFC 9293 section 3.6.1: a CLOSE "while
 * received data is still pending" sends a RST; RFC 9112 section 9.6 describes the staged close
 * that avoids it). Its answer is already in our receive buffer, but a
 * Node socket whose write fails with EPIPE marks itself errored and is destroyed before that
 * buffer is read, and the answer is lost (measured: 7 of 10 uploads of 1 MB or more got a false
 * 504). Here such a write error is recorded instead; the proxy stops sending, and the socket goes
 * on reading until the reset itself ends it, so the instance's answer is relayed as CLB relays it.
 * Overriding `_write`/`_writev` is the Writable implementer's interface (node:stream).
 */
export class BackendSocket extends net.Socket {
  /** The EPIPE/ECONNRESET a write met, if any: the instance is gone for writing. */
  writeFailure: NodeJS.ErrnoException | null = null

  override _write (chunk: unknown, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    super._write(chunk, encoding, this.keepReadingOnReset(callback))
  }

  override _writev (chunks: Array<{ chunk: unknown, encoding: BufferEncoding }>, callback: (error?: Error | null) => void): void {
    super._writev?.(chunks, this.keepReadingOnReset(callback))
  }

  private keepReadingOnReset (callback: (error?: Error | null) => void): (error?: Error | null) => void {
    return (error) => {
      const code = (error as NodeJS.ErrnoException | null | undefined)?.code
      if (code !== undefined && PEER_GONE_ON_WRITE.has(code)) {
        this.writeFailure ??= error as NodeJS.ErrnoException
        callback()
        return
      }
      callback(error)
    }
  }
}

/** Who is told about a backend connection's events right now: its exchange, or the pool while idle. */
export interface ConnectionUser {
  onConnect (): void
  onData (chunk: Buffer): void
  /** The instance's FIN, or the connection closed (reset, or destroyed). */
  onClosed (): void
  onIdleTimeout (): void
}

/**
 * A backend socket with listeners attached once, for its whole life, that forward to its current
 * user: handing a kept-alive connection from one exchange to the next adds and removes no listener.
 */
export class BackendConnection {
  user: ConnectionUser | null = null
  /** When the connection went back to the pool (clock microseconds). */
  idleSinceMicros = 0
  /** The system error the socket reported last (ECONNREFUSED, ENOTFOUND, ECONNRESET, ...), if any. */
  lastError: string | null = null

  constructor (readonly socket: BackendSocket, onGone: (connection: BackendConnection) => void) {
    socket.on('connect', () => this.user?.onConnect())
    socket.on('data', (chunk: Buffer) => this.user?.onData(chunk))
    socket.on('end', () => this.user?.onClosed())
    socket.on('close', () => {
      onGone(this)
      this.user?.onClosed()
    })
    socket.on('timeout', () => this.user?.onIdleTimeout())
    // An 'error' is always followed by 'close', which is where its user hears of it.
    socket.on('error', (error: NodeJS.ErrnoException) => { this.lastError = error.code ?? error.message })
  }

  get reusable (): boolean {
    return !this.socket.destroyed && this.socket.readyState === 'open' && this.socket.writeFailure === null
  }

  /** The system error that ended or broke the connection: a reported one, else the reset a write met. */
  get systemError (): string | null {
    return this.lastError ?? this.socket.writeFailure?.code ?? null
  }

  /** False once a write met the instance's reset: request bytes are then discarded, not sent. */
  get writable (): boolean {
    return this.socket.writeFailure === null && !this.socket.destroyed
  }
}

export type Acquired =
  | { readonly kind: 'connection'; readonly connection: BackendConnection; readonly reused: boolean }
  | { readonly kind: 'closed-by-instance'; readonly idleSeconds: number }

export interface PoolSettings {
  readonly idleTimeoutMs: number
  readonly keepaliveRace: KeepaliveRaceMode
  readonly clock: Clock
  readonly events: ClbProxyEvents
}

/** An exchange holding one of an instance's request slots; told when the instance is taken away. */
export interface InFlightRequest {
  /** Where the request sits in its instance's InFlightRequests (kept by that list; -1 when in none). */
  inFlightIndex: number
  /** Deregistered with draining disabled or timed out, or out of service with draining disabled: CLB's 504 (or a cut). */
  instanceGone (): void
}

/** An exchange waiting in the surge queue. */
export interface QueuedRequest extends InFlightRequest {
  /** An instance has a free slot for it: the slot is already taken in its name. */
  dispatch (instance: Instance): void
  /** No instance is in service any more: CLB's 503. */
  noInstanceInService (): void
}

/** How many checks each instance keeps for the admin API. */
export const KEPT_HEALTH_CHECKS = 5

/**
 * Registered instances and their kept-alive connections. CLB keeps backend connections open and
 * reuses them (ELB-HOW: "Classic Load Balancers use pre-open connections"; pipelining is not used
 * on backend connections), and routes HTTP requests to the instance with the fewest outstanding
 * requests (ELB-HOW: "least outstanding requests routing algorithm for HTTP and HTTPS listeners").
 */
/**
 * The requests one instance is serving: an array with swap-remove, each request knowing its index,
 * so adding and removing (twice per request) allocate nothing and leave no holes. A Set churned
 * like this measured a higher p99 on /small (its backing store is reallocated as entries come and go).
 */
export class InFlightRequests {
  private readonly requests: InFlightRequest[] = []

  get size (): number {
    return this.requests.length
  }

  add (request: InFlightRequest): void {
    request.inFlightIndex = this.requests.length
    this.requests.push(request)
  }

  /** False when the request was not in this list. */
  delete (request: InFlightRequest): boolean {
    const index = request.inFlightIndex
    if (index < 0 || this.requests[index] !== request) return false
    const last = this.requests.pop() as InFlightRequest
    if (last !== request) {
      this.requests[index] = last
      last.inFlightIndex = index
    }
    request.inFlightIndex = -1
    return true
  }

  /** A copy, for telling each request while the list changes under it. */
  snapshot (): InFlightRequest[] {
    return [...this.requests]
  }
}

export class Instance {
  readonly id: string
  readonly label: string
  /** The exchanges holding one of this instance's request slots (least outstanding requests counts them). */
  readonly inFlight = new InFlightRequests()
  health: HealthStatus
  /** Deregistered and draining: no new requests; the state says "deregistration currently in progress". */
  deregistering = false
  /** The last KEPT_HEALTH_CHECKS checks, newest last. */
  readonly lastChecks: HealthCheckResult[] = []
  /** Removed from the load balancer: a connection released now is closed, not kept. */
  retired = false
  private readonly idle: Array<BackendConnection | ClosedByInstance> = []
  /** The pool's own user of each connection, made once per connection (not per exchange). */
  private readonly idleUsers = new WeakMap<BackendConnection, ConnectionUser>()
  private readonly open = new Set<BackendConnection>()

  constructor (readonly address: BackendAddress, private readonly settings: PoolSettings, healthChecked: boolean) {
    this.id = instanceIdFor(address)
    this.label = instanceLabel(address)
    this.health = healthChecked ? REGISTERING : ALWAYS_IN_SERVICE
  }

  get outstanding (): number {
    return this.inFlight.size
  }

  /** Requests may be routed here: in service by its health checks and not deregistering. */
  get routable (): boolean {
    return this.health.inService && !this.deregistering
  }

  /** DescribeInstanceHealth's InstanceState for this instance. */
  get state (): InstanceState {
    if (this.deregistering) {
      // CLB-DRAIN: "InService: Instance deregistration currently in progress".
      return { InstanceId: this.id, State: this.health.State, ReasonCode: 'ELB', Description: INSTANCE_DESCRIPTIONS.deregistrationInProgress }
    }
    return { InstanceId: this.id, State: this.health.State, ReasonCode: this.health.ReasonCode, Description: this.health.Description }
  }

  /** Open sockets to this instance, idle or busy. */
  get openConnections (): number {
    return this.open.size
  }

  /** A kept-alive connection if one is idle (most recently used first), else a new one. */
  acquire (): Acquired {
    while (this.idle.length > 0) {
      const entry = this.idle.pop() as BackendConnection | ClosedByInstance
      if (!(entry instanceof BackendConnection)) {
        // CLB would itself have closed the connection once idle for the idle timeout.
        const expired = this.settings.clock.nowMicros() - entry.closedAtMicros > this.settings.idleTimeoutMs * 1000
        if (!expired) return { kind: 'closed-by-instance', idleSeconds: entry.idleSeconds }
        continue
      }
      entry.user = null
      if (entry.reusable) return { kind: 'connection', connection: entry, reused: true }
      entry.socket.destroy()
    }
    const socket = new BackendSocket()
    socket.setNoDelay(true)
    socket.connect({ host: this.address.host, port: this.address.port })
    if (clientSocketChannel.hasSubscribers) clientSocketChannel.publish({ socket })
    // CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
    // elapses, the load balancer closes the connection": one timer for the connection's life,
    // restarted by Node on every read and write, whether an exchange or the pool holds it.
    socket.setTimeout(this.settings.idleTimeoutMs)
    const connection = new BackendConnection(socket, (gone) => this.open.delete(gone))
    this.open.add(connection)
    return { kind: 'connection', connection, reused: false }
  }

  /** Returns a connection after a complete exchange that left it reusable. */
  release (connection: BackendConnection): void {
    if (!connection.reusable || this.retired) {
      connection.user = null
      connection.socket.destroy()
      return
    }
    connection.idleSinceMicros = this.settings.clock.nowMicros()
    connection.user = this.idleUserOf(connection)
    this.idle.push(connection)
  }

  private idleUserOf (connection: BackendConnection): ConnectionUser {
    let user = this.idleUsers.get(connection)
    if (user !== undefined) return user
    const { events, clock } = this.settings
    user = {
      onConnect: () => {},
      onIdleTimeout: () => this.discard(connection, null),
      onData: (chunk) => {
        events.emit('backend-idle-event', { backend: this.label, event: 'extra-bytes', bytes: chunk.length, idleSeconds: this.idleSeconds(connection) })
        this.discard(connection, null)
      },
      // The instance's FIN, or a reset: it closed a kept-alive connection before the idle timeout,
      // the cause of CLB's intermittent 504s (CLB-IDLE, CLB-BACKEND: "The keep-alive timeout
      // should be at least 60 seconds").
      onClosed: () => {
        if (!this.idle.includes(connection)) return
        const idleSeconds = this.idleSeconds(connection)
        events.emit('backend-idle-event', { backend: this.label, event: 'closed', bytes: 0, idleSeconds })
        const mark = this.settings.keepaliveRace === 'emulate' ? { closedAtMicros: clock.nowMicros(), idleSeconds } : null
        this.discard(connection, mark)
      }
    }
    this.idleUsers.set(connection, user)
    return user
  }

  private idleSeconds (connection: BackendConnection): number {
    return Math.max(0, this.settings.clock.nowMicros() - connection.idleSinceMicros) / 1e6
  }

  /** Drops an idle connection; `mark` keeps its place for the keep-alive race emulation. */
  private discard (connection: BackendConnection, mark: ClosedByInstance | null): void {
    const index = this.idle.indexOf(connection)
    if (index !== -1) {
      if (mark === null) this.idle.splice(index, 1)
      else this.idle[index] = mark
    }
    connection.user = null
    connection.socket.destroy()
  }

  /** Destroys every connection; resolves when each has emitted 'close'. */
  async destroyAll (): Promise<void> {
    this.idle.length = 0
    const closing = [...this.open].map(({ socket }) => new Promise<void>((resolve) => {
      socket.once('close', () => resolve())
      socket.destroy()
    }))
    await Promise.all(closing)
  }
}

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
  private started = false

  constructor (private readonly initial: readonly BackendAddress[], private readonly settings: BalancerSettings) {
    const check = settings.healthCheck
    this.monitor = check === null
      ? null
      : new HealthMonitor(
        { target: check.target, intervalMs: check.intervalMs, timeoutMs: check.timeoutMs, maxHeadBytes: check.maxHeadBytes, clock: settings.clock },
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
    const id = instanceIdFor(address)
    const existing = this.find(id)
    if (existing !== undefined) {
      if (existing.deregistering) {
        const previous = existing.state
        existing.deregistering = false
        this.clearDrainingTimer(existing)
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
    let instance: Instance | null = preferred !== null && preferred.routable && preferred.outstanding < limit ? preferred : null
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
    const instance = this.pick(tried)
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

  /** The least outstanding requests among routable instances with a free slot, ties round robin. */
  private pick (exclude?: readonly Instance[]): Instance | null {
    const count = this.registered.length
    const limit = this.settings.maxInstanceConnections
    let best: Instance | null = null
    for (let k = 0; k < count; k++) {
      const candidate = this.registered[(this.nextTieBreak + k) % count] as Instance
      if (!candidate.routable || candidate.outstanding >= limit || exclude?.includes(candidate) === true) continue
      if (best === null || candidate.outstanding < best.outstanding) best = candidate
    }
    if (count > 0) this.nextTieBreak = (this.nextTieBreak + 1) % count
    return best
  }

  private routableCount (): number {
    let count = 0
    for (const instance of this.registered) if (instance.routable) count++
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
    for (const instance of [...this.drainingTimers.keys()]) this.clearDrainingTimer(instance)
    await this.monitor?.close()
    await Promise.all([...this.registered, ...this.leaving].map((instance) => instance.destroyAll()))
  }
}

/** Health-check errors that mean no connection was established (CLB-CW BackendConnectionErrors). */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'])
