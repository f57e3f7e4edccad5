/**
 * Several listeners in one proxy (CLB-LISTEN): HTTPS terminates TLS under a security policy and
 * adds X-Forwarded-Proto/Port, every listener writes to the one access log, and a WebSocket works
 * through a TCP listener but not through an HTTP one (spec §5.10).
 */
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import https from 'node:https'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { generateSelfSignedCertificate } from '../../../proxy/data-path/server-certificate.js'
import { ELB_NAME, FIXED_TIMESTAMP, readUntilClosed, startListenerProxy, tcpServer } from '../../helpers/listener-proxy.js'

/** An instance that answers each request with the raw head it received, and keeps it. */
async function headEcho (t: Parameters<typeof tcpServer>[0], heads: string[]): ReturnType<typeof tcpServer> {
  return await tcpServer(t, (socket) => {
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) return
      heads.push(text.slice(0, end + 4))
      text = text.slice(end + 4)
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
  })
}

async function httpsGet (url: string, ca: string | undefined, options: https.RequestOptions = {}): Promise<{ readonly status: number; readonly body: string; readonly localPort: number }> {
  return await new Promise((resolve, reject) => {
    const request = https.get(url, { ca, agent: false, headers: { 'user-agent': 'listener-test' }, ...options }, (response) => {
      let body = ''
      response.setEncoding('latin1')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode as number, body, localPort: (request.socket as net.Socket).localPort as number }))
    })
    request.on('error', reject)
  })
}

t.test('an HTTPS listener: X-Forwarded-Proto https and its port, and the log line has the cipher and protocol', async (t) => {
  const heads: string[] = []
  const instance = await headEcho(t, heads)
  const f = await startListenerProxy({ listeners: ['https://127.0.0.1:0', 'http://127.0.0.1:0'], backends: [`http://127.0.0.1:${instance.port}`] })
  const [secure, plain] = f.proxy.listeners
  t.equal(f.proxy.certificate?.selfSigned, true, 'a certificate was generated')
  t.strictSame(f.proxy.certificate?.subjectAltNames.slice(0, 2), ['DNS:localhost', 'IP Address:127.0.0.1'])
  const response = await httpsGet(`https://localhost:${secure?.port}/a?b=1`, f.proxy.certificate?.cert)
  t.strictSame([response.status, response.body], [200, 'ok'])
  t.match(heads[0], new RegExp(`\\r\\nX-Forwarded-For: 127\\.0\\.0\\.1\\r\\nX-Forwarded-Proto: https\\r\\nX-Forwarded-Port: ${secure?.port}\\r\\n\\r\\n$`))
  const client = tls.connect({ port: plain?.port as number, host: '127.0.0.1' })
  let tlsError = ''
  client.on('error', (error) => { tlsError = error.message })
  await once(client, 'connect')
  const tlsClientPort = client.localPort as number
  await readUntilClosed(client)
  t.match(tlsError, /wrong version number/, 'the HTTP listener does not speak TLS: it answers the ClientHello with a plain 400')
  await f.waitForExchanges(2)
  t.strictSame(f.logLines, [
    `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${response.localPort} 127.0.0.1:${instance.port} 0 0 0 200 200 0 2 "GET https://localhost:${secure?.port}/a?b=1 HTTP/1.1" "listener-test" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2`,
    `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${tlsClientPort} - -1 -1 -1 400 0 0 0 "- - - " "-" - -`
  ], 'one access log for both listeners')
  await f.close(t)
})

t.test('security policies: TLS-1-2-2017-01 refuses a TLSv1 client, 2016-08 accepts it and logs TLSv1', async (t) => {
  const heads: string[] = []
  const instance = await headEcho(t, heads)
  const strict = await startListenerProxy({ listeners: ['https://127.0.0.1:0'], backends: [`http://127.0.0.1:${instance.port}`], securityPolicy: 'ELBSecurityPolicy-TLS-1-2-2017-01' })
  // OpenSSL 3 needs security level 0 for TLS 1.0's signatures (proxy/data-path/security-policies.ts).
  const tlsv1 = { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0' } as const
  const refused = tls.connect({ port: strict.proxy.listeners[0]?.port as number, host: '127.0.0.1', servername: 'localhost', ca: strict.proxy.certificate?.cert, ...tlsv1 })
  let refusal = ''
  refused.on('error', (error) => { refusal = error.message })
  await readUntilClosed(refused)
  t.match(refusal, /protocol version|unsupported protocol/, 'the handshake fails')
  t.equal(strict.logLines.length, 0, 'a handshake that fails is not a request: no line')
  await strict.close(t)
  const legacy = await startListenerProxy({ listeners: ['https://127.0.0.1:0'], backends: [`http://127.0.0.1:${instance.port}`] })
  const response = await httpsGet(`https://localhost:${legacy.proxy.listeners[0]?.port}/`, legacy.proxy.certificate?.cert, tlsv1)
  t.equal(response.status, 200)
  await legacy.waitForExchanges(1)
  t.match(legacy.logLines[0], / "listener-test" ECDHE-RSA-AES128-SHA TLSv1$/)
  await legacy.close(t)
})

t.test('tlsCert and tlsKey: the given certificate is served; a bad file or pair is an option error before any socket opens', async (t) => {
  const dir = t.testdir()
  const certificate = generateSelfSignedCertificate()
  const other = generateSelfSignedCertificate()
  await writeFile(join(dir, 'cert.pem'), certificate.cert)
  await writeFile(join(dir, 'key.pem'), certificate.key)
  await writeFile(join(dir, 'other-key.pem'), other.key)
  const instance = await headEcho(t, [])
  const f = await startListenerProxy({ listeners: ['ssl://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') })
  t.equal(f.proxy.certificate?.fingerprint256, certificate.fingerprint256)
  const client = tls.connect({ port: f.proxy.listeners[0]?.port as number, host: '127.0.0.1', servername: 'localhost', ca: certificate.cert })
  await once(client, 'secureConnect')
  t.equal(client.getPeerX509Certificate()?.fingerprint256, certificate.fingerprint256)
  client.end()
  await readUntilClosed(client)
  await f.waitForExchanges(1)
  await f.close(t)
  const base = { listeners: ['https://127.0.0.1:0'], backends: ['http://127.0.0.1:1'], accessLog: null, captureDir: null }
  await t.rejects(startClbProxy({ ...base, tlsCert: join(dir, 'missing.pem'), tlsKey: join(dir, 'key.pem') }), {
    code: 'CLB_INVALID_OPTION',
    field: 'tlsCert',
    message: `tlsCert must be a readable file (ENOENT), got "${join(dir, 'missing.pem')}"`
  })
  await t.rejects(startClbProxy({ ...base, tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'other-key.pem') }), { code: 'CLB_INVALID_OPTION', field: 'tlsKey', message: /^tlsKey must be the PEM private key of tlsCert: the private key does not match the certificate's public key/ })
  await t.rejects(startClbProxy({ ...base, tlsCert: join(dir, 'key.pem'), tlsKey: join(dir, 'key.pem') }), { code: 'CLB_INVALID_OPTION', field: 'tlsCert', message: /^tlsCert must be a PEM certificate: / })
  await t.rejects(startClbProxy({ ...base, backendCa: join(dir, 'missing-ca.pem') }), { code: 'CLB_INVALID_OPTION', field: 'backendCa' })
  await t.rejects(startClbProxy({ ...base, backendCa: join(dir, 'key.pem') }), { code: 'CLB_INVALID_OPTION', field: 'backendCa', message: /^backendCa must be a PEM CA certificate file \(/ }, 'a private key is not a CA')
})

t.test('without an HTTPS or SSL listener there is no certificate, and proxy.listeners names every bound port', async (t) => {
  const instance = await headEcho(t, [])
  const f = await startListenerProxy({ listeners: ['http://127.0.0.1:0', 'tcp://[::1]:0'], backends: [`http://127.0.0.1:${instance.port}`, `tcp://127.0.0.1:${instance.port}`] })
  t.equal(f.proxy.certificate, null)
  const [http, tcp] = f.proxy.listeners
  t.equal(f.proxy.url, `http://127.0.0.1:${http?.port}`)
  t.equal(tcp?.url, `tcp://[::1]:${tcp?.port}`)
  t.strictSame(f.proxy.address, { host: '127.0.0.1', port: http?.port })
  await f.close(t)
})

t.test('a WebSocket works end to end through a TCP listener, and not through an HTTP listener (spec §5.10)', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(async () => await new Promise((resolve) => wss.close(resolve)))
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo: ${String(data)}`)))
  const port = (wss.address() as net.AddressInfo).port
  const f = await startListenerProxy({ listeners: ['http://127.0.0.1:0', 'tcp://127.0.0.1:0'], backends: [`http://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`] })
  const [http, tcp] = f.proxy.listeners
  const client = new WebSocket(`ws://127.0.0.1:${tcp?.port}/chat`)
  await once(client, 'open')
  const replies: string[] = []
  for (const text of ['one', 'two']) {
    client.send(text)
    const [data] = await once(client, 'message') as [Buffer]
    replies.push(String(data))
  }
  t.strictSame(replies, ['echo: one', 'echo: two'])
  client.close()
  await once(client, 'close')
  const refused = new WebSocket(`ws://127.0.0.1:${http?.port}/chat`)
  const [error] = await once(refused, 'error') as [Error]
  t.match(error.message, /^Unexpected server response: 426$/, 'the HTTP listener dropped Upgrade: the server answered a plain GET with 426')
  await f.waitForExchanges(2)
  t.match(f.logLines.find((line) => line.includes('"- - - "')), new RegExp(`127\\.0\\.0\\.1:${port} 0 0 0 - - \\d+ \\d+ "- - - " "-" - -$`))
  t.match(f.logLines.find((line) => line.includes('GET http')), / 426 426 0 \d+ "GET http:\/\/127\.0\.0\.1:\d+\/chat HTTP\/1\.1" "-" - -$/)
  await f.close(t)
})

t.test('close() does not wait for a client stuck in its TLS handshake (the handshake timeout is the 60 s idle timeout)', async (t) => {
  const instance = await headEcho(t, [])
  const f = await startListenerProxy({ listeners: ['https://127.0.0.1:0'], backends: [`http://127.0.0.1:${instance.port}`], drainTimeoutSeconds: 0 })
  const silent = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  await once(silent, 'connect')
  const closed = readUntilClosed(silent)
  await f.close(t)
  t.equal((await closed).bytes.length, 0, 'the client was closed by close(), with nothing sent')
  t.equal(f.logLines.length, 0, 'a connection without a handshake is not a request: no line')
})

t.test('a large response streamed to an HTTPS client that closes after it leaves the instance\'s connection usable: the next request is answered, not a 504', async (t) => {
  // TLS writes complete later, so the last write of a committed stream says "wait for drain"; the
  // client asked Connection: close, so its connection ends and never drains. The instance's
  // connection used to go back to the pool paused, and the next request on it waited for the idle
  // timeout (found by review: 504 after 3 s, 3 runs of 3, also before turn-writes.ts).
  const size = 3_000_000
  const instance = await tcpServer(t, (socket) => {
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      let end
      while ((end = text.indexOf('\r\n\r\n')) !== -1) {
        const head = text.slice(0, end)
        text = text.slice(end + 4)
        if (head.startsWith('GET /download')) socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`, 'latin1'), Buffer.alloc(size, 'd')]))
        else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      }
    })
  })
  const f = await startListenerProxy({ listeners: ['https://127.0.0.1:0'], backends: [`http://127.0.0.1:${instance.port}`], idleTimeoutSeconds: 5, maxInstanceConnections: 1 })
  const port = f.proxy.listeners[0]?.port as number
  const request = async (raw: string): Promise<Buffer> => {
    const client = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    await once(client, 'secureConnect')
    client.write(raw)
    return (await readUntilClosed(client)).bytes
  }
  for (let round = 1; round <= 2; round++) {
    const download = await request('GET /download HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    t.equal(download.length, `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`.length + size, `round ${round}: the whole download`)
    const next = await request('GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    t.equal(next.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', `round ${round}: the next request, on the same instance connection, is answered`)
  }
  const records = await f.waitForExchanges(4)
  t.strictSame(records.map((record) => [record.outcome, record.log.elbStatusCode]), Array(4).fill(['relayed', 200]))
  await f.close(t)
})
