/**
 * The built-in demo backend: a misbehaving HTTP server the CLI starts when no --backend is given,
 * so `npm install && npm start` shows CLB's answers without an app of your own.
 *
 * Healthy routes are ordinary fastify routes. Each defect route hijacks the reply and writes exact
 * bytes to the socket, because Node's ServerResponse cannot produce malformed HTTP. Every defect
 * response carries exactly one defect: the rest of its bytes are valid HTTP/1.1 (RFC 9112), and
 * the socket is ended after them, so nothing else (framing, a half-open socket) can be blamed.
 * docs/demo-backend.md lists each route's bytes, CLB's answer and the AWS sentence behind it.
 *
 * Health: `GET /health` answers 200 `ok` until `GET /demo/health/fail` switches it to 500, and
 * `GET /demo/health/pass` switches it back; the CLI runs two named instances behind a CLB health
 * check on /health, so a user can take one out of service and watch the load balancer react.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { DEMO_WEBSOCKET_PATH, handleDemoUpgrade } from './demo-websocket.js'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'

export interface DemoRoute {
  readonly path: string
  readonly method: 'GET'
  /** One phrase: why CLB answers what it answers. */
  readonly description: string
  /** What CLB answers, e.g. '502 BAD_GATEWAY (ELB-generated)' or '200 (passed through)'. */
  readonly clbAnswer: string
  /** Extra advice printed under the route in the try table. */
  readonly curlHint?: string
}

export interface DemoBackendOptions {
  /** Default '127.0.0.1'. */
  readonly host?: string
  /** Default 0: the OS picks a free port. */
  readonly port?: number
  /**
   * The instance's name (e.g. 'demo-a'): sent as the x-demo-instance header of every response
   * fastify writes, and named in the /demo/health/* answers. 1 to 32 ASCII letters, digits or
   * hyphens. Default: none, and no such header (the routes' bytes stay as documented).
   */
  readonly name?: string
}

export interface DemoBackend {
  /** The name given to startDemoBackend, or null. */
  readonly name: string | null
  /** e.g. 'http://127.0.0.1:41234' */
  readonly url: string
  readonly host: string
  /** The bound port (the OS picks one when 0 was asked for). */
  readonly port: number
  /** Stops listening, cancels pending /slow answers and destroys every open socket. */
  close(): Promise<void>
}

/**
 * Our choice, above CLB's 60 s default idle timeout. CLB-BACKEND: "The keep-alive timeout should
 * be at least 60 seconds"; CLB-IDLE: the backend's keep-alive timeout should be greater than the
 * load balancer's idle timeout, so the load balancer is the one that closes. With Node's 5 s
 * default the healthy routes would fail at random (a pooled connection closed just as a request
 * is sent on it: CLB answers 504). The demo shows that failure deterministically instead, with
 * /defects/empty-response. Set explicitly so a change of fastify's default (72 s) cannot move it.
 */
export const DEMO_KEEP_ALIVE_TIMEOUT_MS = 75_000

/** /slow answers after this many seconds unless ?seconds= says otherwise: past CLB's default 60 s idle timeout. */
export const DEMO_SLOW_DEFAULT_SECONDS = 65

/** The health-check path of the demo instances: the CLI's demo runs CLB's check `HTTP:/health` against it. */
export const DEMO_HEALTH_PATH = '/health'
/** From now on this instance's /health answers 500: it fails its health checks. */
export const DEMO_HEALTH_FAIL_PATH = '/demo/health/fail'
/** From now on this instance's /health answers 200 again. */
export const DEMO_HEALTH_PASS_PATH = '/demo/health/pass'
/** Names the instance that answered (a named demo backend only); lower case, as fastify writes its own. */
export const DEMO_INSTANCE_HEADER = 'x-demo-instance'

/** A header value and a word in a sentence: no characters that need quoting anywhere. */
const DEMO_NAME = /^[A-Za-z0-9-]{1,32}$/

/** CLB-IDLE: the idle timeout is at most 4,000 s; waiting longer shows nothing new. */
const SLOW_MAX_SECONDS = 4000

const HEALTHY_BODY = 'hello from the clb-proxy demo backend\n'
const BACKEND_502_BODY = 'the demo backend itself answered 502\n'

const HEALTH_OK_BODY = 'ok\n'

const ELB_502 = '502 BAD_GATEWAY (ELB-generated)'
const ELB_504 = '504 GATEWAY_TIMEOUT (ELB-generated)'

function ascii (text: string): Buffer {
  return Buffer.from(text, 'latin1')
}

/** The classic bug, on purpose: String#length counts UTF-16 code units (5), the wire carries UTF-8 bytes (6). */
const UTF8_BODY = 'h\u00e9llo'

/** A defect route: the exact bytes written to the socket, after which the socket is ended. */
interface RawRoute extends DemoRoute {
  readonly wire: Buffer
}

const RAW_ROUTES: readonly RawRoute[] = [
  {
    // KC-502: "A response containing more than one CRLF between each header". The first blank
    // line ends the head (RFC 9112 section 2.1), so without CL/TE the rest is a body read until
    // close (section 6.3); the header lines after the blank line are the defect, and the socket
    // is closed so that this reading stays valid HTTP.
    path: '/defects/double-crlf',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'a blank line inside the header block',
    wire: ascii('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n' +
      'Content-Length: 5\r\n\r\nhello')
  },
  {
    // KC-502: "A response containing a Content-Length header which contains a non-integer".
    path: '/defects/content-length-not-integer',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'Content-Length: 5x is not an integer',
    wire: ascii('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5x\r\nConnection: close\r\n\r\nhello')
  },
  {
    // KC-502: "A response that has more bytes in the body than the Content-Length header value".
    // One write, so the excess byte arrives with the body.
    path: '/defects/body-exceeds-content-length',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'Content-Length: 5 but the UTF-8 body is 6 bytes',
    wire: Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${UTF8_BODY.length}\r\nConnection: close\r\n\r\n${UTF8_BODY}`, 'utf8')
  },
  {
    // RFC 9110 section 8.6: different values make the length unknowable; every strict peer rejects.
    path: '/defects/duplicate-content-length',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'two Content-Length headers, 5 and 6',
    wire: ascii('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nContent-Length: 6\r\n' +
      'Connection: close\r\n\r\nhello!')
  },
  {
    // RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
    path: '/defects/bad-status-line',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'status line without a status code (HTTP/1.1 OK)',
    wire: ascii('HTTP/1.1 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello')
  },
  {
    // RFC 9112 section 7.1: chunk-size = 1*HEXDIG.
    path: '/defects/chunked-bad-size',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'chunk size "zz" is not hexadecimal',
    wire: ascii('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      'zz\r\nhello\r\n0\r\n\r\n')
  },
  {
    // RFC 9112 section 8: a message that ends before Content-Length octets arrived is incomplete.
    path: '/defects/body-shorter-than-content-length',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'Content-Length: 10, then 5 bytes and close',
    wire: ascii('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello')
  },
  {
    // CLB-HTTPERR 502: "unable to parse the response"; an unfinished head cannot be parsed.
    path: '/defects/headers-cut',
    method: 'GET',
    clbAnswer: ELB_502,
    description: 'connection closed halfway through the headers',
    wire: ascii('HTTP/1.1 200 OK\r\nContent-Type: text/pl')
  },
  {
    // CLB-HTTPERR 504, cause 2: "Registered instances closing the connection to Elastic Load
    // Balancing." The deterministic form of the keep-alive race (see DEMO_KEEP_ALIVE_TIMEOUT_MS).
    path: '/defects/empty-response',
    method: 'GET',
    clbAnswer: ELB_504,
    description: 'connection closed before a byte of response',
    wire: Buffer.alloc(0)
  }
]

const HEALTHY_ROUTE: DemoRoute = {
  path: '/',
  method: 'GET',
  clbAnswer: '200 (passed through)',
  description: 'healthy: text body with a correct Content-Length'
}

const BACKEND_502_ROUTE: DemoRoute = {
  path: '/backend-502',
  method: 'GET',
  clbAnswer: '502 (passed through, backend\'s own)',
  description: 'well-formed 502 from the backend; log shows 502 502'
}

const SLOW_ROUTE: DemoRoute = {
  path: '/slow',
  method: 'GET',
  clbAnswer: ELB_504,
  description: `no answer for ${DEMO_SLOW_DEFAULT_SECONDS} s; CLB's idle timeout is 60 s`,
  curlHint: 'quick 504: start the proxy with --idle-timeout 2, then request /slow?seconds=3'
}

function publicRoute ({ path, method, description, clbAnswer }: RawRoute): DemoRoute {
  return Object.freeze({ path, method, description, clbAnswer })
}

export const DEMO_ROUTES: readonly DemoRoute[] = Object.freeze([
  Object.freeze(HEALTHY_ROUTE),
  Object.freeze(BACKEND_502_ROUTE),
  ...RAW_ROUTES.map(publicRoute),
  Object.freeze(SLOW_ROUTE)
])

/**
 * Writes `wire` as the whole response, then ends the socket (our FIN after the bytes) and destroys
 * it once flushed, so no half-open socket waits for the peer's FIN.
 */
function answerWithRawBytes (request: FastifyRequest, reply: FastifyReply, wire: Buffer): void {
  reply.hijack()
  const socket = request.raw.socket
  const destroyWhenFlushed = (): void => { socket.destroy() }
  if (wire.length === 0) socket.end(destroyWhenFlushed)
  else socket.end(wire, destroyWhenFlushed)
}

function bracketIpv6 (host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** The /health switch's answers: what it did and what the load balancer will do about it. */
function demoHealthSwitchText (name: string | null, failing: boolean): string {
  const who = name ?? 'this demo instance'
  // API-HC HealthCheck.Target: 'Any answer other than "200 OK" within the timeout period is
  // considered unhealthy'; CLB-HC: OutOfService after UnhealthyThreshold consecutive failures,
  // InService again after HealthyThreshold consecutive passes.
  return failing
    ? `${who}: ${DEMO_HEALTH_PATH} answers 500 from now on; after UnhealthyThreshold failed checks in a row ` +
      `${who} goes OutOfService and requests go to the other instances (undo: ${DEMO_HEALTH_PASS_PATH})\n`
    : `${who}: ${DEMO_HEALTH_PATH} answers 200 from now on; after HealthyThreshold passed checks in a row ` +
      `${who} goes InService and gets requests again\n`
}

/** The body of /health while it fails (500). */
function demoHealthFailingText (name: string | null): string {
  return `${name ?? 'this demo instance'} fails its health check on purpose (GET ${DEMO_HEALTH_PASS_PATH} to stop)\n`
}

const WEBSOCKET_WITHOUT_UPGRADE_TEXT = 'This is a WebSocket endpoint, and this request came without its Upgrade header.\n' +
  'A Classic Load Balancer\'s HTTP and HTTPS listeners do not pass WebSocket upgrades:\n' +
  'use a TCP (or SSL) listener, e.g. --listener tcp://127.0.0.1:8081, or an Application Load Balancer.\n'

export async function startDemoBackend (options: DemoBackendOptions = {}): Promise<DemoBackend> {
  const host = options.host ?? '127.0.0.1'
  const requestedPort = options.port ?? 0
  const name = options.name ?? null
  if (name !== null && (typeof name !== 'string' || !DEMO_NAME.test(name))) {
    throw new TypeError(`the demo backend's name must be 1 to 32 ASCII letters, digits or hyphens, got ${JSON.stringify(name)}`)
  }

  const app = Fastify({
    logger: false,
    keepAliveTimeout: DEMO_KEEP_ALIVE_TIMEOUT_MS,
    // close() must not wait for kept-alive sockets or a pending /slow answer.
    forceCloseConnections: true,
    // The defect routes write a body; a HEAD must not get one, so only GET is routed.
    exposeHeadRoutes: false
  })

  const pendingSlowTimers = new Set<NodeJS.Timeout>()
  let failingHealthCheck = false

  if (name !== null) {
    // Every response fastify writes (the defect routes write their own bytes, unchanged).
    app.addHook('onRequest', (_request, reply, done) => {
      reply.header(DEMO_INSTANCE_HEADER, name)
      done()
    })
  }

  app.get(DEMO_HEALTH_PATH, (_request, reply) => {
    if (failingHealthCheck) reply.code(500).type('text/plain; charset=utf-8').send(demoHealthFailingText(name))
    else reply.type('text/plain; charset=utf-8').send(HEALTH_OK_BODY)
  })

  app.get(DEMO_HEALTH_FAIL_PATH, (_request, reply) => {
    failingHealthCheck = true
    reply.type('text/plain; charset=utf-8').send(demoHealthSwitchText(name, true))
  })

  app.get(DEMO_HEALTH_PASS_PATH, (_request, reply) => {
    failingHealthCheck = false
    reply.type('text/plain; charset=utf-8').send(demoHealthSwitchText(name, false))
  })

  app.get(HEALTHY_ROUTE.path, (_request, reply) => {
    reply.type('text/plain; charset=utf-8').send(HEALTHY_BODY)
  })

  app.get(BACKEND_502_ROUTE.path, (_request, reply) => {
    reply.code(502).type('text/plain; charset=utf-8').send(BACKEND_502_BODY)
  })

  for (const route of RAW_ROUTES) {
    app.get(route.path, (request, reply) => { answerWithRawBytes(request, reply, route.wire) })
  }

  app.get<{ Querystring: { seconds: number } }>(SLOW_ROUTE.path, {
    schema: {
      querystring: {
        type: 'object',
        properties: {
          seconds: { type: 'number', minimum: 0, maximum: SLOW_MAX_SECONDS, default: DEMO_SLOW_DEFAULT_SECONDS }
        }
      }
    }
  }, (request, reply) => {
    const { seconds } = request.query
    const timer = setTimeout(() => {
      pendingSlowTimers.delete(timer)
      reply.type('text/plain; charset=utf-8').send(`answered after ${seconds} s\n`)
    }, seconds * 1000)
    pendingSlowTimers.add(timer)
    // 'close' fires when the response is done or the connection is gone (client or close()).
    reply.raw.once('close', () => {
      clearTimeout(timer)
      pendingSlowTimers.delete(timer)
    })
  })

  // A plain GET of the WebSocket endpoint: what arrives when an HTTP listener dropped the Upgrade
  // header (spec §5.10). RFC 9110 section 15.5.22: 426 Upgrade Required names the protocol to use.
  app.get(DEMO_WEBSOCKET_PATH, (_request, reply) => {
    reply.code(426).header('upgrade', 'websocket').type('text/plain; charset=utf-8').send(WEBSOCKET_WITHOUT_UPGRADE_TEXT)
  })
  const upgradedSockets = new Set<Duplex>()
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => handleDemoUpgrade(request, socket, head, upgradedSockets))

  try {
    await app.listen({ host, port: requestedPort })
  } catch (error) {
    await app.close()
    throw error
  }
  const address = app.server.address()
  if (address === null || typeof address === 'string') {
    throw new Error(`bug: the demo backend listens on TCP but reported address ${String(address)}`)
  }
  const port = address.port

  let closing: Promise<void> | null = null
  return Object.freeze({
    name,
    url: `http://${bracketIpv6(host)}:${port}`,
    host,
    port,
    close (): Promise<void> {
      closing ??= (async () => {
        for (const timer of pendingSlowTimers) clearTimeout(timer)
        pendingSlowTimers.clear()
        for (const socket of upgradedSockets) socket.destroy()
        await app.close()
      })()
      return closing
    }
  })
}

/**
 * The startup table: for each route, the curl command, what CLB would answer and why.
 * Lines stay under 100 columns for proxy URLs up to `http://127.0.0.1:65535`.
 */
export function formatTryTable (proxyUrl: string): string {
  const base = proxyUrl.replace(/\/+$/, '')
  const answerWidth = Math.max(...DEMO_ROUTES.map((route) => route.clbAnswer.length))
  const lines = ['Try the demo backend through the proxy (what a Classic Load Balancer answers, and why):', '']
  for (const route of DEMO_ROUTES) {
    lines.push(`  curl -i ${base}${route.path}`)
    lines.push(`      ${route.clbAnswer.padEnd(answerWidth)}  ${route.description}`)
    if (route.curlHint !== undefined) lines.push(`      ${route.curlHint}`)
  }
  return lines.join('\n') + '\n'
}
