/**
 * Bounded memory under any backend and many clients: the built CLI runs as a child process (so
 * its peak RSS is its own), hostile raw `net` instances and real clients run here, and the child's
 * peak resident set (VmHWM, /proc/PID/status) must stay at or below 100 MiB in every case. Its
 * diagnostics on stderr must stay small too: no line over 16 KiB.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { REPO_ROOT } from '../helpers/repo.js'

const MIB = 1024 * 1024
const PEAK_RSS_LIMIT_MIB = 100
const LONGEST_DIAGNOSTIC_LINE = 16 * 1024
const CLI = join(REPO_ROOT, 'dist', 'bin', 'clb-proxy.js')
/** The Node flags the executable's shebang gives (`#!/usr/bin/env -S node FLAGS`): the test runs what users run. */
const CLI_NODE_FLAGS = (/^#!\/usr\/bin\/env -S node(.*)$/m.exec(readFileSync(CLI, 'latin1').split('\n')[0] ?? '')?.[1] ?? '').trim().split(/\s+/).filter((flag) => flag.length > 0)

interface RunningProxy {
  readonly child: ChildProcess
  readonly port: number
  /** Peak resident set so far, MiB (VmHWM). */
  peakRssMib (): number
  longestStderrLine (): number
  stop (): Promise<void>
}

/**
 * `env -u` arguments that start the proxy as a user would: the test runner adds its process-tracking
 * hook to every child's NODE_OPTIONS (even through an edited env) and collects coverage through
 * NODE_V8_COVERAGE; together they add some 25 MiB that a user's proxy does not have.
 */
const WITHOUT_TEST_RUNNER_HOOKS = ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE']

async function startProxyProcess (backendPort: number): Promise<RunningProxy> {
  const captureDir = mkdtempSync(join(tmpdir(), 'clb-memory-'))
  const child = spawn('/usr/bin/env', [...WITHOUT_TEST_RUNNER_HOOKS, process.execPath, ...CLI_NODE_FLAGS, CLI, '--listen', '127.0.0.1:0',
    '--backend', `http://127.0.0.1:${backendPort}`, '--access-log', '/dev/null', '--capture-dir', captureDir], { stdio: ['ignore', 'ignore', 'pipe'] })
  let partial = ''
  let longest = 0
  let port = 0
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`clb-proxy exited (${String(code)}) before listening`)))
    ;(child.stderr as NodeJS.ReadableStream).on('data', (chunk: Buffer) => {
      partial += chunk.toString('latin1')
      const lines = partial.split('\n')
      partial = lines.pop() as string
      for (const line of lines) {
        longest = Math.max(longest, line.length)
        const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line)
        if (match !== null) {
          port = Number(match[1])
          resolve()
        }
      }
      // A line still being written counts too (a runaway record never ends in time).
      longest = Math.max(longest, partial.length)
    })
  })
  await listening
  return {
    child,
    port,
    peakRssMib: () => {
      const status = readFileSync(`/proc/${child.pid as number}/status`, 'latin1')
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024
    },
    longestStderrLine: () => longest,
    stop: async () => {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
      rmSync(captureDir, { recursive: true, force: true })
    }
  }
}

/** A raw instance that answers every connection's first request with `answer(socket)`. */
async function startHostileInstance (answer: (socket: net.Socket) => void): Promise<{ port: number, close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      answer(socket)
    }
    socket.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** Writes `total` bytes made by `piece()` with back-pressure, then `last`; stops when the socket goes. */
async function writeBounded (socket: net.Socket, total: number, piece: Buffer, last: Buffer | null): Promise<void> {
  let written = 0
  while (written < total && !socket.destroyed) {
    written += piece.length
    if (socket.write(piece)) continue
    // The wait that loses the race is removed, or each back-pressure wait would leave listeners behind.
    const done = new AbortController()
    await Promise.race([once(socket, 'drain', { signal: done.signal }), once(socket, 'close', { signal: done.signal })]).catch(() => {})
    done.abort()
  }
  if (last !== null && !socket.destroyed) socket.write(last)
}

/** One GET through the proxy; resolves with the status line and the number of bytes received. */
async function getThrough (port: number, path: string): Promise<{ statusLine: string, bytes: number }> {
  const socket = net.connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: memory.test\r\nConnection: close\r\n\r\n`)
  let bytes = 0
  let first = ''
  socket.on('data', (chunk: Buffer) => {
    if (first.length < 64) first += chunk.toString('latin1', 0, Math.min(chunk.length, 64))
    bytes += chunk.length
  })
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return { statusLine: first.split('\r\n')[0] ?? '', bytes }
}

async function measure (t: Test, name: string, instance: (socket: net.Socket) => void, check: (port: number) => Promise<void>): Promise<void> {
  const backend = await startHostileInstance(instance)
  const proxy = await startProxyProcess(backend.port)
  try {
    await check(proxy.port)
    const peak = proxy.peakRssMib()
    t.comment(`${name}: peak RSS ${peak.toFixed(1)} MiB, longest diagnostic line ${proxy.longestStderrLine()} bytes`)
    t.ok(peak <= PEAK_RSS_LIMIT_MIB, `${name}: peak RSS ${peak.toFixed(1)} MiB <= ${PEAK_RSS_LIMIT_MIB} MiB`)
    t.ok(proxy.longestStderrLine() <= LONGEST_DIAGNOSTIC_LINE, `${name}: every diagnostic line is at most 16 KiB`)
  } finally {
    await proxy.stop()
    await backend.close()
  }
}

t.test('the executable runs Node with a capped young generation', async (t) => {
  t.strictSame(CLI_NODE_FLAGS, ['--max-semi-space-size=4'])
})

t.test('a chunked body of 50 MB whose chunk lines end in a bare LF (12.5 million findings)', async (t) => {
  const body = 50 * MIB
  await measure(t, 'bare-LF chunk lines', (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n')
    void writeBounded(socket, body, Buffer.from('1\nx\n'.repeat(16 * 1024), 'latin1'), Buffer.from('0\n\n', 'latin1')).then(() => socket.end())
  }, async (port) => {
    const { statusLine, bytes } = await getThrough(port, '/bare-lf')
    t.equal(statusLine, 'HTTP/1.1 200 OK', 'relayed with a warning (LINE_BARE_LF is a warning under clb)')
    t.ok(bytes > body, 'the whole body reached the client')
  })
})

t.test('150 MB of interim 100 Continue responses before a final head: 502, in bounded memory', async (t) => {
  await measure(t, 'endless 100 Continue', (socket) => {
    void writeBounded(socket, 150 * MIB, Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'.repeat(4096), 'latin1'), null)
  }, async (port) => {
    const { statusLine } = await getThrough(port, '/continue')
    t.equal(statusLine, 'HTTP/1.1 502 BAD_GATEWAY')
  })
})

t.test('a 200 MB body streams through in bounded memory', async (t) => {
  const body = 200 * MIB
  await measure(t, '200 MB body', (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body}\r\nConnection: close\r\n\r\n`)
    void writeBounded(socket, body, Buffer.alloc(MIB, 0x7a), null)
  }, async (port) => {
    const { statusLine, bytes } = await getThrough(port, '/large')
    t.equal(statusLine, 'HTTP/1.1 200 OK')
    t.ok(bytes > body, 'every body byte arrived')
  })
})

t.test('5,000 idle kept-alive client connections', async (t) => {
  const server = http.createServer((request, response) => response.end('ok'))
  server.keepAliveTimeout = 120_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const proxy = await startProxyProcess((server.address() as net.AddressInfo).port)
  const clients: net.Socket[] = []
  try {
    const answered: Array<Promise<void>> = []
    for (let i = 0; i < 5000; i++) {
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port })
      socket.on('error', () => {})
      clients.push(socket)
      socket.write('GET /idle HTTP/1.1\r\nHost: memory.test\r\n\r\n')
      answered.push(new Promise<void>((resolve) => socket.once('data', () => resolve())))
      // Connect in batches so the listen backlog never overflows.
      if (i % 200 === 199) await Promise.all(answered.slice(-200))
    }
    await Promise.all(answered)
    t.equal(clients.filter((socket) => !socket.destroyed).length, 5000, 'all 5,000 answered and still open')
    const peak = proxy.peakRssMib()
    t.comment(`5,000 idle connections: peak RSS ${peak.toFixed(1)} MiB`)
    t.ok(peak <= PEAK_RSS_LIMIT_MIB, `5,000 idle connections: peak RSS ${peak.toFixed(1)} MiB <= ${PEAK_RSS_LIMIT_MIB} MiB`)
  } finally {
    for (const socket of clients) socket.destroy()
    await proxy.stop()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})
