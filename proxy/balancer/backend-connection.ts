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
 * Read buffers given back once the write that held them finished (`returnReadBuffer`), taken
 * before a new one is allocated: a response that streams or is held through lent buffers then
 * reads into the same few buffers instead of allocating 64 KiB per read (a held 1 MiB response
 * took 16 new buffers; giving them back cut the proxy's CPU per response by about a third,
 * bench/README.md "Read buffers given back"). At most FREE_READ_BUFFERS_MAX wait here (4 MiB); a
 * buffer given back beyond that is left to the garbage collector.
 */
const freeReadBuffers: ArrayBuffer[] = []
const FREE_READ_BUFFERS_MAX = 64
/**
 * The read buffers lent and not yet given back. Only these are taken back: a buffer is given back
 * at most once (a second `returnReadBuffer` finds it gone), and bytes that are no read buffer of
 * ours (a TLS connection's, a copy) are never taken. Weak: a buffer that is never given back (a
 * response rejected, or cut) is collected as before.
 */
const lentReadBuffers = new WeakSet<ArrayBuffer>()

/** Read buffers allocated so far (tests: a read that takes a given-back buffer allocates none). */
let readBuffersAllocated = 0

function newReadBuffer (): Buffer {
  const free = freeReadBuffers.pop()
  if (free !== undefined) return Buffer.from(free)
  readBuffersAllocated++
  return Buffer.allocUnsafe(READ_BUFFER_BYTES)
}

/**
 * Gives the read buffer that `bytes` (a kept or written chunk, or a part of one) was read into
 * back for another read: call it when nothing will read `bytes` again (a socket's write callback:
 * node:stream calls it once the bytes are handed to the kernel, or the write failed). Does nothing
 * for bytes whose buffer was not lent, or was given back already.
 */
export function returnReadBuffer (bytes: Buffer): void {
  const buffer = bytes.buffer as ArrayBuffer
  if (!lentReadBuffers.delete(buffer)) return
  if (freeReadBuffers.length < FREE_READ_BUFFERS_MAX) freeReadBuffers.push(buffer)
}

/** For a write of `bytes`: a callback that gives their read buffer back if it is lent, else undefined (no callback to make). */
export function readBufferReturner (bytes: Buffer): (() => void) | undefined {
  return lentReadBuffers.has(bytes.buffer as ArrayBuffer) ? () => returnReadBuffer(bytes) : undefined
}

/** How many given-back read buffers wait to be reused, and how many were ever allocated (tests). */
export function readBufferCounts (): { readonly free: number, readonly allocated: number } {
  return { free: freeReadBuffers.length, allocated: readBuffersAllocated }
}

/**
 * Where the first read of every connection for each of its users goes (a pooled connection's
 * stray bytes or FIN, the first read of a response): one buffer for all of them. Its bytes are only
 * ever looked at during the read, or copied (`keep()`), so sharing it is safe: reads run one at a
 * time, each with its callback, and nothing keeps a view of it.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(READ_BUFFER_BYTES)

/**
 * The buffers a plain (http) instance connection reads into (node:net `onread`: "incoming data is
 * stored in a single buffer"), instead of a new one per read.
 *
 * Node's default reads allocate a new buffer per read (64 KiB, shrunk to the bytes read), freed
 * only by a garbage collection, and V8 collects young buffers for their size only after some
 * 32 MiB of them: streaming a large body grew the proxy's resident memory by that much, all of it
 * garbage (a 200 MB body: peak RSS 92 MiB, 60 MiB with a collection forced every 20 ms;
 * test/bin/memory-bounds.test.ts).
 *
 * A connection's first read for each user (the exchange that took it, or the pool while it is
 * idle) goes to SHARED_READ_BUFFER, so a response that arrives in one read, and an idle connection,
 * hold no buffer at all. From the second read on, the connection reads into a buffer of its own,
 * the same one for every read until it is lent, and gives it up when its user changes.
 *
 * A chunk handed to `onData` is therefore a view, valid during the call. A user that keeps the
 * bytes says so: `BackendConnection#keep` copies them (always from the shared buffer, and when
 * short) or lends the connection's own buffer; `#lendReadBuffer` lends it to a write that still
 * holds the view; `#toWrite` gives a streamed chunk to write, a copy when short. The next read
 * after a lend goes to another buffer; whoever kept the lent one gives it back when done with it
 * (`returnReadBuffer`, from a write's callback), or drops it. The shared buffer is never
 * lent: `keep()` and `toWrite()` copy its chunks (a stream's chunks are an exchange's second read
 * or later anyway, as its head was held first).
 */
export class InstanceReadBuffer {
  private own: Buffer | null = null
  private lent = false
  /** Reads delivered to the connection's current user. */
  private readsForUser = 0
  /** Whether the chunk being delivered is a view of SHARED_READ_BUFFER. */
  private deliveringShared = false
  /** Where each read's bytes go: set by the connection once it exists. */
  deliver: (chunk: Buffer) => void = () => {}

  /** The `onread` option of the connection's socket (node:net). */
  readonly onread = {
    // Called once when the socket's handle is made, and after every read's callback.
    buffer: (): Buffer => {
      if (this.readsForUser === 0) {
        this.own = null
        return SHARED_READ_BUFFER
      }
      if (this.own === null || this.lent) {
        this.own = newReadBuffer()
        this.lent = false
      }
      return this.own
    },
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      this.deliveringShared = buffer === SHARED_READ_BUFFER
      this.readsForUser++
      try {
        this.deliver((buffer as Buffer).subarray(0, bytes))
      } finally {
        this.deliveringShared = false
      }
      return true
    }
  }

  /** The connection has a new user (an exchange, the pool, or none): its next read is a first read. */
  userChanged (): void {
    this.readsForUser = 0
  }

  /** `chunk`'s bytes, safe to keep: the copy toWrite makes, else the view, which lends the buffer. */
  keep (chunk: Buffer): Buffer {
    const bytes = this.toWrite(chunk)
    if (bytes === chunk) this.lend()
    return bytes
  }

  /**
   * `chunk` to hand to a write: a copy when it is short (a write below the socket's high-water
   * mark is held for the turn, turn-writes.ts, so lending would cost a whole buffer per short
   * piece) or a view of the shared buffer, which is never lent; else the view itself.
   */
  toWrite (chunk: Buffer): Buffer {
    return this.deliveringShared || chunk.length < LEND_AT_BYTES ? Buffer.from(chunk) : chunk
  }

  lend (): void {
    if (this.deliveringShared || this.own === null) return
    this.lent = true
    lentReadBuffers.add(this.own.buffer as ArrayBuffer)
  }
}

/** Who is told about a backend connection's events right now: its exchange, or the pool while idle. */
export interface ConnectionUser {
  /** The connection is established: TCP connected (http), or the TLS handshake done (https). */
  onConnect (): void
  /**
   * Bytes from the instance. For a plain connection they are a view of its read buffer, valid until
   * this returns: to keep them longer, use `BackendConnection#keep`, or `#toWrite` and
   * `#lendReadBuffer` for a write.
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
  private currentUser: ConnectionUser | null = null

  /** Who hears the connection's events now. A new user's first read is read into the shared buffer (InstanceReadBuffer). */
  get user (): ConnectionUser | null {
    return this.currentUser
  }

  set user (user: ConnectionUser | null) {
    this.currentUser = user
    this.readBuffer?.userChanged()
  }

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
   * this connection does not reuse read buffers, or when it fills half of the connection's own
   * buffer or more (the buffer is lent to it); a copy when it is shorter (a copy of a few bytes
   * costs less than a new buffer) or was read into the shared buffer (InstanceReadBuffer).
   */
  keep (chunk: Buffer): Buffer {
    return this.readBuffer === null ? chunk : this.readBuffer.keep(chunk)
  }

  /**
   * `chunk` (from onData), to be written: a copy when it is shorter than half a read buffer or
   * was read into the shared buffer, else the chunk itself (lend the buffer with
   * `lendReadBuffer()` if the write still holds it); the chunk itself when this connection does
   * not reuse read buffers.
   */
  toWrite (chunk: Buffer): Buffer {
    return this.readBuffer === null ? chunk : this.readBuffer.toWrite(chunk)
  }

  /** The chunk onData was given, written as it is (toWrite returned it), is still held by the write: the next read goes to a new buffer. */
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
