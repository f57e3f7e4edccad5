/**
 * A raw `net` backend for socket-level tests: it records the exact bytes each connection received
 * and answers every complete request with a scripted list of pieces, so a test controls every byte
 * (and every FIN or RST) the proxy reads. No HTTP library touches the bytes.
 *
 * Deterministic split delivery, without sleeps: once `pace(proxy.events)` is called, each piece is
 * written only after the proxy reported (event 'backend-read') that it read every byte written
 * before it. Each piece is then one read on the proxy's side (a large piece may still arrive as
 * several reads; it is never merged with the next one), and the FIN or RST that ends a script
 * follows the last piece only after the proxy read it, so a reset never discards unread bytes.
 */
import net from 'node:net'
import { once } from 'node:events'

/** What a connection does after its last piece. */
export type AfterPieces = 'keep-open' | 'fin' | 'rst'

/** A step of a reply: bytes to write, or a promise to wait for (the test decides when to go on). */
export type ReplyStep = Buffer | Promise<unknown>

export interface Reply {
  /** Written in order, each after the proxy read the previous one (when paced). */
  readonly pieces: readonly ReplyStep[]
  /** After the last piece was read by the proxy: stay open (default), FIN, or RST (`resetAndDestroy()`). */
  readonly then?: AfterPieces
}

/** Never answers: the connection stays open and silent. */
export const NEVER_ANSWER: Reply = Object.freeze({ pieces: [], then: 'keep-open' })
/** Closes with a FIN without sending a byte. */
export const CLOSE_WITHOUT_A_BYTE: Reply = Object.freeze({ pieces: [], then: 'fin' })
/** Closes with an RST without sending a byte. */
export const RESET_WITHOUT_A_BYTE: Reply = Object.freeze({ pieces: [], then: 'rst' })

/** A reply made of pieces given as latin1 strings or Buffers. */
export function reply (pieces: ReadonlyArray<string | Buffer>, then: AfterPieces = 'keep-open'): Reply {
  return { pieces: pieces.map((piece) => typeof piece === 'string' ? Buffer.from(piece, 'latin1') : piece), then }
}

export interface ReceivedRequest {
  /** Index of the connection it arrived on, in accept order (0-based). */
  readonly connection: number
  /** Index of the request on that connection (0-based). */
  readonly indexOnConnection: number
  /** The request exactly as received: head and body. */
  readonly bytes: Buffer
}

export interface BackendConnection {
  readonly index: number
  readonly socket: net.Socket
  /** Every byte received on this connection so far. */
  readonly received: Buffer
  /** The complete requests received on this connection. */
  readonly requests: readonly ReceivedRequest[]
  readonly closed: boolean
}

export interface RawBackendOptions {
  /** The reply to each complete request (NEVER_ANSWER when absent). */
  readonly respond?: (request: ReceivedRequest) => Reply
}

/** The slice of the proxy's event emitter the backend paces on. */
export interface BackendReadSource {
  on (event: 'backend-read', listener: (read: { readonly bytes: number }) => void): unknown
  off (event: 'backend-read', listener: (read: { readonly bytes: number }) => void): unknown
}

export interface RawBackend {
  readonly host: '127.0.0.1'
  readonly port: number
  /** Connections accepted since start. */
  readonly accepted: number
  /** Connections open right now, as the backend sees them. */
  readonly openConnections: number
  readonly connections: readonly BackendConnection[]
  /** Every complete request, in arrival order. */
  readonly requests: readonly ReceivedRequest[]
  /** Errors thrown by `respond` (the connection was destroyed); a test expects none. */
  readonly errors: readonly Error[]
  /** Writes each piece only after the proxy has read everything written before it. */
  pace (source: BackendReadSource): void
  /** Resolves once no connection has a piece waiting to be written or read (each script finished, or its connection closed). */
  settled (): Promise<void>
  /** Resolves once `count` complete requests have arrived in total. */
  requestsReceived (count: number): Promise<readonly ReceivedRequest[]>
  /** Resolves once no connection is open. */
  noConnections (): Promise<void>
  /** Resolves once `ready()` is true, re-checked whenever a connection opens, receives bytes or closes. */
  until (ready: () => boolean): Promise<void>
  /** `server.getConnections()`, as a promise. */
  serverConnections (): Promise<number>
  /** Destroys every connection and resolves when the server is closed. */
  close (): Promise<void>
}

interface ConnectionState extends BackendConnection {
  received: Buffer
  closed: boolean
  readonly requests: ReceivedRequest[]
  /** Bytes of complete requests consumed from `received`. */
  consumed: number
  queue: ReceivedRequest[]
  scripting: boolean
  /** The proxy still has to read this many bytes of the last piece written. */
  unread: number
  onRead: (() => void) | null
}

/** Starts a raw backend on 127.0.0.1, on a port the OS picks. */
export async function startRawBackend (options: RawBackendOptions = {}): Promise<RawBackend> {
  const respond = options.respond ?? (() => NEVER_ANSWER)
  const connections: ConnectionState[] = []
  const requests: ReceivedRequest[] = []
  const errors: Error[] = []
  let paceSource: BackendReadSource | null = null
  let waiters: Array<() => void> = []

  const notify = (): void => {
    const current = waiters
    waiters = []
    for (const wake of current) wake()
  }
  /** Resolves when `ready()` is true, re-checked after every change of state. */
  const until = async (ready: () => boolean): Promise<void> => {
    while (!ready()) await new Promise<void>((resolve) => waiters.push(resolve))
  }

  // The proxy reports reads from any backend connection; tests run one exchange at a time, so the
  // read belongs to the one connection that has a piece in flight.
  const onProxyRead = ({ bytes }: { readonly bytes: number }): void => {
    const waiting = connections.find((c) => c.onRead !== null && c.unread > 0)
    if (waiting === undefined) return
    waiting.unread -= bytes
    if (waiting.unread <= 0) {
      const resume = waiting.onRead as () => void
      waiting.onRead = null
      waiting.unread = 0
      resume()
    }
  }

  const writePiece = async (connection: ConnectionState, piece: Buffer): Promise<void> => {
    if (piece.length === 0) return
    if (paceSource === null) {
      connection.socket.write(piece)
      return
    }
    const read = new Promise<void>((resolve) => {
      connection.unread = piece.length
      connection.onRead = resolve
    })
    connection.socket.write(piece)
    await read
  }

  const runScript = async (connection: ConnectionState, script: Reply): Promise<void> => {
    for (const step of script.pieces) {
      if (connection.closed) return
      if (Buffer.isBuffer(step)) await writePiece(connection, step)
      else await step
    }
    if (connection.closed) return
    if (script.then === 'fin') connection.socket.end()
    else if (script.then === 'rst') connection.socket.resetAndDestroy()
  }

  const drainQueue = async (connection: ConnectionState): Promise<void> => {
    if (connection.scripting) return
    connection.scripting = true
    notify()
    try {
      while (connection.queue.length > 0 && !connection.closed) {
        await runScript(connection, respond(connection.queue.shift() as ReceivedRequest))
      }
    } catch (error) {
      errors.push(error as Error)
      connection.socket.destroy()
    } finally {
      connection.scripting = false
      notify()
    }
  }

  const server = net.createServer((socket) => {
    const connection: ConnectionState = {
      index: connections.length,
      socket,
      received: Buffer.alloc(0),
      requests: [],
      closed: false,
      consumed: 0,
      queue: [],
      scripting: false,
      unread: 0,
      onRead: null
    }
    connections.push(connection)
    socket.setNoDelay(true)
    // Writes after the proxy dropped the connection fail with EPIPE/ECONNRESET: expected, not a test failure.
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      connection.received = Buffer.concat([connection.received, chunk])
      for (;;) {
        const length = completeRequestLength(connection.received, connection.consumed)
        if (length === -1) break
        const request: ReceivedRequest = {
          connection: connection.index,
          indexOnConnection: connection.requests.length,
          bytes: connection.received.subarray(connection.consumed, connection.consumed + length)
        }
        connection.consumed += length
        connection.requests.push(request)
        requests.push(request)
        connection.queue.push(request)
      }
      notify()
      void drainQueue(connection)
    })
    socket.on('close', () => {
      connection.closed = true
      const resume = connection.onRead
      connection.onRead = null
      connection.unread = 0
      resume?.()
      notify()
    })
    notify()
  })
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port

  return {
    host: '127.0.0.1',
    port,
    get accepted () { return connections.length },
    get openConnections () { return connections.filter((c) => !c.closed).length },
    connections,
    requests,
    errors,
    pace (source) {
      paceSource?.off('backend-read', onProxyRead)
      paceSource = source
      source.on('backend-read', onProxyRead)
    },
    settled: () => until(() => connections.every((c) => c.closed || (!c.scripting && c.queue.length === 0))),
    requestsReceived: async (count) => {
      await until(() => requests.length >= count)
      return requests.slice(0, count)
    },
    noConnections: () => until(() => connections.every((c) => c.closed)),
    until,
    serverConnections: () => new Promise<number>((resolve, reject) => {
      server.getConnections((error, count) => error ? reject(error) : resolve(count))
    }),
    close: async () => {
      paceSource?.off('backend-read', onProxyRead)
      for (const connection of connections) connection.socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await until(() => connections.every((c) => c.closed))
    }
  }
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')

/**
 * The length of the complete request starting at `from`, or -1 while it is incomplete. The proxy
 * forwards well-formed requests, so this reads only what it needs: the head up to CRLFCRLF, then
 * Content-Length bytes or chunked framing (RFC 9112 sections 6.3 and 7.1).
 */
export function completeRequestLength (bytes: Buffer, from: number): number {
  const headEnd = bytes.indexOf(HEAD_END, from)
  if (headEnd === -1) return -1
  const bodyStart = headEnd + 4
  const head = bytes.toString('latin1', from, headEnd)
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
    const end = chunkedBodyEnd(bytes, bodyStart)
    return end === -1 ? -1 : end - from
  }
  const contentLength = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  const length = contentLength === null ? 0 : Number(contentLength[1])
  return bytes.length - bodyStart >= length ? bodyStart + length - from : -1
}

/** Offset just past a chunked body (last chunk and trailer section), or -1 while incomplete. */
function chunkedBodyEnd (bytes: Buffer, from: number): number {
  let at = from
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at, 'latin1')
    if (lineEnd === -1) return -1
    const size = parseInt(bytes.toString('latin1', at, lineEnd).split(';')[0] as string, 16)
    if (size === 0) {
      // Trailer fields, then the empty line.
      let line = lineEnd + 2
      for (;;) {
        const next = bytes.indexOf('\r\n', line, 'latin1')
        if (next === -1) return -1
        if (next === line) return next + 2
        line = next + 2
      }
    }
    at = lineEnd + 2 + size + 2
    if (at > bytes.length) return -1
  }
}

/** A port nothing listens on: opened on 127.0.0.1 and closed again (connecting to it is refused). */
export async function closedPort (): Promise<number> {
  const server = net.createServer()
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
