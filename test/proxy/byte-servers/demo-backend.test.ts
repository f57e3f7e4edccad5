import t from 'tap'
import net from 'node:net'
import dc from 'node:diagnostics_channel'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import { DEMO_ROUTES, formatTryTable, startDemoBackend } from '../../../proxy/byte-servers/demo-backend.js'
import { REPO_URL } from '../../helpers/repo.js'

/**
 * Exact wire bytes of every route that writes raw bytes and then closes, written escaped
 * (\r, \n, \xNN, \\) so a reviewer reads them as bytes; docs/demo-backend.md shows the same text.
 */
const CLOSING_ROUTE_WIRE: Readonly<Record<string, string>> = {
  '/defects/double-crlf':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nConnection: close\\r\\n\\r\\nContent-Length: 5\\r\\n\\r\\nhello',
  '/defects/content-length-not-integer':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 5x\\r\\nConnection: close\\r\\n\\r\\nhello',
  '/defects/body-exceeds-content-length':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain; charset=utf-8\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nh\\xc3\\xa9llo',
  '/defects/duplicate-content-length':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 5\\r\\nContent-Length: 6\\r\\nConnection: close\\r\\n\\r\\nhello!',
  '/defects/bad-status-line':
    'HTTP/1.1 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nhello',
  '/defects/chunked-bad-size':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nTransfer-Encoding: chunked\\r\\nConnection: close\\r\\n\\r\\nzz\\r\\nhello\\r\\n0\\r\\n\\r\\n',
  '/defects/body-shorter-than-content-length':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 10\\r\\nConnection: close\\r\\n\\r\\nhello',
  '/defects/headers-cut':
    'HTTP/1.1 200 OK\\r\\nContent-Type: text/pl',
  '/defects/empty-response':
    ''
}

/** Routes answered by fastify itself on a kept-alive connection: status line, headers we check, body. */
interface KeptAliveExpectation {
  readonly target: string
  readonly statusLine: string
  readonly contentType: string
  readonly body: string
}
const KEPT_ALIVE_ROUTES: Readonly<Record<string, KeptAliveExpectation>> = {
  '/': {
    target: '/',
    statusLine: 'HTTP/1.1 200 OK',
    contentType: 'text/plain; charset=utf-8',
    body: 'hello from the clb-proxy demo backend\n'
  },
  '/backend-502': {
    target: '/backend-502',
    statusLine: 'HTTP/1.1 502 Bad Gateway',
    contentType: 'text/plain; charset=utf-8',
    body: 'the demo backend itself answered 502\n'
  },
  '/slow': {
    target: '/slow?seconds=0',
    statusLine: 'HTTP/1.1 200 OK',
    contentType: 'text/plain; charset=utf-8',
    body: 'answered after 0 s\n'
  }
}

/** Injective: printable ASCII except backslash as is; CR, LF, backslash and every other byte escaped. */
function escapeWire (bytes: Buffer): string {
  let text = ''
  for (const byte of bytes) {
    if (byte === 0x0d) text += '\\r'
    else if (byte === 0x0a) text += '\\n'
    else if (byte === 0x5c) text += '\\\\'
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte)
    else text += `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return text
}

function requestLine (target: string): string {
  return `GET ${target} HTTP/1.1\r\nHost: demo.test\r\n\r\n`
}

/** Every server-side socket accepted in this process (node:net publishes each one on this channel). */
const acceptedSockets: Array<{ readonly localPort?: number; readonly remotePort?: number; readonly socket: net.Socket }> = []
dc.subscribe('net.server.socket', (message) => {
  const { socket } = message as { socket: net.Socket }
  // Read the ports now: a destroyed socket no longer reports its address.
  acceptedSockets.push({ localPort: socket.localPort, remotePort: socket.remotePort, socket })
})
function acceptedOn (port: number): net.Socket[] {
  return acceptedSockets.filter((accepted) => accepted.localPort === port).map((accepted) => accepted.socket)
}
/** The backend's end of a client connection. */
function serverSideOf (client: net.Socket): net.Socket {
  const accepted = acceptedSockets.find((entry) => entry.remotePort === client.localPort)
  if (accepted === undefined) throw new Error(`bug: no accepted socket for client port ${String(client.localPort)}`)
  return accepted.socket
}

/** Resolves with the http.Server and the request once fastify has run the handler of `routeUrl`. */
function handlerRan (routeUrl: string): Promise<Server> {
  const channel = 'tracing:fastify.request.handler:end'
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      const { route, request } = message as { route: { url: string }; request: { server: { server: Server } } }
      if (route.url !== routeUrl) return
      dc.unsubscribe(channel, onMessage)
      resolve(request.server.server)
    }
    dc.subscribe(channel, onMessage)
  })
}

/**
 * Sends one GET and collects every byte until the backend's FIN. The client never sends its own
 * FIN first (allowHalfOpen), so the backend's socket closing proves the backend closes it by
 * itself rather than waiting, half-open, for the peer. `finReceived` is false on a reset.
 */
async function requestUntilClose (port: number, target: string): Promise<{ bytes: Buffer; finReceived: boolean }> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  const chunks: Buffer[] = []
  let finReceived = false
  socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  const ended = once(socket, 'end').then(() => { finReceived = true })
  const closed = once(socket, 'close')
  await once(socket, 'connect')
  socket.write(requestLine(target))
  await Promise.race([ended, closed])
  const serverSide = serverSideOf(socket)
  if (!serverSide.destroyed) await once(serverSide, 'close')
  socket.end()
  await closed
  return { bytes: Buffer.concat(chunks), finReceived }
}

interface OneResponse {
  readonly socket: net.Socket
  readonly statusLine: string
  readonly headers: ReadonlyMap<string, string>
  readonly body: Buffer
}

/** Sends one GET and reads exactly one Content-Length-framed response; the socket stays open. */
function requestOneResponse (port: number, target: string): Promise<OneResponse> {
  const socket = net.connect(port, '127.0.0.1')
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk])
      const headEnd = received.indexOf('\r\n\r\n')
      if (headEnd === -1) return
      const [statusLine = '', ...headerLines] = received.subarray(0, headEnd).toString('latin1').split('\r\n')
      const headers = new Map(headerLines.map((line) => {
        const colon = line.indexOf(':')
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as const
      }))
      const bodyLength = Number(headers.get('content-length'))
      const body = received.subarray(headEnd + 4)
      if (body.length < bodyLength) return
      socket.off('data', onData)
      resolve({ socket, statusLine, headers, body })
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(requestLine(target))
  })
}

t.test('every route in DEMO_ROUTES has an expectation here, and nothing else does', async (t) => {
  const expected = [...Object.keys(CLOSING_ROUTE_WIRE), ...Object.keys(KEPT_ALIVE_ROUTES)].sort()
  t.same(DEMO_ROUTES.map((route) => route.path).sort(), expected)
  for (const route of DEMO_ROUTES) t.equal(route.method, 'GET', route.path)
})

t.test('startDemoBackend defaults to 127.0.0.1 and an OS-chosen port', async (t) => {
  const backend = await startDemoBackend()
  t.teardown(() => backend.close())
  t.equal(backend.host, '127.0.0.1')
  t.ok(backend.port > 0, 'a real port was bound')
  t.equal(backend.url, `http://127.0.0.1:${backend.port}`)
})

t.test('each defect route puts exactly its bytes on the wire, then closes with a FIN', async (t) => {
  const backend = await startDemoBackend()
  t.teardown(() => backend.close())
  for (const [path, expectedWire] of Object.entries(CLOSING_ROUTE_WIRE)) {
    const { bytes, finReceived } = await requestUntilClose(backend.port, path)
    t.equal(escapeWire(bytes), expectedWire, `${path}: exact bytes`)
    t.equal(finReceived, true, `${path}: closed with a FIN, not a reset`)
  }
  t.equal(escapeWire((await requestUntilClose(backend.port, '/defects/empty-response')).bytes), '',
    'the empty response sends zero bytes')

  await backend.close()
  const accepted = acceptedOn(backend.port)
  t.equal(accepted.length, Object.keys(CLOSING_ROUTE_WIRE).length + 1, 'one backend connection per request')
  t.same(accepted.filter((socket) => !socket.destroyed), [], 'no server-side socket left open or half-open')
})

t.test('healthy, backend-502 and slow routes answer with proper framing on a kept-alive connection', async (t) => {
  const backend = await startDemoBackend()
  t.teardown(() => backend.close())
  for (const [path, expected] of Object.entries(KEPT_ALIVE_ROUTES)) {
    const response = await requestOneResponse(backend.port, expected.target)
    t.equal(response.statusLine, expected.statusLine, `${path}: status line`)
    t.equal(response.body.toString('utf8'), expected.body, `${path}: body`)
    t.equal(response.headers.get('content-length'), String(Buffer.byteLength(expected.body)), `${path}: Content-Length`)
    t.equal(response.headers.get('content-type'), expected.contentType, `${path}: Content-Type`)
    t.equal(response.headers.get('connection'), 'keep-alive', `${path}: kept alive`)
    t.equal(response.headers.get('keep-alive'), 'timeout=75', `${path}: DEMO_KEEP_ALIVE_TIMEOUT_MS is applied`)
    t.equal(response.headers.has('transfer-encoding'), false, `${path}: no chunked framing`)
    response.socket.end()
    await once(response.socket, 'close')
  }
})

t.test('/slow rejects a negative or non-numeric wait with a 400', async (t) => {
  const backend = await startDemoBackend()
  t.teardown(() => backend.close())
  for (const target of ['/slow?seconds=-1', '/slow?seconds=soon', '/slow?seconds=4001']) {
    const response = await requestOneResponse(backend.port, target)
    t.equal(response.statusLine, 'HTTP/1.1 400 Bad Request', target)
    response.socket.destroy()
  }
})

t.test('close() does not wait for a pending /slow answer or a kept-alive socket', async (t) => {
  const backend = await startDemoBackend()
  const timersBefore = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length

  const slowServerReady = handlerRan('/slow')
  const slowSocket = net.connect(backend.port, '127.0.0.1')
  const slowBytes: Buffer[] = []
  slowSocket.on('data', (chunk: Buffer) => { slowBytes.push(chunk) })
  const slowClosed = once(slowSocket, 'close')
  slowSocket.write(requestLine('/slow'))
  const server = await slowServerReady
  t.equal(process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length, timersBefore + 1,
    'the /slow handler holds one timer')

  const keptAlive = await requestOneResponse(backend.port, '/')
  t.equal(keptAlive.statusLine, 'HTTP/1.1 200 OK')
  const keptAliveClosed = once(keptAlive.socket, 'close')

  await backend.close()
  await Promise.all([slowClosed, keptAliveClosed])

  t.equal(Buffer.concat(slowBytes).length, 0, 'the pending /slow request never got an answer')
  t.equal(server.listening, false)
  const connections = await new Promise<number>((resolve, reject) => {
    server.getConnections((error, count) => { if (error) reject(error); else resolve(count) })
  })
  t.equal(connections, 0, 'the server has no connections left')
  const accepted = acceptedOn(backend.port)
  t.equal(accepted.length, 2)
  t.same(accepted.filter((socket) => !socket.destroyed), [])
  t.equal(process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length, timersBefore,
    'the /slow timer was cleared')
})

t.test('a client that gives up on /slow clears its timer', async (t) => {
  const backend = await startDemoBackend()
  t.teardown(() => backend.close())
  const timersBefore = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  const slowHandled = handlerRan('/slow')
  const socket = net.connect(backend.port, '127.0.0.1')
  socket.write(requestLine('/slow?seconds=30'))
  await slowHandled
  const [serverSide] = acceptedOn(backend.port)
  if (serverSide === undefined) throw new Error('bug: the backend accepted no connection')
  const serverSideClosed = once(serverSide, 'close')
  socket.destroy()
  await serverSideClosed
  t.equal(process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length, timersBefore)
})

t.test('formatTryTable lists every route with its command, CLB answer and reason', async (t) => {
  const table = formatTryTable('http://127.0.0.1:8080/')
  const lines = table.split('\n')
  t.equal(lines.at(-1), '', 'ends with a newline')
  t.equal(lines[0], 'Try the demo backend through the proxy (what a Classic Load Balancer answers, and why):')
  for (const route of DEMO_ROUTES) {
    const commandIndex = lines.indexOf(`  curl -i http://127.0.0.1:8080${route.path}`)
    t.not(commandIndex, -1, `${route.path}: curl command present (no double slash)`)
    const answerLine = lines[commandIndex + 1] ?? ''
    t.match(answerLine, new RegExp(`^ {6}${escapeRegExp(route.clbAnswer)} +${escapeRegExp(route.description)}$`),
      `${route.path}: answer and reason under the command`)
  }
  const answerColumns = new Set(DEMO_ROUTES.map((route) => {
    const line = lines[lines.indexOf(`  curl -i http://127.0.0.1:8080${route.path}`) + 1] ?? ''
    return line.indexOf(route.description)
  }))
  t.equal(answerColumns.size, 1, 'reasons are aligned in one column')

  const slowIndex = lines.indexOf('  curl -i http://127.0.0.1:8080/slow')
  t.same(lines.slice(slowIndex, slowIndex + 3), [
    '  curl -i http://127.0.0.1:8080/slow',
    '      504 GATEWAY_TIMEOUT (ELB-generated)  no answer for 65 s; CLB\'s idle timeout is 60 s',
    '      quick 504: start the proxy with --idle-timeout 2, then request /slow?seconds=3'
  ])
  const documented = lines.indexOf('  curl -i http://127.0.0.1:8080/defects/double-crlf')
  t.equal(lines[documented + 1],
    '      502 BAD_GATEWAY (ELB-generated)      a blank line inside the header block')

  for (const url of ['http://127.0.0.1:8080', 'http://127.0.0.1:65535']) {
    const tooWide = formatTryTable(url).split('\n').filter((line) => line.length >= 100)
    t.same(tooWide, [], `every line under 100 columns for ${url}`)
  }
})

t.test('docs/demo-backend.md documents every route and its exact bytes', async (t) => {
  const docs = await readFile(new URL('docs/demo-backend.md', REPO_URL), 'utf8')
  for (const route of DEMO_ROUTES) {
    t.ok(docs.includes(`### \`GET ${route.path}\``), `${route.path}: has a section`)
    t.ok(docs.includes(route.clbAnswer), `${route.path}: states CLB's answer`)
  }
  for (const [path, wire] of Object.entries(CLOSING_ROUTE_WIRE)) {
    if (wire !== '') t.ok(docs.includes(wire), `${path}: escaped bytes appear verbatim`)
  }
})

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
