/**
 * A running clb-proxy with several listeners, for the listener tests: a frozen clock (every
 * timing prints `0`, every timestamp is FIXED_TIMESTAMP), the access log and the exchange records
 * in memory, diagnostics collected, and a close() that proves no socket or handle was left open.
 */
import net from 'node:net'
import { setImmediate as setImmediatePromise } from 'node:timers/promises'
import type { Test } from 'tap'
import { startClbProxy, type ClbProxy } from '../../proxy/library/clb-proxy.js'
import type { ExchangeRecord } from '../../proxy/core/events.js'
import type { ClbProxyOptions } from '../../proxy/core/options.js'
import { ELB_NAME, FIXED_MICROS, collectLogs, tcpHandles } from './proxy-fixture.js'

export { ELB_NAME, FIXED_TIMESTAMP } from './proxy-fixture.js'

export interface ListenerProxy {
  readonly proxy: ClbProxy
  readonly logLines: readonly string[]
  readonly records: readonly ExchangeRecord[]
  readonly diagnostics: ReadonlyArray<Record<string, unknown>>
  /** Resolves once `count` exchanges happened in total. */
  waitForExchanges (count: number): Promise<readonly ExchangeRecord[]>
  /** Closes the proxy and asserts that nothing it opened is left (2 assertions). */
  close (t: Test): Promise<void>
}

export async function startListenerProxy (options: ClbProxyOptions, hooks: { readonly timeScale?: number } = {}): Promise<ListenerProxy> {
  await setImmediatePromise()
  await setImmediatePromise()
  const baseline = tcpHandles()
  const logLines: string[] = []
  const records: ExchangeRecord[] = []
  const diagnostics: Array<Record<string, unknown>> = []
  const { accessLogStream, logger } = collectLogs(logLines, diagnostics)
  const proxy = await startClbProxy({ name: ELB_NAME, accessLog: null, captureDir: null, ...options }, {
    clock: { nowMicros: () => FIXED_MICROS },
    logger,
    accessLogStream,
    ...(hooks.timeScale === undefined ? {} : { timeScale: hooks.timeScale })
  })
  let waiters: Array<() => void> = []
  proxy.events.on('exchange', (record) => {
    records.push(record)
    const current = waiters
    waiters = []
    for (const wake of current) wake()
  })
  return {
    proxy,
    logLines,
    records,
    diagnostics,
    async waitForExchanges (count) {
      while (records.length < count) await new Promise<void>((resolve) => waiters.push(resolve))
      return records
    },
    async close (t) {
      await proxy.close()
      t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 }, 'no client or backend socket left open')
      for (let turn = 0; turn < 20 && JSON.stringify(tcpHandles()) !== JSON.stringify(baseline); turn++) await setImmediatePromise()
      t.strictSame(tcpHandles(), baseline, 'no TCP handle left open')
    }
  }
}

/** A TCP server on 127.0.0.1, port 0, that answers each connection with `onConnection`; closed with the test. */
export async function tcpServer (t: Test, onConnection: (socket: net.Socket) => void, options: net.ServerOpts = {}): Promise<net.Server & { readonly port: number }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer(options, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    onConnection(socket)
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return Object.assign(server, { port: (server.address() as net.AddressInfo).port })
}

/** Everything a socket receives until it closes, and whether it ended with a reset. */
export async function readUntilClosed (socket: net.Socket): Promise<{ readonly bytes: Buffer; readonly reset: boolean }> {
  const chunks: Buffer[] = []
  let reset = false
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', (error: NodeJS.ErrnoException) => { reset = error.code === 'ECONNRESET' })
  await new Promise((resolve) => socket.once('close', resolve))
  return { bytes: Buffer.concat(chunks), reset }
}
