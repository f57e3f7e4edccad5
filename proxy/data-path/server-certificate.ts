/**
 * The certificate of HTTPS and SSL listeners: the user's PEM pair (`tlsCert`/`tlsKey`), checked
 * before anything listens, or a self-signed one generated at start when both are null.
 *
 * The generated key is RSA 2048: AWS's security-policy table says "The RSA- and DSA-based ciphers are
 * specific to the signing algorithm used to create SSL certificate", and a certificate "provided by
 * AWS Certificate Manager (ACM) contains an RSA public key" (elb-ssl-security-policy.md), so with it
 * the ECDHE-RSA-* and RSA ciphers of every policy work, as with a typical CLB (CLB's access-log
 * examples show ECDHE-RSA-AES128-GCM-SHA256).
 *
 * Node can parse certificates (X509Certificate) but not create them: node-forge encodes the X.509
 * structure; the key pair and the signature come from Node's own (native, fast) RSA.
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import type Forge from 'node-forge'

/**
 * node-forge, loaded the first time a certificate is generated, not at start: a proxy without
 * HTTPS or SSL listeners (or with the user's certificate) never loads it. Loaded, its code and data
 * add about 1.2 MiB to the old generation, and under /large in bench/ the proxy then ran about five
 * times as many full GCs (82 against 16 in 5 s) and cost about twice the CPU per request.
 */
let forgeModule: typeof Forge | null = null
function forge (): typeof Forge {
  forgeModule ??= createRequire(import.meta.url)('node-forge') as typeof Forge
  return forgeModule
}

export interface ServerCertificate {
  /** PEM certificate (chain, as given, for a loaded one). */
  readonly cert: string
  /** PEM private key. */
  readonly key: string
  /** SHA-256 fingerprint of the (first) certificate, as X509Certificate.fingerprint256 prints it (`AB:CD:…`). */
  readonly fingerprint256: string
  /** The certificate is its own issuer and signed by its own key: clients must be told to trust it. */
  readonly selfSigned: boolean
  /** The subjectAltName entries as Node prints them: `DNS:localhost`, `IP Address:127.0.0.1`. */
  readonly subjectAltNames: readonly string[]
}

export type ServerCertificateErrorCode = 'TLS_CERT_NOT_A_CERTIFICATE' | 'TLS_KEY_NOT_A_PRIVATE_KEY' | 'TLS_KEY_DOES_NOT_MATCH_CERT'

/** The user's certificate or key cannot serve; `field` names the option to blame. */
export class ServerCertificateError extends Error {
  readonly code: ServerCertificateErrorCode
  readonly field: 'tlsCert' | 'tlsKey'

  constructor(code: ServerCertificateErrorCode, field: 'tlsCert' | 'tlsKey', message: string) {
    super(message)
    this.name = 'ServerCertificateError'
    this.code = code
    this.field = field
  }
}

/** Checks a PEM certificate and PEM private key and that the key is the certificate's. */
export function loadServerCertificate(certPem: string, keyPem: string): ServerCertificate {
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(certPem)
  } catch (error) {
    throw new ServerCertificateError('TLS_CERT_NOT_A_CERTIFICATE', 'tlsCert',
      `the certificate is not a PEM X.509 certificate (${(error as Error).message})`)
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(keyPem)
  } catch (error) {
    throw new ServerCertificateError('TLS_KEY_NOT_A_PRIVATE_KEY', 'tlsKey',
      `the private key is not an unencrypted PEM private key (${(error as Error).message})`)
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ServerCertificateError('TLS_KEY_DOES_NOT_MATCH_CERT', 'tlsKey',
      `the private key does not match the certificate's public key (certificate ${certificate.fingerprint256}, subject ${certificate.subject.replaceAll('\n', ', ')})`)
  }
  return describe(certificate, certPem, keyPem)
}

export interface SelfSignedCertificateSettings {
  /** Start of validity (the injected clock's now); default: now. */
  readonly now?: Date
  /** Days of validity; default 365. */
  readonly validityDays?: number
}

const DAY_MS = 86_400_000
/** node-forge exports pki.getTBSCertificate (lib/x509.js; its own sign() calls it), @types/node-forge omits it. */
type PkiWithTbsCertificate = typeof Forge.pki & { getTBSCertificate(certificate: Forge.pki.Certificate): Forge.asn1.Asn1 }
/** What a local client connects to: the name and both loopback addresses. */
const SELF_SIGNED_HOST_NAMES = Object.freeze(['localhost'])
const SELF_SIGNED_IP_ADDRESSES = Object.freeze(['127.0.0.1', '::1'])

/**
 * A fresh RSA 2048 key and a self-signed certificate for `CN=localhost` with subjectAltName
 * DNS:localhost, IP:127.0.0.1, IP:::1, valid from `now` for `validityDays`, SHA-256 signature,
 * basicConstraints CA:FALSE, keyUsage digitalSignature + keyEncipherment, extKeyUsage serverAuth.
 */
export function generateSelfSignedCertificate(settings: SelfSignedCertificateSettings = {}): ServerCertificate {
  const notBefore = settings.now ?? new Date()
  const notAfter = new Date(notBefore.getTime() + (settings.validityDays ?? 365) * DAY_MS)
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })

  const pki = forge().pki as PkiWithTbsCertificate
  const certificate = pki.createCertificate()
  certificate.publicKey = pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string)
  // RFC 5280 §4.1.2.2: a positive integer of at most 20 octets; a leading 01 keeps it positive.
  certificate.serialNumber = `01${randomBytes(15).toString('hex')}`
  certificate.validity.notBefore = notBefore
  certificate.validity.notAfter = notAfter
  const name = [{ name: 'commonName', value: 'localhost' }]
  certificate.setSubject(name)
  certificate.setIssuer(name)
  certificate.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    // GeneralName types (RFC 5280 §4.2.1.6): 2 dNSName, 7 iPAddress.
    {
      name: 'subjectAltName',
      altNames: [
        ...SELF_SIGNED_HOST_NAMES.map((value) => ({ type: 2, value })),
        ...SELF_SIGNED_IP_ADDRESSES.map((ip) => ({ type: 7, ip })),
      ],
    },
  ])
  // What forge's certificate.sign() does, with the signature from Node's native RSA: forge's own
  // (JavaScript) RSA signature took 170-280 ms here, Node's under 10 ms.
  certificate.signatureOid = certificate.siginfo.algorithmOid = pki.oids.sha256WithRSAEncryption as string
  certificate.tbsCertificate = pki.getTBSCertificate(certificate)
  const toBeSigned = Buffer.from(forge().asn1.toDer(certificate.tbsCertificate).getBytes(), 'binary')
  certificate.signature = sign('sha256', toBeSigned, privateKey).toString('binary')
  const certPem = pki.certificateToPem(certificate)
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  return describe(new X509Certificate(certPem), certPem, keyPem)
}

function describe(certificate: X509Certificate, certPem: string, keyPem: string): ServerCertificate {
  return Object.freeze({
    cert: certPem,
    key: keyPem,
    fingerprint256: certificate.fingerprint256,
    // Not checkIssued(): OpenSSL's issuer check also wants keyCertSign, which a server certificate lacks.
    selfSigned: certificate.subject === certificate.issuer && certificate.verify(certificate.publicKey),
    subjectAltNames: Object.freeze(certificate.subjectAltName === undefined ? [] : certificate.subjectAltName.split(', ')),
  })
}
