/**
 * Responses that arrive over time flow to the client as they arrive (docs/architecture.md, "The
 * commit rule"): server-sent events at once, other incomplete responses once responseHoldMs has
 * passed since their head, and still judged: a defect that arrives with the head, or within the
 * hold, gets CLB's exact 502. Lockstep, without sleeps: the backend writes each piece only after
 * the client holds the previous one, so a proxy that held the stream back would never see the end.
 */
import net from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { readUntilClosed, startListenerProxy, tcpServer } from '../../helpers/listener-proxy.js'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture, type RawClient } from '../../helpers/proxy-fixture.js'
import type { ReplyStep } from '../../helpers/raw-backend.js'
import { readBufferCounts } from '../../../proxy/balancer/backend-connection.js'

const USER_AGENT = 'streaming-test'
const BAD_GATEWAY = 'HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'
const EVENT_STREAM_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n'
const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n'
const LAST_CHUNK = '0\r\n\r\n'

function get (path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ${USER_AGENT}\r\n\r\n`
}

function chunk (data: string): string {
  return `${Buffer.byteLength(data, 'latin1').toString(16)}\r\n${data}\r\n`
}

function logLine (f: ProxyFixture, client: RawClient, middle: string, path: string): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${client.port} ${middle} "GET http://example.test:${f.port}${path} HTTP/1.1" "${USER_AGENT}" - -`
}

/**
 * Pieces where each one after the first is written only once the client holds everything before
 * it; the returned latencies are from "the client got piece k-1" (the backend then writes piece k)
 * to "the client got piece k".
 */
function lockstep (f: ProxyFixture, client: RawClient, pieces: readonly string[]): { steps: ReplyStep[], latenciesMs: number[] } {
  const steps: ReplyStep[] = []
  const latenciesMs: number[] = []
  let expected = 0
  pieces.forEach((piece, k) => {
    if (k > 0) {
      const before = expected
      steps.push(f.until(() => client.received.length >= before).then(() => {
        const writtenAt = performance.now()
        void f.until(() => client.received.length >= before + piece.length).then(() => { latenciesMs.push(performance.now() - writtenAt) })
      }))
    }
    steps.push(Buffer.from(piece, 'latin1'))
    expected += piece.length
  })
  return { steps, latenciesMs }
}

t.test('server-sent events reach the client one by one, not held until the end (text/event-stream is committed with its head)', async (t) => {
  // A hold far longer than the test: only the event-stream rule can make the events flow.
  const f = await startProxyFixture(t, { proxy: { responseHoldMs: 10000 } })
  const client = await f.connect()
  const events = Array.from({ length: 10 }, (_, k) => chunk(`id: ${k}\ndata: tick ${k}\n\n`))
  const pieces = [EVENT_STREAM_HEAD + (events[0] as string), ...events.slice(1), LAST_CHUNK]
  const { steps, latenciesMs } = lockstep(f, client, pieces)
  f.replies.push({ pieces: steps, then: 'keep-open' })
  client.write(get('/events'))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome], [pieces.join(''), false, 'relayed'],
    'every event reached the client before the backend wrote the next one')
  const bodyBytes = pieces.join('').length - EVENT_STREAM_HEAD.length
  t.strictSame(f.logLines, [logLine(f, client, `${f.backendField} 0 0 0 200 200 0 ${bodyBytes}`, '/events')])
  t.comment(`event latency through the proxy: max ${Math.max(...latenciesMs).toFixed(1)} ms over ${latenciesMs.length} events`)
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('a chunked response written in pieces flows once responseHoldMs has passed since its head', async (t) => {
  const f = await startProxyFixture(t, { proxy: { responseHoldMs: 20 } })
  const client = await f.connect()
  const parts = Array.from({ length: 10 }, (_, k) => chunk(`part ${k}\n`))
  const pieces = [CHUNKED_HEAD + (parts[0] as string), ...parts.slice(1), LAST_CHUNK]
  const { steps } = lockstep(f, client, pieces)
  f.replies.push({ pieces: steps, then: 'keep-open' })
  client.write(get('/progress'))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.records[0]?.outcome], [pieces.join(''), 'relayed'])
  t.strictSame(response.records[0]?.defects, [], 'a clean stream has no finding')
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('the default hold (50 ms) lets a stream flow too', async (t) => {
  const f = await startProxyFixture(t)
  t.equal(f.proxy.options.responseHoldMs, 50)
  const client = await f.connect()
  const pieces = [CHUNKED_HEAD + chunk('first\n'), chunk('second\n'), LAST_CHUNK]
  const { steps } = lockstep(f, client, pieces)
  f.replies.push({ pieces: steps, then: 'keep-open' })
  client.write(get('/default-hold'))
  const response = await client.response()
  t.equal(response.bytes.toString('latin1'), pieces.join(''))
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('within the hold, the AWS-documented defects still get the exact 502: bytes past Content-Length that arrive after the head', async (t) => {
  const f = await startProxyFixture(t, { proxy: { responseHoldMs: 10000 } })
  f.replies.push({ pieces: [Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'latin1'), Buffer.from('hello world', 'latin1')], then: 'keep-open' })
  const client = await f.connect()
  client.write(get('/late-excess'))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.records[0]?.outcome, response.records[0]?.primaryDefect?.code],
    [BAD_GATEWAY, 'rejected', 'BODY_EXCEEDS_CL'])
  t.strictSame(f.logLines, [logLine(f, client, `${f.backendField} 0 0 0 502 - 0 0`, '/late-excess')])
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('within the hold, a blank line followed by header lines in the next read still gets the 502 (HDR_BLANK_LINE)', async (t) => {
  const f = await startProxyFixture(t, { proxy: { responseHoldMs: 10000 } })
  f.replies.push({
    pieces: [Buffer.from('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n', 'latin1'), Buffer.from('Content-Length: 5\r\n\r\nhello', 'latin1')],
    then: 'fin'
  })
  const client = await f.connect()
  client.write(get('/late-blank-line'))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.records[0]?.primaryDefect?.code], [BAD_GATEWAY, 'HDR_BLANK_LINE'])
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('responseHoldMs 0 commits as soon as the head is judged', async (t) => {
  const f = await startProxyFixture(t, { proxy: { responseHoldMs: 0 } })
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'
  const client = await f.connect()
  const { steps } = lockstep(f, client, [head + 'hello', 'world'])
  f.replies.push({ pieces: steps, then: 'keep-open' })
  client.write(get('/no-hold'))
  const response = await client.response()
  t.equal(response.bytes.toString('latin1'), `${head}helloworld`)
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('a stream that goes silent for the idle timeout is cut, and logged once with what was sent (CLB-IDLE)', async (t) => {
  const f = await startProxyFixture(t, { proxy: { idleTimeoutSeconds: 1 } })
  const first = EVENT_STREAM_HEAD + chunk('data: only\n\n')
  f.replies.push({ pieces: [Buffer.from(first, 'latin1')], then: 'keep-open' })
  const client = await f.connect()
  client.write(get('/silent'))
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome, response.records[0]?.cutReason],
    [first, true, 'cut', 'idle-timeout'])
  t.strictSame(f.logLines, [logLine(f, client, `${f.backendField} 0 0 0 200 200 0 ${first.length - EVENT_STREAM_HEAD.length}`, '/silent')])
  await f.backend.noConnections()
  await f.close(t)
})

t.test('a client that leaves during a stream is noticed at the next writes: the instance connection is closed, one line is written', async (t) => {
  // The idle timeout (60 s) is far away: only a write can notice the client left.
  const f = await startProxyFixture(t)
  const client = await f.connect()
  const first = EVENT_STREAM_HEAD + chunk('data: 0\n\n')
  // Gone on the client's side only: the proxy's side closes when the proxy notices.
  const clientGone = f.until(() => client.received.length >= first.length).then(async () => {
    client.destroy()
    await f.until(() => client.closed)
  })
  // More events than the proxy needs: the first write after the client left is answered with a
  // reset by the client's host, the next one fails.
  const later = Array.from({ length: 20 }, (_, k) => Buffer.from(chunk(`data: ${k + 1}\n\n`), 'latin1'))
  f.replies.push({ pieces: [Buffer.from(first, 'latin1'), clientGone, ...later, Buffer.from(LAST_CHUNK, 'latin1')], then: 'keep-open' })
  client.write(get('/leaver'))
  const [record] = await f.waitForExchanges(1)
  t.equal(record?.outcome, 'cut', 'the exchange ended when the proxy noticed, not at the end of the stream')
  t.equal(record?.cutReason, 'client-gone', 'and says the client left, not the instance')
  await f.backend.noConnections()
  await f.proxyBackendSocketsClosed()
  t.equal(f.logLines.length, 1, 'one line')
  t.match(f.logLines[0], / 200 200 0 \d+ "GET /)
  await f.close(t)
})

t.test('bytes relayed in the same turn as the instance\'s reset reach the client before the cut (what the turn still held is sent first)', async (t) => {
  // Committed at once (more than responseBufferBytes), then the reset right behind the bytes: the
  // cut comes while the turn still holds the relayed bytes (turn-writes.ts), and abort() sends them first.
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n'
  const body = Buffer.alloc(5000, 'b')
  const instance = await tcpServer(t, (socket) => {
    socket.once('data', () => {
      socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]))
      setImmediate(() => socket.resetAndDestroy())
    })
  })
  const f = await startListenerProxy({ backends: [`http://127.0.0.1:${instance.port}`], responseBufferBytes: 1024 })
  const port = f.proxy.listeners[0]?.port as number
  for (let round = 0; round < 3; round++) {
    const client = net.connect(port, '127.0.0.1')
    await once(client, 'connect')
    client.write(get('/cut-right-behind'))
    const { bytes } = await readUntilClosed(client)
    t.equal(bytes.toString('latin1'), head + body.toString('latin1'), `round ${round + 1}: the head and every relayed body byte, then the close`)
  }
  const records = await f.waitForExchanges(3)
  t.strictSame(records.map((record) => [record.outcome, record.cutReason]), Array(3).fill(['cut', 'defect']), 'cut: the body ended before its Content-Length')
  await f.close(t)
})

/** `length` pseudo-random bytes (xorshift32 from `seed`): a byte out of place shows. */
function noise (seed: number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes[i] = x & 0xff
  }
  return bytes
}

t.test('bytes read into a reused buffer reach a client that stops reading intact: a held response, then a stream of small pieces', async (t) => {
  // The backend is paced (raw-backend.ts): each piece is one read of the proxy's, into the buffer its
  // instance connection reuses until a chunk is kept or held by a write (BackendConnection). The
  // client reads nothing during the stream until the proxy has stopped reading the instance (the
  // client's socket holds 16 KiB: back-pressure): by then the kernel's buffers were full, and the
  // proxy had written small pieces that waited in the client's socket while it read the next ones.
  const SIZES = [1, 7, 100, 1500, 4096, 16383, 16384, 20000, 32767, 32768, 40000, 60000]
  // Each small piece, with its chunk framing, is below the client socket's 16 KiB high-water mark:
  // its write is held for the turn (turn-writes.ts) and answers true, so the proxy goes on reading,
  // and the first write the full kernel does not take is one of these (written as a copy: toWrite).
  const SMALL_SIZES = [1, 7, 100, 1500, 4096, 9000, 12000]
  const piecesOf = (seed: number, total: number, sizes: readonly number[]): Buffer[] => {
    const pieces: Buffer[] = []
    for (let made = 0, k = 0; made < total; k++) {
      const length = Math.min(sizes[(seed + k * 3) % sizes.length] as number, total - made)
      pieces.push(noise(seed * 100_000 + k, length))
      made += length
    }
    return pieces
  }
  // Held whole (below responseBufferBytes): Content-Length, in pieces of every size.
  const held = [Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${200 * 1024}\r\n\r\n`, 'latin1'), ...piecesOf(1, 200 * 1024, SIZES)]
  // Streamed (past responseBufferBytes), chunked, one chunk per piece: more than the kernel's
  // buffers hold for a client that does not read.
  const chunked = (data: Buffer): Buffer => Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, Buffer.from('\r\n', 'latin1')])
  const streamed = [Buffer.from(CHUNKED_HEAD, 'latin1'), ...piecesOf(2, 8 * 1024 * 1024, SMALL_SIZES).map(chunked), Buffer.from(LAST_CHUNK, 'latin1')]
  const length = (pieces: readonly Buffer[]): number => pieces.reduce((sum, bytes) => sum + bytes.length, 0)
  const f = await startProxyFixture(t, { proxy: { responseBufferBytes: 256 * 1024, responseHoldMs: 10_000 } })
  f.replies.push({ pieces: held, then: 'keep-open' }, { pieces: streamed, then: 'keep-open' })
  let proxyRead = 0
  let turnsSinceRead = 0
  f.proxy.events.on('backend-read', (read) => {
    proxyRead += read.bytes
    turnsSinceRead = 0
  })
  const client = await f.connect()
  client.write(get('/noise/held'))
  await f.until(() => client.received.length >= length(held))
  client.socket.pause()
  client.write(get('/noise/streamed'))
  // The proxy stopped reading the instance: no read for 50 turns of the event loop (a paced piece is
  // read within a turn or two while the proxy reads).
  while (turnsSinceRead < 50 && proxyRead < length(held) + length(streamed)) {
    await turns(1)
    turnsSinceRead++
  }
  const readWhenStopped = proxyRead - length(held)
  client.socket.resume()
  await f.until(() => client.received.length >= length(held) + length(streamed))
  t.ok(readWhenStopped < length(streamed), `the client held the proxy back: it had read ${readWhenStopped} of the stream's ${length(streamed)} bytes`)
  t.equal(client.received.length, length(held) + length(streamed), 'every byte, and no more')
  t.ok(client.received.equals(Buffer.concat([...held, ...streamed])), 'the client got exactly the bytes the instance wrote, in order')
  const records = await f.waitForExchanges(2)
  t.strictSame(records.map((record) => [record.outcome, record.defects.length]), [['relayed', 0], ['relayed', 0]])
  t.equal(f.backend.accepted, 1, 'both on one instance connection')
  client.end()
  await client.whenClosed()
  await f.close(t)
})

for (const mode of ['held', 'streamed'] as const) {
  t.test(`read buffers given back after their write are reused only once their bytes left: a ${mode} response waits in the socket of a client that stopped reading, intact, while another client's response is read through the buffers given back`, async (t) => {
    // BackendConnection: a chunk kept or written as a view lends its read buffer, and the write's
    // callback gives it back for the next read. Given back any sooner, a later read (here, another
    // client's response) overwrites bytes still waiting in the slow client's socket.
    const LENGTH = 16 * 1024 * 1024
    const response = (seed: number): Buffer => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${LENGTH}\r\n\r\n`, 'latin1'), noise(seed, LENGTH)])
    const slowBytes = response(11)
    const fastBytes = response(12)
    // Held: the whole response is judged before the client sees a byte, then written at once;
    // streamed: it flows as it arrives (past responseBufferBytes).
    const responseBufferBytes = mode === 'held' ? 2 * LENGTH : 256 * 1024
    const f = await startProxyFixture(t, { proxy: { responseBufferBytes, responseHoldMs: 10_000 } })
    f.replies.push({ pieces: [slowBytes], then: 'keep-open' }, { pieces: [fastBytes], then: 'keep-open' })
    let proxyRead = 0
    let reads = 0
    let turnsSinceRead = 0
    f.proxy.events.on('backend-read', (read) => {
      proxyRead += read.bytes
      reads++
      turnsSinceRead = 0
    })
    const slow = await f.connect()
    slow.socket.pause()
    slow.write(get('/noise/slow'))
    if (mode === 'held') {
      await f.waitForExchanges(1)
    } else {
      // The proxy stopped reading the instance (back-pressure): no read for 50 turns of the event loop.
      while (turnsSinceRead < 50) {
        await turns(1)
        turnsSinceRead++
      }
    }
    const slowSide = slow.proxySide()
    const waiting = slowSide.writableLength
    t.ok(waiting >= 64 * 1024, `the proxy's socket to the slow client holds ${waiting} bytes it has not handed to the kernel`)
    const before = { ...readBufferCounts(), reads }
    const fast = await f.connect()
    fast.write(get('/noise/fast'))
    await f.until(() => fast.received.length >= fastBytes.length)
    t.ok(fast.received.equals(fastBytes), 'the other client got its response intact')
    if (mode === 'held') {
      // The part of the slow client's answer that the kernel took was given back; the other
      // client's reads took those buffers before allocating new ones.
      // (The first read of a response goes to the shared buffer, InstanceReadBuffer.)
      const allocated = readBufferCounts().allocated - before.allocated
      const tookGivenBack = reads - before.reads - 1 - allocated
      t.ok(before.free > 0, `${before.free} buffers were given back before the other client's request`)
      t.ok(tookGivenBack >= before.free, `of the other client's ${reads - before.reads} reads, ${tookGivenBack} took a buffer given back (${allocated} allocated one)`)
    }
    t.equal(slowSide.writableLength, waiting, 'the slow client\'s bytes still wait in the proxy\'s socket')
    // Then the slow client reads one chunk per turn, as a slow reader does: the proxy's writes to it
    // are taken by the kernel in part, and the rest waits in its socket.
    slow.socket.on('data', () => {
      slow.socket.pause()
      setImmediate(() => slow.socket.resume())
    })
    slow.socket.resume()
    await f.until(() => slow.received.length >= slowBytes.length)
    t.equal(slow.received.length, slowBytes.length, 'every byte, and no more')
    t.ok(slow.received.equals(slowBytes), 'the slow client got exactly the bytes the instance wrote, in order')
    const records = await f.waitForExchanges(2)
    t.strictSame(records.map((record) => [record.outcome, record.defects.length]), [['relayed', 0], ['relayed', 0]])
    t.ok(proxyRead >= slowBytes.length + fastBytes.length, 'the proxy read both responses from the instance')
    slow.end()
    fast.end()
    await Promise.all([slow.whenClosed(), fast.whenClosed()])
    await f.close(t)
  })
}

/** Resolves after `count` turns of the event loop. */
async function turns (count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve))
}
