/**
 * One health check against real sockets: raw `net` and `tls` servers on 127.0.0.1, port 0, that
 * put exact bytes on the wire, and a stepped clock (each reading 3 ms after the last), so every
 * result, summary included, is asserted whole.
 *
 * Nothing is left open: each test waits until the instance saw every connection close (the probe
 * destroys its socket before it resolves), and closes its server at teardown. No sleeps: a test
 * waits on socket events; the two timeouts are the behaviour under test (API-HC HealthCheck.Timeout).
 *
 * Split delivery without sleeps: node:net publishes every socket net.connect() creates on the
 * diagnostics channel 'net.client.socket', so a test sees the probe's socket and its reads, and
 * the instance writes the next byte only after the probe's socket read the previous one.
 */
import { execFileSync } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import type { Clock } from '../../../proxy/core/clock.js'
import { parseHealthCheckTarget, type HealthCheckTarget } from '../../../proxy/core/health-check-target.js'
import { MAX_BODY_BYTES, probeInstance, type HealthCheckResult, type ProbeSettings } from '../../../proxy/balancer/health-check-probe.js'
import { closedPort } from '../../helpers/raw-backend.js'

const STARTED = 1_700_000_000_000_000
/** Each reading 3 ms after the last: the probe reads the clock at its start and at its decision. */
function steppedClock (): Clock {
  let now = STARTED - 3000
  return { nowMicros: () => (now += 3000) }
}

function target (text: string): HealthCheckTarget {
  const parsed = parseHealthCheckTarget(text)
  if ('error' in parsed) throw new Error(parsed.error)
  return parsed
}

function settings (text: string, timeoutMs = 5000): ProbeSettings {
  return { target: target(text), timeoutMs, clock: steppedClock() }
}

function expectedRequest (path: string, port: number, host = '127.0.0.1'): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: ELB-HealthChecker/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n`
}

/** A failed or passed result, with the fields every test shares filled in. */
function result (fields: Partial<HealthCheckResult> & Pick<HealthCheckResult, 'passed' | 'summary'>): HealthCheckResult {
  return { startedAtMicros: STARTED, durationMs: 3, status: null, defect: null, error: null, ...fields }
}

// --- the instance -------------------------------------------------------------------------

interface Instance {
  readonly host: string
  readonly port: number
  /** Resolves with the bytes of the first request head (through CRLFCRLF) on connection `index`. */
  request: (index?: number) => Promise<Buffer>
  /** Resolves once `count` TCP connections were accepted and every one of them is closed. */
  allClosed: (count: number) => Promise<void>
  close: () => Promise<void>
}

interface InstanceBehaviour {
  /** Called for each accepted connection (after the TLS handshake for a TLS instance). */
  readonly onConnection?: (socket: net.Socket) => void
  /** Called once per connection with the first complete request head. */
  readonly onRequest?: (socket: net.Socket, head: Buffer) => void
  /** A TLS instance with this key and certificate; `serverNames` collects the SNI of each handshake. */
  readonly tls?: { readonly key: Buffer, readonly cert: Buffer, readonly serverNames?: string[] }
  readonly host?: string
}

async function startInstance (t: Test, behaviour: InstanceBehaviour = {}): Promise<Instance> {
  // The TCP connections, whatever happens to a TLS handshake on them (a probe that got its
  // answer closes at once, and a TLS server may then never report the handshake as complete).
  const tcpSockets: net.Socket[] = []
  const closed: Array<Promise<unknown>> = []
  const requests: Array<Promise<Buffer>> = []
  let waiters: Array<() => void> = []
  const wake = (): void => {
    const current = waiters
    waiters = []
    for (const resume of current) resume()
  }
  const until = async (ready: () => boolean): Promise<void> => {
    while (!ready()) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  const serve = (socket: net.Socket): void => {
    // A probe that destroys its socket mid-write resets the connection: expected.
    socket.on('error', () => {})
    let received = Buffer.alloc(0)
    requests.push(new Promise<Buffer>((resolve) => {
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk])
        const end = received.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        const head = received.subarray(0, end + 4)
        resolve(head)
        behaviour.onRequest?.(socket, head)
      }
      socket.on('data', onData)
    }))
    behaviour.onConnection?.(socket)
    wake()
  }
  const certificate = behaviour.tls
  const server = certificate === undefined
    ? net.createServer(serve)
    : tls.createServer({
      key: certificate.key,
      cert: certificate.cert,
      SNICallback: (name, callback) => {
        certificate.serverNames?.push(name)
        callback(null, undefined)
      }
    }, serve)
  server.on('connection', (socket: net.Socket) => {
    tcpSockets.push(socket)
    closed.push(once(socket, 'close'))
    socket.on('error', () => {})
    wake()
  })
  // A TLS client that gives up mid-handshake is reported here; the probe's result says what happened.
  server.on('tlsClientError', () => {})
  const host = behaviour.host ?? '127.0.0.1'
  server.listen({ host, port: 0 })
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  const instance: Instance = {
    host,
    port,
    request: async (index = 0) => {
      await until(() => requests.length > index)
      return await (requests[index] as Promise<Buffer>)
    },
    allClosed: async (count) => {
      await until(() => tcpSockets.length >= count)
      await Promise.all(closed)
    },
    close: async () => {
      for (const socket of tcpSockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await Promise.all(closed)
    }
  }
  t.teardown(instance.close)
  return instance
}

/** The sockets net.connect() creates while the test runs (the probe's, for HTTP and TCP). */
function watchClientSockets (t: Test): net.Socket[] {
  const created: net.Socket[] = []
  const onSocket = (message: unknown): void => { created.push((message as { socket: net.Socket }).socket) }
  diagnosticsChannel.subscribe('net.client.socket', onSocket)
  t.teardown(() => diagnosticsChannel.unsubscribe('net.client.socket', onSocket))
  return created
}

/** Answers the request with `bytes` in one write, then leaves the connection open. */
function answer (bytes: string): InstanceBehaviour {
  return { onRequest: (socket) => socket.write(Buffer.from(bytes, 'latin1')) }
}

/** A self-signed certificate for localhost, made with openssl for this run (CLB does not validate it). */
function selfSignedCertificate (t: Test): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'clb-probe-cert-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const keyPath = join(dir, 'key.pem')
  const certPath = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-keyout', keyPath, '-out', certPath], { stdio: 'ignore' })
  return { key: readFileSync(keyPath), cert: readFileSync(certPath) }
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

// --- HTTP ---------------------------------------------------------------------------------

t.test('HTTP 200 passes; the request is exactly the documented GET with our headers', async (t) => {
  const clientSockets = watchClientSockets(t)
  // The instance answers and keeps the connection open: the probe decides on the complete message.
  const instance = await startInstance(t, answer(OK))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  t.equal((await instance.request()).toString('latin1'), expectedRequest('/health', instance.port), 'the request, byte for byte')
  t.equal(clientSockets.length, 1, 'one connection per check')
  t.ok(clientSockets[0]?.destroyed, 'the probe closed its socket before resolving')
  await instance.allClosed(1)
})

t.test('HTTP 302 fails with its status as soon as the head is read (the body never comes)', async (t) => {
  const instance = await startInstance(t, answer('HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 100\r\n\r\n'))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/'))
  t.strictSame(outcome, result({ passed: false, status: 302, summary: '302 to /login, not 200' }))
  await instance.allClosed(1)
})

t.test('a 200 with a header line after the blank line is malformed (KC-502) and fails', async (t) => {
  const instance = await startInstance(t, answer('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nX-A: b\r\n\r\nok'))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  const message = 'header line "X-A: b" follows the blank line at offset 36 that ended the head'
  t.strictSame(outcome, result({
    passed: false,
    status: 200,
    defect: { code: 'HDR_BLANK_LINE', offset: 38, message },
    summary: `malformed 200: HDR_BLANK_LINE at byte 38 (${message})`
  }))
  await instance.allClosed(1)
})

t.test('a 200 with Content-Length: abc fails (KC-502: "a Content-Length header which contains a non-integer")', async (t) => {
  const instance = await startInstance(t, answer('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok'))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  const message = 'Content-Length value "abc" is not an integer'
  // The parser stops before the head is complete: no head, so no status is reported.
  t.strictSame(outcome, result({
    passed: false,
    defect: { code: 'CL_NOT_INTEGER', offset: 33, message },
    summary: `malformed response: CL_NOT_INTEGER at byte 33 (${message})`
  }))
  await instance.allClosed(1)
})

t.test('a 200 with more body bytes than Content-Length fails', async (t) => {
  const instance = await startInstance(t, answer('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokay'))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  const message = '2 more byte(s) arrived after the 2 bytes of Content-Length'
  t.strictSame(outcome, result({
    passed: false,
    status: 200,
    defect: { code: 'BODY_EXCEEDS_CL', offset: 40, message },
    summary: `malformed 200: BODY_EXCEEDS_CL at byte 40 (${message})`
  }))
  await instance.allClosed(1)
})

t.test('a 200 with a body and no framing fails (CLB-HC-TS cause 2); without a body it passes at the close', async (t) => {
  t.test('with a body', async (t) => {
    const instance = await startInstance(t, answer('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok'))
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
    t.strictSame(outcome, result({
      passed: false,
      status: 200,
      defect: { code: 'BODY_UNTIL_CLOSE', offset: 45, message: 'no Content-Length or Transfer-Encoding: the body runs until the connection closes' },
      summary: '200 with a body but neither Content-Length nor Transfer-Encoding: chunked'
    }))
    await instance.allClosed(1)
  })
  t.test('without a body, then FIN', async (t) => {
    const instance = await startInstance(t, {
      onRequest: (socket) => socket.end(Buffer.from('HTTP/1.0 200 OK\r\nServer: old\r\n\r\n', 'latin1'))
    })
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
    t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
    await instance.allClosed(1)
  })
})

t.test('a chunked 200 passes; an interim 100 Continue is skipped', async (t) => {
  const instance = await startInstance(t, answer(
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  await instance.allClosed(1)
})

t.test('a 200 whose body goes on past the bound is judged on what arrived', async (t) => {
  const body = Buffer.alloc(MAX_BODY_BYTES, 'a')
  const instance = await startInstance(t, {
    // Announces 1 MiB and sends the bound's worth; the rest never comes.
    onRequest: (socket) => socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n', 'latin1'), body]))
  })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  await instance.allClosed(1)
})

t.test('the instance closes without a byte: EMPTY_RESPONSE', async (t) => {
  const instance = await startInstance(t, { onRequest: (socket) => socket.end() })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({
    passed: false,
    defect: { code: 'EMPTY_RESPONSE', offset: 0, message: 'the connection closed before any response byte' },
    summary: 'the instance closed the connection without answering (EMPTY_RESPONSE)'
  }))
  await instance.allClosed(1)
})

t.test('the instance closes in the middle of the body: BODY_SHORT_CL', async (t) => {
  const instance = await startInstance(t, { onRequest: (socket) => socket.end(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok', 'latin1')) })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  const message = 'the connection closed 3 bytes short of Content-Length 5'
  t.strictSame(outcome, result({
    passed: false,
    status: 200,
    defect: { code: 'BODY_SHORT_CL', offset: 40, message },
    summary: `malformed 200: BODY_SHORT_CL at byte 40 (${message})`
  }))
  await instance.allClosed(1)
})

t.test('the instance resets the connection without answering: ECONNRESET', async (t) => {
  const instance = await startInstance(t, { onRequest: (socket) => socket.resetAndDestroy() })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({ passed: false, error: 'ECONNRESET', summary: 'connection reset (ECONNRESET)' }))
  await instance.allClosed(1)
})

t.test('an instance that accepts and never answers: timeout', async (t) => {
  t.test('under a second, in ms', async (t) => {
    const instance = await startInstance(t)
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health', 200))
    t.strictSame(outcome, result({ passed: false, error: 'timeout', summary: 'no answer within 200 ms' }))
    t.equal((await instance.request()).toString('latin1'), expectedRequest('/health', instance.port), 'the request arrived')
    await instance.allClosed(1)
  })
  t.test('a second or more, in s', async (t) => {
    const instance = await startInstance(t)
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health', 1000))
    t.strictSame(outcome, result({ passed: false, error: 'timeout', summary: 'no answer within 1 s' }))
    await instance.allClosed(1)
  })
  t.test('part of a head', async (t) => {
    const instance = await startInstance(t, answer('HTTP/1.1 200 OK\r\nContent-Le'))
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health', 200))
    t.strictSame(outcome, result({ passed: false, error: 'timeout', summary: 'no complete answer within 200 ms' }))
    await instance.allClosed(1)
  })
  t.test('a head without its body', async (t) => {
    const instance = await startInstance(t, answer('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok'))
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health', 200))
    t.strictSame(outcome, result({ passed: false, status: 200, error: 'timeout', summary: '200 not complete within 200 ms' }))
    await instance.allClosed(1)
  })
})

t.test('connection refused: ECONNREFUSED', async (t) => {
  const port = await closedPort()
  const outcome = await probeInstance({ host: '127.0.0.1', port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({ passed: false, error: 'ECONNREFUSED', summary: 'connection refused (ECONNREFUSED)' }))
})

t.test('the response split into single bytes still passes', async (t) => {
  const clientSockets = watchClientSockets(t)
  const response = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Check: yes\r\n\r\nok', 'latin1')
  const reads: number[] = []
  const instance = await startInstance(t, {
    onRequest: (socket) => {
      const probeSide = clientSockets[0] as net.Socket
      let next = 0
      // The next byte is written only once the probe's socket has read the previous one.
      const writeNext = (): void => {
        if (next < response.length) socket.write(response.subarray(next, ++next))
      }
      probeSide.on('data', (chunk: Buffer) => {
        reads.push(chunk.length)
        writeNext()
      })
      writeNext()
    }
  })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'))
  t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  t.strictSame(reads, Array.from({ length: response.length }, () => 1), 'one byte per read')
  await instance.allClosed(1)
})

t.test('the port: null uses the instance\'s port, an explicit port overrides it', async (t) => {
  const instance = await startInstance(t, answer(OK))
  const unused = await closedPort()
  const ownPort = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/own'))
  t.strictSame(ownPort, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  const explicit = await probeInstance({ host: instance.host, port: unused }, settings(`HTTP:${instance.port}/explicit`))
  t.strictSame(explicit, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  t.equal((await instance.request(1)).toString('latin1'), expectedRequest('/explicit', instance.port), 'Host names the port connected to')
  const tcp = await probeInstance({ host: instance.host, port: unused }, settings(`TCP:${instance.port}`))
  t.strictSame(tcp, result({ passed: true, summary: 'connected in 3 ms' }))
  await instance.allClosed(3)
})

/** Whether this host has an IPv6 loopback to listen on. */
async function hasIpv6Loopback (): Promise<boolean> {
  const server = net.createServer()
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen({ host: '::1', port: 0 }, () => resolve(true))
  })
  if (listening) await new Promise<void>((resolve) => server.close(() => resolve()))
  return listening
}

t.test('IPv6: the Host header puts the address in brackets', { skip: await hasIpv6Loopback() ? false : 'no IPv6 loopback here' }, async (t) => {
  const instance = await startInstance(t, { ...answer(OK), host: '::1' })
  const outcome = await probeInstance({ host: '::1', port: instance.port }, settings('HTTP:/v6'))
  t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
  t.equal((await instance.request()).toString('latin1'), expectedRequest('/v6', instance.port, '[::1]'))
  await instance.allClosed(1)
})

// --- abort --------------------------------------------------------------------------------

t.test('an AbortSignal ends a probe in flight (the proxy is closing)', async (t) => {
  const controller = new AbortController()
  const instance = await startInstance(t, { onRequest: () => controller.abort() })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTP:/health'), controller.signal)
  t.strictSame(outcome, result({ passed: false, error: 'aborted', summary: 'aborted: the proxy is closing' }))
  await instance.allClosed(1)
})

t.test('an AbortSignal already aborted: no connection at all', async (t) => {
  const clientSockets = watchClientSockets(t)
  const outcome = await probeInstance({ host: '127.0.0.1', port: 9 }, settings('TCP'), AbortSignal.abort())
  t.strictSame(outcome, result({ passed: false, error: 'aborted', summary: 'aborted: the proxy is closing' }))
  t.equal(clientSockets.length, 0)
})

// --- TCP and SSL --------------------------------------------------------------------------

t.test('TCP: the connection is established and closed at once', async (t) => {
  const clientSockets = watchClientSockets(t)
  const instance = await startInstance(t)
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('TCP'))
  t.strictSame(outcome, result({ passed: true, summary: 'connected in 3 ms' }))
  t.ok(clientSockets[0]?.destroyed, 'closed before resolving')
  await instance.allClosed(1)
})

t.test('TCP: connection refused', async (t) => {
  const port = await closedPort()
  const outcome = await probeInstance({ host: '127.0.0.1', port }, settings(`TCP:${port}`))
  t.strictSame(outcome, result({ passed: false, error: 'ECONNREFUSED', summary: 'connection refused (ECONNREFUSED)' }))
})

t.test('SSL and HTTPS against a TLS instance with a self-signed certificate', async (t) => {
  const certificate = selfSignedCertificate(t)

  t.test('SSL: the handshake completes', async (t) => {
    const instance = await startInstance(t, { tls: certificate })
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('SSL'))
    t.strictSame(outcome, result({ passed: true, summary: 'TLS handshake in 3 ms' }))
    await instance.allClosed(1)
  })

  t.test('SSL by host name sends it as SNI; by IP address, no SNI (RFC 6066 section 3)', async (t) => {
    const serverNames: string[] = []
    const instance = await startInstance(t, { tls: { ...certificate, serverNames } })
    const byName = await probeInstance({ host: 'localhost', port: instance.port }, settings('SSL'))
    t.strictSame(byName, result({ passed: true, summary: 'TLS handshake in 3 ms' }))
    const byAddress = await probeInstance({ host: '127.0.0.1', port: instance.port }, settings('SSL'))
    t.strictSame(byAddress, result({ passed: true, summary: 'TLS handshake in 3 ms' }))
    t.strictSame(serverNames, ['localhost'], 'SNI only for the name')
    await instance.allClosed(2)
  })

  t.test('HTTPS: 200 passes, with the same request', async (t) => {
    const instance = await startInstance(t, { tls: certificate, ...answer(OK) })
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTPS:/secure'))
    t.strictSame(outcome, result({ passed: true, status: 200, summary: '200 in 3 ms' }))
    t.equal((await instance.request()).toString('latin1'), expectedRequest('/secure', instance.port))
    await instance.allClosed(1)
  })

  t.test('HTTPS: 503 fails', async (t) => {
    const instance = await startInstance(t, { tls: certificate, ...answer('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n') })
    const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('HTTPS:/secure'))
    t.strictSame(outcome, result({ passed: false, status: 503, summary: '503, not 200' }))
    await instance.allClosed(1)
  })
})

t.test('SSL against a plain instance that closes: the handshake fails', async (t) => {
  const instance = await startInstance(t, { onConnection: (socket) => socket.end() })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('SSL'))
  t.strictSame(outcome, result({ passed: false, error: 'ECONNRESET', summary: 'TLS handshake failed: connection reset (ECONNRESET)' }))
  await instance.allClosed(1)
})

t.test('SSL against a plain instance that never speaks: timeout before the handshake', async (t) => {
  const instance = await startInstance(t)
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('SSL', 200))
  t.strictSame(outcome, result({ passed: false, error: 'timeout', summary: 'no TLS handshake within 200 ms' }))
  await instance.allClosed(1)
})

t.test('SSL against a plain instance that answers in clear text: a TLS error code', async (t) => {
  const instance = await startInstance(t, {
    onConnection: (socket) => socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'))
  })
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, settings('SSL'))
  t.match(outcome, { passed: false, status: null, defect: null, error: /^ERR_SSL_/, summary: /^TLS handshake failed \(ERR_SSL_[A-Z_]+\)$/ })
  await instance.allClosed(1)
})

t.test('a port node:net refuses outright is a failed check, not a throw', async (t) => {
  const outcome = await probeInstance({ host: '127.0.0.1', port: 70000 }, settings('TCP'))
  t.strictSame(outcome, result({ passed: false, error: 'ERR_SOCKET_BAD_PORT', summary: 'connection failed (ERR_SOCKET_BAD_PORT)' }))
})

t.test('an answer read after the timeout is a timeout, as the duration it reports says (a busy event loop ran its timer late)', async (t) => {
  // The clock moves 1.5 s between the probe's two readings; the real timer (1 s) never fires first.
  let now = STARTED - 1_500_000
  const slowClock: Clock = { nowMicros: () => (now += 1_500_000) }
  const instance = await startInstance(t, answer(OK))
  const outcome = await probeInstance({ host: instance.host, port: instance.port }, { target: target('HTTP:/health'), timeoutMs: 1000, clock: slowClock })
  t.strictSame(outcome, result({ passed: false, status: 200, error: 'timeout', durationMs: 1500, summary: '200 in 1500 ms, past the 1 s timeout' }))
  await instance.allClosed(1)
})
