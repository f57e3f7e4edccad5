/**
 * The listeners' certificate: the self-signed one generated at start (its content, and real TLS
 * clients on port 0 that trust it validating it for localhost, 127.0.0.1 and ::1), and the user's
 * PEM pair, refused with an error naming the problem when it cannot serve.
 */
import t, { type Test } from 'tap'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import {
  generateSelfSignedCertificate,
  loadServerCertificate,
  ServerCertificateError,
  type ServerCertificate,
} from '../../../proxy/data-path/server-certificate.js'
import { tlsServerOptionsFor } from '../../../proxy/data-path/security-policies.js'
import { CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY } from '../../helpers/test-certificates.js'
import { REPO_URL } from '../../helpers/repo.js'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)


type ClientResult = { readonly authorized: true, readonly cipher: string } | { readonly failed: string }

async function startServer(t: Test, certificate: ServerCertificate, host: string): Promise<number> {
  const server = tls.createServer({ ...tlsServerOptionsFor('ELBSecurityPolicy-2016-08'), cert: certificate.cert, key: certificate.key }, (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as AddressInfo).port
}

function connect(options: tls.ConnectionOptions): Promise<ClientResult> {
  return new Promise((resolve) => {
    const socket = tls.connect(options)
    socket.once('secureConnect', () => {
      resolve(socket.authorized ? { authorized: true, cipher: socket.getCipher().name } : { failed: String(socket.authorizationError) })
      socket.destroy()
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ failed: error.code ?? error.message }))
  })
}

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('bug in the test: nothing was thrown')
}

t.test('the generated certificate: RSA 2048, CN=localhost, localhost and both loopback addresses, a year from now', async (t) => {
  const before = Date.now()
  const generated = generateSelfSignedCertificate()
  const elapsedMs = Date.now() - before
  t.comment(`generated in ${elapsedMs} ms`)
  const certificate = new X509Certificate(generated.cert)
  t.equal(generated.fingerprint256, certificate.fingerprint256, 'fingerprint256 as X509Certificate prints it')
  t.match(generated.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  t.equal(generated.selfSigned, true)
  t.strictSame(generated.subjectAltNames, ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1'])
  t.equal(certificate.subject, 'CN=localhost')
  t.equal(certificate.issuer, 'CN=localhost')
  t.equal(certificate.ca, false, 'basicConstraints CA:FALSE')
  t.strictSame(certificate.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extKeyUsage serverAuth')
  t.equal(certificate.publicKey.asymmetricKeyType, 'rsa')
  t.equal(certificate.publicKey.asymmetricKeyDetails?.modulusLength, 2048)
  t.ok(certificate.checkPrivateKey(createPrivateKey(generated.key)), 'the key is the certificate\'s')
  t.match(generated.key, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM')
  const validFrom = Date.parse(certificate.validFrom)
  t.ok(validFrom >= Math.floor(before / 1000) * 1000 && validFrom <= Date.now(), 'valid from now')
  t.equal(Date.parse(certificate.validTo) - validFrom, 365 * 86_400_000, 'for 365 days')
  t.ok(Object.isFrozen(generated) && Object.isFrozen(generated.subjectAltNames), 'frozen')
  t.not(generateSelfSignedCertificate().fingerprint256, generated.fingerprint256, 'a new key and serial each time')
})

t.test('the generated certificate takes the injected clock and a validity', async (t) => {
  const now = new Date('2030-01-02T03:04:05.000Z')
  const certificate = new X509Certificate(generateSelfSignedCertificate({ now, validityDays: 30 }).cert)
  t.equal(certificate.validFrom, 'Jan  2 03:04:05 2030 GMT')
  t.equal(certificate.validTo, 'Feb  1 03:04:05 2030 GMT')
})

t.test('a client that trusts the generated certificate (ca: cert) validates it for localhost, 127.0.0.1 and ::1', async (t) => {
  const generated = generateSelfSignedCertificate()
  const port = await startServer(t, generated, '127.0.0.1')
  const authorized = { authorized: true, cipher: 'ECDHE-RSA-AES128-GCM-SHA256' }
  t.strictSame(await connect({ host: '127.0.0.1', port, ca: generated.cert, servername: 'localhost' }), authorized, 'servername localhost')
  t.strictSame(await connect({ host: 'localhost', port, ca: generated.cert }), authorized, 'host localhost')
  t.strictSame(await connect({ host: '127.0.0.1', port, ca: generated.cert }), authorized, 'IP 127.0.0.1')
  t.strictSame(await connect({ host: '127.0.0.1', port, ca: generated.cert, servername: 'example.com' }), { failed: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'another name fails')
  t.strictSame(await connect({ host: '127.0.0.1', port, servername: 'localhost' }), { failed: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'a client that does not trust it fails')
  const otherGenerated = generateSelfSignedCertificate()
  t.strictSame(await connect({ host: '127.0.0.1', port, ca: otherGenerated.cert, servername: 'localhost' }), { failed: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'trusting another generated certificate does not help')

  const ipv6Port = await startServer(t, generated, '::1')
  t.strictSame(await connect({ host: '::1', port: ipv6Port, ca: generated.cert }), authorized, 'IP ::1')
})

t.test('loadServerCertificate: a pair that matches', async (t) => {
  const generated = generateSelfSignedCertificate()
  t.strictSame(loadServerCertificate(generated.cert, generated.key), generated, 'the generated pair, described alike')

  const leaf = loadServerCertificate(LEAF_CERT, LEAF_KEY)
  t.strictSame(leaf, {
    cert: LEAF_CERT,
    key: LEAF_KEY,
    fingerprint256: new X509Certificate(LEAF_CERT).fingerprint256,
    selfSigned: false,
    subjectAltNames: [],
  }, 'a certificate signed by another, without subjectAltName')

  t.equal(loadServerCertificate(CA_CERT, CA_KEY).selfSigned, true, 'a self-signed CA')

  const chain = loadServerCertificate(LEAF_CERT + CA_CERT, LEAF_KEY)
  t.equal(chain.cert, LEAF_CERT + CA_CERT, 'a chain is kept whole for tls.createServer')
  t.equal(chain.fingerprint256, leaf.fingerprint256, 'and described by its first certificate')

  const port = await startServer(t, chain, '127.0.0.1')
  t.strictSame(await connect({ host: '127.0.0.1', port, ca: CA_CERT, checkServerIdentity: () => undefined }),
    { authorized: true, cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, 'it serves, an ECDSA certificate negotiating the policy\'s ECDHE-ECDSA cipher')
})

t.test('loadServerCertificate refuses what cannot serve, with an error that names the problem and the option', async (t) => {
  const generated = generateSelfSignedCertificate()
  const otherGenerated = generateSelfSignedCertificate()

  const mismatch = thrown(() => loadServerCertificate(generated.cert, otherGenerated.key))
  t.ok(mismatch instanceof ServerCertificateError)
  t.match(mismatch, {
    name: 'ServerCertificateError',
    code: 'TLS_KEY_DOES_NOT_MATCH_CERT',
    field: 'tlsKey',
    message: `the private key does not match the certificate's public key (certificate ${generated.fingerprint256}, subject CN=localhost)`,
  })
  t.match(thrown(() => loadServerCertificate(LEAF_CERT, CA_KEY)), { code: 'TLS_KEY_DOES_NOT_MATCH_CERT', field: 'tlsKey' }, 'an ECDSA key of another certificate')
  t.match(thrown(() => loadServerCertificate(LEAF_CERT, generated.key)), { code: 'TLS_KEY_DOES_NOT_MATCH_CERT' }, 'a key of another type')

  for (const [what, notACertificate] of [['a private key', generated.key], ['text', 'hello'], ['an empty file', '']] as const) {
    t.match(thrown(() => loadServerCertificate(notACertificate, generated.key)), {
      code: 'TLS_CERT_NOT_A_CERTIFICATE',
      field: 'tlsCert',
      message: /^the certificate is not a PEM X\.509 certificate \(.+\)$/,
    }, `${what} as the certificate`)
  }
  for (const [what, notAKey] of [['a certificate', generated.cert], ['text', 'hello']] as const) {
    t.match(thrown(() => loadServerCertificate(generated.cert, notAKey)), {
      code: 'TLS_KEY_NOT_A_PRIVATE_KEY',
      field: 'tlsKey',
      message: /^the private key is not an unencrypted PEM private key \(.+\)$/,
    }, `${what} as the key`)
  }
})

t.test('node-forge is loaded when a certificate is generated, not before (it makes every full GC longer)', async (t) => {
  // A fresh process, so that no other test has loaded it; the built library, as users import it.
  const library = new URL('dist/proxy/library/clb-proxy.js', REPO_URL).href
  const script = `
    import { createRequire } from 'node:module'
    const { startClbProxy } = await import(${JSON.stringify(library)})
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('/node-forge/'))
    const plain = await startClbProxy({ listen: '127.0.0.1:0', backends: ['http://127.0.0.1:9'] })
    const afterHttp = loaded()
    await plain.close()
    const secure = await startClbProxy({ listeners: ['https://127.0.0.1:0'], backends: ['http://127.0.0.1:9'] })
    const afterHttps = loaded()
    await secure.close()
    process.stdout.write(JSON.stringify({ afterHttp, afterHttps }))
  `
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_OPTIONS: '' } })
  t.same(JSON.parse(stdout), { afterHttp: false, afterHttps: true })
})
