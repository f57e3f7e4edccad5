/**
 * One connection on a TCP or SSL listener. CLB-LISTEN: with TCP (layer 4) listeners "the load
 * balancer forwards the request to the back-end instances without modifying the headers" and
 * "uses the round robin routing algorithm"; an SSL listener terminates TLS, then does the same.
 * So the bytes pass unchanged both ways, nothing is parsed, and the connection writes one
 * access-log line when it ends, in CLB's TCP form (spec §3.3-3.4):
 * `... 192.168.1.48:443 0.000744 0.000009 0.000012 - - 710 31845 "- - - " "-" - -`.
 */
import type net from 'node:net'
import { TLSSocket } from 'node:tls'
import type { AccessLogRecord } from '../core/access-log-record.js'
import type { BackendPool } from '../balancer/backend-pool.js'
import type { Instance, InFlightRequest } from '../balancer/instance.js'
import { errorReason, instanceReadyEvent, instanceTransportOf, openInstanceSocket, usesTls } from '../balancer/instance-socket.js'
import { secondsBetween, type Clock } from '../core/clock.js'
import type { ClbProxyEvents, CutReason, ExchangeOutcome } from '../core/events.js'
import type { ResolvedOptions } from '../core/options.js'
import { proxyProtocolV1Header, unmapIpv4 } from './proxy-protocol.js'

export interface PassthroughContext {
  readonly options: ResolvedOptions
  readonly pool: BackendPool
  readonly clock: Clock
  readonly events: ClbProxyEvents
  /** PEM text of the CA ssl instances must chain to; null: any certificate (options.backendCa, read at start). */
  readonly backendCa: string | null
}

/** Client bytes held while the instance's connection is being established; beyond it the client is paused. */
const HELD_CLIENT_BYTES = 64 * 1024

/**
 * A TCP/SSL listener's connection and its instance connection, joined: back-pressure both ways,
 * half-closes passed on, the idle timeout on each side (CLB-IDLE applies to "both the front-end
 * and back-end connection"), one access-log line when both are closed.
 */
export class PassthroughConnection implements InFlightRequest {
  inFlightIndex = -1
  private instance: Instance | null = null
  /** The instances tried for this connection, in order (a refused connection moves to the next). */
  private readonly tried: Instance[] = []
  private readonly failedAttempts = new Set<Instance>()
  private backend: net.Socket | null = null
  /** The current attempt's TCP connection is made (its TLS handshake may still be running). */
  private tcpConnected = false
  /** The connection to an ssl instance failed in its TLS handshake. */
  private handshakeFailed = false
  private backendReady = false
  private backendError: string | null = null
  private backendErrorMessage: string | null = null
  private readonly held: Buffer[] = []
  private heldBytes = 0
  private readonly acceptedAtMicros: number
  private connectStartedAtMicros: number | null = null
  private connectedAtMicros: number | null = null
  /** CLB-LOGS request_processing_time [TCP]: until "the first byte is sent to an instance". */
  private firstByteToInstanceAtMicros: number | null = null
  private firstByteFromInstanceAtMicros: number | null = null
  private firstByteToClientAtMicros: number | null = null
  private receivedBytes = 0
  private sentBytes = 0
  private clientClosed = false
  private backendClosed = false
  private endReason: CutReason | null = null
  private logged = false
  private readonly tls: { readonly cipher: string; readonly protocol: string } | null
  // Read at accept: a closed socket no longer knows its addresses.
  readonly clientAddress: string
  readonly clientPort: number
  readonly listenerAddress: string
  readonly listenerPort: number

  constructor (
    private readonly client: net.Socket,
    private readonly context: PassthroughContext,
    private readonly onClosed: (connection: PassthroughConnection) => void
  ) {
    this.acceptedAtMicros = context.clock.nowMicros()
    this.clientAddress = unmapIpv4(client.remoteAddress ?? '-')
    this.clientPort = client.remotePort ?? 0
    this.listenerAddress = unmapIpv4(client.localAddress ?? '-')
    this.listenerPort = client.localPort ?? 0
    const cipher = client instanceof TLSSocket ? client.getCipher() : undefined
    this.tls = cipher === undefined ? null : { cipher: cipher.name, protocol: (client as TLSSocket).getProtocol() ?? cipher.version }
    client.setNoDelay(true)
    client.setTimeout(context.options.idleTimeoutSeconds * 1000)
    client.on('data', (chunk: Buffer) => this.fromClient(chunk))
    client.on('end', () => this.backendReady ? this.backend?.end() : undefined)
    client.on('timeout', () => this.cut('idle-timeout'))
    client.on('error', () => { this.endReason ??= 'client-gone' })
    client.on('close', () => {
      this.clientClosed = true
      this.backend?.destroy()
      this.finish()
    })
    this.connect()
  }

  /**
   * Shutdown: a passthrough connection has no request boundary at which it would be idle, so it
   * may go on until the drain deadline (closeAtDrainDeadline), like an HTTP request in flight.
   */
  closeWhenIdle (): void {}

  /** Deregistered without draining, or at the draining timeout: the connection is closed (CLB-DRAIN "forcibly closes"). */
  instanceGone (): void {
    this.cut('instance-deregistered')
  }

  /** Shutdown: a passthrough connection has no request boundary to wait for; it is closed at the drain deadline. */
  closeAtDrainDeadline (): void {
    this.cut('shutdown')
  }

  private cut (reason: CutReason): void {
    this.endReason ??= reason
    this.client.destroy()
    this.backend?.destroy()
  }

  /**
   * Joins the client to the next tcp/ssl instance. A connection refused (or otherwise not made) is
   * tried on another instance in service, as an HTTP request's is (CLB-CW BackendConnectionErrors:
   * "the load balancer retries the connection"); a failed TLS handshake is not (the instance's
   * configuration, the same on its peers), nor a connection whose client has gone.
   */
  private connect (): void {
    const { pool, options } = this.context
    const instance = pool.routeConnection(this, this.tried)
    if (instance === null) {
      // No instance (left) in service: nothing to join the client to, so its connection is closed.
      this.instance = this.tried.at(-1) ?? null
      this.client.destroy()
      return
    }
    this.tried.push(instance)
    this.instance = instance
    this.tcpConnected = false
    this.connectStartedAtMicros = this.context.clock.nowMicros()
    let backend: net.Socket
    try {
      backend = openInstanceSocket(instance.address, { backendCa: this.context.backendCa, idleTimeoutMs: options.idleTimeoutSeconds * 1000 })
    } catch (error) {
      this.backendError = (error as NodeJS.ErrnoException).code ?? 'ERR_CONNECT'
      this.backendErrorMessage = errorReason(error as Error)
      this.client.destroy()
      return
    }
    this.backend = backend
    this.backendClosed = false
    if (options.proxyProtocol) {
      // CLB-PROXY: the header comes first on the instance connection. On the TCP connection itself,
      // before a TLS ClientHello for an ssl instance (as HAProxy's `send-proxy` and nginx's
      // `listen ... ssl proxy_protocol` expect): written now, it is queued ahead of the handshake.
      instanceTransportOf(backend).write(proxyProtocolV1Header(this))
    }
    // 'connect' is the TCP connection, also on a TLS socket; the ready event may come after a handshake.
    backend.once('connect', () => { this.tcpConnected = true })
    backend.once(instanceReadyEvent(instance.address), () => {
      this.backendReady = true
      this.connectedAtMicros = this.context.clock.nowMicros()
      for (const chunk of this.held.splice(0)) this.toInstance(chunk)
      this.heldBytes = 0
      if (this.client.isPaused()) this.client.resume()
      if (this.client.readableEnded) backend.end()
    })
    backend.on('data', (chunk: Buffer) => this.fromInstance(chunk))
    backend.on('end', () => this.client.end())
    backend.on('timeout', () => {
      if (!this.backendReady) {
        // CLB-IDLE: nothing moved for the idle timeout while connecting or in the handshake.
        this.connectionFailed(instance, 'ETIMEDOUT', this.tcpConnected
          ? `no TLS handshake within the ${options.idleTimeoutSeconds} s idle timeout`
          : `no connection within the ${options.idleTimeoutSeconds} s idle timeout`)
      }
      this.cut('idle-timeout')
    })
    backend.on('error', (error: NodeJS.ErrnoException) => {
      if (this.backendReady) this.endReason ??= 'instance-closed'
      else this.connectionFailed(instance, error.code ?? 'ERR_CONNECT', errorReason(error))
    })
    backend.on('close', () => {
      if (this.backend !== backend) return
      this.backendClosed = true
      if (!this.backendReady) {
        this.handshakeFailed = this.tcpConnected && usesTls(instance.address)
        // Refused (no TCP connection): another instance, if one is in service and the client is still here.
        if (!this.tcpConnected && !this.clientClosed && this.endReason === null) {
          pool.finished(this, instance)
          return this.connect()
        }
        this.client.destroy()
      } else {
        // The instance ended before the client: the client's connection goes too, after what was written to it.
        this.client.end()
      }
      this.finish()
    })
  }

  /** The instance's connection could not be made or its handshake failed: said once per attempt. */
  private connectionFailed (instance: Instance, code: string, message: string): void {
    if (this.failedAttempts.has(instance)) return
    this.failedAttempts.add(instance)
    this.backendError = code
    this.backendErrorMessage = message
    this.context.events.emit('backend-connection-error', { instanceId: instance.id, instance: instance.label, error: code, source: 'request' })
  }

  private fromClient (chunk: Buffer): void {
    this.receivedBytes += chunk.length
    if (!this.backendReady) {
      this.held.push(chunk)
      this.heldBytes += chunk.length
      if (this.heldBytes > HELD_CLIENT_BYTES) this.client.pause()
      return
    }
    this.toInstance(chunk)
  }

  private toInstance (chunk: Buffer): void {
    const backend = this.backend as net.Socket
    // The instance closed its side (Node ends a socket's writing when its peer's FIN arrives):
    // what the client still sends has nowhere to go.
    if (!backend.writable) return
    this.firstByteToInstanceAtMicros ??= this.context.clock.nowMicros()
    if (!backend.write(chunk) && !this.client.isPaused()) {
      this.client.pause()
      backend.once('drain', () => this.client.resume())
    }
  }

  private fromInstance (chunk: Buffer): void {
    const now = this.context.clock.nowMicros()
    this.firstByteFromInstanceAtMicros ??= now
    this.firstByteToClientAtMicros ??= now
    this.sentBytes += chunk.length
    const backend = this.backend as net.Socket
    if (!this.client.write(chunk) && !backend.isPaused()) {
      backend.pause()
      this.client.once('drain', () => backend.resume())
    }
  }

  /** Both sides closed: the slot is freed and the one access-log line written. */
  private finish (): void {
    if (this.logged || !this.clientClosed || (this.backend !== null && !this.backendClosed)) return
    this.logged = true
    this.context.pool.finished(this, this.instance)
    const reached = this.connectedAtMicros !== null
    // CLB-LOGS: the three timings are -1 when the load balancer could not dispatch, e.g. "(TCP)
    // client sent no data"; each [TCP] definition otherwise (spec §3.3).
    const dispatched = reached && this.firstByteToInstanceAtMicros !== null
    const log: AccessLogRecord = {
      receivedAtMicros: this.acceptedAtMicros,
      elbName: this.context.options.name,
      clientAddress: this.clientAddress,
      clientPort: this.clientPort,
      backend: reached && this.instance !== null ? { address: this.instance.address.host, port: this.instance.address.port } : null,
      requestProcessingSeconds: dispatched ? secondsBetween(this.acceptedAtMicros, this.firstByteToInstanceAtMicros) : null,
      backendProcessingSeconds: dispatched ? secondsBetween(this.connectStartedAtMicros, this.connectedAtMicros) : null,
      responseProcessingSeconds: dispatched ? secondsBetween(this.firstByteFromInstanceAtMicros, this.firstByteToClientAtMicros) : null,
      elbStatusCode: null,
      backendStatusCode: 'not-http',
      // CLB-LOGS [TCP]: received_bytes and sent_bytes include "the body and the headers": every byte.
      receivedBytes: this.receivedBytes,
      sentBytes: this.sentBytes,
      method: null,
      scheme: this.tls === null ? 'tcp' : 'ssl',
      host: this.listenerAddress,
      listenerPort: this.listenerPort,
      target: null,
      httpVersion: null,
      userAgent: null,
      sslCipher: this.tls?.cipher ?? null,
      sslProtocol: this.tls?.protocol ?? null
    }
    const outcome: ExchangeOutcome = reached ? 'passthrough' : 'passthrough-refused'
    this.context.events.emit('exchange', {
      outcome,
      cutReason: reached ? this.endReason : null,
      elbGenerated: false,
      log,
      defects: [],
      defectCounts: {},
      instance: this.instance?.label ?? null,
      instanceId: this.instance?.id ?? null,
      backendError: this.backendError,
      backendErrorMessage: this.backendErrorMessage,
      ...(this.handshakeFailed ? { tlsHandshakeFailed: true } : {}),
      primaryDefect: null,
      responseBytes: null,
      requestHead: null
    })
    this.onClosed(this)
  }
}
