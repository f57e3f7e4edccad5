/**
 * The replay backend: a raw `net` server that answers every request with exactly the bytes of a
 * capture, so a rejected response can be reproduced without the application that sent it
 * (peers-validation.md §7 item 5; the WireMock model of §6: a named, deterministic fixture).
 *
 * Per connection: read one whole request (head, then a Content-Length or chunked body, with our
 * own RequestParser), write the captured bytes in one write, then either close the connection
 * ('close': FIN after the bytes, which also frames an until-close response) or keep it open and
 * silent ('hold': an instance that stopped mid-response, for the proxy's idle timeout). Bytes
 * after the first request on a connection are ignored: every request gets its own connection.
 */
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import net from 'node:net'
import { RequestParser } from '../../validators/request-parser.js'
import { parseCapture, type AfterResponse } from '../observers/capture-format.js'

interface ListenOn {
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Default 0: the OS picks a free port, reported as `port`. */
  readonly port?: number
}

export type ReplayBackendOptions =
  | (ListenOn & { readonly file: string })
  | (ListenOn & { readonly bytes: Buffer; readonly afterResponse?: AfterResponse })

export interface ReplayBackend {
  /** e.g. http://127.0.0.1:40123, with the port actually bound. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** Requests answered so far. */
  readonly requests: number
  /** Connections open now. */
  readonly openConnections: number
  /** The bytes every request gets, and what happens after them. */
  readonly bytes: Buffer
  readonly afterResponse: AfterResponse
  /** Stops listening and closes every connection (held ones included). Idempotent. */
  close (): Promise<void>
}

// Our choice: a request head larger than the proxy's own largest allowed head (1 MiB) is not a request we replay to.
const REPLAY_MAX_HEAD_BYTES = 1024 * 1024

/**
 * Starts a replay backend. With `file`, the capture is read and parsed first (a CaptureFormatError
 * or the fs error when it cannot be); with `bytes`, those bytes are served ('close' by default).
 */
export async function startReplayBackend (options: ReplayBackendOptions): Promise<ReplayBackend> {
  let bytes: Buffer
  let afterResponse: AfterResponse
  if ('file' in options) {
    const capture = parseCapture(await readFile(options.file, 'utf8'))
    bytes = capture.responseBytes
    afterResponse = capture.afterResponse
  } else {
    bytes = Buffer.from(options.bytes)
    afterResponse = options.afterResponse ?? 'close'
  }
  const host = options.host ?? '127.0.0.1'
  let requests = 0
  const sockets = new Set<net.Socket>()

  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    // The proxy destroys a backend connection it has judged; a reset then is expected, not a failure.
    socket.on('error', () => undefined)
    const parser = new RequestParser(REPLAY_MAX_HEAD_BYTES)
    let answered = false
    socket.on('data', (chunk: Buffer) => {
      if (answered) return
      parser.push(chunk)
      // A request we cannot parse still gets the bytes: the replay reproduces a response, not a judge.
      if (parser.state !== 'complete' && parser.state !== 'invalid') return
      answered = true
      requests++
      if (afterResponse === 'close') socket.end(bytes)
      else socket.write(bytes)
    })
  })
  server.listen({ host, port: options.port ?? 0 })
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port

  let closing: Promise<void> | null = null
  const close = async (): Promise<void> => {
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
    // Every connection, held or just ended, has emitted 'close' (and left `sockets`) when this resolves.
    const socketsClosed = [...sockets].map(async (socket) => { await once(socket, 'close') })
    for (const socket of sockets) socket.destroy()
    await Promise.all([serverClosed, ...socketsClosed])
  }
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    get requests () { return requests },
    get openConnections () { return sockets.size },
    bytes,
    afterResponse,
    close: () => (closing ??= close())
  }
}
