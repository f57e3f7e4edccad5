/**
 * The peer the issue compares against: a plain http-proxy 1.18.1 server, as its README shows it
 * (createProxyServer + http.createServer + the "Listening for proxy events" error handler), with a
 * keep-alive agent so it reuses backend connections like clb-proxy and nginx do. No access log.
 *
 * `node bench/http-proxy-server.mjs --target http://127.0.0.1:PORT [--listen HOST:PORT]` prints
 * `listening <port>` on stdout and stops on SIGTERM/SIGINT.
 */
import http from 'node:http'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import httpProxy from 'http-proxy'

const { values } = parseArgs({
  options: { target: { type: 'string' }, listen: { type: 'string', default: '127.0.0.1:0' } }
})
if (values.target === undefined) {
  process.stderr.write('usage: node bench/http-proxy-server.mjs --target http://HOST:PORT [--listen HOST:PORT]\n')
  process.exit(2)
}
const separator = values.listen.lastIndexOf(':')
const host = values.listen.slice(0, separator)
const port = Number(values.listen.slice(separator + 1))

const agent = new http.Agent({ keepAlive: true })
const proxy = httpProxy.createProxyServer({ target: values.target, agent })

// The README's handler ("Listening for proxy events"), verbatim.
proxy.on('error', function (err, req, res) {
  res.writeHead(500, {
    'Content-Type': 'text/plain'
  })

  res.end('Something went wrong. And we are reporting a custom error message.')
})

const server = http.createServer((req, res) => proxy.web(req, res))
server.listen({ host, port })
await once(server, 'listening')
process.stdout.write(`listening ${server.address().port}\n`)

const stop = () => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
  agent.destroy()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
