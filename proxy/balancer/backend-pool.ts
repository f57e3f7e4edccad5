import diagnosticsChannel from 'node:diagnostics_channel'
import net from 'node:net'
import type { Clock } from '../core/clock.js'
import type { BackendAddress, KeepaliveRaceMode } from '../core/options.js'
import type { ClbProxyEvents } from '../core/events.js'

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

/**
 * Registered instances and their kept-alive connections. CLB keeps backend connections open and
 * reuses them (ELB-HOW: "Classic Load Balancers use pre-open connections"; pipelining is not used
 * on backend connections), and routes HTTP requests to the instance with the fewest outstanding
 * requests (ELB-HOW: "least outstanding requests routing algorithm for HTTP and HTTPS listeners").
 */
export class Instance {
  outstanding = 0
  readonly label: string
  private readonly idle: Array<BackendConnection | ClosedByInstance> = []
  /** The pool's own user of each connection, made once per connection (not per exchange). */
  private readonly idleUsers = new WeakMap<BackendConnection, ConnectionUser>()
  private readonly open = new Set<BackendConnection>()

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
    if (!connection.reusable) {
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
