// clb-proxy as a tap fixture. Run: node examples/tap.test.mjs (or npx tap examples/tap.test.mjs)
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { startClbProxy, assertElbGenerated, assertRelayed } from 'clb-proxy'

// A backend with the classic Content-Length bug: it counts characters, not bytes. 'héllo' is 5
// characters but 6 bytes in UTF-8, so one byte more than announced follows the header block.
// Written with `net`, because Node's http module would not send a wrong Content-Length.
async function startBuggyBackend () {
  const server = net.createServer((socket) => {
    socket.once('data', (request) => {
      const body = request.toString('latin1').startsWith('GET /hello ') ? 'héllo' : 'hello'
      socket.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve))
  }
}

t.test('CLB answers 502 when the body is longer than Content-Length', async (t) => {
  const backend = await startBuggyBackend()
  const proxy = await startClbProxy({
    listen: '127.0.0.1:0', // any free port: proxy.url says which
    backends: [backend.url],
    accessLog: null, // the lines are kept in memory: proxy.lines()
    captureDir: null
  })
  t.teardown(async () => {
    await proxy.close()
    await backend.close()
  })

  const ascii = await fetch(`${proxy.url}/ascii`)
  t.equal(ascii.status, 200)
  t.equal(await ascii.text(), 'hello')
  assertRelayed(await proxy.waitFor((entry) => entry.record.target === '/ascii'), { status: 200 })

  const hello = await fetch(`${proxy.url}/hello`)
  t.equal(hello.status, 502)
  const entry = await proxy.waitFor((entry) => entry.record.target === '/hello')
  assertElbGenerated(entry, { status: 502, defect: 'BODY_EXCEEDS_CL' })
  t.match(entry.line, / 502 - 0 0 "GET http:\/\/127\.0\.0\.1:\d+\/hello HTTP\/1\.1" /)
  t.equal(proxy.metrics().Metrics.HTTPCode_ELB_5XX.Sum, 1)
  t.comment(entry.line)
})
