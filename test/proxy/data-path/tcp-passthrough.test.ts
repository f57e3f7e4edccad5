/**
 * TCP and SSL listeners (CLB-LISTEN, layer 4): bytes pass unchanged both ways, connections are
 * routed round robin to tcp/ssl instances, the idle timeout closes silent connections, proxy
 * protocol v1 comes first when enabled (CLB-PROXY), and each connection writes CLB's TCP line
 * (spec §3.4: `... - - 710 31845 "- - - " "-" - -`).
 */
import net from 'node:net'
import { Duplex } from 'node:stream'
import tls from 'node:tls'
import t from 'tap'
import { ELB_NAME, FIXED_TIMESTAMP, readUntilClosed, startListenerProxy, tcpServer } from '../../helpers/listener-proxy.js'

/** Answers `reply` to whatever arrives, once the client has finished sending (its FIN). */
function answerAfterEnd (reply: string | Buffer, received?: Buffer[]): (socket: net.Socket) => void {
  return (socket) => {
    socket.on('data', (chunk: Buffer) => received?.push(chunk))
    socket.on('end', () => socket.end(reply))
  }
}

async function exchangeOverTcp (port: number, bytes: string | Buffer): Promise<{ readonly bytes: Buffer; readonly clientPort: number }> {
  const client = net.connect(port, '127.0.0.1')
  await new Promise((resolve) => client.once('connect', resolve))
  const clientPort = client.localPort as number
  const done = readUntilClosed(client)
  client.end(bytes)
  return { bytes: (await done).bytes, clientPort }
}

t.test('a TCP listener passes bytes unchanged both ways and writes CLB\'s TCP line', async (t) => {
  const received: Buffer[] = []
  // Every byte value, and HTTP-looking bytes that a layer-7 listener would parse: none is touched.
  const request = Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n'), Buffer.from(Array.from({ length: 256 }, (_, i) => i))])
  const reply = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES-A-CLB-HTTP-LISTENER-WOULD-502')
  const instance = await tcpServer(t, answerAfterEnd(reply, received))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`] })
  const { bytes, clientPort } = await exchangeOverTcp(f.proxy.listeners[0]?.port as number, request)
  t.same(bytes, reply, 'the instance\'s bytes, unchanged')
  await f.waitForExchanges(1)
  t.same(Buffer.concat(received), request, 'the client\'s bytes, unchanged')
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} 127.0.0.1:${instance.port} 0 0 0 - - ${request.length} ${reply.length} "- - - " "-" - -`])
  t.equal(f.records[0]?.outcome, 'passthrough')
  t.equal(f.records[0]?.cutReason, null)
  t.equal(f.records[0]?.elbGenerated, false)
  t.equal(f.proxy.metrics().Metrics.RequestCount.Sum, 1, 'CLB-CW RequestCount counts the connections of TCP listeners')
  await f.close(t)
})

t.test('connections go round robin over the tcp instances; HTTP requests never go to them', async (t) => {
  const a = await tcpServer(t, answerAfterEnd('a'))
  const b = await tcpServer(t, answerAfterEnd('b'))
  const web = await tcpServer(t, (socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nweb')))
  const f = await startListenerProxy({
    listeners: ['http://127.0.0.1:0', 'tcp://127.0.0.1:0'],
    backends: [`tcp://127.0.0.1:${a.port}`, `http://127.0.0.1:${web.port}`, `tcp://127.0.0.1:${b.port}`]
  })
  const tcpPort = f.proxy.listeners[1]?.port as number
  const answers: string[] = []
  for (let i = 0; i < 4; i++) answers.push((await exchangeOverTcp(tcpPort, 'x')).bytes.toString())
  t.strictSame(answers, ['a', 'b', 'a', 'b'])
  for (let i = 0; i < 3; i++) {
    const http = await exchangeOverTcp(f.proxy.listeners[0]?.port as number, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n')
    t.match(http.bytes.toString(), /web$/, 'the HTTP listener routes to the http instance only')
  }
  await f.waitForExchanges(7)
  await f.close(t)
})

t.test('proxy protocol v1: the exact header line comes before the client\'s first byte', async (t) => {
  const received: Buffer[] = []
  const instance = await tcpServer(t, answerAfterEnd('ok', received))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], proxyProtocol: true })
  const listenerPort = f.proxy.listeners[0]?.port as number
  const { clientPort } = await exchangeOverTcp(listenerPort, 'hello')
  await f.waitForExchanges(1)
  t.equal(Buffer.concat(received).toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${listenerPort}\r\nhello`)
  t.match(f.logLines[0], / 5 2 "- - - " "-" - -$/, 'the header is not counted as received bytes')
  await f.close(t)
})

t.test('proxy protocol: a client that sends nothing still gets the header to the instance, which may speak first', async (t) => {
  const received: Buffer[] = []
  // A server-speaks-first protocol (SMTP, MySQL): the instance greets as soon as it is connected.
  const instance = await tcpServer(t, (socket) => {
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    socket.write('220 ready\r\n')
    socket.on('end', () => socket.end())
  })
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], proxyProtocol: true })
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  const greeting = await new Promise<Buffer>((resolve) => client.once('data', resolve))
  t.equal(greeting.toString(), '220 ready\r\n')
  t.match(Buffer.concat(received).toString('latin1'), /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n$/)
  const closed = readUntilClosed(client)
  client.end()
  await closed
  await f.waitForExchanges(1)
  // CLB-LOGS: -1 when "(TCP) client sent no data".
  t.match(f.logLines[0], new RegExp(` 127\\.0\\.0\\.1:${instance.port} -1 -1 -1 - - 0 11 "- - - " "-" - -$`))
  await f.close(t)
})

t.test('an SSL listener terminates TLS and passes the plain bytes; the line has the cipher and protocol', async (t) => {
  const received: Buffer[] = []
  const instance = await tcpServer(t, answerAfterEnd('plain answer', received))
  const f = await startListenerProxy({ listeners: ['ssl://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], proxyProtocol: true })
  const port = f.proxy.listeners[0]?.port as number
  const client = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.proxy.certificate?.cert, maxVersion: 'TLSv1.2' })
  await new Promise((resolve) => client.once('secureConnect', resolve))
  const clientPort = client.localPort as number
  const done = readUntilClosed(client)
  client.end('over tls')
  t.equal((await done).bytes.toString(), 'plain answer')
  await f.waitForExchanges(1)
  t.equal(Buffer.concat(received).toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${port}\r\nover tls`)
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} 127.0.0.1:${instance.port} 0 0 0 - - 8 12 "- - - " "-" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2`])
  t.equal(f.records[0]?.log.scheme, 'ssl')
  await f.close(t)
})

t.test('no instance in service: the client\'s connection is closed and logged without a backend', async (t) => {
  const instance = await tcpServer(t, answerAfterEnd('never'))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`] })
  const [only] = f.proxy.instances()
  t.equal(only?.Url, `tcp://127.0.0.1:${instance.port}`, 'its Url is the tcp:// address it was registered with')
  t.ok(f.proxy.deregister(only?.InstanceId as string))
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  await new Promise((resolve) => client.once('connect', resolve))
  const clientPort = client.localPort as number
  const closed = await readUntilClosed(client)
  t.equal(closed.bytes.length, 0)
  await f.waitForExchanges(1)
  t.strictSame(f.logLines, [`${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} - -1 -1 -1 - - 0 0 "- - - " "-" - -`])
  t.equal(f.records[0]?.outcome, 'passthrough-refused')
  t.equal(f.records[0]?.backendError, null)
  t.equal(f.diagnostics.at(-1)?.msg, `connection from 127.0.0.1:${clientPort} on the tcp listener port ${f.proxy.listeners[0]?.port} was closed without an instance: ` +
    'no tcp/ssl instance is in service (a TCP/SSL listener routes to tcp:// and ssl:// instances only)')
  await f.close(t)
})

t.test('a refused connection is tried on the next tcp instance, as an HTTP request is; the held bytes and the PROXY line go there', async (t) => {
  const gone = await tcpServer(t, () => {})
  const refusing = gone.port
  await new Promise((resolve) => gone.close(resolve))
  const received: Buffer[] = []
  const working = await tcpServer(t, answerAfterEnd('served', received))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${refusing}`, `tcp://127.0.0.1:${working.port}`], proxyProtocol: true })
  const port = f.proxy.listeners[0]?.port as number
  const answers: string[] = []
  const clientPorts: number[] = []
  for (let i = 0; i < 2; i++) {
    const { bytes, clientPort } = await exchangeOverTcp(port, `request ${i}`)
    answers.push(bytes.toString())
    clientPorts.push(clientPort)
  }
  t.strictSame(answers, ['served', 'served'], 'both clients were served, the first after a refused connection')
  await f.waitForExchanges(2)
  t.equal(Buffer.concat(received).toString('latin1'), clientPorts.map((clientPort, i) => `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${port}\r\nrequest ${i}`).join(''))
  t.strictSame(f.records.map((record) => record.outcome), ['passthrough', 'passthrough'])
  t.equal(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum, 1, 'the refused attempt counts')
  await f.close(t)
})

t.test('an ssl instance whose handshake fails: the client is closed, the diagnostic names the TLS error; not retried', async (t) => {
  const plain = await tcpServer(t, (socket) => { socket.on('data', () => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n')) })
  const other = await tcpServer(t, answerAfterEnd('never'))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`ssl://127.0.0.1:${plain.port}`, `tcp://127.0.0.1:${other.port}`] })
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  client.write('hello')
  t.equal((await readUntilClosed(client)).bytes.length, 0)
  await f.waitForExchanges(1)
  t.equal(f.records[0]?.outcome, 'passthrough-refused')
  t.equal(f.records[0]?.tlsHandshakeFailed, true)
  t.match(f.diagnostics.at(-1)?.msg, new RegExp(`was closed without an instance: TLS handshake with 127\\.0\\.0\\.1:${plain.port} failed \\(.*\\); the instance does not speak TLS on that port`))
  await f.close(t)
})

t.test('an instance that refuses the connection: the client is closed, BackendConnectionErrors counts it', async (t) => {
  const gone = await tcpServer(t, () => {})
  const port = gone.port
  await new Promise((resolve) => gone.close(resolve))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${port}`] })
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  client.write('lost')
  await readUntilClosed(client)
  await f.waitForExchanges(1)
  t.match(f.logLines[0], / - -1 -1 -1 - - 4 0 "- - - " "-" - -$/)
  t.equal(f.records[0]?.outcome, 'passthrough-refused')
  t.equal(f.records[0]?.backendError, 'ECONNREFUSED')
  t.equal(f.proxy.metrics().Metrics.BackendConnectionErrors.Sum, 1)
  t.match(f.diagnostics.at(-1)?.msg, new RegExp(`was closed without an instance: the connection to 127\\.0\\.0\\.1:${port} failed: ECONNREFUSED \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)$`))
  await f.close(t)
})

t.test('the idle timeout closes a connection on which nothing moves (CLB-IDLE)', async (t) => {
  const instance = await tcpServer(t, (socket) => socket.resume())
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], idleTimeoutSeconds: 1 })
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  client.write('then silence')
  await readUntilClosed(client)
  await f.waitForExchanges(1)
  t.equal(f.records[0]?.outcome, 'passthrough')
  t.equal(f.records[0]?.cutReason, 'idle-timeout')
  t.match(f.diagnostics.at(-1)?.msg, /was closed: nothing was sent or received for the 1 s idle timeout \(CLB-IDLE\)$/)
  t.match(f.logLines[0], new RegExp(` 127\\.0\\.0\\.1:${instance.port} 0 0 -1 - - 12 0 "- - - "`), 'no byte came back: response_processing_time is -1')
  await f.close(t)
})

t.test('a large transfer flows with back-pressure and every byte is counted', async (t) => {
  const size = 8 * 1024 * 1024
  const instance = await tcpServer(t, (socket) => {
    socket.on('end', () => socket.end(Buffer.alloc(size, 0x61)))
    socket.resume()
  })
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`] })
  const upload = Buffer.alloc(size, 0x62)
  const { bytes } = await exchangeOverTcp(f.proxy.listeners[0]?.port as number, upload)
  t.equal(bytes.length, size)
  await f.waitForExchanges(1)
  t.match(f.logLines[0], new RegExp(` - - ${size} ${size} "- - - "`))
  await f.close(t)
})

t.test('deregistration without draining closes the instance\'s connections', async (t) => {
  const instance = await tcpServer(t, (socket) => socket.write('hello'))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], drainingTimeoutSeconds: 0 })
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  await new Promise((resolve) => client.once('data', resolve))
  const closed = readUntilClosed(client)
  f.proxy.deregister(f.proxy.instances()[0]?.InstanceId as string)
  await closed
  await f.waitForExchanges(1)
  t.equal(f.records[0]?.cutReason, 'instance-deregistered')
  t.match(f.diagnostics.at(-1)?.msg, /was closed: its instance 127\.0\.0\.1:\d+ was deregistered \(draining disabled or timed out\)$/)
  await f.close(t)
})

t.test('shutdown: an open connection is cut at the drain deadline and logged once', async (t) => {
  const instance = await tcpServer(t, (socket) => socket.write('hello'))
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`tcp://127.0.0.1:${instance.port}`], drainTimeoutSeconds: 0 })
  const client = net.connect(f.proxy.listeners[0]?.port as number, '127.0.0.1')
  await new Promise((resolve) => client.once('data', resolve))
  const closed = readUntilClosed(client)
  await f.close(t)
  await closed
  t.equal(f.records.length, 1)
  t.equal(f.records[0]?.cutReason, 'shutdown')
})

t.test('an ssl instance: TLS to the instance, the proxy-protocol line before its handshake (as nginx\'s "ssl proxy_protocol" reads it)', async (t) => {
  const { generateSelfSignedCertificate } = await import('../../../proxy/data-path/server-certificate.js')
  const certificate = generateSelfSignedCertificate()
  const proxyLines: string[] = []
  const instance = await tcpServer(t, (socket) => {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n')
      if (end === -1) return
      socket.off('data', onData)
      proxyLines.push(head.subarray(0, end + 2).toString('latin1'))
      // TLS over a stream that starts after the PROXY line (a TLSSocket on the socket itself would
      // read its handle directly and miss the ClientHello bytes already read with the line).
      const afterLine = new Duplex({
        read () {},
        write (data: Buffer, _encoding, callback) { socket.write(data, callback) },
        final (callback) { socket.end(); callback() }
      })
      afterLine.push(head.subarray(end + 2))
      socket.on('data', (data: Buffer) => afterLine.push(data))
      socket.on('end', () => afterLine.push(null))
      const secure = new tls.TLSSocket(afterLine, { isServer: true, cert: certificate.cert, key: certificate.key })
      secure.on('error', () => {})
      secure.on('data', (data: Buffer) => secure.write(`tls echo: ${data.toString()}`))
      secure.on('end', () => secure.end())
    }
    socket.on('data', onData)
  })
  const f = await startListenerProxy({ listeners: ['tcp://127.0.0.1:0'], backends: [`ssl://127.0.0.1:${instance.port}`], proxyProtocol: true })
  const listenerPort = f.proxy.listeners[0]?.port as number
  const { bytes, clientPort } = await exchangeOverTcp(listenerPort, 'secret')
  t.equal(bytes.toString(), 'tls echo: secret', 'the bytes crossed TLS to the instance and back')
  t.strictSame(proxyLines, [`PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${listenerPort}\r\n`], 'in clear, before the ClientHello')
  await f.waitForExchanges(1)
  t.match(f.logLines[0], new RegExp(` 127\\.0\\.0\\.1:${instance.port} 0 0 0 - - 6 16 "- - - " "-" - -$`))
  await f.close(t)
})

t.test('a dual-stack listener names an IPv4 client as IPv4 in the log, as in the PROXY line', async (t) => {
  const received: Buffer[] = []
  const instance = await tcpServer(t, answerAfterEnd('ok', received))
  const web = await tcpServer(t, (socket) => socket.once('data', (chunk: Buffer) => socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${chunk.length}\r\nConnection: close\r\n\r\n${chunk.toString('latin1')}`)))
  const f = await startListenerProxy({ listeners: ['tcp://[::]:0', 'http://[::]:0'], backends: [`tcp://127.0.0.1:${instance.port}`, `http://127.0.0.1:${web.port}`], proxyProtocol: true })
  const { clientPort } = await exchangeOverTcp(f.proxy.listeners[0]?.port as number, 'x')
  const http = await exchangeOverTcp(f.proxy.listeners[1]?.port as number, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n')
  await f.waitForExchanges(2)
  t.match(Buffer.concat(received).toString('latin1'), /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 /)
  t.match(f.logLines.find((line) => line.includes('"- - - "')), new RegExp(` 127\\.0\\.0\\.1:${clientPort} 127\\.0\\.0\\.1:${instance.port} `))
  t.match(http.bytes.toString('latin1'), /\r\nX-Forwarded-For: 127\.0\.0\.1\r\n/, 'X-Forwarded-For names it as IPv4 too')
  t.match(f.logLines.find((line) => line.includes('"GET ')), new RegExp(` 127\\.0\\.0\\.1:${http.clientPort} `))
  await f.close(t)
})
