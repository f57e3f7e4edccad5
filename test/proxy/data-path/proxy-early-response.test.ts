/**
 * An instance that answers while the request body is still arriving (a 413 or 401 before it reads
 * an upload): the answer is relayed exactly and logged once as the instance's; forwarding stops;
 * the rest of the declared body is discarded in a lingering close, never read as a request
 * (docs/clb-choices.md, "Early answers"). Real sockets: a node:http instance (what express runs
 * on), raw `net` clients for exact bytes, and fetch.
 */
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'

const MIB = 1024 * 1024
const TOO_LARGE = 'HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large'
// node:http adds its keep-alive fields; the proxy relays them unchanged and closes after the answer all the same.
const UNAUTHORIZED = 'HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nno'

/** A node:http instance whose routes answer before reading the body, as an express error handler or auth middleware does. */
async function startEarlyAnswerInstance (): Promise<{ server: http.Server, port: number, close: () => Promise<void> }> {
  const server = http.createServer((request, response) => {
    response.sendDate = false
    if (request.url === '/auth') {
      response.writeHead(401, { 'Content-Type': 'text/plain', 'Content-Length': '2' })
      response.end('no')
      return
    }
    response.writeHead(413, { 'Content-Type': 'text/plain', 'Content-Length': '9', Connection: 'close' })
    response.end('too large')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  return {
    server,
    port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/**
 * A raw client that declares `bodyBytes` and keeps sending them (with back-pressure) until the
 * proxy closes its side or the body is done; resolves with every byte it received and whether
 * the connection ended with a reset.
 */
async function upload (f: ProxyFixture, path: string, bodyBytes: number): Promise<{ received: string, reset: boolean }> {
  const client = await f.connect()
  client.write(`POST ${path} HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bodyBytes}\r\n\r\n`)
  const piece = Buffer.alloc(64 * 1024, 0x61)
  let sent = 0
  let answered = false
  client.socket.once('end', () => { answered = true })
  while (sent < bodyBytes && !answered && !client.socket.destroyed) {
    const size = Math.min(piece.length, bodyBytes - sent)
    sent += size
    if (!client.socket.write(size === piece.length ? piece : piece.subarray(0, size))) {
      await Promise.race([once(client.socket, 'drain'), once(client.socket, 'close'), once(client.socket, 'end')])
    }
  }
  client.end()
  const { reset } = await client.whenClosed()
  return { received: client.received.toString('latin1'), reset }
}

t.test('an instance that answers 413 and closes mid-upload: 10 of 10 uploads from 1 MB to 50 MB get its 413, logged 413 413, no phantom line', async (t) => {
  const instance = await startEarlyAnswerInstance()
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${instance.port}`] } })
  const sizes = [1, 2, 5, 10, 20, 30, 40, 50, 1, 3].map((m) => m * MIB)
  const results: string[] = []
  for (const size of sizes) {
    const { received, reset } = await upload(f, '/upload', size)
    results.push(`${received}|reset=${String(reset)}`)
  }
  t.strictSame(results, sizes.map(() => `${TOO_LARGE}|reset=false`), 'every client got the instance\'s exact bytes, then a FIN')
  t.equal(f.logLines.length, sizes.length, 'one line per upload')
  for (const line of f.logLines) {
    t.match(line, new RegExp(`^\\S+ \\S+ 127\\.0\\.0\\.1:\\d+ 127\\.0\\.0\\.1:${instance.port} 0 0 0 413 413 \\d+ 9 "POST http://example\\.test:${f.port}/upload HTTP/1\\.1" "-" - -$`))
  }
  t.strictSame(f.records.map((r) => r.outcome), sizes.map(() => 'relayed'))
  t.equal(f.proxy.metrics().Metrics.HTTPCode_ELB_4XX.Sum, 0, 'no 400 counted')
  await f.close(t)
  await instance.close()
})

t.test('fetch() uploading 20 MB to a route that answers 413 first gets the 413', async (t) => {
  const instance = await startEarlyAnswerInstance()
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${instance.port}`] } })
  const response = await fetch(`${f.proxy.url}/upload`, { method: 'POST', body: Buffer.alloc(20 * MIB, 0x62) })
  t.equal(response.status, 413)
  t.equal(await response.text(), 'too large')
  await f.waitForExchanges(1)
  t.equal(f.logLines.length, 1)
  await f.close(t)
  await instance.close()
})

t.test('an instance that answers 401 before reading the body (keep-alive): the rest of the body is discarded, not parsed as a request', async (t) => {
  const instance = await startEarlyAnswerInstance()
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${instance.port}`] } })
  const results: string[] = []
  for (const size of [2 * MIB, 20 * MIB]) {
    const { received, reset } = await upload(f, '/auth', size)
    results.push(`${received}|reset=${String(reset)}`)
  }
  t.strictSame(results, [`${UNAUTHORIZED}|reset=false`, `${UNAUTHORIZED}|reset=false`])
  t.equal(f.logLines.length, 2, 'one line each, no phantom "- - - " line')
  t.ok(f.logLines.every((line) => line.includes(' 401 401 ')), 'both logged as the instance\'s 401')
  t.strictSame(f.records.map((r) => r.outcome), ['relayed', 'relayed'])
  await f.close(t)
  await instance.close()
})

t.test('bytes inside a declared body after an early answer never reach the instance as a request (GET /smuggled)', async (t) => {
  // A raw instance: it answers 401 as soon as it holds the head and records every byte it gets.
  const received: Buffer[] = []
  const instance = net.createServer((socket) => {
    let answered = false
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk)
      if (!answered && Buffer.concat(received).includes('\r\n\r\n')) {
        answered = true
        socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n')
      }
    })
    socket.on('error', () => {})
  })
  instance.listen(0, '127.0.0.1')
  await once(instance, 'listening')
  const port = (instance.address() as net.AddressInfo).port
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${port}`] } })
  const client = await f.connect()
  client.write('POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1000\r\n\r\n')
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], ['HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n', true])
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n'
  client.write(smuggled + 'x'.repeat(1000 - smuggled.length))
  client.end()
  await client.whenClosed()
  t.equal(f.logLines.length, 1, 'one line')
  t.notOk(Buffer.concat(received).includes('/smuggled'), 'the instance never saw the bytes inside the body')
  t.equal(f.records.length, 1)
  await f.close(t)
  await new Promise<void>((resolve) => instance.close(() => resolve()))
})
