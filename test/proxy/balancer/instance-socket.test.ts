/**
 * openInstanceSocket (proxy/balancer/instance-socket.ts) against real servers on 127.0.0.1, port 0:
 * plain TCP for http/tcp instances, TLS for https/ssl ones, with certificates made by the openssl
 * command line for this run (a CA, a leaf it signed for localhost and 127.0.0.1, a leaf it signed
 * for another name, and an unrelated CA). Each test waits on socket events, never on time, and
 * ends when both ends of every connection are closed.
 */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import { BackendSocket } from '../../../proxy/balancer/backend-connection.js'
import { errorReason, instanceReadyEvent, instanceTransportOf, openInstanceSocket, usesTls } from '../../../proxy/balancer/instance-socket.js'
import type { BackendAddress } from '../../../proxy/core/options.js'

interface Certificates {
  /** PEM of the CA that signed `leaf` and `otherName`. */
  readonly ca: string
  /** PEM of a CA that signed nothing here. */
  readonly unrelatedCa: string
  /** For DNS:localhost and IP:127.0.0.1. */
  readonly leaf: { readonly key: string, readonly cert: string }
  /** For DNS:elsewhere.test only. */
  readonly otherName: { readonly key: string, readonly cert: string }
}

/** Certificates made with the openssl command line (Node cannot make them), in a directory removed at teardown. */
function makeCertificates (t: Test): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'clb-instance-socket-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=clb-proxy test CA')
  openssl('req', '-x509', ...ecKey, '-keyout', 'unrelated.key', '-out', 'unrelated.pem', '-days', '2', '-subj', '/CN=unrelated CA')
  const leaf = (name: string, altNames: string): { key: string, cert: string } => {
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nsubjectAltName=${altNames}\n`)
    openssl('req', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
      '-extfile', `${name}.ext`, '-out', `${name}.pem`)
    return { key: readFileSync(join(dir, `${name}.key`), 'latin1'), cert: readFileSync(join(dir, `${name}.pem`), 'latin1') }
  }
  return {
    ca: readFileSync(join(dir, 'ca.pem'), 'latin1'),
    unrelatedCa: readFileSync(join(dir, 'unrelated.pem'), 'latin1'),
    leaf: leaf('localhost', 'DNS:localhost,IP:127.0.0.1'),
    otherName: leaf('elsewhere', 'DNS:elsewhere.test')
  }
}

interface Server {
  readonly port: number
  /** The SNI of each TLS handshake ('' for none). */
  readonly serverNames: string[]
  /** Resolves once `count` TCP connections were accepted and every one of them is closed. */
  allClosed (count: number): Promise<void>
}

/** A server that echoes what it reads; TLS with `tlsOptions`, plain without. Closed at teardown. */
async function startServer (t: Test, tlsOptions?: tls.TlsOptions): Promise<Server> {
  const accepted: net.Socket[] = []
  const closed: Array<Promise<unknown>> = []
  const serverNames: string[] = []
  let waiters: Array<() => void> = []
  const echo = (socket: net.Socket): void => {
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => socket.write(chunk))
  }
  const server = tlsOptions === undefined
    ? net.createServer(echo)
    : tls.createServer({
      ...tlsOptions,
      SNICallback: (name, callback) => {
        serverNames.push(name)
        callback(null, undefined)
      }
    }, (socket) => {
      if ((socket as tls.TLSSocket & { servername?: string | false }).servername === false) serverNames.push('')
      echo(socket)
    })
  server.on('connection', (socket: net.Socket) => {
    accepted.push(socket)
    closed.push(once(socket, 'close'))
    socket.on('error', () => {})
    const current = waiters
    waiters = []
    for (const wake of current) wake()
  })
  // The handshake failures under test are the client's to report.
  server.on('tlsClientError', () => {})
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of accepted) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return {
    port: (server.address() as net.AddressInfo).port,
    serverNames,
    allClosed: async (count) => {
      while (accepted.length < count) await new Promise<void>((resolve) => waiters.push(resolve))
      await Promise.all(closed)
    }
  }
}

interface Attempt {
  /** The events in order: 'connect', 'secureConnect', 'error <code>', 'data <text>', 'close'. */
  readonly events: string[]
  readonly error: NodeJS.ErrnoException | null
}

/** Opens a socket, writes `text` at once (before it is ready), and ends it after the echo; resolves on 'close'. */
async function attempt (address: BackendAddress, backendCa: string | null, text = 'ping'): Promise<Attempt & { socket: net.Socket }> {
  const socket = openInstanceSocket(address, { backendCa })
  const events: string[] = []
  let error: NodeJS.ErrnoException | null = null
  socket.on('connect', () => events.push('connect'))
  socket.on('secureConnect', () => events.push('secureConnect'))
  socket.on('data', (chunk: Buffer) => {
    events.push(`data ${chunk.toString('latin1')}`)
    socket.end()
  })
  socket.on('error', (failure: NodeJS.ErrnoException) => {
    error = failure
    events.push(`error ${failure.code ?? '-'}`)
  })
  if (text !== '') socket.write(text)
  // Not events.once: it rejects on 'error', and the errors are what is observed here.
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  events.push('close')
  return { socket, events, error }
}

const https = (host: string, port: number): BackendAddress => ({ host, port, protocol: 'https' })

t.test('the protocol decides: http and tcp are plain, https and ssl are TLS', async (t) => {
  const addresses: BackendAddress[] = [{ host: 'h', port: 1 }, { host: 'h', port: 1, protocol: 'http' }, { host: 'h', port: 1, protocol: 'tcp' },
    { host: 'h', port: 1, protocol: 'https' }, { host: 'h', port: 1, protocol: 'ssl' }]
  t.strictSame(addresses.map((address) => [usesTls(address), instanceReadyEvent(address)]), [
    [false, 'connect'], [false, 'connect'], [false, 'connect'], [true, 'secureConnect'], [true, 'secureConnect']
  ])
})

t.test('http: a BackendSocket, its own transport, with the idle timeout and no delay', async (t) => {
  const server = await startServer(t)
  const socket = openInstanceSocket({ host: '127.0.0.1', port: server.port }, { backendCa: null, idleTimeoutMs: 60_000 })
  t.ok(socket instanceof BackendSocket, 'the plain socket is a BackendSocket')
  t.notOk(socket instanceof tls.TLSSocket)
  t.equal(instanceTransportOf(socket), socket, 'its own transport')
  t.equal(socket.timeout, 60_000, 'CLB-IDLE timer')
  socket.write('ping')
  const [echo] = await once(socket, 'data') as [Buffer]
  t.equal(echo.toString('latin1'), 'ping')
  socket.end()
  await once(socket, 'close')
  await server.allClosed(1)
})

t.test('https: TLS over a BackendSocket; bytes written before the handshake go after it', async (t) => {
  const certificates = makeCertificates(t)

  t.test('any certificate without backendCa (CLB without back-end server authentication)', async (t) => {
    const server = await startServer(t, certificates.otherName)
    const outcome = await attempt(https('127.0.0.1', server.port), null)
    t.strictSame(outcome.events, ['connect', 'secureConnect', 'data ping', 'close'], 'a certificate for another name, of an unknown CA, passes')
    t.ok(outcome.socket instanceof tls.TLSSocket)
    const transport = instanceTransportOf(outcome.socket)
    t.ok(transport instanceof BackendSocket, 'the TCP connection under it is a BackendSocket')
    t.not(transport, outcome.socket)
    t.equal(transport.writeFailure, null)
    t.ok(transport.destroyed, 'closed with the TLS socket')
    await server.allClosed(1)
  })

  t.test('TLSv1.3 by default, and the idle timeout on its TCP connection', async (t) => {
    const server = await startServer(t, certificates.leaf)
    const socket = openInstanceSocket(https('127.0.0.1', server.port), { backendCa: certificates.ca, idleTimeoutMs: 1234 })
    await once(socket, 'secureConnect')
    t.equal((socket as tls.TLSSocket).getProtocol(), 'TLSv1.3')
    t.equal((socket as tls.TLSSocket).authorized, true)
    t.equal(instanceTransportOf(socket).timeout, 1234, 'the timer is on the TCP connection, which sees every byte')
    // A timer on the TLS socket itself, set before its handshake, first fired after twice the idle
    // timeout (a stalled handshake got its 408 late); the TLS socket has none.
    t.equal(socket.timeout, undefined, 'none on the TLS socket')
    socket.end()
    await once(socket, 'close')
    await server.allClosed(1)
  })

  t.test('SNI for a host name, none for an IP address (RFC 6066 section 3)', async (t) => {
    const server = await startServer(t, certificates.leaf)
    t.strictSame((await attempt(https('localhost', server.port), certificates.ca)).events, ['connect', 'secureConnect', 'data ping', 'close'])
    t.strictSame((await attempt(https('127.0.0.1', server.port), certificates.ca)).events, ['connect', 'secureConnect', 'data ping', 'close'])
    t.strictSame(server.serverNames, ['localhost', ''])
    await server.allClosed(2)
  })

  t.test('backendCa: a certificate of another CA fails the handshake after the TCP connection', async (t) => {
    const server = await startServer(t, certificates.leaf)
    const outcome = await attempt(https('127.0.0.1', server.port), certificates.unrelatedCa)
    t.strictSame(outcome.events, ['connect', 'error UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'close'], 'no secureConnect, no data')
    t.equal(errorReason(outcome.error as Error), 'unable to verify the first certificate')
    await server.allClosed(1)
  })

  t.test('backendCa: a certificate of the CA for another name fails (the host is checked)', async (t) => {
    const server = await startServer(t, certificates.otherName)
    const outcome = await attempt(https('127.0.0.1', server.port), certificates.ca)
    t.strictSame(outcome.events, ['connect', 'error ERR_TLS_CERT_ALTNAME_INVALID', 'close'])
    t.equal(errorReason(outcome.error as Error), "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ")
    await server.allClosed(1)
  })

  t.test('an instance offering only TLSv1.1 or older: no version in common (TLSv1.2 at least)', async (t) => {
    const server = await startServer(t, { ...certificates.leaf, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
    const outcome = await attempt(https('127.0.0.1', server.port), null)
    // With bytes queued during the handshake, node:tls reports OpenSSL's error as the write's EPROTO.
    t.strictSame(outcome.events, ['connect', 'error EPROTO', 'close'])
    t.equal(errorReason(outcome.error as Error), 'tlsv1 alert protocol version', "OpenSSL's reason, without its hex wrapping")
    const quiet = await attempt(https('127.0.0.1', server.port), null, '')
    t.strictSame(quiet.events, ['connect', 'error ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'close'], 'nothing queued: the read reports it')
    t.equal(errorReason(quiet.error as Error), 'tlsv1 alert protocol version')
    await server.allClosed(2)
  })

  t.test('a plain HTTP server registered as https: its clear-text answer is not TLS', async (t) => {
    // What an HTTP server answers to a ClientHello it cannot parse.
    const server = net.createServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'))
    })
    server.listen({ host: '127.0.0.1', port: 0 })
    await once(server, 'listening')
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const outcome = await attempt(https('127.0.0.1', (server.address() as net.AddressInfo).port), null)
    t.strictSame(outcome.events, ['connect', 'error EPROTO', 'close'])
    t.equal(errorReason(outcome.error as Error), 'wrong version number')
  })

  t.test('a reset during the handshake: ECONNRESET after connect', async (t) => {
    const server = net.createServer((socket) => { socket.once('data', () => socket.resetAndDestroy()) })
    server.listen({ host: '127.0.0.1', port: 0 })
    await once(server, 'listening')
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const outcome = await attempt(https('127.0.0.1', (server.address() as net.AddressInfo).port), null)
    t.strictSame(outcome.events, ['connect', 'error ECONNRESET', 'close'])
  })

  t.test('a refused connection: the TCP error, before any connect', async (t) => {
    const closed = net.createServer()
    closed.listen({ host: '127.0.0.1', port: 0 })
    await once(closed, 'listening')
    const port = (closed.address() as net.AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const outcome = await attempt(https('127.0.0.1', port), null)
    t.strictSame(outcome.events, ['error ECONNREFUSED', 'close'])
  })
})

t.test('a port node:net refuses outright throws, for plain and TLS alike, and leaves nothing open', async (t) => {
  const before = process.getActiveResourcesInfo().filter((kind) => kind.startsWith('TCP')).length
  t.throws(() => openInstanceSocket({ host: '127.0.0.1', port: 70000 }, { backendCa: null }), { code: 'ERR_SOCKET_BAD_PORT' })
  t.throws(() => openInstanceSocket(https('127.0.0.1', 70000), { backendCa: null }), { code: 'ERR_SOCKET_BAD_PORT' })
  // Destroyed handles leave the list in libuv's close phase: a bounded number of event-loop turns.
  for (let turn = 0; turn < 10; turn++) {
    if (process.getActiveResourcesInfo().filter((kind) => kind.startsWith('TCP')).length <= before) break
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  t.ok(process.getActiveResourcesInfo().filter((kind) => kind.startsWith('TCP')).length <= before, 'no TCP handle left')
})

t.test('instanceTransportOf: a socket not opened here is a bug', async (t) => {
  t.throws(() => instanceTransportOf(new net.Socket()), TypeError)
})
