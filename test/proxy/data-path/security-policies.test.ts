/**
 * CLB's predefined security policies through real TLS handshakes on port 0: for each policy, every
 * (protocol, cipher) pair a client can offer is tried against a `tls.createServer` built from
 * `tlsServerOptionsFor`, and the pairs that negotiate must be exactly the policy's, as AWS's table
 * gives them (the table's text is held below and parsed, apart from the module's own copy).
 */
import t, { type Test } from 'tap'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { SecurityPolicyName } from '../../../proxy/core/options.js'
import { SECURITY_POLICIES, SECURITY_POLICY_LIST, tlsServerOptionsFor, type TlsProtocolVersion } from '../../../proxy/data-path/security-policies.js'
import { generateSelfSignedCertificate } from '../../../proxy/data-path/server-certificate.js'
// The fixed ECDSA certificate beside the RSA one lets the server negotiate the policies' ECDHE-ECDSA-* ciphers too.
import { CA_CERT, CA_KEY } from '../../helpers/test-certificates.js'

// AWS, "Predefined SSL security policies for Classic Load Balancers", awsdocs/elb-classic-load-balancers-user-guide
// doc_source/elb-security-policy-table.md at commit 1318b0bd528dce7ed653c523c09996449542bab3, the rows
// of our two policies in "Protocols by policy" and "Ciphers by policy", verbatim.
const AWS_PROTOCOLS_BY_POLICY = `
| Security policies | TLS 1.2 | TLS 1.1 | TLS 1.0 | 
| ELBSecurityPolicy-TLS-1-2-2017-01 | ![](http://docs.aws.amazon.com/elasticloadbalancing/latest/classic/images/success_icon.png) Yes | ![](http://docs.aws.amazon.com/elasticloadbalancing/latest/classic/images/negative_icon.png) No | ![](http://docs.aws.amazon.com/elasticloadbalancing/latest/classic/images/negative_icon.png) No | 
| ELBSecurityPolicy-2016-08 | ![](http://docs.aws.amazon.com/elasticloadbalancing/latest/classic/images/success_icon.png) Yes | ![](http://docs.aws.amazon.com/elasticloadbalancing/latest/classic/images/success_icon.png) Yes | ![](http://docs.aws.amazon.com/elasticloadbalancing/latest/classic/images/success_icon.png) Yes | 
`
const AWS_CIPHERS_BY_POLICY = `
| ELBSecurityPolicy-TLS-1-2-2017-01 |  + ECDHE-ECDSA-AES128-GCM-SHA256<br />+ ECDHE-RSA-AES128-GCM-SHA256<br />+ ECDHE-ECDSA-AES128-SHA256<br />+ ECDHE-RSA-AES128-SHA256<br />+ ECDHE-ECDSA-AES256-GCM-SHA384<br />+ ECDHE-RSA-AES256-GCM-SHA384<br />+ ECDHE-ECDSA-AES256-SHA384<br />+ ECDHE-RSA-AES256-SHA384<br />+ AES128-GCM-SHA256<br />+ AES128-SHA256<br />+ AES256-GCM-SHA384<br />+ AES256-SHA256  | 
| ELBSecurityPolicy-2016-08 |  + ECDHE-ECDSA-AES128-GCM-SHA256<br />+ ECDHE-RSA-AES128-GCM-SHA256<br />+ ECDHE-ECDSA-AES128-SHA256<br />+ ECDHE-RSA-AES128-SHA256<br />+ ECDHE-ECDSA-AES128-SHA<br />+ ECDHE-RSA-AES128-SHA<br />+ ECDHE-ECDSA-AES256-GCM-SHA384<br />+ ECDHE-RSA-AES256-GCM-SHA384<br />+ ECDHE-ECDSA-AES256-SHA384<br />+ ECDHE-RSA-AES256-SHA384<br />+ ECDHE-ECDSA-AES256-SHA<br />+ ECDHE-RSA-AES256-SHA<br />+ AES128-GCM-SHA256<br />+ AES128-SHA256<br />+ AES128-SHA<br />+ AES256-GCM-SHA384<br />+ AES256-SHA256<br />+ AES256-SHA  | 
`

function tableRow(table: string, policy: string): string[] {
  const line = table.split('\n').find((row) => row.startsWith(`| ${policy} |`))
  if (line === undefined) throw new Error(`bug in the test: no row for ${policy}`)
  return line.split('|').slice(2, -1).map((cell) => cell.trim())
}

function awsProtocols(policy: string): TlsProtocolVersion[] {
  const [tls12, tls11, tls10] = tableRow(AWS_PROTOCOLS_BY_POLICY, policy).map((cell) => cell.endsWith(' Yes'))
  return [...(tls10 ? ['TLSv1' as const] : []), ...(tls11 ? ['TLSv1.1' as const] : []), ...(tls12 ? ['TLSv1.2' as const] : [])]
}

function awsCiphers(policy: string): string[] {
  return (tableRow(AWS_CIPHERS_BY_POLICY, policy)[0] ?? '').split('<br />').map((item) => item.replace(/^\+ /, '').trim())
}


// SECURITY_POLICY_NAMES of options.ts, spelled out: SECURITY_POLICIES is a Record over its type, so tsc
// fails when a name has no policy (imported only as a type, so a run of this file alone measures
// coverage of the two modules under test, not of options.ts).
const SECURITY_POLICY_NAMES: readonly SecurityPolicyName[] = ['ELBSecurityPolicy-2016-08', 'ELBSecurityPolicy-TLS-1-2-2017-01']

const RSA = generateSelfSignedCertificate()
const PROTOCOLS: readonly TlsProtocolVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2']
// Ciphers defined only for TLS 1.2 (AEAD or SHA-2 MAC); the SHA1 CBC ones also work in TLS 1.0 and 1.1.
const TLS_1_2_ONLY = /-GCM-|-CCM|-CHACHA20-|SHA256$|SHA384$/

// Every TLS 1.2-and-earlier cipher Node's OpenSSL offers by default, but for PSK and SRP (they need
// callbacks no listener has), plus legacy ones enabled only at security level 0.
const CANDIDATE_CIPHERS = [
  ...tls.getCiphers().filter((name) => !/^tls_|psk|srp/.test(name)).map((name) => name.toUpperCase()),
  'DES-CBC3-SHA', 'CAMELLIA128-SHA', 'CAMELLIA256-SHA', 'AES128-CCM', 'ECDHE-ECDSA-AES128-CCM', 'ARIA128-GCM-SHA256',
]

type Handshake = { readonly protocol: string | null, readonly cipher: string } | { readonly failed: string }

interface PolicyServer { readonly port: number, readonly serverErrors: string[] }

async function startServer(t: Test, tlsOptions: tls.TlsOptions): Promise<PolicyServer> {
  const serverErrors: string[] = []
  const server = tls.createServer(tlsOptions, (socket) => socket.end())
  server.on('tlsClientError', (error: NodeJS.ErrnoException) => serverErrors.push(error.code ?? error.message))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.address() as AddressInfo).port, serverErrors }
}

function startPolicyServer(t: Test, policy: SecurityPolicyName, certificates: 'rsa' | 'rsa+ecdsa'): Promise<PolicyServer> {
  const keys = certificates === 'rsa' ? { key: RSA.key, cert: RSA.cert } : { key: [RSA.key, CA_KEY], cert: [RSA.cert, CA_CERT] }
  return startServer(t, { ...tlsServerOptionsFor(policy), ...keys })
}

function handshake(port: number, options: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    let socket: tls.TLSSocket
    try {
      socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options })
    } catch (error) {
      // A cipher string this OpenSSL cannot parse at all (ERR_SSL_NO_CIPHER_MATCH): nothing was sent.
      resolve({ failed: (error as NodeJS.ErrnoException).code ?? String(error) })
      return
    }
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name })
      socket.destroy()
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ failed: error.code ?? error.message }))
  })
}

/** A client that offers one protocol and only the given ciphers (at security level 0, so legacy ones are offered). */
function offer(port: number, protocol: TlsProtocolVersion | 'TLSv1.3', ciphers: string): Promise<Handshake> {
  return handshake(port, { minVersion: protocol, maxVersion: protocol, ciphers: `${ciphers}:@SECLEVEL=0` })
}

t.test('each policy encodes AWS\'s table: its protocols, its ciphers in order, Server Order Preference', async (t) => {
  t.strictSame(Object.keys(SECURITY_POLICIES), [...SECURITY_POLICY_NAMES], 'one entry per policy name')
  t.strictSame(SECURITY_POLICY_LIST.map((policy) => policy.name), [...SECURITY_POLICY_NAMES], 'the list, default first')
  for (const policy of SECURITY_POLICY_LIST) {
    t.strictSame(policy.protocols, awsProtocols(policy.name), `${policy.name}: protocols`)
    t.strictSame(policy.ciphers, awsCiphers(policy.name), `${policy.name}: ciphers, in the table's order`)
    t.equal(policy.serverOrderPreference, true, `${policy.name}: Server Order Preference`)
  }
  t.equal(awsCiphers('ELBSecurityPolicy-2016-08').length, 18)
  t.equal(awsCiphers('ELBSecurityPolicy-TLS-1-2-2017-01').length, 12)
  t.ok(Object.isFrozen(SECURITY_POLICIES) && Object.isFrozen(SECURITY_POLICIES['ELBSecurityPolicy-2016-08'].ciphers), 'frozen')
})

t.test('tlsServerOptionsFor: the options passed to tls.createServer', async (t) => {
  t.strictSame(tlsServerOptionsFor('ELBSecurityPolicy-2016-08'), {
    minVersion: 'TLSv1',
    maxVersion: 'TLSv1.2',
    ciphers: `${awsCiphers('ELBSecurityPolicy-2016-08').join(':')}:@SECLEVEL=0`,
    honorCipherOrder: true,
  })
  t.strictSame(tlsServerOptionsFor('ELBSecurityPolicy-TLS-1-2-2017-01'), {
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.2',
    ciphers: awsCiphers('ELBSecurityPolicy-TLS-1-2-2017-01').join(':'),
    honorCipherOrder: true,
  }, 'a TLS 1.2-only policy keeps OpenSSL\'s default security level')
})

for (const policyName of SECURITY_POLICY_NAMES) {
  const policy = SECURITY_POLICIES[policyName]

  t.test(`${policyName}: of every protocol and cipher a client can offer, exactly the table's negotiate`, async (t) => {
    const server = await startPolicyServer(t, policyName, 'rsa+ecdsa')
    const negotiated: string[] = []
    const offerable = new Set<string>()
    const notOfferable = new Set<string>()
    for (const protocol of PROTOCOLS) {
      for (const cipher of CANDIDATE_CIPHERS) {
        const result = await offer(server.port, protocol, cipher)
        if ('failed' in result) {
          // A client that cannot even build its hello proves nothing about the server.
          if (result.failed === 'ERR_SSL_NO_CIPHER_MATCH' || result.failed === 'ERR_SSL_NO_CIPHERS_AVAILABLE') notOfferable.add(`${protocol} ${cipher}`)
          else offerable.add(cipher)
          continue
        }
        offerable.add(cipher)
        t.strictSame(result, { protocol, cipher }, `${protocol} ${cipher}: what was offered`)
        negotiated.push(`${protocol} ${cipher}`)
      }
    }
    const expected = policy.protocols.flatMap((protocol) => awsCiphers(policyName)
      .filter((cipher) => protocol === 'TLSv1.2' || !TLS_1_2_ONLY.test(cipher))
      .map((cipher) => `${protocol} ${cipher}`))
    t.strictSame(negotiated.sort(), expected.sort(), 'negotiated pairs = the table\'s protocols × ciphers')
    for (const cipher of awsCiphers(policyName)) t.ok(offerable.has(cipher), `${cipher} was offered`)
    t.ok(offerable.size > awsCiphers(policyName).length + 10, `and ${offerable.size} ciphers were offered in all`)
    t.comment(`not offerable by this client (TLS 1.2-only ciphers over TLS 1.0/1.1, or unknown to this OpenSSL): ${[...notOfferable].join(', ')}`)
  })

  t.test(`${policyName}: a TLSv1.3-only client fails the handshake`, async (t) => {
    const server = await startPolicyServer(t, policyName, 'rsa')
    t.strictSame(await handshake(server.port, { minVersion: 'TLSv1.3' }), { failed: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' })
    t.strictSame(server.serverErrors, ['ERR_SSL_UNSUPPORTED_PROTOCOL'])
  })

  t.test(`${policyName}: Server Order Preference, the policy's first cipher wins over the client's first`, async (t) => {
    const server = await startPolicyServer(t, policyName, 'rsa')
    t.strictSame(await offer(server.port, 'TLSv1.2', 'AES256-SHA256:AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256'),
      { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' })
  })

  t.test(`${policyName}: Node's default client gets TLSv1.2 and ECDHE-RSA-AES128-GCM-SHA256, as in CLB's access-log examples`, async (t) => {
    const server = await startPolicyServer(t, policyName, 'rsa')
    t.strictSame(await handshake(server.port, {}), { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' })
  })

  t.test(`${policyName}: a client offering only ciphers the policy excludes fails the handshake`, async (t) => {
    const server = await startPolicyServer(t, policyName, 'rsa+ecdsa')
    const excluded = ['ECDHE-RSA-CHACHA20-POLY1305', 'DHE-RSA-AES128-GCM-SHA256', 'DES-CBC3-SHA', 'CAMELLIA128-SHA']
    t.strictSame(await offer(server.port, 'TLSv1.2', excluded.join(':')), { failed: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' })
    t.strictSame(server.serverErrors, ['ERR_SSL_NO_SHARED_CIPHER'])
  })
}

t.test('ELBSecurityPolicy-2016-08: TLSv1 and TLSv1.1 clients negotiate, with RSA and ECDHE-RSA key exchange', async (t) => {
  const server = await startPolicyServer(t, 'ELBSecurityPolicy-2016-08', 'rsa')
  // The client of the brief: tls.connect({ minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'AES128-SHA:@SECLEVEL=0' }).
  t.strictSame(await offer(server.port, 'TLSv1', 'AES128-SHA'), { protocol: 'TLSv1', cipher: 'AES128-SHA' })
  t.strictSame(await offer(server.port, 'TLSv1', 'ECDHE-RSA-AES128-SHA'), { protocol: 'TLSv1', cipher: 'ECDHE-RSA-AES128-SHA' })
  t.strictSame(await offer(server.port, 'TLSv1.1', 'AES256-SHA'), { protocol: 'TLSv1.1', cipher: 'AES256-SHA' })
  t.strictSame(await offer(server.port, 'TLSv1.1', 'ECDHE-RSA-AES256-SHA'), { protocol: 'TLSv1.1', cipher: 'ECDHE-RSA-AES256-SHA' })
  // A Node 20 client at its default security level: RSA key exchange verifies no signature and works,
  // ECDHE-RSA's MD5+SHA1 signature over TLS 1.0/1.1 is refused by the client itself.
  t.strictSame(await handshake(server.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'AES128-SHA' }), { protocol: 'TLSv1', cipher: 'AES128-SHA' })
  t.strictSame(await handshake(server.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'ECDHE-RSA-AES128-SHA' }), { failed: 'ERR_SSL_LEGACY_SIGALG_DISALLOWED_OR_UNSUPPORTED' })
  t.strictSame(await handshake(server.port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'ECDHE-RSA-AES128-SHA' }), { failed: 'ERR_SSL_LEGACY_SIGALG_DISALLOWED_OR_UNSUPPORTED' })
})

t.test('ELBSecurityPolicy-TLS-1-2-2017-01: TLSv1 and TLSv1.1 clients fail, and so do the SHA1 ciphers over TLS 1.2', async (t) => {
  const server = await startPolicyServer(t, 'ELBSecurityPolicy-TLS-1-2-2017-01', 'rsa')
  t.strictSame(await offer(server.port, 'TLSv1', 'AES128-SHA'), { failed: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' })
  t.strictSame(await offer(server.port, 'TLSv1.1', 'AES128-SHA:ECDHE-RSA-AES128-SHA'), { failed: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' })
  t.strictSame(await offer(server.port, 'TLSv1.2', 'AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA'), { failed: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' })
  t.strictSame(await offer(server.port, 'TLSv1.2', 'AES128-GCM-SHA256'), { protocol: 'TLSv1.2', cipher: 'AES128-GCM-SHA256' })
  t.strictSame(server.serverErrors, ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_NO_SHARED_CIPHER'])
})

t.test('why @SECLEVEL=0: without it, Node 20\'s OpenSSL 3 refuses TLS 1.0 and 1.1 even with minVersion TLSv1', async (t) => {
  const options = tlsServerOptionsFor('ELBSecurityPolicy-2016-08')
  const server = await startServer(t, { ...options, ciphers: options.ciphers.replace(':@SECLEVEL=0', ''), key: RSA.key, cert: RSA.cert })
  t.strictSame(await offer(server.port, 'TLSv1', 'AES128-SHA'), { failed: 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR' })
  t.strictSame(await offer(server.port, 'TLSv1.1', 'AES128-SHA'), { failed: 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR' })
  t.strictSame(server.serverErrors, ['ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM', 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM'])
  t.strictSame(await offer(server.port, 'TLSv1.2', 'AES128-SHA'), { protocol: 'TLSv1.2', cipher: 'AES128-SHA' }, 'TLS 1.2 is unaffected')
})
