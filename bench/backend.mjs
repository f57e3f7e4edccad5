/**
 * The benchmark's backend: a raw `net` server with three routes, each answered from precomputed
 * bytes (kept alive, Content-Length framing):
 *
 *   GET  /small   200, a 64-byte body
 *   GET  /large   200, a 1 MiB body (1048576 bytes)
 *   POST /echo    200, the request body echoed back (the benchmark sends 4 KiB)
 *
 * anything else gets a 404 (counted as an error by the runner). Parsing is the minimum: find the
 * blank line that ends a request head, read the method and path from the request line and
 * Content-Length from the head; no header objects, no allocation per GET response. So it costs a
 * small fraction of what any proxy in front of it costs per request; the benchmark's `backend` row
 * (wrk straight at this server) shows how much headroom it has.
 *
 * Limits, on purpose: request bodies must be framed by Content-Length (wrk, nginx, http-proxy and
 * clb-proxy all forward wrk's Content-Length); a chunked request gets a 501 and the connection is
 * closed, so a proxy that re-frames shows up as errors. Pipelined requests are answered in order.
 *
 * Standalone: `node bench/backend.mjs [--port N]` prints `listening <port>` on stdout and stops on
 * SIGTERM/SIGINT.
 */
import net from 'node:net'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'

/** The routes the benchmark loads, by name. `responseBodyBytes` is what a client must receive. */
export const ROUTES = Object.freeze({
  small: Object.freeze({ name: 'small', label: '/small', method: 'GET', path: '/small', requestBodyBytes: 0, responseBodyBytes: 64 }),
  large: Object.freeze({ name: 'large', label: '/large', method: 'GET', path: '/large', requestBodyBytes: 0, responseBodyBytes: 1024 * 1024 }),
  echo: Object.freeze({ name: 'echo', label: 'POST /echo', method: 'POST', path: '/echo', requestBodyBytes: 4096, responseBodyBytes: 4096 })
})

/** A deterministic printable body of `length` bytes, ending in a newline. */
export function bodyOf (length) {
  const body = Buffer.alloc(length, 'abcdefghijklmnopqrstuvwxyz0123456789', 'latin1')
  if (length > 0) body[length - 1] = 0x0a
  return body
}

function responseHead (status, reason, length, contentType = 'text/plain') {
  return Buffer.from(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\n\r\n`, 'latin1')
}

function fullResponse (status, reason, body) {
  return Buffer.concat([responseHead(status, reason, body.length), body])
}

const SMALL_RESPONSE = fullResponse(200, 'OK', bodyOf(ROUTES.small.responseBodyBytes))
const LARGE_RESPONSE = fullResponse(200, 'OK', bodyOf(ROUTES.large.responseBodyBytes))
const NOT_FOUND_RESPONSE = fullResponse(404, 'Not Found', Buffer.from('not found\n', 'latin1'))
const CHUNKED_RESPONSE = Buffer.from('HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 'latin1')
/** Echo response heads by body length (the benchmark uses one length). */
const echoHeads = new Map()

const END_OF_HEAD = Buffer.from('\r\n\r\n', 'latin1')
// A request head longer than this without its blank line is not from our load generator.
const MAX_HEAD_BYTES = 64 * 1024
// Echoed bodies are held in memory until complete; larger ones are refused (not from the benchmark).
const MAX_ECHO_BYTES = 16 * 1024 * 1024
const CONTENT_LENGTH = /\r\ncontent-length[ \t]*:[ \t]*(\d+)[ \t]*(?=\r\n)/i
const TRANSFER_ENCODING = /\r\ntransfer-encoding[ \t]*:/i

/** Starts the backend on host:port (0 = any free port); resolves with the server and its port. */
export async function startBackend ({ host = '127.0.0.1', port = 0 } = {}) {
  const sockets = new Set()
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    // Unparsed bytes held back from the previous read (an incomplete head).
    let pending = null
    // The request whose body is being read: { echo, remaining, parts }.
    let body = null
    socket.on('data', (chunk) => {
      const bytes = pending === null ? chunk : Buffer.concat([pending, chunk])
      pending = null
      let from = 0
      socket.cork()
      try {
        while (from < bytes.length) {
          if (body !== null) {
            const take = Math.min(body.remaining, bytes.length - from)
            if (body.echo) body.parts.push(bytes.subarray(from, from + take))
            body.remaining -= take
            from += take
            if (body.remaining > 0) break
            if (body.echo) answerEcho(socket, body.parts)
            else socket.write(NOT_FOUND_RESPONSE)
            body = null
            continue
          }
          const end = bytes.indexOf(END_OF_HEAD, from)
          if (end === -1) break
          const head = bytes.toString('latin1', from, end + 2)
          from = end + END_OF_HEAD.length
          if (TRANSFER_ENCODING.test(head)) {
            socket.end(CHUNKED_RESPONSE)
            return
          }
          const lengthMatch = CONTENT_LENGTH.exec(head)
          const length = lengthMatch === null ? 0 : Number(lengthMatch[1])
          const firstSpace = head.indexOf(' ')
          const target = head.slice(firstSpace + 1, head.indexOf(' ', firstSpace + 1))
          const method = head.slice(0, firstSpace)
          if (length > 0) {
            const echo = method === 'POST' && target === ROUTES.echo.path
            if (echo && length > MAX_ECHO_BYTES) return socket.destroy()
            body = { echo, remaining: length, parts: [] }
            continue
          }
          if (method === 'GET' && target === ROUTES.small.path) socket.write(SMALL_RESPONSE)
          else if (method === 'GET' && target === ROUTES.large.path) socket.write(LARGE_RESPONSE)
          else if (method === 'POST' && target === ROUTES.echo.path) answerEcho(socket, [])
          else socket.write(NOT_FOUND_RESPONSE)
        }
        if (from < bytes.length) {
          pending = bytes.subarray(from)
          if (pending.length > MAX_HEAD_BYTES) socket.destroy()
        }
      } finally {
        socket.uncork()
      }
    })
  })
  server.listen({ host, port })
  await once(server, 'listening')
  return {
    server,
    port: server.address().port,
    close () {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    }
  }
}

function answerEcho (socket, parts) {
  let length = 0
  for (const part of parts) length += part.length
  let head = echoHeads.get(length)
  if (head === undefined) {
    head = responseHead(200, 'OK', length, 'application/octet-stream')
    echoHeads.set(length, head)
  }
  // Corked by the caller: head and body go out in one writev.
  socket.write(head)
  for (const part of parts) socket.write(part)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } } })
  const backend = await startBackend({ host: values.host, port: Number(values.port) })
  process.stdout.write(`listening ${backend.port}\n`)
  const stop = () => { backend.close().then(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
