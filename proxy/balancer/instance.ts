/**
 * One registered instance: its id and health, the requests it is serving (least outstanding
 * requests counts them) and its kept-alive connections.
 */
import type { Clock } from '../core/clock.js'
import { instanceProtocolOf, isLayer7, type BackendAddress, type KeepaliveRaceMode } from '../core/options.js'
import type { ClbProxyEvents, HealthCheckResult, InstanceState } from '../core/events.js'
import { BackendConnection, InstanceReadBuffer, type ConnectionUser } from './backend-connection.js'
import { instanceTransportOf, openInstanceSocket, usesTls } from './instance-socket.js'
import { instanceIdFor, instanceLabel } from './instance-id.js'
import { ALWAYS_IN_SERVICE, INSTANCE_DESCRIPTIONS, REGISTERING, type HealthStatus } from './instance-health.js'

/**
 * Where a kept-alive connection was until the instance closed it early. In 'emulate' mode the
 * next request that would have reused it gets CLB's 504, as on a real CLB when the close and
 * the reuse cross (CLB-HTTPERR 504 cause 2).
 */
interface ClosedByInstance {
  readonly closedAtMicros: number
  readonly idleSeconds: number
}

/**
 * Our choice: idle connections an instance closes within this many milliseconds of each other are
 * one event of the instance. A process that exits, or a Node server.close(), closes them all at
 * once; a keep-alive timeout closes each one when its own idle time runs out.
 */
export const CLOSE_BURST_MS = 50
/**
 * A burst whose connections had been idle for times this far apart (seconds) is the instance
 * restarting or stopping: connections that went idle at different times did not time out together.
 * (Connections that went idle together, after a burst of parallel requests, do time out together,
 * with idle times close to each other: those stay keep-alive timeouts.)
 */
export const RESTART_IDLE_SPREAD_SECONDS = 1

/** An idle connection the instance closed, told once its burst is over. */
interface IdleClose {
  readonly idleSeconds: number
  readonly mark: ClosedByInstance | null
}

export type Acquired =
  | { readonly kind: 'connection'; readonly connection: BackendConnection; readonly reused: boolean }
  | { readonly kind: 'closed-by-instance'; readonly idleSeconds: number }

export interface PoolSettings {
  /**
   * PEM text of the CA that https/ssl instances' certificates must chain to (options.backendCa,
   * read at start); null: any certificate is accepted, as CLB does without back-end server authentication.
   */
  readonly backendCa: string | null
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

/**
 * Registered instances and their kept-alive connections. CLB keeps backend connections open and
 * reuses them (ELB-HOW: "Classic Load Balancers use pre-open connections"; pipelining is not used
 * on backend connections), and routes HTTP requests to the instance with the fewest outstanding
 * requests (ELB-HOW: "least outstanding requests routing algorithm for HTTP and HTTPS listeners").
 */
export class Instance {
  readonly id: string
  readonly label: string
  /** An http/https instance, for HTTP/HTTPS listeners (CLB-LISTEN pairing); tcp/ssl ones serve TCP/SSL listeners. */
  readonly servesHttp: boolean
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
  /** Idle connections the instance closed in the current burst (CLOSE_BURST_MS), and the timer that ends it. */
  private closeBurst: IdleClose[] = []
  private closeBurstTimer: NodeJS.Timeout | null = null
  private readonly open = new Set<BackendConnection>()

  constructor (readonly address: BackendAddress, private readonly settings: PoolSettings, healthChecked: boolean) {
    this.id = instanceIdFor(address)
    this.servesHttp = isLayer7(instanceProtocolOf(address))
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
    // Plain TCP for an http instance, TLS for an https one. CLB-IDLE: one idle timer for the
    // connection's life, restarted on every read and write, whether an exchange or the pool holds it.
    // A plain connection reads into a buffer it reuses (InstanceReadBuffer); a TLS one does not.
    const readBuffer = usesTls(this.address) ? null : new InstanceReadBuffer()
    const socket = openInstanceSocket(this.address, this.settings, readBuffer)
    const connection = new BackendConnection(socket, instanceTransportOf(socket), (gone) => this.open.delete(gone), readBuffer)
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
    // An idle connection keeps reading, so the instance's close (or stray bytes) is seen while it
    // waits; one paused for an exchange's back-pressure would hide them, and the next request sent
    // on it would wait for the idle timeout.
    if (connection.socket.isPaused()) connection.socket.resume()
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
        // In emulate mode the marker takes the connection's place only once the burst is judged not a
        // restart (endCloseBurst): a request in between opens a new connection, as after a restart.
        const mark = this.settings.keepaliveRace === 'emulate' ? { closedAtMicros: clock.nowMicros(), idleSeconds } : null
        this.discard(connection, null)
        this.closeBurst.push({ idleSeconds, mark })
        this.closeBurstTimer ??= setTimeout(() => this.endCloseBurst(), CLOSE_BURST_MS)
      }
    }
    this.idleUsers.set(connection, user)
    return user
  }

  /**
   * The closes of one burst, told: each as an early close (the keep-alive race, CLB-HTTPERR 504
   * cause 2), or all as one 'backend-closed-together' when the instance closed connections idle for times
   * far apart (RESTART_IDLE_SPREAD_SECONDS): it restarted or stopped. A real CLB has the FIN of
   * every such connection before it sends another request, so the emulated race forgets them.
   */
  private endCloseBurst (): void {
    this.closeBurstTimer = null
    const closes = this.closeBurst
    this.closeBurst = []
    let minIdleSeconds = Number.POSITIVE_INFINITY
    let maxIdleSeconds = 0
    for (const close of closes) {
      minIdleSeconds = Math.min(minIdleSeconds, close.idleSeconds)
      maxIdleSeconds = Math.max(maxIdleSeconds, close.idleSeconds)
    }
    const events = this.settings.events
    if (closes.length < 2 || maxIdleSeconds - minIdleSeconds < RESTART_IDLE_SPREAD_SECONDS) {
      // The markers first, so that a listener of the event finds them in place.
      if (!this.retired) for (const close of closes) if (close.mark !== null) this.idle.push(close.mark)
      for (const close of closes) events.emit('backend-idle-event', { backend: this.label, event: 'closed', bytes: 0, idleSeconds: close.idleSeconds })
      return
    }
    events.emit('backend-closed-together', { backend: this.label, connections: closes.length, minIdleSeconds, maxIdleSeconds })
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
    // The proxy is stopping: a burst still open is not told.
    if (this.closeBurstTimer !== null) clearTimeout(this.closeBurstTimer)
    this.closeBurstTimer = null
    this.closeBurst = []
    const closing = [...this.open].map(({ socket }) => new Promise<void>((resolve) => {
      socket.once('close', () => resolve())
      socket.destroy()
    }))
    await Promise.all(closing)
  }
}
