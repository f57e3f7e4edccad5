import type net from 'node:net'
import type { Defect } from '../../validators/defects.js'
import type { RequestHead } from '../../validators/request-parser.js'
import { ResponseParser, isEventStream } from '../../validators/response-parser.js'
import { judge } from '../../validators/verdict.js'
import type { AccessLogRecord } from '../core/access-log-record.js'
import type { BackendPool } from '../balancer/backend-pool.js'
import { readBufferReturner, returnReadBuffer, type BackendConnection, type ConnectionUser } from '../balancer/backend-connection.js'
import type { Instance, QueuedRequest } from '../balancer/instance.js'
import { NOT_STICKY, type StickinessPolicy, type StickyChoice } from '../balancer/stickiness-policy.js'
import { insertHeaderLines } from '../balancer/stickiness.js'
import { secondsBetween, type Clock } from '../core/clock.js'
import type { ClbProxyEvents, CutReason, ExchangeOutcome, ExchangeRecord } from '../core/events.js'
import { buildForwardedHead, fieldValue, hostWithoutPort } from './forwarded-head.js'
import type { ResolvedOptions } from '../core/options.js'
import { SYNTHETIC_RESPONSES, keepsClientConnection, type SyntheticStatus } from './synthetic-responses.js'
import { flushNow, writeInTurn } from './turn-writes.js'

export interface ExchangeContext {
  readonly options: ResolvedOptions
  readonly pool: BackendPool
  /** The listener's stickiness policy; null: every request is routed on its own. */
  readonly stickiness: StickinessPolicy | null
  readonly clock: Clock
  readonly events: ClbProxyEvents
}

/** What an exchange needs from the client connection that owns it. */
export interface ClientSide {
  readonly address: string
  readonly port: number
  readonly listenerAddress: string
  readonly listenerPort: number
  /** The listener's protocol: X-Forwarded-Proto and the scheme of the log's request field. */
  readonly listenerProtocol: 'http' | 'https'
  /** The negotiated TLS cipher (OpenSSL name) and protocol on an HTTPS listener; null on HTTP. */
  readonly tls: { readonly cipher: string; readonly protocol: string } | null
  /**
   * Writes to the client; false means wait for `onDrain`. `written`, if given, is called once the
   * socket is done with `bytes` (never if the connection is already closed).
   */
  write (bytes: Buffer, written?: () => void): boolean
  /** True while written bytes are still held (not yet handed to the kernel): a written view must not change. */
  readonly holdsWrites: boolean
  onDrain (resume: () => void): void
  /** Aborts the client connection (a defect after the response was committed). */
  abort (): void
  /** The exchange is over; `keepOpen` says whether the client connection may carry another request. */
  exchangeDone (keepOpen: boolean): void
}

export interface RequestInfo {
  readonly head: RequestHead
  readonly rawHead: Buffer
  readonly receivedAtMicros: number
  /** The request's desync classification (stage "classify"). */
  readonly desync?: ExchangeRecord['desync']
  /** Close the client and the backend connection after the response (desync mitigation, defensive mode, Ambiguous). */
  readonly closeAfterResponse?: boolean
}

/** Request body bytes held for a request waiting in the surge queue before the client is paused. */
const QUEUED_BODY_BYTES = 64 * 1024
/** Request bytes kept until the connection is established, so a refused connection can be retried elsewhere. */
const RETRY_BODY_BYTES = 64 * 1024

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * One request and its response, on the backend side. Stages (docs/architecture.md): pick instance
 * (503 with none in service or on spillover; or wait in the surge queue) -> send (a refused
 * connection retried on another instance, else 503; a failed TLS handshake with an https instance
 * 408) -> read and judge the response (502 for a
 * malformed response, 504 for a close without a response or the idle timeout) -> commit or
 * synthesize -> log.
 */
export class Exchange implements ConnectionUser, QueuedRequest {
  /** QueuedRequest/InFlightRequest: its place in its instance's in-flight list (kept by that list). */
  inFlightIndex = -1
  private instance: Instance | null = null
  /** Waiting in the surge queue (CLB-CW SurgeQueueLength) for an instance with a free slot. */
  private queued = false
  /** Body bytes received while queued (made only for a queued request: nothing is allocated per request). */
  private queuedBody: Buffer[] | null = null
  private queuedBodyBytes = 0
  private resumeRequest: (() => void) | null = null
  /** Instances whose connection failed for this request (a refused one is retried on another); made on the first failure. */
  private tried: Instance[] | null = null
  /** Each failed connection of this request, in order (the 503's diagnostic names them all); made on the first failure. */
  private connectionFailures: Array<{ readonly instance: string; readonly error: string }> | null = null
  /** Body bytes sent on a connection not yet established; null once too many to retry with. */
  private retryBody: Buffer[] | null = null
  private retryBodyBytes = 0
  private sticky: StickyChoice = NOT_STICKY
  private connection: BackendConnection | null = null
  private socket: net.Socket | null = null
  private connected = false
  private readonly parser: ResponseParser
  private readonly chunks: Buffer[] = []
  private bufferedBytes = 0
  private committed = false
  private sentBodyBytes = 0
  private done = false
  private requestComplete = false
  private requestBodyBytes = 0
  private dispatchedAtMicros: number | null = null
  private firstByteAtMicros: number | null = null
  private respondedAtMicros: number | null = null
  /** The streaming rule's timer: armed once, when a head is complete and its response is not. */
  private holdTimer: NodeJS.Timeout | null = null
  private cutReason: CutReason | null = null
  /** Whether the response is an event stream (decided once, when its head is complete). */
  private eventStream: boolean | null = null

  constructor (private readonly context: ExchangeContext, private readonly client: ClientSide, private readonly request: RequestInfo) {
    this.parser = new ResponseParser({ requestMethod: request.head.method, maxHeadBytes: context.options.maxHeadBytes })
  }

  /** Stage "pick instance" and "send": dispatches the head and any body bytes already received. */
  start (initialBody: Buffer | null, requestComplete: boolean): void {
    if (requestComplete) this.requestComplete = true
    // The body bytes that came with the head: counted here, once (sendBody counts the later ones).
    if (initialBody !== null) this.requestBodyBytes += initialBody.length
    const stickiness = this.context.stickiness
    if (stickiness !== null) this.sticky = stickiness.choose(this.request.head.fields)
    const routed = this.context.pool.route(this, this.sticky.instance)
    switch (routed) {
      // CLB-HTTPERR 503: "There are no registered instances" / "There are no healthy instances".
      case 'no-instance-in-service': return this.synthesize(503, 'no-healthy-instance')
      // CLB-CW SpilloverCount: rejected "because the surge queue is full"; [HTTP listener] 503.
      case 'spillover': return this.synthesize(503, 'spillover')
      case 'queued':
        this.queued = true
        if (initialBody !== null) this.holdWhileQueued(initialBody)
        return
      default: return this.send(routed, initialBody)
    }
  }

  /** QueuedRequest: an instance has a free slot for this request, which waited in the surge queue. */
  dispatch (instance: Instance): void {
    if (this.done) return
    this.queued = false
    const body = this.queuedBody !== null && this.queuedBodyBytes > 0 ? Buffer.concat(this.queuedBody, this.queuedBodyBytes) : null
    this.queuedBody = null
    this.queuedBodyBytes = 0
    this.send(instance, body)
    this.resumeClient()
  }

  /** QueuedRequest: the last instance in service went while this request waited. */
  noInstanceInService (): void {
    if (this.done) return
    this.synthesize(503, 'no-healthy-instance')
  }

  /**
   * InFlightRequest: the instance was deregistered (draining disabled, or its timeout passed) or
   * went out of service with draining disabled. CLB-DRAIN: such requests "are not completed"; the
   * client gets CLB's 504 (observed, O-CTB), or a committed response is cut.
   */
  instanceGone (): void {
    if (this.done) return
    if (this.committed) return this.cut('instance-deregistered')
    this.synthesize(504, 'instance-deregistered')
  }

  /**
   * The client closed its side (FIN) while this request waited in the surge queue. Our choice
   * (docs/clb-choices.md): the request is dropped, never sent to an instance, and logged as the
   * client's departure (408, CLB-HTTPERR 408 cause 2), so a client that gave up (a timed-out curl,
   * a closed tab) frees its place and does not run a request nobody waits for. A request already
   * sent is not affected: a half-closed client still gets its answer.
   */
  clientEndedWhileQueued (): void {
    if (this.queued && !this.done) this.clientGone()
  }

  /** The client connection's idle timeout passed with the request complete: only a queued request is still ours to answer. */
  clientIdle (): void {
    // CLB-HTTPERR 504: the request "did not complete within the idle timeout period".
    if (this.queued && !this.done) this.synthesize(504, 'backend-timeout')
  }

  private holdWhileQueued (bytes: Buffer): boolean {
    this.queuedBody ??= []
    this.queuedBody.push(bytes)
    this.queuedBodyBytes += bytes.length
    return this.queuedBodyBytes < QUEUED_BODY_BYTES
  }

  /** Stage "send": the head and the body bytes so far, on a kept-alive connection or a new one. */
  private send (instance: Instance, initialBody: Buffer | null): void {
    this.instance = instance
    const acquired = instance.acquire()
    // The keep-alive race, emulated (docs/clb-choices.md): CLB reuses a connection the instance just closed.
    if (acquired.kind === 'closed-by-instance') return this.synthesize(504, 'keepalive-race')
    const { connection, reused } = acquired
    const socket = connection.socket
    this.connection = connection
    this.socket = socket
    this.connected = reused
    const head = buildForwardedHead(this.request.head, {
      clientAddress: this.client.address,
      listenerPort: this.client.listenerPort,
      listenerAddress: this.client.listenerAddress,
      listenerProtocol: this.client.listenerProtocol
    })
    connection.user = this
    if (reused) this.dispatchedAtMicros = this.context.clock.nowMicros()
    // A new connection keeps the body bytes sent on it until it is established (forward() adds them).
    this.retryBody = reused ? null : []
    this.retryBodyBytes = 0
    // The head and the body bytes that came with it leave together (one writev) at the turn's end.
    writeInTurn(socket, head)
    if (initialBody !== null && initialBody.length > 0) this.forward(initialBody)
  }

  /** Request body bytes as they arrive from the client (forwarded as framed on the wire); counted once, here. */
  sendBody (bytes: Buffer): boolean {
    this.requestBodyBytes += bytes.length
    if (this.queued && !this.done) return this.holdWhileQueued(bytes)
    return this.forward(bytes)
  }

  /** Body bytes to the instance's connection (the client's, or those held while queued or for a retry). */
  private forward (bytes: Buffer): boolean {
    // Forwarding stops when the instance reset the connection (it answered early and closed):
    // the bytes are counted as received and discarded; its answer is still read (BackendSocket).
    if (this.done || this.connection === null || !this.connection.writable) return true
    if (!this.connected && this.retryBody !== null) {
      this.retryBodyBytes += bytes.length
      if (this.retryBodyBytes <= RETRY_BODY_BYTES) this.retryBody.push(bytes)
      else this.retryBody = null
    }
    return writeInTurn(this.socket as net.Socket, bytes)
  }

  onRequestDrain (resume: () => void): void {
    if (this.socket === null || this.done) {
      if (this.queued && !this.done) this.resumeRequest = resume
      else resume()
      return
    }
    this.resumeRequest = resume
    this.socket.once('drain', () => this.resumeClient())
  }

  /** The client, paused while the instance's connection (or the queue) held enough, may send again. */
  private resumeClient (): void {
    const resume = this.resumeRequest
    this.resumeRequest = null
    resume?.()
  }

  endOfRequest (): void {
    this.requestComplete = true
  }

  /** The client went away before its answer was complete. */
  clientGone (): void {
    if (this.done) return
    if (this.committed) return this.cut('client-gone')
    // CLB-HTTPERR 408 cause 2: "Connection to the client is closed (load balancer could not send a response)".
    this.finish('client-closed', { elbStatus: 408, backendStatus: 'no-response', backendReached: false, keepBackend: false, keepClient: false })
  }

  /**
   * Shutdown reached the drain deadline with this exchange in flight. CLB-DRAIN: at the timeout the
   * load balancer "forcibly closes connections to the de-registering instance"; an in-flight request
   * then gets CLB's 504 (observed with draining disabled, O-CTB). A committed response is cut.
   */
  drainTimedOut (): void {
    if (this.done) return
    if (this.committed) return this.cut('shutdown')
    this.client.write(SYNTHETIC_RESPONSES[504])
    this.finish('drain-timeout', { elbStatus: 504, backendStatus: 'no-response', backendReached: false, keepBackend: false, keepClient: false })
  }

  /**
   * The client will never complete its request: it half-closed mid-request, or sent nothing for the
   * idle timeout. CLB-HTTPERR 408: the client "failed to send a full request" ("specified content
   * size doesn't match the actual content size transmitted").
   */
  abandonRequest (outcome: 'client-closed' | 'client-timeout'): void {
    if (this.done) return
    if (this.committed) return this.cut('request-abandoned')
    this.client.write(SYNTHETIC_RESPONSES[408])
    this.finish(outcome, { elbStatus: 408, backendStatus: 'no-response', backendReached: false, keepBackend: false, keepClient: false })
  }

  /**
   * ConnectionUser: a new connection to the instance is established (for an https instance, its TLS
   * handshake is done); the request goes out now, so request_processing_time ends here.
   */
  onConnect (): void {
    this.connected = true
    this.retryBody = null
    this.dispatchedAtMicros = this.context.clock.nowMicros()
  }

  /** ConnectionUser: response bytes from the instance. */
  onData (chunk: Buffer): void {
    if (this.done) return
    const events = this.context.events
    if (events.listenerCount('backend-read') > 0) events.emit('backend-read', { bytes: chunk.length })
    if (this.firstByteAtMicros === null) this.firstByteAtMicros = this.context.clock.nowMicros()
    const defectsBefore = this.parser.defects.length
    this.parser.push(chunk)
    if (this.committed) return this.streamCommitted(chunk, defectsBefore)
    // Bounded: by maxHeadBytes until the head is complete, by responseBufferBytes after. Held past
    // this read, so kept (the chunk is a view of the connection's read buffer: BackendConnection#keep).
    this.chunks.push((this.connection as BackendConnection).keep(chunk))
    this.bufferedBytes += chunk.length
    if (this.parser.state === 'invalid') return this.reject()
    if (this.parser.state === 'complete') return this.relayComplete()
    // A defect that rejects is final (defects only accumulate): answer the 502 now instead of waiting
    // for an end that may never come, e.g. a malformed head without framing on a kept-alive connection.
    if (this.parser.defects.length > defectsBefore && judge(this.parser.defects, this.context.options.profile).action === 'reject') return this.reject()
    const head = this.parser.head
    if (head === null) return
    // The commit rule (docs/architecture.md): an incomplete response is held and judged for at most
    // responseHoldMs after its head, or up to responseBufferBytes; an event stream only until the
    // line after its head has shown whether it is a header after a blank line (KC-502).
    this.eventStream ??= isEventStream(head)
    if (this.bufferedBytes > this.context.options.responseBufferBytes ||
      (this.eventStream && !this.parser.decidingBlankLine)) return this.commit()
    // The closure is made here, for the few responses held, not with every exchange.
    if (this.holdTimer === null) this.holdTimer = setTimeout(() => this.holdExpired(), this.context.options.responseHoldMs)
  }

  /** The streaming rule: the response is still arriving responseHoldMs after its head; it streams from now. */
  private holdExpired (): void {
    this.holdTimer = null
    if (!this.done && !this.committed) this.commit()
  }

  /** ConnectionUser: the instance closed the connection (FIN or reset), or it never opened. */
  onClosed (): void {
    if (this.done) return
    if (!this.connected) return (this.connection as BackendConnection).tlsHandshakeFailed ? this.tlsHandshakeFailed() : this.connectionFailed()
    this.parser.finish()
    if (this.committed) {
      if (this.parser.state === 'complete') return this.finishRelayed()
      return this.cut(judge(this.parser.defects, this.context.options.profile).action === 'reject' ? 'defect' : 'instance-closed')
    }
    if (this.parser.state === 'complete') return this.relayComplete()
    // CLB-HTTPERR 504 cause 2: "Registered instances closing the connection to Elastic Load Balancing."
    if (this.parser.defects.some((d) => d.code === 'EMPTY_RESPONSE')) return this.synthesize(504, 'backend-closed')
    this.reject()
  }

  /**
   * The connection to the instance was never established (refused, unreachable). CLB-CW
   * BackendConnectionErrors: "Because the load balancer retries the connection when there are
   * errors, this count can exceed the request rate": the request goes to another instance in
   * service when one has a free slot and every byte sent so far was kept (RETRY_BODY_BYTES);
   * otherwise CLB's 503 (CLB-HTTPERR 503, unreachable instances, observed in O-natalian).
   */
  private connectionFailed (): void {
    const failed = this.instance as Instance
    const connection = this.connection as BackendConnection
    this.context.events.emit('backend-connection-error', {
      instanceId: failed.id,
      instance: failed.label,
      error: connection.systemError ?? 'ECONNREFUSED',
      source: 'request'
    })
    this.connectionFailures ??= []
    this.connectionFailures.push({ instance: failed.label, error: connection.systemError ?? 'ECONNREFUSED' })
    const body = this.retryBody
    if (body !== null) {
      this.tried ??= []
      this.tried.push(failed)
      const next = this.context.pool.retry(this, failed, this.tried)
      if (next !== null) {
        connection.user = null
        this.send(next, body.length === 0 ? null : Buffer.concat(body))
        // A client paused on the refused connection's back-pressure would wait for a drain that never comes.
        this.resumeClient()
        return
      }
    }
    this.synthesize(503, 'backend-unreachable')
  }

  /**
   * The TLS handshake with an https instance failed, or stalled for the idle timeout. CLB answered
   * its 408 when an HTTPS instance could not complete the handshake (O-408: "the request hung and
   * then got this 408"); we answer at once, as the failure is known at once (the hang was most
   * likely the client's own timeout). Counted in CLB-CW BackendConnectionErrors (the connection
   * was "not successfully established"). Not retried on another instance (our choice): a
   * certificate, CA, protocol or cipher mismatch is the instance's configuration, not a passing
   * fault like a refused connection, and is the same on every instance built alike.
   */
  private tlsHandshakeFailed (): void {
    const failed = this.instance as Instance
    const connection = this.connection as BackendConnection
    // A FIN or close without an error event (node:tls usually reports ECONNRESET itself).
    connection.lastError ??= 'ECONNRESET'
    connection.lastErrorMessage ??= 'the instance closed the connection during the TLS handshake'
    this.context.events.emit('backend-connection-error', {
      instanceId: failed.id,
      instance: failed.label,
      error: connection.lastError,
      source: 'request'
    })
    this.synthesize(408, 'backend-tls-failed')
  }

  /** ConnectionUser: nothing sent or received for the idle timeout (CLB-IDLE). */
  onIdleTimeout (): void {
    if (this.done) return
    if (this.committed) return this.cut('idle-timeout')
    const connection = this.connection
    if (!this.connected && connection !== null && connection.tlsHandshakeFailed) {
      // The instance accepted the connection but never completed the TLS handshake.
      connection.lastError ??= 'ETIMEDOUT'
      connection.lastErrorMessage ??= `no TLS handshake within the ${this.context.options.idleTimeoutSeconds} s idle timeout`
      return this.tlsHandshakeFailed()
    }
    // The request body is still incomplete: the client went quiet, not the instance (408, not 504).
    if (!this.requestComplete) return this.abandonRequest('client-timeout')
    // CLB-HTTPERR 504 cause 1: the request "did not complete within the idle timeout period".
    this.synthesize(504, 'backend-timeout')
  }

  /** The whole response is here and judged before the client sees a byte. */
  private relayComplete (): void {
    const verdict = judge(this.parser.defects, this.context.options.profile)
    if (verdict.action === 'reject') return this.reject()
    const head = this.parser.head as NonNullable<ResponseParser['head']>
    const end = this.parser.messageEnd
    this.respondedAtMicros = this.context.clock.nowMicros()
    const added = this.addStickinessHeaders(head)
    this.writeBuffered(end + added)
    this.sentBodyBytes = end - head.end
    this.finishRelayed()
  }

  private commit (): void {
    const verdict = judge(this.parser.defects, this.context.options.profile)
    if (verdict.action === 'reject') return this.reject()
    this.committed = true
    this.respondedAtMicros = this.context.clock.nowMicros()
    const head = this.parser.head as NonNullable<ResponseParser['head']>
    const added = this.addStickinessHeaders(head)
    this.writeBuffered(this.bufferedBytes)
    this.sentBodyBytes = this.bufferedBytes - added - head.end
    this.chunks.length = 0
  }

  /**
   * The stickiness policy's cookie lines (CLB-STICKY), added to the held head before the client
   * sees it; the rest of the bytes are unchanged. Returns how many bytes were added.
   */
  private addStickinessHeaders (head: NonNullable<ResponseParser['head']>): number {
    const stickiness = this.context.stickiness
    if (stickiness === null || this.instance === null) return 0
    const lines = stickiness.responseHeaderLines(this.instance, this.sticky, head.fields)
    if (lines.length === 0) return 0
    const held = Buffer.concat(this.chunks, this.bufferedBytes)
    let rewritten: Buffer
    try {
      rewritten = insertHeaderLines(held, head.end, lines)
    } catch {
      // A head the parser accepted always ends with a blank line; should one not, it goes unchanged.
      return 0
    }
    this.chunks.length = 0
    this.chunks.push(rewritten)
    const added = rewritten.length - held.length
    this.bufferedBytes += added
    return added
  }

  private streamCommitted (chunk: Buffer, defectsBefore: number): void {
    const newDefects = this.parser.defects.slice(defectsBefore)
    if (this.parser.state === 'invalid' || judge(newDefects, this.context.options.profile).action === 'reject') return this.cut('defect')
    const received = this.parser.bytesReceived
    const connection = this.connection as BackendConnection
    const read = connection.toWrite(chunk)
    const part = this.parser.state === 'complete' ? read.subarray(0, read.length - (received - this.parser.messageEnd)) : read
    this.sentBodyBytes += part.length
    // Back-pressure: the instance's socket waits until the client has drained. Not after the last
    // bytes: the connection then goes back to the pool, and a client connection that is ending (a
    // FIN follows the answer) never emits 'drain', so a pooled connection paused here was never
    // read again and the next request sent on it got a 504. A later drain resumes the socket only
    // while this exchange still owns it (the next exchange may have paused it for its own client).
    // A view (a long chunk: toWrite copies short ones) that the client's socket still holds, waiting
    // for the kernel, keeps the read buffer: the next read must not overwrite it. The buffer is
    // given back when the write is done (the callback never runs before write() returns).
    let lent = false
    const drained = this.client.write(part, read === chunk ? () => { if (lent) returnReadBuffer(read) } : undefined)
    if (read === chunk && this.client.holdsWrites) {
      connection.lendReadBuffer()
      lent = true
    }
    if (!drained && this.parser.state !== 'complete') {
      const socket = this.socket as net.Socket
      socket.pause()
      this.client.onDrain(() => { if (!this.done) socket.resume() })
    }
    if (this.parser.state === 'complete') this.finishRelayed()
  }

  private writeBuffered (end: number): void {
    let remaining = end
    for (const chunk of this.chunks) {
      if (remaining <= 0) break
      // A held chunk may be a lent read buffer (BackendConnection#keep): given back once written.
      this.client.write(chunk.length <= remaining ? chunk : chunk.subarray(0, remaining), readBufferReturner(chunk))
      remaining -= chunk.length
    }
  }

  private finishRelayed (): void {
    const head = this.parser.head as NonNullable<ResponseParser['head']>
    const keepBackend = head.reusable && this.requestComplete &&
      !this.parser.defects.some((d) => d.code === 'EXTRA_BYTES_AFTER_RESPONSE' || d.code === 'BODY_NOT_ALLOWED')
    // ELB-HOW: the load balancer honors the client's Connection header after proxying the response;
    // a response that ends with the connection, or says close, ends the client connection too.
    const keepClient = this.requestComplete && !this.request.head.closeAfter && head.framing.kind !== 'until-close' &&
      head.reusable
    this.finish('relayed', { elbStatus: head.statusCode, backendStatus: head.statusCode, backendReached: true, keepBackend, keepClient })
  }

  /** CLB's 502: the backend's response could not be parsed (KC-502). */
  private reject (): void {
    this.client.write(SYNTHETIC_RESPONSES[502])
    this.respondedAtMicros = this.context.clock.nowMicros()
    this.finish('rejected', {
      elbStatus: 502,
      backendStatus: 'rejected',
      backendReached: true,
      keepBackend: false,
      keepClient: this.requestComplete && !this.request.head.closeAfter
    })
  }

  /** A defect after the response was committed: the client connection is aborted, as CLB cannot take bytes back. */
  private cut (reason: CutReason): void {
    const head = this.parser.head as NonNullable<ResponseParser['head']>
    this.cutReason = reason
    this.client.abort()
    this.finish('cut', { elbStatus: head.statusCode, backendStatus: head.statusCode, backendReached: true, keepBackend: false, keepClient: false })
  }

  private synthesize (status: SyntheticStatus, outcome: ExchangeOutcome): void {
    this.client.write(SYNTHETIC_RESPONSES[status])
    this.finish(outcome, {
      elbStatus: status,
      backendStatus: 'no-response',
      backendReached: false,
      keepBackend: false,
      keepClient: keepsClientConnection(status) && this.requestComplete && !this.request.head.closeAfter
    })
  }

  /** The defect behind an ELB-generated answer: the rejection's primary, or EMPTY_RESPONSE for the 504 it causes. */
  private decidingDefect (outcome: ExchangeOutcome): Defect | null {
    if (outcome === 'rejected') return judge(this.parser.defects, this.context.options.profile).primary
    if (outcome === 'backend-closed') return this.parser.defects.find((d) => d.code === 'EMPTY_RESPONSE') ?? null
    return null
  }

  private finish (outcome: ExchangeOutcome, how: {
    elbStatus: number
    backendStatus: AccessLogRecord['backendStatusCode']
    backendReached: boolean
    keepBackend: boolean
    keepClient: boolean
  }): void {
    if (this.done) return
    this.done = true
    if (this.request.closeAfterResponse === true) {
      how.keepBackend = false
      how.keepClient = false
    }
    if (this.holdTimer !== null) clearTimeout(this.holdTimer)
    const connection = this.connection
    if (connection !== null) {
      connection.user = null
      if (how.keepBackend && this.instance !== null) {
        this.instance.release(connection)
      } else {
        // What this turn still holds for the instance goes first (turn-writes.ts), as before the close.
        flushNow(connection.socket)
        connection.socket.destroy()
      }
    }
    this.queued = false
    this.context.pool.finished(this, this.instance)
    const clock = this.context.clock
    const head = this.request.head
    // CLB-LOGS: backend:port and the three timings are "-" / -1 when the instance was not reached,
    // closed the connection before a response, or did not respond before the idle timeout.
    const reached = how.backendReached && this.instance !== null
    const log: AccessLogRecord = {
      receivedAtMicros: this.request.receivedAtMicros,
      elbName: this.context.options.name,
      clientAddress: this.client.address,
      clientPort: this.client.port,
      backend: reached ? { address: (this.instance as Instance).address.host, port: (this.instance as Instance).address.port } : null,
      requestProcessingSeconds: reached ? secondsBetween(this.request.receivedAtMicros, this.dispatchedAtMicros) : null,
      backendProcessingSeconds: reached ? secondsBetween(this.dispatchedAtMicros, this.firstByteAtMicros) : null,
      responseProcessingSeconds: reached ? secondsBetween(this.firstByteAtMicros, this.respondedAtMicros ?? clock.nowMicros()) : null,
      elbStatusCode: how.elbStatus,
      backendStatusCode: how.backendStatus,
      receivedBytes: this.requestBodyBytes,
      sentBytes: outcome === 'relayed' || outcome === 'cut' ? Math.max(0, this.sentBodyBytes) : 0,
      method: head.method,
      scheme: this.client.listenerProtocol,
      host: hostWithoutPort(head) ?? this.client.listenerAddress,
      listenerPort: this.client.listenerPort,
      target: head.target,
      httpVersion: head.version,
      userAgent: fieldValue(head.fields, 'user-agent'),
      sslCipher: this.client.tls?.cipher ?? null,
      sslProtocol: this.client.tls?.protocol ?? null
    }
    // The first options.captureBytes bytes, copied out (not a view that would keep the whole buffer alive).
    // The response bytes matter to diagnostics and captures only when something was wrong; a clean
    // relayed response is not copied (this runs once per request).
    const clean = outcome === 'relayed' && this.parser.defects.length === 0
    const responseBytes = clean || this.chunks.length === 0 ? null : Buffer.concat(this.chunks, Math.min(this.bufferedBytes, this.context.options.captureBytes))
    // Held chunks may be lent read buffers, given back once written: nothing reads them from here on.
    this.chunks.length = 0
    const defects: readonly Defect[] = this.parser.defects
    const record: Mutable<ExchangeRecord> = {
      outcome,
      cutReason: this.cutReason,
      elbGenerated: outcome !== 'relayed' && outcome !== 'cut',
      log,
      defects,
      defectCounts: this.parser.defectCounts,
      instance: this.instance?.label ?? null,
      instanceId: this.instance?.id ?? null,
      backendError: connection?.systemError ?? null,
      backendErrorMessage: connection?.lastErrorMessage ?? null,
      primaryDefect: this.decidingDefect(outcome),
      responseBytes,
      requestHead: this.request.rawHead
    }
    // Optional fields are set only when present (an object spread here cost every request a copy).
    if (this.connectionFailures !== null && this.connectionFailures.length > 1) record.connectionFailures = this.connectionFailures
    if (this.request.desync !== undefined) record.desync = this.request.desync
    this.context.events.emit('exchange', record)
    this.client.exchangeDone(how.keepClient)
  }
}
