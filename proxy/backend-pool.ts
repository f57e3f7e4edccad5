import net from 'node:net'
import type { BackendAddress } from './options.js'
import type { ClbProxyEvents } from './events.js'

/**
 * Registered instances and their kept-alive connections. CLB keeps backend connections open and
 * reuses them (ELB-HOW: "Classic Load Balancers use pre-open connections"; pipelining is not used
 * on backend connections), and routes HTTP requests to the instance with the fewest outstanding
 * requests (ELB-HOW: "least outstanding requests routing algorithm for HTTP and HTTPS listeners").
 */
export class Instance {
  outstanding = 0
  readonly label: string
  private readonly idle: net.Socket[] = []
  private readonly open = new Set<net.Socket>()

  constructor (readonly address: BackendAddress, private readonly idleTimeoutMs: number, private readonly events: ClbProxyEvents) {
    this.label = address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
  }

  /** Open sockets to this instance, idle or busy. */
  get openConnections (): number {
    return this.open.size
  }

  /** A kept-alive connection if one is idle (most recently used first), else a new one. */
  acquire (): { socket: net.Socket; reused: boolean } {
    while (this.idle.length > 0) {
      const socket = this.idle.pop() as net.Socket
      socket.removeAllListeners('data').removeAllListeners('end').removeAllListeners('timeout')
      if (!socket.destroyed && socket.readyState === 'open') return { socket, reused: true }
      socket.destroy()
    }
    const socket = net.connect({ host: this.address.host, port: this.address.port, noDelay: true })
    this.open.add(socket)
    socket.once('close', () => this.open.delete(socket))
    // An 'error' is always followed by 'close'; the exchange listens for both while it owns the socket.
    socket.on('error', () => {})
    return { socket, reused: false }
  }

  /** Returns a connection after a complete exchange that left it reusable. */
  release (socket: net.Socket): void {
    if (socket.destroyed || socket.readyState !== 'open') {
      socket.destroy()
      return
    }
    socket.removeAllListeners('data').removeAllListeners('end').removeAllListeners('timeout')
    // CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
    // elapses, the load balancer closes the connection."
    socket.setTimeout(this.idleTimeoutMs)
    socket.on('timeout', () => this.discard(socket))
    socket.on('data', (chunk: Buffer) => {
      this.events.emit('backend-idle-event', { backend: this.label, event: 'extra-bytes', bytes: chunk.length })
      this.discard(socket)
    })
    socket.on('end', () => {
      this.events.emit('backend-idle-event', { backend: this.label, event: 'closed', bytes: 0 })
      this.discard(socket)
    })
    this.idle.push(socket)
  }

  private discard (socket: net.Socket): void {
    const index = this.idle.indexOf(socket)
    if (index !== -1) this.idle.splice(index, 1)
    socket.destroy()
  }

  destroyAll (): void {
    for (const socket of this.open) socket.destroy()
    this.idle.length = 0
  }
}

export class BackendPool {
  readonly instances: readonly Instance[]
  private nextTieBreak = 0

  constructor (backends: readonly BackendAddress[], idleTimeoutMs: number, events: ClbProxyEvents) {
    this.instances = backends.map((address) => new Instance(address, idleTimeoutMs, events))
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

  destroyAll (): void {
    for (const instance of this.instances) instance.destroyAll()
  }
}
