/**
 * The command line's self-signed certificate for HTTPS and SSL listeners, kept in one folder per
 * user under the OS temp dir and reused by every clb-proxy that user starts (until it nears its
 * end), so a client told once to trust it (`curl --cacert`, a browser) keeps trusting it across
 * restarts and across several proxies. The library makes its own in memory instead.
 */
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import { generateSelfSignedCertificate, loadServerCertificate, type ServerCertificate } from '../data-path/server-certificate.js'
import { makeFolderSync } from '../core/make-folder.js'

/** Our choice: a certificate that ends within a day is made again. */
const RENEW_BEFORE_MS = 24 * 60 * 60 * 1000

export interface MachineCertificate {
  readonly certFile: string
  readonly keyFile: string
  readonly certificate: ServerCertificate
  /** An existing one was used (not made now). */
  readonly reused: boolean
}

/** The folder: `<tmpdir>/clb-proxy-<uid>`, only its owner may read it (the key is in it). */
export function machineCertificateDir (): string {
  return path.join(tmpdir(), `clb-proxy-${userInfo().uid}`)
}

/**
 * The saved certificate, or a new one saved now. Null when the folder cannot be used safely (not
 * ours, or open to others) or written: the caller then makes one in memory.
 */
export function machineCertificate (now = new Date(), dir = machineCertificateDir()): MachineCertificate | null {
  const certFile = path.join(dir, 'self-signed.pem')
  const keyFile = path.join(dir, 'self-signed-key.pem')
  try {
    makeFolderSync(dir, 0o700)
    const stat = fs.statSync(dir)
    const uid = process.getuid?.()
    // Another user's folder, or one others may write to, could hand us their key: not used.
    if ((uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) return null
  } catch {
    return null
  }
  try {
    const certificate = loadServerCertificate(fs.readFileSync(certFile, 'latin1'), fs.readFileSync(keyFile, 'latin1'))
    const validTo = Date.parse(new X509Certificate(certificate.cert).validTo)
    if (certificate.selfSigned && validTo - now.getTime() > RENEW_BEFORE_MS) return { certFile, keyFile, certificate, reused: true }
  } catch {
    // None yet, or unusable: a new one below.
  }
  const certificate = generateSelfSignedCertificate({ now })
  try {
    fs.writeFileSync(keyFile, certificate.key, { mode: 0o600 })
    fs.writeFileSync(certFile, certificate.cert, { mode: 0o644 })
  } catch {
    return null
  }
  return { certFile, keyFile, certificate, reused: false }
}
