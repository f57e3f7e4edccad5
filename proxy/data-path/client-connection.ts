import type net from 'node:net'
import { TLSSocket } from 'node:tls'
import { RequestParser, type RequestHead, type RequestParserState } from '../../validators/request-parser.js'
import { classifyRequest, desyncAction, type DesyncClassification } from '../../validators/desync-classifier.js'
import type { Defect } from '../../validators/defects.js'
import type { AccessLogRecord } from '../core/access-log-record.js'
import { Exchange, type ClientSide, type ExchangeContext } from './exchange.js'
import type { ExchangeOutcome, ExchangeRecord } from '../core/events.js'
import { fieldValue, hostWithoutPort } from './forwarded-head.js'
import { unmapIpv4 } from './proxy-protocol.js'
import { CONTINUE_RESPONSE, SYNTHETIC_RESPONSES, type SyntheticStatus } from './synthetic-responses.js'
import { flushNow, writeInTurn } from './turn-writes.js'

/** The counts of `ClientConnection.sendProgress`. */
interface SendProgress {
  readonly held: number
  readonly queued: number
  readonly queuedBeneath: number
}

/** A libuv stream handle; under TLS, `_parent` is the TCP handle the TLS handle writes to. */
interface QueuedHandle {
  readonly writeQueueSize?: number
  readonly _parent?: { readonly writeQueueSize?: number } | null
}

/**
 * One front-end connection: reads requests one after another (pipelining is supported on
 * front-end connections, ELB-HOW), runs one Exchange at a time, and enforces the idle timeout
 * (CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
 * elapses, the load balancer closes the connection").
 */
export class ClientConnection implements ClientSide {
  readonly address: string
  readonly port: number
  readonly listenerAddress: string
  readonly listenerPort: number
  readonly listenerProtocol: 'http' | 'https'
  readonly tls: { readonly cipher: string; readonly protocol: string } | null

  private parser: RequestParser
  private exchange: Exchange | null = null
  private readonly pending: Buffer[] = []
  private pendingBytes = 0
  private headChunks: Buffer[] = []
  private requestStartedAtMicros: number | null = null
  private processing = false
  private closing = false
  private closed = false
  private clientEnded = false
  /**
   * The proxy decided to close: the answer is written and FIN sent; every further byte from the
   * client is read and discarded, never parsed (RFC 9112 section 9.6: no request after a close is
   * processed), until the client closes or lingerSeconds pass (a lingering close, as nginx does).
   */
  private lingering = false
  private lingerTimer: NodeJS.Timeout | null = null
  /** Watches answer bytes still leaving the socket, one idle period at a time (destroyWhenStuck). */
  private sendingTimer: NodeJS.Timeout | null = null
  /** The next request waits until the socket has handed the answers before it to the kernel ('drain'). */
  private awaitingDrain = false

  constructor (private readonly socket: net.Socket, private readonly context: ExchangeContext, private readonly onClosed: (connection: ClientConnection) => void) {
    this.address = unmapIpv4(socket.remoteAddress ?? '-')
    this.port = socket.remotePort ?? 0
    this.listenerAddress = unmapIpv4(socket.localAddress ?? '127.0.0.1')
    this.listenerPort = socket.localPort ?? 0
    // An HTTPS listener hands over its sockets after the handshake ('secureConnection'): the
    // cipher and protocol are known (CLB-LOGS ssl_cipher: "recorded only if the incoming SSL/TLS
    // connection was established after a successful negotiation").
    const cipher = socket instanceof TLSSocket ? socket.getCipher() : undefined
    this.listenerProtocol = socket instanceof TLSSocket ? 'https' : 'http'
    this.tls = cipher === undefined ? null : { cipher: cipher.name, protocol: socket instanceof TLSSocket ? (socket.getProtocol() ?? cipher.version) : cipher.version }
    this.parser = new RequestParser(context.options)
    socket.setNoDelay(true)
    socket.setTimeout(context.options.idleTimeoutSeconds * 1000)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('end', () => this.onEnd())
    socket.on('timeout', () => this.onIdle())
    socket.on('error', () => {})
    socket.on('close', () => this.onClose())
  }

  /** True while no request is in progress: safe to close on shutdown. */
  get idle (): boolean {
    return this.exchange === null && this.requestStartedAtMicros === null && this.pendingBytes === 0 && !this.lingering
  }

  write (bytes: Buffer, written?: () => void): boolean {
    if (this.closed || this.socket.destroyed) return true
    return writeInTurn(this.socket, bytes, written)
  }

  /** True while the socket holds written bytes it has not handed to the kernel (node:stream writableLength). */
  get holdsWrites (): boolean {
    return this.socket.writableLength > 0
  }

  onDrain (resume: () => void): void {
    if (this.closed) resume()
    else this.socket.once('drain', resume)
  }

  abort (): void {
    // The bytes already relayed reach the client before the connection is cut.
    flushNow(this.socket)
    this.socket.destroy()
  }

  /** Shutdown: finish the current exchange, then close; close now when idle. */
  closeWhenIdle (): void {
    this.closing = true
    if (this.idle) this.lingerAndClose()
  }

  /**
   * The drain deadline: an in-flight exchange gets CLB's 504 (or is cut), a request still arriving
   * gets the 408; then the connection goes.
   */
  closeAtDrainDeadline (): void {
    if (!this.closed && this.exchange !== null) {
      this.exchange.drainTimedOut()
    } else if (!this.closed && this.requestStartedAtMicros !== null && this.parser.state !== 'complete') {
      // Part of a request head, no instance involved yet: the proxy stops waiting for the rest and
      // says so (CLB-HTTPERR 408: the client "failed to send a full request"). Closing without it
      // logged, at the close, a 408 the client never got, as a client that had left.
      this.respondWithoutBackend(408, 'drain-timeout', [])
    } else {
      flushNow(this.socket)
      this.socket.destroy()
      return
    }
    // The answer ends the socket; destroy once it is flushed (a slow reader still gets it), so a
    // client that never closes its side (allowHalfOpen) cannot hold the shutdown.
    if (!this.socket.destroyed) this.socket.end(() => this.socket.destroy())
  }

  exchangeDone (keepOpen: boolean): void {
    this.exchange = null
    this.requestStartedAtMicros = null
    if (!keepOpen || this.closing || (this.clientEnded && this.pendingBytes === 0)) {
      // Pipelined bytes after this exchange, and the rest of a request body the instance answered
      // before reading, are never read as a request: the connection ends here. (This can run
      // inside process(), when an exchange finishes synchronously, e.g. a 503.) A client that
      // half-closed after pipelining its requests still gets an answer to each of them (below).
      this.lingerAndClose()
      return
    }
    this.parser = new RequestParser(this.context.options)
    this.headChunks = []
    if (this.socket.isPaused()) this.socket.resume()
    if (!this.processing) this.process()
  }

  /**
   * One decision, one close: FIN after the answer, then the client's further bytes are discarded
   * until it closes its side or lingerSeconds pass, so it reads the answer instead of the reset a
   * close with unread bytes would send. RFC 9112 section 9.6: "servers typically close a connection
   * in stages. First, the server performs a half-close by closing only the write side ... The server
   * then continues to read from the connection until it receives a corresponding close by the
   * client, or until the server is reasonably certain that its own TCP stack has received the
   * client's acknowledgement"; nginx's lingering_close does the same.
   */
  private lingerAndClose (): void {
    this.pending.length = 0
    this.pendingBytes = 0
    if (this.lingering) return
    this.lingering = true
    this.clearSendingTimer()
    if (this.socket.isPaused()) this.socket.resume()
    this.socket.end()
    if (this.closed) return
    // The answers leave first. A client that reads them slowly must get every byte: while the
    // socket still holds some, the connection is closed only if none of them leave for the idle
    // timeout (CLB-IDLE: "If no data has been sent or received by the time that the idle timeout
    // period elapses, the load balancer closes the connection"; nginx's send_timeout likewise
    // counts between two successive writes). node:net emits 'timeout' only once without activity,
    // so a connection whose idle timeout already fired needs this timer of its own.
    if (this.socket.writableLength > 0) {
      this.socket.once('finish', () => this.afterAnswersSent())
      // No byte is written after the decision to close; 'finish' follows once all have left.
      this.destroyWhenStuck(this.sendProgress(), () => !this.socket.destroyed)
      return
    }
    this.afterAnswersSent()
  }

  /**
   * Every answer byte and the FIN are with the kernel. A client that already closed its side sends
   * nothing more: the close completes by itself. Otherwise its further bytes are read and
   * discarded for lingerSeconds, then the connection is closed.
   */
  private afterAnswersSent (): void {
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer)
    this.lingerTimer = null
    if (this.closed || this.clientEnded) return
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = null
      this.socket.destroy()
    }, this.context.options.lingerSeconds * 1000)
  }

  /**
   * Destroys the socket once an idle period passes with none of its held bytes leaving (CLB-IDLE:
   * "If no data has been sent or received by the time that the idle timeout period elapses, the
   * load balancer closes the connection"). The counts of `sendProgress` are read again after each
   * period: any change is data sent, and the watch goes on. It ends, leaving the socket alone, once
   * every byte has left or `watching()` turns false.
   */
  private destroyWhenStuck (before: SendProgress, watching: () => boolean): void {
    this.clearSendingTimer()
    this.sendingTimer = setTimeout(() => {
      this.sendingTimer = null
      if (!watching() || this.socket.writableLength === 0) return
      const now = this.sendProgress()
      if (now.held !== before.held || now.queued !== before.queued || now.queuedBeneath !== before.queuedBeneath) return this.destroyWhenStuck(now, watching)
      this.socket.destroy()
    }, this.context.options.idleTimeoutSeconds * 1000)
  }

  /**
   * What the socket still has to send, as Node sees it: node:stream's count falls as each write
   * completes; libuv's `writeQueueSize` as the kernel takes part of the write in progress (node:net's
   * own idle timeout reads the same field to tell a slow write from none). Under TLS, the TLS
   * handle's count stays put while one large encrypted write leaves, and only the TCP handle
   * beneath it moves (measured: 31.5 MB queued on both, then only the TCP count fell). The counts
   * are compared one by one, never summed: a write handed to libuv is counted in more than one.
   */
  private sendProgress (): SendProgress {
    const handle = (this.socket as unknown as { _handle?: QueuedHandle | null })._handle
    return { held: this.socket.writableLength, queued: handle?.writeQueueSize ?? 0, queuedBeneath: handle?._parent?.writeQueueSize ?? 0 }
  }

  private onData (chunk: Buffer): void {
    if (this.lingering) return
    // A read restarts node:net's idle clock.
    if (this.sendingTimer !== null) this.clearSendingTimer()
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    if (!this.processing) this.process()
  }

  /**
   * Feeds queued client bytes to the current request; re-entrant calls are folded into the loop.
   * After the client's FIN, what it sent before is still served: each complete pipelined request
   * is answered in turn, and a request cut short by the FIN gets its 408 (afterClientEnd).
   */
  private process (): void {
    this.processing = true
    try {
      this.processPending()
    } finally {
      this.processing = false
    }
    if (this.clientEnded) this.afterClientEnd()
  }

  private processPending (): void {
    while (this.pending.length > 0 && !this.closed) {
      const parser = this.parser
      if (parser.state === 'complete') {
        // A pipelined request waits until the current exchange is done; bound what we hold.
        if (this.pendingBytes > this.context.options.maxHeadBytes) this.socket.pause()
        return
      }
      if (this.requestStartedAtMicros === null && this.socket.writableNeedDrain) {
        // A client that pipelines requests and does not read the answers: the next request is read
        // only once the socket has handed the answers before it to the kernel, as Node's http server
        // does (lib/_http_server.js pauses a socket whose writable side needs a drain, "so that we
        // don't become overwhelmed by a flood of pipelined requests that may never be resolved").
        // Otherwise every pipelined request's held answer (up to responseBufferBytes each) would
        // wait in memory for a client that reads nothing.
        if (this.pendingBytes > this.context.options.maxHeadBytes) this.socket.pause()
        if (!this.awaitingDrain) {
          this.awaitingDrain = true
          this.socket.once('drain', () => this.onAnswersDrained())
        }
        return
      }
      const chunk = this.pending.shift() as Buffer
      this.pendingBytes -= chunk.length
      if (this.requestStartedAtMicros === null) this.requestStartedAtMicros = this.context.clock.nowMicros()
      const wasHead = parser.state === 'head'
      const { consumed, bodyFrom } = parser.push(chunk)
      if (consumed < chunk.length) {
        this.pending.unshift(chunk.subarray(consumed))
        this.pendingBytes += chunk.length - consumed
      }
      // Re-read after push (a plain read would keep TypeScript's narrowing from before it).
      const state = stateOf(parser)
      if (state === 'invalid') {
        // The bytes that made the head invalid go with the diagnostic and the capture (bounded by maxHeadBytes).
        if (wasHead) this.headChunks.push(chunk.subarray(0, consumed))
        return this.badRequest(parser.defects[0] as Defect)
      }
      if (wasHead) {
        this.headChunks.push(bodyFrom < chunk.length || consumed < chunk.length ? chunk.subarray(0, bodyFrom) : chunk)
        if (parser.head === null) continue
        this.dispatch(parser.head, chunk.subarray(bodyFrom, consumed), state === 'complete')
        continue
      }
      const exchange = this.exchange
      if (exchange === null) continue
      if (state === 'complete') exchange.endOfRequest()
      if (!exchange.sendBody(chunk.subarray(0, consumed))) {
        this.socket.pause()
        exchange.onRequestDrain(() => { if (!this.closed) this.socket.resume() })
      }
    }
  }

  private dispatch (head: RequestHead, initialBody: Buffer, requestComplete: boolean): void {
    // ELB-HOW: on an Expect header the load balancer responds "immediately with an HTTP 100
    // Continue without testing the content length header, remove[s] the Expect header, and then
    // route[s] the request".
    let expectsContinue = false
    let upgrade: string | null = null
    for (const field of head.fields) {
      if (field.lowerName === 'expect') expectsContinue ||= field.value.toLowerCase() === '100-continue'
      else if (field.lowerName === 'upgrade') upgrade ??= field.value
    }
    // RFC 9110 section 15.2: "A server MUST NOT send a 1xx response to an HTTP/1.0 client"; section
    // 10.1.1: a server that receives 100-continue in an HTTP/1.0 request "MUST ignore that
    // expectation" (node:http and nginx send none). The Expect field is removed all the same.
    if (expectsContinue && head.version !== 'HTTP/1.0') this.write(CONTINUE_RESPONSE)
    // CLB HTTP listeners do not pass protocol upgrades (clb-behavior.md section 5.10): the request
    // is forwarded without Upgrade/Connection (forwarded-head.ts); observers say so once per path.
    if (upgrade !== null) this.context.events.emit('upgrade-dropped', { method: head.method, target: head.target, protocol: upgrade })
    const rawHead = this.headChunks.length === 1 ? this.headChunks[0] as Buffer : Buffer.concat(this.headChunks)
    // Stage "classify" (CLB-DESYNC): the head's tier decides, by desyncMode, whether the request is
    // blocked (400, close), routed and then closed (defensive, Ambiguous) or routed as usual.
    const classification = classifyRequest(rawHead, leadingEmptyLines(rawHead))
    const desync = classification.tier === 'Compliant' ? COMPLIANT_REQUEST : desyncOf(classification)
    const action = desyncAction(this.context.options.desyncMode, classification.tier)
    if (action === 'block') return this.respondWithoutBackend(400, 'desync-blocked', [], desync)
    const exchange = new Exchange(this.context, this, {
      head,
      rawHead,
      receivedAtMicros: this.requestStartedAtMicros ?? this.context.clock.nowMicros(),
      desync,
      // CLB-DESYNC, defensive mode and Ambiguous requests: "routes the requests but closes the
      // client and target connections".
      closeAfterResponse: action === 'allow-and-close'
    })
    this.exchange = exchange
    exchange.start(initialBody.length > 0 ? initialBody : null, requestComplete)
  }

  /** CLB-HTTPERR: 400 for a malformed request, 405 for a method longer than 127 characters. */
  private badRequest (defect: Defect): void {
    const status: SyntheticStatus = defect.code === 'REQUEST_METHOD_TOO_LONG' ? 405 : 400
    this.respondWithoutBackend(status, 'bad-request', [defect])
  }

  private onAnswersDrained (): void {
    this.awaitingDrain = false
    if (this.closed || this.lingering) return
    if (this.socket.isPaused()) this.socket.resume()
    if (!this.processing) this.process()
  }

  private onEnd (): void {
    this.clientEnded = true
    this.afterClientEnd()
  }

  /** The client has sent its FIN (now, or before the bytes just processed): what is left to do. */
  private afterClientEnd (): void {
    if (this.closed) return
    if (this.lingering) {
      // The client has finished sending: our FIN is already queued after the answer.
      this.socket.end()
      return
    }
    // Pipelined requests wait for the answers before them to drain; they are served then (process).
    if (this.awaitingDrain) return
    if (this.exchange !== null) {
      // A FIN before the request is complete: it never will be (CLB-HTTPERR 408).
      if (this.parser.state !== 'complete') this.exchange.abandonRequest('client-closed')
      // A request still waiting in the surge queue is not sent for a client that left.
      else this.exchange.clientEndedWhileQueued()
      return
    }
    if (this.requestStartedAtMicros !== null && this.parser.state !== 'complete') {
      // CLB-HTTPERR 408: the client "failed to send a full request".
      return this.respondWithoutBackend(408, 'client-closed', [])
    }
    this.socket.end()
  }

  private onIdle (): void {
    if (this.lingering) {
      // Answer bytes still leaving are destroyWhenStuck's to judge: node:net's timeout reads only the
      // TLS handle's count, which stays put while a large encrypted write leaves.
      if (this.socket.writableLength === 0) this.socket.destroy()
      return
    }
    if (this.exchange !== null) {
      // Mid-body: the client, not the instance, is the one that went quiet (CLB-HTTPERR 408).
      if (this.parser.state !== 'complete') this.exchange.abandonRequest('client-timeout')
      // A complete request still waiting in the surge queue has no backend timer of its own.
      else this.exchange.clientIdle()
      return
    }
    if (this.requestStartedAtMicros !== null) return this.respondWithoutBackend(408, 'client-timeout', [])
    // An earlier answer still leaving is data sent, not idleness (under TLS node:net's timeout
    // fires while a large answer leaves: it reads only the TLS handle's count).
    // Its bytes cannot reach a client if none leave for an idle period: destroyed, without waiting
    // for lingerSeconds as well. Once all have left, node:net's idle clock runs again from the last
    // write (stream_base_commons onWriteComplete updates the socket's timer), and fires from there.
    if (this.socket.writableLength > 0) return this.destroyWhenStuck(this.sendProgress(), () => this.betweenRequests())
    // CLB-IDLE: an idle front-end connection is closed. A request that crosses the FIN is not
    // read (it would run on the instance and its answer would reach nobody): lingering close.
    this.lingerAndClose()
  }

  /** No request in progress on an open connection that is not being closed. */
  private betweenRequests (): boolean {
    return !this.closed && !this.lingering && this.exchange === null && this.requestStartedAtMicros === null
  }

  private clearSendingTimer (): void {
    if (this.sendingTimer === null) return
    clearTimeout(this.sendingTimer)
    this.sendingTimer = null
  }

  private onClose (): void {
    if (this.closed) return
    this.closed = true
    this.clearSendingTimer()
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer)
    const exchange = this.exchange
    this.exchange = null
    if (exchange !== null) exchange.clientGone()
    // Reset in the middle of a request that never reached an instance: logged like a FIN there
    // (CLB-HTTPERR 408 cause 2: "Connection to the client is closed"); nothing can be written.
    else if (this.requestStartedAtMicros !== null && this.parser.state !== 'complete') this.respondWithoutBackend(408, 'client-closed', [])
    this.onClosed(this)
  }

  /** A status the load balancer answers without involving an instance; the connection then closes. */
  private respondWithoutBackend (status: SyntheticStatus, outcome: ExchangeOutcome, defects: readonly Defect[], desync?: ExchangeRecord['desync']): void {
    this.write(SYNTHETIC_RESPONSES[status])
    const line = this.parser.requestLineSeen
    const head = this.parser.head
    const log: AccessLogRecord = {
      receivedAtMicros: this.requestStartedAtMicros ?? this.context.clock.nowMicros(),
      elbName: this.context.options.name,
      clientAddress: this.address,
      clientPort: this.port,
      backend: null,
      requestProcessingSeconds: null,
      backendProcessingSeconds: null,
      responseProcessingSeconds: null,
      elbStatusCode: status,
      backendStatusCode: 'no-response',
      receivedBytes: this.parser.bodyBytes,
      sentBytes: 0,
      method: line?.method ?? null,
      scheme: this.listenerProtocol,
      host: hostWithoutPort(head) ?? this.listenerAddress,
      listenerPort: this.listenerPort,
      target: line?.target ?? null,
      httpVersion: line?.version ?? null,
      userAgent: head === null ? null : fieldValue(head.fields, 'user-agent'),
      sslCipher: this.tls?.cipher ?? null,
      sslProtocol: this.tls?.protocol ?? null
    }
    this.context.events.emit('exchange', {
      outcome,
      cutReason: null,
      elbGenerated: true,
      log,
      defects,
      defectCounts: this.parser.defectCounts,
      instance: null,
      instanceId: null,
      backendError: null,
      primaryDefect: defects[0] ?? null,
      responseBytes: null,
      requestHead: this.headChunks.length > 0 ? Buffer.concat(this.headChunks) : null,
      ...(desync === undefined ? {} : { desync })
    })
    this.requestStartedAtMicros = null
    this.lingerAndClose()
  }
}

type DesyncRecord = NonNullable<ExchangeRecord['desync']>

/** The desync record of every Compliant request: one shared, frozen value. */
const COMPLIANT_REQUEST: DesyncRecord = Object.freeze({ tier: 'Compliant', reason: 'Compliant', offset: null, message: null })

/** The record of a classification with findings: its tier, and the reason that decided it, with its offset and message. */
function desyncOf (classification: DesyncClassification): DesyncRecord {
  const decisive = classification.reasons.find((finding) => finding.reason === classification.reason) ?? null
  return { tier: classification.tier, reason: classification.reason, offset: decisive?.offset ?? null, message: decisive?.message ?? null }
}

function stateOf (parser: RequestParser): RequestParserState {
  return parser.state
}

/** Where the request line starts: RFC 9112 section 2.2 lets a server ignore empty lines before it. */
function leadingEmptyLines (head: Buffer): number {
  let at = 0
  while (at < head.length && (head[at] === 0x0d || head[at] === 0x0a)) at++
  return at
}
