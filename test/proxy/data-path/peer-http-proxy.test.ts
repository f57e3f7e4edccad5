/**
 * Why http-proxy (npm, 1.18.1) cannot be clb-proxy's data path (peers-validation.md §4.4, §4.5).
 *
 * Two backend responses that the AWS 502 article names as causes of a CLB 502 (KC-502):
 * - "more than one CRLF between each header": a blank line ends the header block early, the
 *   Content-Length before it frames 5 bytes of what were meant to be headers as the body;
 * - "more bytes in the body than the Content-Length header value".
 *
 * For each, on the same bytes in one write:
 * 1. http-proxy with an error handler that leaves a started response alone relays the 200 and the
 *    first Content-Length bytes; all Node reports is a generic parser error about a "next message"
 *    (HPE_INVALID_CONSTANT), after the 200 was already passed on. It cannot see the defect.
 * 2. clb-proxy answers CLB's 502 and names the defect.
 * 3. http-proxy with the README's error handler ("Listening for proxy events") crashes: the handler
 *    answers 500 while http-proxy is still piping the upstream body, and the piped write after
 *    end() is an unhandled ERR_STREAM_WRITE_AFTER_END. That runs in a child process.
 */
import t, { type Test } from 'tap'
import { rawExchange } from '../../helpers/raw-client.js'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import httpProxy from 'http-proxy'
import { pino } from 'pino'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { REPO_ROOT } from '../../helpers/repo.js'

interface PeerCase {
  readonly name: string
  /** The backend's whole response, written in one write. */
  readonly backendResponse: string
  /** The body http-proxy relays: the first Content-Length (5) bytes after the first blank line. */
  readonly relayedBody: string
  /** The defect clb-proxy names as the cause of its 502 (the first one, by byte offset). */
  readonly clbPrimaryDefect: string
  /** Every defect clb-proxy reports for these bytes, sorted. */
  readonly clbDefects: readonly string[]
}

const PEER_CASES: readonly PeerCase[] = [
  {
    name: 'blank line inside the header block, Content-Length before it',
    backendResponse: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nX-Late: 1\r\n\r\nhello',
    relayedBody: 'X-Lat',
    clbPrimaryDefect: 'HDR_BLANK_LINE',
    clbDefects: ['BODY_EXCEEDS_CL', 'HDR_BLANK_LINE']
  },
  {
    name: 'body longer than Content-Length, connection kept alive',
    backendResponse: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world',
    relayedBody: 'hello',
    clbPrimaryDefect: 'BODY_EXCEEDS_CL',
    clbDefects: ['BODY_EXCEEDS_CL']
  }
]

const CLB_502 = 'HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'

/**
 * A raw backend that answers every request head with `response` in one write and keeps the
 * connection open. Counts the connections it accepted; closing it waits for all of them to end.
 */
async function startRawBackend (t: Test, response: string): Promise<{ readonly port: number, readonly accepted: () => number }> {
  let accepted = 0
  const server = net.createServer((socket) => {
    accepted++
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (head.includes('\r\n\r\n')) {
        head = ''
        socket.write(response, 'latin1')
      }
    })
    socket.on('error', () => undefined) // a peer that resets is not this test's subject
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted }
}


for (const peerCase of PEER_CASES) {
  t.test(`${peerCase.name}: http-proxy relays the 200 and sees only a generic late parser error`, async (t) => {
    const backend = await startRawBackend(t, peerCase.backendResponse)
    const agent = new http.Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${backend.port}`, agent })
    const relaying = new WeakSet<object>()
    const errorCodes: string[] = []
    proxy.on('proxyRes', (_proxyRes, _req, res) => { relaying.add(res) })
    proxy.on('error', (error, _req, res) => {
      errorCodes.push((error as NodeJS.ErrnoException).code ?? error.message)
      // Unlike the README's handler (crash case below), leave a response that is being relayed alone.
      if (relaying.has(res)) return
      const response = res as http.ServerResponse
      response.writeHead(502, { 'Content-Type': 'text/plain' })
      response.end('proxy error')
    })
    const server = http.createServer((req, res) => proxy.web(req, res))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const port = (server.address() as net.AddressInfo).port

    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/', agent: false }, resolve).on('error', reject)
    })
    let body = ''
    response.setEncoding('latin1')
    for await (const chunk of response) body += chunk as string

    t.equal(response.statusCode, 200, 'the client gets the backend status as if nothing were wrong')
    t.equal(response.headers['content-length'], '5')
    t.equal(body, peerCase.relayedBody, 'the body is the first Content-Length bytes, nothing says the rest existed')
    // Node's parser read the excess as the start of a next response ("Expected HTTP/"), after the
    // 'response' event; nothing in the error names the real defect.
    t.same(errorCodes, ['HPE_INVALID_CONSTANT'])
    t.equal(backend.accepted(), 1)
  })

  t.test(`${peerCase.name}: clb-proxy answers CLB's 502`, async (t) => {
    const backend = await startRawBackend(t, peerCase.backendResponse)
    const proxy = await startClbProxy(
      { listen: '127.0.0.1:0', captureDir: null, backends: [`http://127.0.0.1:${backend.port}`], accessLog: null },
      { logger: pino({ level: 'silent' }) }
    )
    t.teardown(() => proxy.close())
    const exchanges: Array<{ outcome: string, primaryDefect: string | null, defects: string[] }> = []
    proxy.on('exchange', (record) => exchanges.push({
      outcome: record.outcome,
      primaryDefect: record.primaryDefect?.code ?? null,
      defects: record.defects.map((d) => d.code).sort()
    }))

    const received = (await rawExchange(proxy.address.port, 'GET / HTTP/1.1\r\nHost: peer.test\r\n\r\n', CLB_502.length)).received.toString('latin1')

    t.equal(received, CLB_502, 'exactly CLB\'s 502 bytes, nothing of the backend\'s response')
    t.same(exchanges, [{ outcome: 'rejected', primaryDefect: peerCase.clbPrimaryDefect, defects: peerCase.clbDefects }])
    await proxy.close()
    t.same(proxy.openSockets(), { clients: 0, backends: 0 })
    t.equal(backend.accepted(), 1)
  })
}

/**
 * The child: a raw backend answering `process.argv[1]` (base64) in one write, and http-proxy with the
 * README's error handler verbatim in front of it. It prints its port, serves one request, and would
 * close everything and exit 0 if it survived that request.
 */
const README_HANDLER_CHILD = `
'use strict'
const net = require('node:net')
const http = require('node:http')
const httpProxy = require('http-proxy')
const backendResponse = Buffer.from(process.argv[1], 'base64')
const backend = net.createServer((socket) => {
  let head = ''
  socket.on('data', (chunk) => {
    head += chunk.toString('latin1')
    if (head.includes('\\r\\n\\r\\n')) socket.write(backendResponse)
  })
})
const agent = new http.Agent({ keepAlive: true })
backend.listen(0, '127.0.0.1', () => {
  const proxy = httpProxy.createProxyServer({ target: 'http://127.0.0.1:' + backend.address().port, agent })
  proxy.on('error', function (err, req, res) {
    res.writeHead(500, {
      'Content-Type': 'text/plain'
    });

    res.end('Something went wrong. And we are reporting a custom error message.');
  });
  const server = http.createServer((req, res) => {
    res.on('close', () => { server.close(); backend.close(); agent.destroy() })
    proxy.web(req, res)
  })
  server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
})
`

for (const peerCase of PEER_CASES) {
  t.test(`${peerCase.name}: http-proxy with the README's error handler crashes`, async (t) => {
    const env = { ...process.env }
    delete env.NODE_OPTIONS // a plain node: no test loader or coverage hooks in the child
    const child = spawn(
      process.execPath,
      ['-e', README_HANDLER_CHILD, Buffer.from(peerCase.backendResponse, 'latin1').toString('base64')],
      { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }
    )
    const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (text: string) => { stderr += text })
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (text: string) => {
        stdout += text
        if (stdout.endsWith('\n')) resolve(Number(stdout.trim()))
      })
      child.on('close', () => reject(new Error(`child exited before listening; stderr:\n${stderr}`)))
    })

    const received = (await rawExchange(port, 'GET / HTTP/1.1\r\nHost: peer.test\r\nConnection: close\r\n\r\n', Infinity)).received.toString('latin1')
    const [code, signal] = await exited

    // What the client got before the crash: the handler's 500 under the upstream's reason phrase
    // and Content-Length: 5 (copied by http-proxy before the error), with a 66-byte body.
    t.equal(
      received.replace(/\r\nDate: [^\r]*\r\n/, '\r\nDate: (date)\r\n'),
      'HTTP/1.1 500 OK\r\ncontent-length: 5\r\nconnection: close\r\nContent-Type: text/plain\r\nDate: (date)\r\n\r\n' +
        'Something went wrong. And we are reporting a custom error message.'
    )
    t.equal(signal, null)
    t.equal(code, 1, 'the proxy process died of an unhandled error')
    t.match(stderr, /Error \[ERR_STREAM_WRITE_AFTER_END\]: write after end/)
    t.match(stderr, /code: 'ERR_STREAM_WRITE_AFTER_END'/)
  })
}
