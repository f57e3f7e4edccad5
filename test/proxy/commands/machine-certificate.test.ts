/**
 * The command line's saved self-signed certificate: made once per user, reused by later runs and
 * other proxies, made again near its end, never taken from a folder others can write.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { machineCertificate, machineCertificateDir } from '../../../proxy/commands/machine-certificate.js'

t.test('made once, then reused; its key readable by its owner only', async (t) => {
  const dir = path.join(t.testdir(), 'certs')
  const first = machineCertificate(new Date(), dir)
  t.equal(first?.reused, false)
  t.equal(first?.certificate.selfSigned, true)
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'the folder is its owner\'s only')
  t.equal(fs.statSync(first?.keyFile as string).mode & 0o777, 0o600, 'the key is its owner\'s only')
  t.equal(fs.readFileSync(first?.certFile as string, 'latin1'), first?.certificate.cert)
  const second = machineCertificate(new Date(), dir)
  t.equal(second?.reused, true)
  t.equal(second?.certificate.fingerprint256, first?.certificate.fingerprint256, 'the same certificate: a client that trusts it keeps trusting it')
})

t.test('a certificate within a day of its end, or an unreadable pair, is made again', async (t) => {
  const dir = path.join(t.testdir(), 'certs')
  const first = machineCertificate(new Date(), dir)
  const nearEnd = new Date(Date.now() + 365 * 24 * 3600 * 1000 - 3600 * 1000)
  const renewed = machineCertificate(nearEnd, dir)
  t.equal(renewed?.reused, false)
  t.not(renewed?.certificate.fingerprint256, first?.certificate.fingerprint256)
  fs.writeFileSync(renewed?.keyFile as string, 'not a key')
  t.equal(machineCertificate(new Date(), dir)?.reused, false, 'a broken key: made again')
})

t.test('a folder others may write to is not used (it could hand us their key)', async (t) => {
  const dir = path.join(t.testdir(), 'open')
  fs.mkdirSync(dir)
  fs.chmodSync(dir, 0o777)
  t.equal(machineCertificate(new Date(), dir), null)
  const file = path.join(t.testdir(), 'a-file')
  fs.writeFileSync(file, '')
  t.equal(machineCertificate(new Date(), path.join(file, 'below')), null, 'a folder that cannot be made: null, the caller makes one in memory')
})

t.test('one folder per user under the temp dir', async (t) => {
  t.match(machineCertificateDir(), /clb-proxy-(\d+|-1)$/)
})
