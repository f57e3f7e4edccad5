import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { corkForTurn, flushNow } from '../../../proxy/data-path/turn-writes.js'

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

t.test('the writes of one turn reach the stream together, after the turn, in order', async (t) => {
  const first = new RecordingWritable()
  const second = new RecordingWritable()
  corkForTurn(first)
  first.write('a')
  corkForTurn(second)
  second.write('x')
  corkForTurn(first)
  first.write('b')
  t.same(first.calls, [], 'nothing written during the turn')
  t.equal(first.writableLength, 2, 'the held bytes count toward back-pressure')
  t.equal(first.writableCorked, 1, 'corked once, however many writes')
  await nextTurn()
  t.same(first.calls, [['a', 'b']], 'one writev with both chunks, in order')
  t.same(second.calls, [['x']])
  t.equal(first.writableCorked, 0)
  corkForTurn(first)
  first.write('c')
  await nextTurn()
  t.same(first.calls, [['a', 'b'], ['c']], 'the next turn corks again')
})

t.test('end() sends the held bytes before finishing', async (t) => {
  const stream = new RecordingWritable()
  corkForTurn(stream)
  stream.write('head')
  stream.end()
  await once(stream, 'finish')
  t.same(stream.calls, [['head']])
  await nextTurn()
  t.same(stream.calls, [['head']], 'nothing written twice')
})

t.test('flushNow sends at once; a stream someone else corked is left to its owner', async (t) => {
  const stream = new RecordingWritable()
  corkForTurn(stream)
  stream.write('now')
  flushNow(stream)
  t.same(stream.calls, [['now']])
  const owned = new RecordingWritable()
  owned.cork()
  corkForTurn(owned)
  owned.write('mine')
  await nextTurn()
  t.same(owned.calls, [], 'still corked by its owner after the turn')
  owned.uncork()
  t.same(owned.calls, [['mine']])
})

t.test('a write made while the turn\'s writes are flushed waits for the next turn', async (t) => {
  const stream = new RecordingWritable()
  corkForTurn(stream)
  stream.write('first', () => {
    corkForTurn(stream)
    stream.write('second')
  })
  await nextTurn()
  t.same(stream.calls, [['first']])
  await nextTurn()
  t.same(stream.calls, [['first'], ['second']])
})

t.test('on a real socket: held bytes arrive after the turn; destroy() drops what flushNow did not send', async (t) => {
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
  const flushed = await connectedPeer()
  corkForTurn(flushed.client)
  flushed.client.write('relayed ')
  flushed.client.write('bytes')
  flushNow(flushed.client)
  flushed.client.destroy()
  await flushed.peerClosed
  t.equal(Buffer.concat(received).toString('latin1'), 'relayed bytes', 'flushNow, then destroy: the bytes arrive')

  received.length = 0
  const dropped = await connectedPeer()
  corkForTurn(dropped.client)
  dropped.client.write('lost')
  dropped.client.destroy()
  await dropped.peerClosed
  t.equal(Buffer.concat(received).length, 0, 'destroy() of a corked socket drops its bytes: why abort() flushes first')
})
