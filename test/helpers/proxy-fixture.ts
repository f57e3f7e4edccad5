/**
 * A running clb-proxy for socket-level tests: frozen clock (every timing prints `0`, every
 * timestamp is FIXED_TIMESTAMP), access log in memory, diagnostics collected, a raw `net` backend
 * (test/helpers/raw-backend.ts) paced on the proxy's 'backend-read' event, raw client sockets, and
 * a teardown that proves nothing was left open (pinojs/pino test/helper.js: inject time and
 * destination; style.md lesson 12: prove nothing else happened).
 *
 * How a client knows a response is complete without parsing it or sleeping: the proxy writes a
 * response, then emits 'exchange', then (synchronously) ends the client connection or keeps it.
 * The fixture sees the proxy's side of each client connection (diagnostics channel
 * 'net.server.socket'), so once the 'exchange' event for a client has fired and the proxy's
 * synchronous work is over, `writableEnded`/`destroyed` say whether the proxy is closing, and
 * `bytesWritten` says how many bytes the client must receive.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import net from 'node:net'
import { Writable } from 'node:stream'
import { setImmediate as setImmediatePromise } from 'node:timers/promises'
import { pino, type Logger } from 'pino'
import type { Test } from 'tap'
import { startClbProxy, type ClbProxy } from '../../proxy/library/clb-proxy.js'
import type { ExchangeRecord } from '../../proxy/core/events.js'
import type { ClbProxyOptions } from '../../proxy/core/options.js'
import { startRawBackend, type RawBackend, type ReceivedRequest, type Reply } from './raw-backend.js'

/** The frozen clock: 2023-11-14T22:13:20.123456Z, in microseconds since the Unix epoch. */
export const FIXED_MICROS = 1_700_000_000_123_456
/** FIXED_MICROS as the access log prints it (CLB-LOGS: ISO 8601, six fractional digits). */
export const FIXED_TIMESTAMP = '2023-11-14T22:13:20.123456Z'
/** The `elb` field of every line. */
export const ELB_NAME = 'test-clb'

export interface FixtureOptions {
  /** Proxy options; `backends` defaults to the raw backend, `listen` to 127.0.0.1:0. */
  readonly proxy?: ClbProxyOptions
  /** How the raw backend answers each request (default: the next reply in `fixture.replies`). */
  readonly respond?: (request: ReceivedRequest) => Reply
  /** false: no raw backend (give `proxy.backends` yourself). */
  readonly backend?: boolean
  /** The proxy's timeScale hook: health-check intervals and draining timeouts run this much faster. */
  readonly timeScale?: number
}

export interface ClientResponse {
  /** The bytes the client received for this response (for a closed connection: everything left). */
  readonly bytes: Buffer
  /** The proxy ended or destroyed the client connection after this response. */
  readonly closedByProxy: boolean
  /** The client connection ended with a reset (ECONNRESET) rather than a FIN. */
  readonly reset: boolean
  /** The exchange records the response belongs to. */
  readonly records: readonly ExchangeRecord[]
  /** The client's port (the `client:port` of the access-log line). */
  readonly clientPort: number
}

export interface RawClient {
  readonly socket: net.Socket
  /** The client's port: the `client:port` of its access-log lines. */
  readonly port: number
  /** Every byte received so far. */
  readonly received: Buffer
  readonly closed: boolean
  write (bytes: Buffer | string): void
  /** Bytes the proxy has read from this client so far (its own side of the connection). */
  proxyBytesRead (): number
  /** The proxy's own side of this connection (its writableLength: what it holds for the client). */
  proxySide (): net.Socket
  /**
   * Waits for the next `count` exchanges of this client connection, then for every byte the proxy
   * wrote (or, when the proxy is closing the connection, for the close).
   */
  response (count?: number): Promise<ClientResponse>
  /** Resolves when the connection is closed on both ends (the proxy has handled the close). */
  whenClosed (): Promise<{ readonly reset: boolean }>
  end (): void
  destroy (): void
}

export interface ProxyFixture {
  readonly proxy: ClbProxy
  /** The raw backend, when the fixture started one. */
  readonly backend: RawBackend
  /**
   * Replies the raw backend uses in order, one per request, when no `respond` was given. A request
   * with no reply queued is a test error (the backend throws).
   */
  readonly replies: Reply[]
  /** `127.0.0.1:<port>` of the raw backend, as the access log prints it. */
  readonly backendField: string
  /** The listener port (the port in the access log's request field and X-Forwarded-Port). */
  readonly port: number
  /** Access-log lines written so far, without their newline. */
  readonly logLines: readonly string[]
  /** Every 'exchange' event so far. */
  readonly records: readonly ExchangeRecord[]
  /** Diagnostics the proxy logged (parsed pino lines). */
  readonly diagnostics: ReadonlyArray<Record<string, unknown>>
  /**
   * The proxy's own side of every backend connection it opened (seen on the diagnostics channel
   * 'net.client.socket'), to prove it closed them.
   */
  readonly proxyBackendSockets: readonly net.Socket[]
  /** Resolves when every backend connection the proxy opened so far is closed on the proxy's side. */
  proxyBackendSocketsClosed (): Promise<void>
  /**
   * A new raw client. `allowHalfOpen`: the client keeps its side open after the proxy's FIN and
   * can go on sending, as a client still uploading does (its response() then waits for its own end()).
   */
  connect (options?: { readonly allowHalfOpen?: boolean }): Promise<RawClient>
  /** One request on a new client connection; the client closes its side after the response if the proxy did not. */
  request (raw: Buffer | string): Promise<ClientResponse>
  /** Resolves with the records once `count` exchanges happened in total. */
  waitForExchanges (count: number): Promise<readonly ExchangeRecord[]>
  /** Resolves after `until()` returns true, re-checked after every exchange and client event. */
  until (ready: () => boolean): Promise<void>
  /**
   * Closes everything and asserts nothing was left: proxy.openSockets() is zero, the raw backend
   * answered every request and has no connection, every client socket closed, and no TCP handle
   * remains beyond those open before the fixture started (4 assertions with a raw backend, 2 without).
   */
  close (t: Test): Promise<void>
}

/** An access-log stream that appends each complete line to `logLines`, and a pino logger that appends each diagnostic to `diagnostics`. */
export function collectLogs (logLines: string[], diagnostics: Array<Record<string, unknown>>): { readonly accessLogStream: Writable; readonly logger: Logger } {
  let partial = ''
  const accessLogStream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      partial += chunk.toString('latin1')
      const lines = partial.split('\n')
      partial = lines.pop() as string
      logLines.push(...lines)
      callback()
    }
  })
  const logger = pino({ level: 'info' }, { write: (line: string) => { diagnostics.push(JSON.parse(line) as Record<string, unknown>) } })
  return { accessLogStream, logger }
}

/** TCP handles this process holds (process.getActiveResourcesInfo()), by kind. */
export function tcpHandles (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind.startsWith('TCP')) counts[kind] = (counts[kind] ?? 0) + 1
  }
  return counts
}

function sameCounts (a: Record<string, number>, b: Record<string, number>): boolean {
  const kinds = new Set([...Object.keys(a), ...Object.keys(b)])
  return [...kinds].every((kind) => a[kind] === b[kind])
}

export async function startProxyFixture (t: Test, options: FixtureOptions = {}): Promise<ProxyFixture> {
  // Handles closed just before (an earlier fixture, a probe server) leave the list in libuv's close
  // phase; two event-loop turns see them gone, so they are not counted in the baseline.
  await setImmediatePromise()
  await setImmediatePromise()
  const baseline = tcpHandles()
  const records: ExchangeRecord[] = []
  const logLines: string[] = []
  const diagnostics: Array<Record<string, unknown>> = []
  const clients: RawClientImpl[] = []
  const proxySideSockets = new Map<number, net.Socket>()
  const closedProxySides = new WeakSet<net.Socket>()
  let waiters: Array<() => void> = []
  const notify = (): void => {
    const current = waiters
    waiters = []
    for (const wake of current) wake()
  }
  const until = async (ready: () => boolean): Promise<void> => {
    while (!ready()) await new Promise<void>((resolve) => waiters.push(resolve))
  }

  const replies: Reply[] = []
  const nextReply = (request: ReceivedRequest): Reply => {
    const next = replies.shift()
    if (next === undefined) throw new Error(`the raw backend got request ${request.indexOnConnection} on connection ${request.connection} with no reply queued`)
    return next
  }
  const backend = options.backend === false ? null : await startRawBackend({ respond: options.respond ?? nextReply })
  const { accessLogStream, logger } = collectLogs(logLines, diagnostics)
  const proxy = await startClbProxy({
    listen: { host: '127.0.0.1', port: 0 },
    name: ELB_NAME,
    accessLog: null,
    captureDir: null,
    ...(backend === null ? {} : { backends: [{ host: backend.host, port: backend.port }] }),
    ...options.proxy
  }, { clock: { nowMicros: () => FIXED_MICROS }, logger, accessLogStream, ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }) })
  const port = proxy.address.port

  // The proxy's own side of each client connection, keyed by the client's port.
  const onServerSocket = (message: unknown): void => {
    const { socket } = message as { socket: net.Socket }
    if (socket.localPort !== port || socket.remotePort === undefined) return
    proxySideSockets.set(socket.remotePort, socket)
    // Observers only, after the proxy's own listeners: a test can wait for the proxy to have read
    // its bytes, or to have handled the close of its connection.
    socket.on('data', notify)
    socket.once('close', () => {
      closedProxySides.add(socket)
      notify()
    })
  }
  diagnosticsChannel.subscribe('net.server.socket', onServerSocket)
  // Every net.connect() in this process: the proxy's backend connections, minus the fixture's clients.
  const ownClientSockets = new WeakSet<net.Socket>()
  const proxyBackendSockets: net.Socket[] = []
  const closedSockets = new WeakSet<net.Socket>()
  const onClientSocket = (message: unknown): void => {
    const { socket } = message as { socket: net.Socket }
    // Published synchronously inside net.connect(), before connect() below can mark its socket;
    // the fixture's own sockets are dropped from the list once marked.
    proxyBackendSockets.push(socket)
    socket.once('close', () => {
      // Registered before the pool's own 'close' listener; waiters resume after all of them ran.
      closedSockets.add(socket)
      notify()
    })
  }
  diagnosticsChannel.subscribe('net.client.socket', onClientSocket)
  const backendSocketsOfProxy = (): net.Socket[] => proxyBackendSockets.filter((socket) => !ownClientSockets.has(socket))
  const onExchange = (record: ExchangeRecord): void => {
    records.push(record)
    notify()
  }
  proxy.events.on('exchange', onExchange)
  backend?.pace(proxy.events)

  class RawClientImpl implements RawClient {
    received = Buffer.alloc(0)
    closed = false
    reset = false
    private delivered = 0
    private recordsTaken = 0

    constructor (readonly socket: net.Socket, readonly port: number) {
      // The OS reuses ephemeral ports: records of an earlier, closed connection that had this
      // client port belong to it, not to this one.
      this.recordsTaken = records.filter((r) => r.log.clientPort === port).length
      socket.on('data', (chunk: Buffer) => {
        this.received = Buffer.concat([this.received, chunk])
        notify()
      })
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNRESET') this.reset = true
      })
      socket.on('close', () => {
        this.closed = true
        notify()
      })
    }

    write (bytes: Buffer | string): void {
      this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes)
    }

    /** Closed on both ends: the client socket, and the proxy's side (after the proxy's own 'close' handling). */
    private fullyClosed (): boolean {
      const proxySide = proxySideSockets.get(this.port)
      return this.closed && (proxySide === undefined || closedProxySides.has(proxySide))
    }

    proxyBytesRead (): number {
      return proxySideSockets.get(this.port)?.bytesRead ?? 0
    }

    proxySide (): net.Socket {
      const proxySide = proxySideSockets.get(this.port)
      if (proxySide === undefined) throw new Error(`the proxy's side of client port ${this.port} was not seen on 'net.server.socket'`)
      return proxySide
    }

    private ownRecords (): ExchangeRecord[] {
      return records.filter((r) => r.log.clientPort === this.port)
    }

    async response (count = 1): Promise<ClientResponse> {
      const wanted = this.recordsTaken + count
      await until(() => this.ownRecords().length >= wanted)
      // Resumed in a microtask: the proxy's synchronous work after the 'exchange' event (ending
      // or keeping the connection) is done.
      const taken = this.ownRecords().slice(this.recordsTaken, wanted)
      this.recordsTaken = wanted
      const proxySide = proxySideSockets.get(this.port)
      if (proxySide === undefined) throw new Error(`the proxy's side of client port ${this.port} was not seen on 'net.server.socket'`)
      const closing = proxySide.destroyed || proxySide.writableEnded
      if (closing) {
        await until(() => this.fullyClosed())
      } else {
        const written = proxySide.bytesWritten
        await until(() => this.received.length >= written || this.closed)
      }
      const end = closing ? this.received.length : Math.min(this.received.length, proxySide.bytesWritten)
      const bytes = this.received.subarray(this.delivered, end)
      this.delivered = end
      return { bytes, closedByProxy: closing, reset: this.reset, records: taken, clientPort: this.port }
    }

    async whenClosed (): Promise<{ readonly reset: boolean }> {
      await until(() => this.fullyClosed())
      return { reset: this.reset }
    }

    end (): void {
      this.socket.end()
    }

    destroy (): void {
      this.socket.destroy()
    }
  }

  const connect = async (options: { readonly allowHalfOpen?: boolean } = {}): Promise<RawClient> => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: options.allowHalfOpen ?? false })
    ownClientSockets.add(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    const client = new RawClientImpl(socket, socket.localPort as number)
    clients.push(client)
    return client
  }

  let closed = false
  const forceClose = async (): Promise<void> => {
    if (closed) return
    closed = true
    await proxy.close()
    for (const client of clients) client.destroy()
    await backend?.close()
    diagnosticsChannel.unsubscribe('net.server.socket', onServerSocket)
    diagnosticsChannel.unsubscribe('net.client.socket', onClientSocket)
    proxy.events.off('exchange', onExchange)
  }
  t.teardown(forceClose)

  const fixture: ProxyFixture = {
    proxy,
    get backend () {
      if (backend === null) throw new Error('this fixture has no raw backend')
      return backend
    },
    replies,
    backendField: backend === null ? '-' : `127.0.0.1:${backend.port}`,
    port,
    logLines,
    records,
    diagnostics,
    get proxyBackendSockets () { return backendSocketsOfProxy() },
    proxyBackendSocketsClosed: () => until(() => backendSocketsOfProxy().every((socket) => closedSockets.has(socket))),
    connect,
    request: async (raw) => {
      const client = await connect()
      client.write(raw)
      const response = await client.response()
      if (!response.closedByProxy) {
        client.end()
        await client.whenClosed()
      }
      return response
    },
    waitForExchanges: async (count) => {
      await until(() => records.length >= count)
      return records.slice(0, count)
    },
    until,
    close: async (t) => {
      if (closed) throw new Error('fixture closed twice')
      await proxy.close()
      t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 }, 'the proxy has no socket open after close()')
      for (const client of clients) await client.whenClosed()
      if (backend !== null) {
        t.strictSame(backend.errors.map((error) => error.message), [], 'the raw backend had a reply for every request')
        await backend.noConnections()
        t.equal(await backend.serverConnections(), 0, 'the raw backend has no connection left')
      }
      await forceClose()
      // A closed handle leaves the list in libuv's close phase, after the 'close' event fired. A
      // test's own instance may still hold a socket the proxy closed: node:http, after an early
      // 401, reads and drops the rest of the upload before it sees the FIN (under a CPU hog that
      // took 11 more turns, 15 ms). Look again after each event-loop turn until the counts agree
      // or a leak is plain: 10 turns and 2 s at least (a deadline for a condition, not a sleep).
      const deadline = Date.now() + 2000
      for (let turn = 0; !sameCounts(tcpHandles(), baseline) && (turn < 10 || Date.now() < deadline); turn++) await setImmediatePromise()
      t.strictSame(tcpHandles(), baseline, 'no TCP handle left over')
    }
  }
  return fixture
}
