import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { flushNow, writeInTurn } from '../../../proxy/data-path/turn-writes.js'

/** A Writable that records each call that reaches it: one entry per _write, one per _writev. */
class RecordingWritable extends Writable {
  readonly calls: string[][] = []
  constructor () {
    super({
      write: (chunk: Buffer, _encoding, callback) => {
        this.calls.push([chunk.toString('latin1')])
        callback()
      },
      writev: (chunks, callback) => {
        this.calls.push(chunks.map(({ chunk }) => (chunk as Buffer).toString('latin1')))
        callback()
      }
    })
  }
}

const nextTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

t.test('the small writes of one turn reach the stream together, after the turn, in order', async (t) => {
  const first = new RecordingWritable()
  const second = new RecordingWritable()
  t.equal(writeInTurn(first, Buffer.from('a')), true)
  writeInTurn(second, Buffer.from('x'))
  writeInTurn(first, Buffer.from('b'))
  t.same(first.calls, [], 'nothing written during the turn')
  t.equal(first.writableCorked, 1, 'corked once, however many writes')
  await nextTurn()
  t.same(first.calls, [['a', 'b']], 'one writev with both chunks, in order')
  t.same(second.calls, [['x']])
  t.equal(first.writableCorked, 0)
  writeInTurn(first, Buffer.from('c'))
  await nextTurn()
  t.same(first.calls, [['a', 'b'], ['c']], 'the next turn corks again')
})

t.test('a write of the high-water mark or more goes at once, after what the turn held', async (t) => {
  const stream = new RecordingWritable()
  const large = Buffer.alloc(stream.writableHighWaterMark, 'L')
  writeInTurn(stream, Buffer.from('small'))
  t.equal(writeInTurn(stream, large), true, 'write() answers as it would without the turn')
  t.same(stream.calls.map((call) => call.map((chunk) => chunk.length)), [[5], [large.length]], 'the held bytes first, then the large write, both now')
  t.equal(stream.writableCorked, 0)
  await nextTurn()
  t.equal(stream.calls.length, 2, 'nothing left for the end of the turn')
})

t.test('end() sends the held bytes before finishing', async (t) => {
  const stream = new RecordingWritable()
  writeInTurn(stream, Buffer.from('head'))
  stream.end()
  await once(stream, 'finish')
  t.same(stream.calls, [['head']])
  await nextTurn()
  t.same(stream.calls, [['head']], 'nothing written twice')
})

t.test('flushNow sends at once; a stream someone else corked is left to its owner', async (t) => {
  const stream = new RecordingWritable()
  writeInTurn(stream, Buffer.from('now'))
  flushNow(stream)
  t.same(stream.calls, [['now']])
  const owned = new RecordingWritable()
  owned.cork()
  writeInTurn(owned, Buffer.from('mine'))
  await nextTurn()
  t.same(owned.calls, [], 'still corked by its owner after the turn')
  owned.uncork()
  t.same(owned.calls, [['mine']])
})

t.test('on a real socket: a 32 KiB write to a reader with room answers true at once; destroy() drops what flushNow did not send', async (t) => {
  const received: Buffer[] = []
  const server = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => received.push(chunk))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const port = (server.address() as net.AddressInfo).port
  const connectedPeer = async (): Promise<{ client: net.Socket, peerClosed: Promise<unknown> }> => {
    const client = net.connect(port, '127.0.0.1')
    const [peer] = await once(server, 'connection') as [net.Socket]
    await once(client, 'connect')
    return { client, peerClosed: once(peer, 'close') }
  }

  received.length = 0
  const large = await connectedPeer()
  writeInTurn(large.client, Buffer.from('held '))
  // The kernel takes 32 KiB at once on a fresh loopback connection (its receive buffer is larger):
  // write() says true, as it did before the turn, where a held write would have said false.
  t.equal(writeInTurn(large.client, Buffer.alloc(32 * 1024, 'L')), true)
  t.equal(large.client.writableLength, 0, 'nothing held')
  large.client.end()
  await large.peerClosed
  t.equal(Buffer.concat(received).length, 5 + 32 * 1024)

  received.length = 0
  const flushed = await connectedPeer()
  writeInTurn(flushed.client, Buffer.from('relayed '))
  writeInTurn(flushed.client, Buffer.from('bytes'))
  flushNow(flushed.client)
  flushed.client.destroy()
  await flushed.peerClosed
  t.equal(Buffer.concat(received).toString('latin1'), 'relayed bytes', 'flushNow, then destroy: the bytes arrive')

  received.length = 0
  const dropped = await connectedPeer()
  writeInTurn(dropped.client, Buffer.from('lost'))
  dropped.client.destroy()
  await dropped.peerClosed
  t.equal(Buffer.concat(received).length, 0, 'destroy() of a corked socket drops its bytes: why abort() flushes first')
})
