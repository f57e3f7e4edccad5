/**
 * A dashboard that stops reading its server-sent events is dropped once 1 MiB waits for it, so
 * the admin listener's memory does not grow with a reader that does not read.
 */
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { pino } from 'pino'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { startInstanceServer } from '../../helpers/instance-server.js'

t.test('an /events reader that never reads is closed by the listener, and the proxy keeps serving', async (t) => {
  const app = await startInstanceServer(t, 'app')
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', accessLog: null, captureDir: null, backends: [app.url] },
    { logger: pino({ level: 'silent' }) })
  t.teardown(() => proxy.close())
  const admin = new URL(proxy.adminUrl as string)
  const reader = net.connect(Number(admin.port), '127.0.0.1')
  await once(reader, 'connect')
  reader.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${admin.port}\r\n\r\n`)
  await once(reader, 'data')
  reader.pause()
  const closed = once(reader, 'close')
  reader.on('error', () => {})

  // Each request makes one 'entry' event of about 16 KB (its target is in the line and the record).
  const client = net.connect(proxy.address.port, '127.0.0.1')
  await once(client, 'connect')
  const target = `/${'x'.repeat(8000)}`
  let answered = 0
  let pending = ''
  client.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1')
    answered += pending.split('\r\n\r\napp').length - 1
    pending = pending.slice(pending.lastIndexOf('\r\n\r\napp') === -1 ? 0 : pending.lastIndexOf('\r\n\r\napp') + 7)
  })
  let readerClosed = false
  void closed.then(() => { readerClosed = true })
  for (let batch = 0; batch < 100 && !readerClosed; batch++) {
    const before = answered
    for (let i = 0; i < 50; i++) client.write(`GET ${target} HTTP/1.1\r\nHost: shop\r\n\r\n`)
    while (answered < before + 50) await once(client, 'data')
  }
  reader.resume()
  await closed
  t.ok(readerClosed, 'the reader that did not read was closed')
  t.ok(answered >= 50, `the proxy kept answering (${answered} requests)`)
  client.end()
  await once(client, 'close')
})
