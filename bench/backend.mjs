/**
 * The benchmark's backend: a raw `net` server that answers every request head with the same
 * precomputed 200 (Content-Length, kept alive). It does no HTTP parsing beyond finding the blank
 * line that ends each request head, and no allocation per response, so it costs a small fraction
 * of what any proxy in front of it costs per request; the baseline row of the benchmark (wrk
 * straight at this server) shows how much headroom it has.
 *
 * Limits, on purpose: requests must have no body (wrk sends GET without one, and the proxies
 * forward it as such); pipelined requests are answered in order.
 *
 * Standalone: `node bench/backend.mjs [--port N]` prints `listening <port>` on stdout and stops on
 * SIGTERM/SIGINT.
 */
import net from 'node:net'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'

export const BACKEND_BODY = 'hello, world\n'
export const BACKEND_RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(BACKEND_BODY)}\r\n\r\n${BACKEND_BODY}`,
  'latin1'
)

const END_OF_HEAD = Buffer.from('\r\n\r\n', 'latin1')
// A request head longer than this without its blank line is not from our load generator.
const MAX_PENDING_BYTES = 64 * 1024

/** Starts the backend on host:port (0 = any free port); resolves with the server and its port. */
export async function startBackend ({ host = '127.0.0.1', port = 0 } = {}) {
  const sockets = new Set()
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    let pending = null
    socket.on('data', (chunk) => {
      const bytes = pending === null ? chunk : Buffer.concat([pending, chunk])
      let from = 0
      let answers = 0
      for (;;) {
        const end = bytes.indexOf(END_OF_HEAD, from)
        if (end === -1) break
        answers++
        from = end + END_OF_HEAD.length
      }
      pending = from === bytes.length ? null : bytes.subarray(from)
      if (pending !== null && pending.length > MAX_PENDING_BYTES) return socket.destroy()
      if (answers === 1) socket.write(BACKEND_RESPONSE)
      else if (answers > 1) socket.write(Buffer.concat(Array(answers).fill(BACKEND_RESPONSE)))
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } } })
  const backend = await startBackend({ host: values.host, port: Number(values.port) })
  process.stdout.write(`listening ${backend.port}\n`)
  const stop = () => { backend.close().then(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
