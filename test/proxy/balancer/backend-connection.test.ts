/**
 * BackendConnection's read buffer (proxy/balancer/backend-connection.ts, InstanceReadBuffer): a
 * plain instance connection reads every response into one buffer until its bytes are kept past a
 * read, so streaming a large body makes no garbage; what is kept must stay intact. Real sockets on
 * 127.0.0.1, port 0: a `net` server writes distinct pieces, each only after the connection has read
 * the one before (a later turn), so each piece is a read of its own.
 */
import { once } from 'node:events'
import net from 'node:net'
import t, { type Test } from 'tap'
import { BackendConnection, InstanceReadBuffer, READ_BUFFER_BYTES, readBufferCounts, readBufferReturner, returnReadBuffer, type ConnectionUser } from '../../../proxy/balancer/backend-connection.js'
import { instanceTransportOf, openInstanceSocket } from '../../../proxy/balancer/instance-socket.js'

/** Piece `k` of `length` bytes, all of them `k`'s own byte: a piece overwritten by a later read no longer matches. */
function piece (k: number, length: number): Buffer {
  return Buffer.alloc(length, 0x20 + (k % 90))
}

interface Reading {
  readonly connection: BackendConnection
  /** Every chunk onData was given, as given (views, not copies). */
  readonly seen: Buffer[]
  /** The buffer each chunk was a view of. */
  readonly buffers: ArrayBufferLike[]
  /** Resolves when `count` pieces were read. */
  read (count: number): Promise<void>
}

/**
 * A server that writes `pieces` one per turn after the client reads the one before, and a
 * connection (with a read buffer unless `ordinary`) whose user applies `onData` to each chunk.
 */
async function readPieces (t: Test, pieces: readonly Buffer[], onData: (connection: BackendConnection, chunk: Buffer) => void, ordinary = false): Promise<Reading> {
  let readCount = 0
  let wanted = Infinity
  let reached: (() => void) | null = null
  let serverSocket: net.Socket | null = null
  const server = net.createServer((socket) => {
    serverSocket = socket
    socket.write(pieces[0] as Buffer)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, protocol: 'http' as const }
  const readBuffer = ordinary ? null : new InstanceReadBuffer()
  const socket = openInstanceSocket(address, { backendCa: null }, readBuffer)
  const seen: Buffer[] = []
  const buffers: ArrayBufferLike[] = []
  const connection: BackendConnection = new BackendConnection(socket, instanceTransportOf(socket), () => {}, readBuffer)
  const user: ConnectionUser = {
    onConnect: () => {},
    onClosed: () => {},
    onIdleTimeout: () => {},
    onData: (chunk) => {
      seen.push(chunk)
      buffers.push(chunk.buffer)
      onData(connection, chunk)
      readCount++
      if (readCount >= wanted) reached?.()
      // The next piece goes out in a later turn, after this read: a read of its own.
      const next = pieces[readCount]
      if (next !== undefined) setImmediate(() => serverSocket?.write(next))
    }
  }
  connection.user = user
  t.teardown(async () => {
    socket.destroy()
    serverSocket?.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return {
    connection,
    seen,
    buffers,
    read: async (count) => {
      if (readCount >= count) return
      wanted = count
      await new Promise<void>((resolve) => { reached = resolve })
    }
  }
}

t.test('a connection reads its first chunk into the shared buffer, then every chunk into one buffer of its own while nothing is kept', async (t) => {
  const pieces = [piece(0, 100), piece(1, 5000), piece(2, 1), piece(3, 70)]
  const reading = await readPieces(t, pieces, () => {})
  await reading.read(4)
  t.equal(reading.seen.length, 4, 'four reads')
  t.not(reading.buffers[0], reading.buffers[1], 'the first read is in the shared buffer')
  t.equal(new Set(reading.buffers.slice(1)).size, 1, 'the others in one buffer')
  t.equal(reading.buffers[1]?.byteLength, READ_BUFFER_BYTES)
  // The proof that it is reused: the second read's view now shows the last read's byte.
  t.equal(reading.seen[1]?.[0], pieces[3]?.[0], 'a view kept without telling the connection is overwritten by a later read')
})

t.test('keep(): a short chunk is copied, a long one lends the buffer, one from the shared buffer is copied; all stay intact', async (t) => {
  // The longest is below loopback's segment size (65,483 bytes), so it is read whole.
  const lengths = [60_000, 10, READ_BUFFER_BYTES / 2 - 1, READ_BUFFER_BYTES / 2, 3000, 60_000, 7]
  const pieces = lengths.map((length, k) => piece(k, length))
  const kept: Buffer[] = []
  const reading = await readPieces(t, pieces, (connection, chunk) => { kept.push(connection.keep(chunk)) })
  await reading.read(pieces.length)
  t.strictSame(kept.map((bytes) => bytes.length), lengths, 'each read is one piece')
  t.ok(kept.every((bytes, k) => bytes.equals(pieces[k] as Buffer)), 'every kept chunk still holds its own bytes')
  // Which chunks were views (lent) and which copies: a lent buffer is never read into again.
  const lent = kept.map((bytes, k) => bytes.buffer === reading.buffers[k])
  t.strictSame(lent, [false, false, false, true, false, true, false], 'chunks of half the buffer or more are lent, shorter ones and the shared buffer\'s copied')
  t.equal(new Set(reading.buffers).size, 4, 'the shared buffer, then a buffer of its own, and a new one after each of the two lent chunks')
})

t.test('toWrite(): a short chunk or one from the shared buffer is copied, a long one is the view; lendReadBuffer() keeps a held view intact', async (t) => {
  const lengths = [40_000, 40_000, 100, 50_000, 45_000]
  const pieces = lengths.map((length, k) => piece(k, length))
  const held: Buffer[] = []
  const views: boolean[] = []
  let reads = 0
  // Every read is "written"; the views of reads 1 and 3 are "held by the write" and the buffer lent.
  const reading = await readPieces(t, pieces, (connection, chunk) => {
    const written = connection.toWrite(chunk)
    views.push(written === chunk)
    const k = reads++
    if (k !== 1 && k !== 3) return
    held.push(written)
    connection.lendReadBuffer()
  })
  await reading.read(5)
  t.strictSame(views, [false, true, false, true, true], 'the shared buffer\'s chunk and the short one are copies, the long ones views')
  t.ok(held.every((bytes, k) => bytes.equals(pieces[[1, 3][k] as number] as Buffer)), 'the held views still hold their own bytes')
  t.equal(new Set(reading.buffers).size, 4, 'the shared buffer, its own, and a new one after each of the two lends')
})

t.test('returnReadBuffer(): a lent buffer given back is the next one read into; it is taken back once, and bytes that are no lent buffer never', async (t) => {
  const lengths = [100, 60_000, 60_000, 50_000]
  const pieces = lengths.map((length, k) => piece(k, length))
  const kept: Buffer[] = []
  const free: number[] = []
  const returners: Array<(() => void) | undefined> = []
  const reading = await readPieces(t, pieces, (connection, chunk) => {
    kept.push(connection.keep(chunk))
    // In read 2, the chunk kept in read 1 is done with (as a write's callback says, in a later turn).
    if (kept.length !== 3) return
    const before = readBufferCounts().free
    returners.push(readBufferReturner(kept[0] as Buffer), readBufferReturner(kept[1] as Buffer))
    returnReadBuffer(kept[1] as Buffer)
    free.push(readBufferCounts().free - before)
    returnReadBuffer(kept[1] as Buffer)
    returnReadBuffer(kept[0] as Buffer)
    returnReadBuffer(Buffer.allocUnsafe(READ_BUFFER_BYTES))
    free.push(readBufferCounts().free - before)
  })
  await reading.read(4)
  t.strictSame(returners.map((returner) => typeof returner), ['undefined', 'function'], 'a write of a copy needs no callback; a write of a lent view gets one')
  t.strictSame(free, [1, 1], 'given back once: a second return, a copy and a buffer never lent are not taken')
  t.equal(reading.buffers[3], reading.buffers[1], 'the read after the next lend goes to the buffer given back')
  t.ok(kept[2]?.equals(pieces[2] as Buffer), 'the chunk still lent keeps its bytes')
  t.ok(kept[3]?.equals(pieces[3] as Buffer))
})

t.test('a new user (the pool, the next exchange) reads first into the shared buffer again; the connection gives up its own', async (t) => {
  const pieces = [piece(0, 10), piece(1, 20), piece(2, 30), piece(3, 40)]
  let reads = 0
  const reading = await readPieces(t, pieces, (connection) => {
    // After the second read, the exchange hands the connection on (to the pool, say).
    if (++reads === 2) connection.user = { ...(connection.user as ConnectionUser) }
  })
  await reading.read(4)
  t.equal(reading.buffers[0], reading.buffers[2], 'the first read of each user is in the shared buffer')
  t.not(reading.buffers[1], reading.buffers[3], 'and the connection\'s own buffer was given up with the user')
  t.not(reading.buffers[1], reading.buffers[0])
})

t.test('a connection without a read buffer (https instances) gets Node\'s own chunks, and keeping them copies nothing', async (t) => {
  const pieces = [piece(0, 100), piece(1, 100)]
  const kept: Buffer[] = []
  const reading = await readPieces(t, pieces, (connection, chunk) => {
    const bytes = connection.keep(chunk)
    t.equal(bytes, chunk, 'keep() returns the chunk itself')
    connection.lendReadBuffer()
    kept.push(bytes)
  }, true)
  await reading.read(2)
  t.ok(kept.every((bytes, k) => bytes.equals(pieces[k] as Buffer)))
  t.equal(new Set(reading.buffers).size, 2, 'a buffer per read')
})
