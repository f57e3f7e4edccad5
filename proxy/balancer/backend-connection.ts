/**
 * The socket to an instance and its listeners: a BackendSocket keeps reading after a write meets
 * the instance's reset (an early answer is still relayed); a BackendConnection forwards the socket's
 * events to its current user (an exchange, or the instance's pool while idle).
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
