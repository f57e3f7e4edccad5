/**
 * https instances end to end: raw clients -> clb-proxy -> a real node:https server (or a server
 * that fails the handshake), with certificates made by the openssl command line for this run.
 *
 * What is asserted whole: the client's bytes, the access-log line (frozen clock: every timing 0),
 * the outcome, BackendConnectionErrors, and the diagnostic. A failed handshake with an https
 * instance gets CLB's 408 (clb-behavior.md section 1, O-408: "Observed on an HTTPS listener whose
 * HTTPS backend could not complete a TLS handshake"), at once, and is not retried elsewhere.
 * No sleeps: every wait is on an event (an exchange, a socket's close, a state change).
 */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type tls from 'node:tls'
import t, { type Test } from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'

// clb-behavior.md section 1.3, byte for byte (observed, O-408).
const REQUEST_TIMEOUT = 'HTTP/1.1 408 REQUEST_TIMEOUT\r\nContent-Length:0\r\nConnection: Close\r\n\r\n'

interface Certificates {
  /** Paths of PEM files, for the backendCa option. */
  readonly caFile: string
  readonly unrelatedCaFile: string
  /** Signed by the CA, for DNS:localhost and IP:127.0.0.1. */
  readonly leaf: { readonly key: string, readonly cert: string }
}

/** Certificates made with the openssl command line (Node cannot make them), in a directory removed at teardown. */
function makeCertificates (t: Test): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'clb-https-instances-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=clb-proxy test CA')
  openssl('req', '-x509', ...ecKey, '-keyout', 'unrelated.key', '-out', 'unrelated.pem', '-days', '2', '-subj', '/CN=unrelated CA')
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n')
  openssl('req', ...ecKey, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost')
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'leaf.ext', '-out', 'leaf.pem')
  return {
    caFile: join(dir, 'ca.pem'),
    unrelatedCaFile: join(dir, 'unrelated.pem'),
    leaf: { key: readFileSync(join(dir, 'leaf.key'), 'latin1'), cert: readFileSync(join(dir, 'leaf.pem'), 'latin1') }
  }
}

interface Instance {
  readonly port: number
  /** `https://127.0.0.1:PORT`, as given to --backend. */
  readonly url: string
  /** Requests the application handled: method, path and body. */
  readonly requests: Array<{ readonly method: string, readonly path: string, readonly body: string, readonly forwardedProto: string }>
  /** TLS sessions established (one per backend connection). */
  tlsSessions: number
  /** TCP connections accepted. */
  readonly connections: net.Socket[]
  /** Resolves when every accepted TCP connection is closed. */
  allClosed (): Promise<void>
}

/**
 * A TLS server whose application answers `hello` to GET and the length of the body to POST, with
 * fixed response bytes (no Date), or, with `plain`, a node:http server on which the proxy's
 * ClientHello lands. Started before the proxy, closed at teardown.
 */
async function startInstance (t: Test, options: { readonly tls?: tls.TlsOptions, readonly plain?: boolean, readonly onConnection?: (socket: net.Socket) => void }): Promise<Instance> {
  const requests: Instance['requests'] = []
  const connections: net.Socket[] = []
  const closed: Array<Promise<unknown>> = []
  const app = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1')
      requests.push({ method: request.method ?? '', path: request.url ?? '', body, forwardedProto: String(request.headers['x-forwarded-proto']) })
      response.sendDate = false
      const text = request.method === 'POST' ? `got ${body.length}` : 'hello'
      response.writeHead(200, { 'Content-Length': String(text.length) })
      response.end(text)
    })
  }
  const server: net.Server = options.plain === true ? http.createServer(app) : https.createServer(options.tls ?? {}, app)
  const instance: Instance = {
    port: 0,
    url: '',
    requests,
    tlsSessions: 0,
    connections,
    allClosed: async () => { await Promise.all(closed) }
  }
  if (options.onConnection !== undefined) server.removeAllListeners('connection')
  server.on('connection', (socket: net.Socket) => {
    connections.push(socket)
    // Not events.once: it rejects on 'error' (node:http reports the ClientHello as a parse error).
    closed.push(new Promise<void>((resolve) => socket.once('close', () => resolve())))
    socket.on('error', () => {})
    options.onConnection?.(socket)
  })
  server.on('secureConnection', () => { instance.tlsSessions++ })
  // Handshakes the proxy gives up (a CA it does not trust) are the proxy's to report.
  server.on('tlsClientError', () => {})
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  t.teardown(async () => {
    for (const socket of connections) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return Object.assign(instance, { port, url: `https://127.0.0.1:${port}` })
}

function request (method: string, path: string, body = ''): string {
  const framing = method === 'POST' ? `Content-Length: ${body.length}\r\n` : ''
  return `${method} ${path} HTTP/1.1\r\nHost: example.test\r\nUser-Agent: https-instances-test\r\n${framing}\r\n${body}`
}

/** The access-log line; `middle` is backend:port through sent_bytes (the frozen clock makes every timing 0). */
function logLine (f: ProxyFixture, clientPort: number, middle: string, method: string, path: string): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} ${middle} "${method} http://example.test:${f.port}${path} HTTP/1.1" "https-instances-test" - -`
}

/** Closes the proxy, then waits for the instance to see every connection closed, then asserts nothing was left (fixture). */
async function closeAll (t: Test, f: ProxyFixture, instances: readonly Instance[]): Promise<void> {
  await f.proxy.close()
  for (const instance of instances) await instance.allClosed()
  await f.close(t)
}

const certificates = makeCertificates(t)

t.test('an https instance: GET, POST with a body, two requests on one backend TLS session, exact log lines', async (t) => {
  const instance = await startInstance(t, { tls: certificates.leaf })
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [instance.url] } })
  const client = await f.connect()
  client.write(request('GET', '/hello'))
  const first = await client.response()
  client.write(request('POST', '/upload', 'twelve bytes'))
  const second = await client.response()
  client.end()
  await client.whenClosed()
  t.strictSame({
    responses: [first, second].map((r) => [r.bytes.toString('latin1'), r.closedByProxy, r.records[0]?.outcome]),
    log: f.logLines,
    received: instance.requests,
    tlsSessions: instance.tlsSessions,
    connections: instance.connections.length
  }, {
    responses: [
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello', false, 'relayed'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\ngot 12', false, 'relayed']
    ],
    log: [
      logLine(f, client.port, `127.0.0.1:${instance.port} 0 0 0 200 200 0 5`, 'GET', '/hello'),
      logLine(f, client.port, `127.0.0.1:${instance.port} 0 0 0 200 200 12 6`, 'POST', '/upload')
    ],
    // CLB-XFF: X-Forwarded-Proto is the listener's protocol (http here), whatever the instance's.
    received: [
      { method: 'GET', path: '/hello', body: '', forwardedProto: 'http' },
      { method: 'POST', path: '/upload', body: 'twelve bytes', forwardedProto: 'http' }
    ],
    tlsSessions: 1,
    connections: 1
  })
  t.equal(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum, 0)
  await closeAll(t, f, [instance])
})

t.test('backendCa: the right CA is trusted; another CA fails the handshake with CLB\'s 408', async (t) => {
  t.test('the CA that signed the certificate: relayed', async (t) => {
    const instance = await startInstance(t, { tls: certificates.leaf })
    const f = await startProxyFixture(t, { backend: false, proxy: { backends: [instance.url], backendCa: certificates.caFile } })
    const response = await f.request(request('GET', '/hello'))
    t.strictSame([response.bytes.toString('latin1').split('\r\n')[0], response.records[0]?.outcome, f.logLines],
      ['HTTP/1.1 200 OK', 'relayed', [logLine(f, response.clientPort, `127.0.0.1:${instance.port} 0 0 0 200 200 0 5`, 'GET', '/hello')]])
    await closeAll(t, f, [instance])
  })

  t.test('another CA: 408 at once, - -1 -1 -1 408 0, the verify error named, nothing reached the application', async (t) => {
    const instance = await startInstance(t, { tls: certificates.leaf })
    const f = await startProxyFixture(t, { backend: false, proxy: { backends: [instance.url], backendCa: certificates.unrelatedCaFile } })
    const response = await f.request(request('GET', '/hello'))
    const record = response.records[0]
    t.strictSame({
      client: response.bytes.toString('latin1'),
      closedByProxy: response.closedByProxy,
      outcome: record?.outcome,
      elbGenerated: record?.elbGenerated,
      backendError: record?.backendError,
      backendErrorMessage: record?.backendErrorMessage,
      log: f.logLines
    }, {
      client: REQUEST_TIMEOUT,
      closedByProxy: true,
      outcome: 'backend-tls-failed',
      elbGenerated: true,
      backendError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      backendErrorMessage: 'unable to verify the first certificate',
      log: [logLine(f, response.clientPort, '- -1 -1 -1 408 0 0 0', 'GET', '/hello')]
    })
    t.match(f.diagnostics.find((entry) => entry.outcome === 'backend-tls-failed'), {
      level: 40,
      instance: `127.0.0.1:${instance.port}`,
      backendError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      msg: `408 from the load balancer: TLS handshake with 127.0.0.1:${instance.port} failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE: ` +
        'unable to verify the first certificate); its certificate does not chain to the CA given as backendCa (--backend-ca)'
    })
    const metrics = f.proxy.metrics().Metrics
    t.strictSame([metrics.BackendConnectionErrors.Sum, metrics.HTTPCode_ELB_4XX.Sum, metrics.RequestCount.Sum], [1, 1, 0])
    await closeAll(t, f, [instance])
    t.strictSame([instance.requests.length, instance.connections.length], [0, 1], 'one connection, no request handled')
  })
})

t.test('a plain HTTP server registered as https: 408, counted, and not retried on the next instance', async (t) => {
  const plain = await startInstance(t, { plain: true })
  const good = await startInstance(t, { tls: certificates.leaf })
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [plain.url, good.url] } })
  const response = await f.request(request('GET', '/hello'))
  const record = response.records[0]
  t.strictSame({
    client: response.bytes.toString('latin1'),
    closedByProxy: response.closedByProxy,
    outcome: record?.outcome,
    instance: record?.instance,
    log: f.logLines,
    backendConnectionErrors: f.proxy.metrics().Metrics.BackendConnectionErrors.Sum
  }, {
    client: REQUEST_TIMEOUT,
    closedByProxy: true,
    outcome: 'backend-tls-failed',
    instance: `127.0.0.1:${plain.port}`,
    log: [logLine(f, response.clientPort, '- -1 -1 -1 408 0 0 0', 'GET', '/hello')],
    backendConnectionErrors: 1
  })
  // With the request queued during the handshake node:tls reports OpenSSL's error as a write's EPROTO.
  t.match(record, { backendError: /^(EPROTO|ERR_SSL_WRONG_VERSION_NUMBER)$/, backendErrorMessage: 'wrong version number' })
  t.match(f.diagnostics.find((entry) => entry.outcome === 'backend-tls-failed')?.msg,
    /^408 from the load balancer: TLS handshake with 127\.0\.0\.1:\d+ failed \((EPROTO|ERR_SSL_WRONG_VERSION_NUMBER): wrong version number\); the instance does not speak TLS on that port/)
  await closeAll(t, f, [plain, good])
  t.strictSame([good.connections.length, good.requests.length], [0, 0], 'the other instance was not tried')
})

t.test('an instance that resets the connection during the handshake: 408, ECONNRESET', async (t) => {
  const resetting = await startInstance(t, { onConnection: (socket) => socket.once('data', () => socket.resetAndDestroy()) })
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [resetting.url] } })
  const response = await f.request(request('POST', '/upload', 'twelve bytes'))
  t.strictSame({
    client: response.bytes.toString('latin1'),
    outcome: response.records[0]?.outcome,
    backendError: response.records[0]?.backendError,
    log: f.logLines
  }, {
    client: REQUEST_TIMEOUT,
    outcome: 'backend-tls-failed',
    backendError: 'ECONNRESET',
    // CLB-LOGS received_bytes: the request body the load balancer received (12), though never sent.
    log: [logLine(f, response.clientPort, '- -1 -1 -1 408 0 12 0', 'POST', '/upload')]
  })
  await closeAll(t, f, [resetting])
})

t.test('HTTPS health check of an https instance: in service after its first check, then serves', async (t) => {
  const instance = await startInstance(t, { tls: certificates.leaf })
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [instance.url], healthCheck: 'HTTPS:/health' } })
  const [described] = f.proxy.instances()
  t.equal(described?.Url, instance.url, 'its Url is the https:// address it was registered with, which register() takes back')
  t.match(instance.url, /^https:\/\//)
  const state = await f.proxy.waitForInstanceState(described?.InstanceId ?? '', 'InService')
  t.equal(state.State, 'InService')
  const response = await f.request(request('GET', '/hello'))
  t.equal(response.records[0]?.outcome, 'relayed')
  t.strictSame(instance.requests.map((r) => r.path).filter((path) => path !== '/health'), ['/hello'])
  t.ok(instance.requests.some((r) => r.path === '/health'), 'the check reached the application over TLS')
  await closeAll(t, f, [instance])
})

t.test('HTTPS health checks honour backendCa: an instance whose certificate does not chain to it stays out of service', async (t) => {
  const instance = await startInstance(t, { tls: certificates.leaf })
  const f = await startProxyFixture(t, {
    backend: false,
    // 5 s and 4 s as 300 ms and 240 ms (docs/library.md, timeScale): a TLS check on a loaded machine fits.
    timeScale: 0.06,
    proxy: { backends: [instance.url], healthCheck: 'HTTPS:/health', backendCa: certificates.unrelatedCaFile, healthIntervalSeconds: 5, healthTimeoutSeconds: 4, unhealthyThreshold: 2, healthyThreshold: 2 }
  })
  const id = f.proxy.instances()[0]?.InstanceId ?? ''
  const checks: Array<{ passed: boolean, error: string | null }> = []
  await new Promise<void>((resolve) => {
    const onCheck = (event: { instanceId: string, result: { passed: boolean, error: string | null } }): void => {
      if (event.instanceId !== id) return
      checks.push({ passed: event.result.passed, error: event.result.error })
      if (checks.length < 2) return
      f.proxy.events.off('health-check', onCheck)
      resolve()
    }
    f.proxy.events.on('health-check', onCheck)
  })
  t.strictSame(checks.map((check) => check.passed), [false, false], 'every check fails: the certificate is not trusted')
  t.match(checks[0]?.error, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify/i)
  t.equal(f.proxy.instances()[0]?.State, 'OutOfService')
  t.equal(instance.requests.length, 0, 'no check reached the application')
  await closeAll(t, f, [instance])
})

t.test('an instance that accepts but never completes the handshake: 408 at the idle timeout (the timeout is the behaviour under test)', async (t) => {
  // Reads (and drops) the ClientHello, so it sees the proxy's close; never answers.
  const silent = await startInstance(t, { onConnection: (socket) => socket.resume() })
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [silent.url], idleTimeoutSeconds: 1 } })
  const response = await f.request(request('GET', '/hello'))
  t.strictSame({
    client: response.bytes.toString('latin1'),
    outcome: response.records[0]?.outcome,
    backendError: response.records[0]?.backendError,
    backendErrorMessage: response.records[0]?.backendErrorMessage,
    log: f.logLines,
    backendConnectionErrors: f.proxy.metrics().Metrics.BackendConnectionErrors.Sum
  }, {
    client: REQUEST_TIMEOUT,
    outcome: 'backend-tls-failed',
    backendError: 'ETIMEDOUT',
    backendErrorMessage: 'no TLS handshake within the 1 s idle timeout',
    log: [logLine(f, response.clientPort, '- -1 -1 -1 408 0 0 0', 'GET', '/hello')],
    backendConnectionErrors: 1
  })
  await closeAll(t, f, [silent])
})
