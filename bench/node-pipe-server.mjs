/**
 * The floor for a Node proxy: each client connection gets its own connection to the backend, and
 * bytes are moved both ways with `pipe` and nothing else. No parser, no routing, no access log, no
 * header rewriting, no timers of our own. Every request costs what Node itself costs to read and
 * write twice (client to backend, backend to client), which no Node proxy can go below.
 *
 * `node bench/node-pipe-server.mjs --target http://127.0.0.1:PORT [--listen HOST:PORT]` prints
 * `listening <port>` on stdout and stops on SIGTERM/SIGINT.
 */
import net from 'node:net'
import { once } from 'node:events'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: { target: { type: 'string' }, listen: { type: 'string', default: '127.0.0.1:0' } }
})
if (values.target === undefined) {
  process.stderr.write('usage: node bench/node-pipe-server.mjs --target http://HOST:PORT [--listen HOST:PORT]\n')
  process.exit(2)
}
const target = new URL(values.target)
const separator = values.listen.lastIndexOf(':')
const host = values.listen.slice(0, separator)
const port = Number(values.listen.slice(separator + 1))

const sockets = new Set()
const server = net.createServer((client) => {
  const backend = net.connect({ host: target.hostname, port: Number(target.port) })
  for (const socket of [client, backend]) {
    socket.setNoDelay(true)
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => { client.destroy(); backend.destroy() })
  }
  client.pipe(backend)
  backend.pipe(client)
})
server.listen({ host, port })
await once(server, 'listening')
process.stdout.write(`listening ${server.address().port}\n`)

const stop = () => {
  server.close(() => process.exit(0))
  for (const socket of sockets) socket.destroy()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
