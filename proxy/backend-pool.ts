import net from 'node:net'
import type { Clock } from './clock.js'
import type { BackendAddress, KeepaliveRaceMode } from './options.js'
import type { ClbProxyEvents } from './events.js'

/**
 * Where a kept-alive connection was until the instance closed it early. In 'emulate' mode the
 * next request that would have reused it gets CLB's 504, as on a real CLB when the close and
 * the reuse cross (CLB-HTTPERR 504 cause 2).
 */
interface ClosedByInstance {
  readonly closedAtMicros: number
  readonly idleSeconds: number
}

export type Acquired =
  | { readonly kind: 'socket'; readonly socket: net.Socket; readonly reused: boolean }
  | { readonly kind: 'closed-by-instance'; readonly idleSeconds: number }

export interface PoolSettings {
  readonly idleTimeoutMs: number
  readonly keepaliveRace: KeepaliveRaceMode
  readonly clock: Clock
  readonly events: ClbProxyEvents
}

/**
 * Registered instances and their kept-alive connections. CLB keeps backend connections open and
 * reuses them (ELB-HOW: "Classic Load Balancers use pre-open connections"; pipelining is not used
 * on backend connections), and routes HTTP requests to the instance with the fewest outstanding
 * requests (ELB-HOW: "least outstanding requests routing algorithm for HTTP and HTTPS listeners").
 */
export class Instance {
  outstanding = 0
  readonly label: string
  private readonly idle: Array<net.Socket | ClosedByInstance> = []
  private readonly idleSince = new WeakMap<net.Socket, number>()
  /** The 'close' listener release() adds, removed again when the connection is reused. */
  private readonly closeWhileIdle = new WeakMap<net.Socket, () => void>()
  private readonly open = new Set<net.Socket>()

  constructor (readonly address: BackendAddress, private readonly settings: PoolSettings) {
    this.label = address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
  }

  /** Open sockets to this instance, idle or busy. */
  get openConnections (): number {
    return this.open.size
  }

  /** A kept-alive connection if one is idle (most recently used first), else a new one. */
  acquire (): Acquired {
    while (this.idle.length > 0) {
      const entry = this.idle.pop() as net.Socket | ClosedByInstance
      if (!(entry instanceof net.Socket)) {
        // CLB would itself have closed the connection once idle for the idle timeout.
        const expired = this.settings.clock.nowMicros() - entry.closedAtMicros > this.settings.idleTimeoutMs * 1000
        if (!expired) return { kind: 'closed-by-instance', idleSeconds: entry.idleSeconds }
        continue
      }
      const socket = entry
      socket.removeAllListeners('data').removeAllListeners('end').removeAllListeners('timeout')
      // Only the pool's idle listener: 'close' also carries the pool's own bookkeeping listener.
      const onClose = this.closeWhileIdle.get(socket)
      if (onClose !== undefined) socket.off('close', onClose)
      this.closeWhileIdle.delete(socket)
      if (!socket.destroyed && socket.readyState === 'open') return { kind: 'socket', socket, reused: true }
      socket.destroy()
    }
    const socket = net.connect({ host: this.address.host, port: this.address.port, noDelay: true })
    this.open.add(socket)
    socket.once('close', () => this.open.delete(socket))
    // An 'error' is always followed by 'close'; the exchange listens for both while it owns the socket.
    socket.on('error', () => {})
    return { kind: 'socket', socket, reused: false }
  }

  /** Returns a connection after a complete exchange that left it reusable. */
  release (socket: net.Socket): void {
    if (socket.destroyed || socket.readyState !== 'open') {
      socket.destroy()
      return
    }
    socket.removeAllListeners('data').removeAllListeners('end').removeAllListeners('timeout')
    const { events, clock } = this.settings
    this.idleSince.set(socket, clock.nowMicros())
    // CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
    // elapses, the load balancer closes the connection."
    // The exchange armed the socket's timer with the same idle timeout; it keeps running here.
    socket.on('timeout', () => this.discard(socket, null))
    socket.on('data', (chunk: Buffer) => {
      events.emit('backend-idle-event', { backend: this.label, event: 'extra-bytes', bytes: chunk.length, idleSeconds: this.idleSeconds(socket) })
      this.discard(socket, null)
    })
    // 'end' is the instance's FIN; 'close' without it is a reset. Either way the instance closed a
    // kept-alive connection before the idle timeout: the cause of CLB's intermittent 504s (CLB-IDLE,
    // CLB-BACKEND: "The keep-alive timeout should be at least 60 seconds").
    const closedByInstance = (): void => {
      if (!this.idle.includes(socket)) return
      const idleSeconds = this.idleSeconds(socket)
      events.emit('backend-idle-event', { backend: this.label, event: 'closed', bytes: 0, idleSeconds })
      const mark = this.settings.keepaliveRace === 'emulate' ? { closedAtMicros: clock.nowMicros(), idleSeconds } : null
      this.discard(socket, mark)
    }
    socket.on('end', closedByInstance)
    socket.on('close', closedByInstance)
    this.closeWhileIdle.set(socket, closedByInstance)
    this.idle.push(socket)
  }

  private idleSeconds (socket: net.Socket): number {
    const since = this.idleSince.get(socket) ?? this.settings.clock.nowMicros()
    return Math.max(0, this.settings.clock.nowMicros() - since) / 1e6
  }

  /** Drops an idle connection; `mark` keeps its place for the keep-alive race emulation. */
  private discard (socket: net.Socket, mark: ClosedByInstance | null): void {
    const index = this.idle.indexOf(socket)
    if (index !== -1) {
      if (mark === null) this.idle.splice(index, 1)
      else this.idle[index] = mark
    }
    socket.destroy()
  }

  /** Destroys every connection; resolves when each has emitted 'close'. */
  async destroyAll (): Promise<void> {
    this.idle.length = 0
    const closing = [...this.open].map((socket) => new Promise<void>((resolve) => {
      socket.once('close', () => resolve())
      socket.destroy()
    }))
    await Promise.all(closing)
  }
}

export class BackendPool {
  readonly instances: readonly Instance[]
  private nextTieBreak = 0

  constructor (backends: readonly BackendAddress[], settings: PoolSettings) {
    this.instances = backends.map((address) => new Instance(address, settings))
  }

  /** Least outstanding requests; ties go round robin so equal instances share the load. */
  pick (): Instance | null {
    const count = this.instances.length
    if (count === 0) return null
    let best: Instance | null = null
    for (let k = 0; k < count; k++) {
      const candidate = this.instances[(this.nextTieBreak + k) % count] as Instance
      if (best === null || candidate.outstanding < best.outstanding) best = candidate
    }
    this.nextTieBreak = (this.nextTieBreak + 1) % count
    return best
  }

  get openConnections (): number {
    return this.instances.reduce((sum, instance) => sum + instance.openConnections, 0)
  }

  async destroyAll (): Promise<void> {
    await Promise.all(this.instances.map((instance) => instance.destroyAll()))
  }
}
