/**
 * The socket to an instance and its listeners: a BackendSocket keeps reading after a write meets
 * the instance's reset (an early answer is still relayed); a BackendConnection forwards the socket's
 * events to its current user (an exchange, or the instance's pool while idle). The socket is opened
 * by instance-socket.ts: the BackendSocket itself (http instances) or TLS over it (https).
 */
import net from 'node:net'

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

  /** The last callback wrapped, and its wrapper: node:stream passes the same callback to every write of a stream. */
  private wrappedCallback: ((error?: Error | null) => void) | null = null
  private wrapper: ((error?: Error | null) => void) | null = null

  private keepReadingOnReset (callback: (error?: Error | null) => void): (error?: Error | null) => void {
    if (callback === this.wrappedCallback) return this.wrapper as (error?: Error | null) => void
    this.wrappedCallback = callback
    this.wrapper = (error) => {
      const code = (error as NodeJS.ErrnoException | null | undefined)?.code
      if (code !== undefined && PEER_GONE_ON_WRITE.has(code)) {
        this.writeFailure ??= error as NodeJS.ErrnoException
        callback()
        return
      }
      callback(error)
    }
    return this.wrapper
  }
}

/** OpenSSL's error text: `<hex>:error:<code>:<library>:<function>:<reason>:<file>:<line>:`. */
const OPENSSL_ERROR_TEXT = /:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/

/**
 * The words of a socket error, without OpenSSL's `<hex>:error:<code>:SSL routines:...:file:line`
 * wrapping: OpenSSL's reason ("wrong version number", "tlsv1 alert protocol version"), also when
 * node:tls reports it as a write's EPROTO ("write EPROTO <OpenSSL text>", when request bytes were
 * queued during the handshake); else Node's message ("unable to verify the first certificate").
 */
export function errorReason (error: Error): string {
  // OpenSSL's errors carry `library` ("SSL routines") and `reason`; node:tls's own (a certificate
  // that does not name the host) have a `reason` that is only the second half of their message.
  const { library, reason } = error as { library?: unknown, reason?: unknown }
  if (typeof library === 'string' && typeof reason === 'string' && reason.length > 0) return reason
  return OPENSSL_ERROR_TEXT.exec(error.message)?.[1] ?? error.message
}

/** Node's own read size for a socket (64 KiB): a read buffer of this size costs no extra system calls. */
export const READ_BUFFER_BYTES = 64 * 1024
/** A chunk at least this long is kept by lending the buffer it was read into; a shorter one is copied. */
const LEND_AT_BYTES = READ_BUFFER_BYTES / 2

/**
 * The buffer a plain (http) instance connection reads into, the same for every read until its bytes
 * are kept past the read (node:net `onread`: "incoming data is stored in a single buffer").
 *
 * Node's default reads allocate a new 64 KiB buffer per read, freed only by a garbage collection,
 * and V8 collects young buffers for their size only after some 32 MiB of them: streaming a large
 * body grew the proxy's resident memory by that much, all of it garbage (a 200 MB body: peak RSS
 * 92 MiB, 60 MiB with a collection forced every 20 ms; test/bin/memory-bounds.test.ts). A
 * connection that reuses its buffer makes no garbage while its bytes leave at once.
 *
 * A chunk handed to `onData` is therefore a view of this buffer, valid during the call. A user
 * that keeps the bytes (holds them, or hands them to a write that has not completed) says so with
 * `BackendConnection#keep` or `#lendReadBuffer`: the next read then goes to a new buffer, and the
 * old one lives as long as whoever kept it. TLS connections (https) read the ordinary way.
 */
export class InstanceReadBuffer {
  private buffer: Buffer | null = null
  private lent = false
  /** Where each read's bytes go: set by the connection once it exists. */
  deliver: (chunk: Buffer) => void = () => {}

  /** The `onread` option of the connection's socket (node:net). */
  readonly onread = {
    // Called once when the socket's handle is made, and after every read: a new buffer only when the last was lent.
    buffer: (): Buffer => {
      if (this.buffer === null || this.lent) {
        this.buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES)
        this.lent = false
      }
      return this.buffer
    },
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      this.deliver((buffer as Buffer).subarray(0, bytes))
      return true
    }
  }

  lend (): void {
    this.lent = true
  }
}

/** Who is told about a backend connection's events right now: its exchange, or the pool while idle. */
export interface ConnectionUser {
  /** The connection is established: TCP connected (http), or the TLS handshake done (https). */
  onConnect (): void
  /**
   * Bytes from the instance. For a plain connection they are a view of its read buffer, valid until
   * this returns: to keep them longer, use `BackendConnection#keep` or `#lendReadBuffer`.
   */
  onData (chunk: Buffer): void
  /** The instance's FIN, or the connection closed (reset, or destroyed). */
  onClosed (): void
  onIdleTimeout (): void
}

/**
 * How far a connection got: 'connecting' (TCP), 'handshaking' (TLS only: TCP connected, handshake
 * not done), 'established' (bytes flow to the instance). A connection that closes while
 * 'handshaking' failed its TLS handshake.
 */
export type BackendConnectionStage = 'connecting' | 'handshaking' | 'established'

/**
 * A backend socket with listeners attached once, for its whole life, that forward to its current
 * user: handing a kept-alive connection from one exchange to the next adds and removes no listener.
 */
export class BackendConnection {
  user: ConnectionUser | null = null
  /** When the connection went back to the pool (clock microseconds). */
  idleSinceMicros = 0
  /** The system or TLS error the socket reported last (ECONNREFUSED, ENOTFOUND, ECONNRESET, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_SSL_...), if any. */
  lastError: string | null = null
  /** Node's words for lastError (OpenSSL's reason for a TLS error); null when none. */
  lastErrorMessage: string | null = null
  stage: BackendConnectionStage = 'connecting'

  /**
   * `socket`: where requests are written and responses read (for https, the TLS socket);
   * `transport`: its TCP connection (the same socket for http); `readBuffer`: the buffer the
   * socket was opened to read into (openInstanceSocket), or null when it reads the ordinary way.
   */
  constructor (readonly socket: net.Socket, private readonly transport: BackendSocket, onGone: (connection: BackendConnection) => void,
    private readonly readBuffer: InstanceReadBuffer | null = null) {
    if (socket === transport) {
      socket.on('connect', () => {
        this.stage = 'established'
        this.user?.onConnect()
      })
    } else {
      // TLS (instance-socket.ts): 'connect' is the TCP connection, 'secureConnect' the handshake.
      socket.once('connect', () => { this.stage = 'handshaking' })
      socket.once('secureConnect', () => {
        this.stage = 'established'
        this.user?.onConnect()
      })
    }
    if (readBuffer === null) socket.on('data', (chunk: Buffer) => this.user?.onData(chunk))
    else readBuffer.deliver = (chunk) => this.user?.onData(chunk)
    socket.on('end', () => this.user?.onClosed())
    socket.on('close', () => {
      onGone(this)
      this.user?.onClosed()
    })
    socket.on('timeout', () => this.user?.onIdleTimeout())
    // An 'error' is always followed by 'close', which is where its user hears of it.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.lastError = error.code ?? error.message
      this.lastErrorMessage = errorReason(error)
    })
  }

  /**
   * The bytes of `chunk` (from onData), safe to keep after onData returns: the chunk itself when
   * this connection does not reuse its read buffer, or when it fills half of it or more (the buffer
   * is lent to it); a copy when it is shorter (a copy of a few bytes costs less than a new buffer).
   */
  keep (chunk: Buffer): Buffer {
    if (this.readBuffer === null) return chunk
    if (chunk.length < LEND_AT_BYTES) return Buffer.from(chunk)
    this.readBuffer.lend()
    return chunk
  }

  /** The chunk onData was given is still held by a write: the next read goes to a new buffer. */
  lendReadBuffer (): void {
    this.readBuffer?.lend()
  }

  /** True for a connection that closed, or stalled, after TCP connected and before its TLS handshake completed. */
  get tlsHandshakeFailed (): boolean {
    return this.stage === 'handshaking'
  }

  get reusable (): boolean {
    return !this.socket.destroyed && this.socket.readyState === 'open' && this.transport.writeFailure === null
  }

  /** The system error that ended or broke the connection: a reported one, else the reset a write met. */
  get systemError (): string | null {
    return this.lastError ?? this.transport.writeFailure?.code ?? null
  }

  /** False once a write met the instance's reset: request bytes are then discarded, not sent. */
  get writable (): boolean {
    return this.transport.writeFailure === null && !this.socket.destroyed
  }
}
