import net from 'node:net'
import { once } from 'node:events'
import type { Logger } from 'pino'
import { formatAccessLogLine } from './access-log-format.js'
import { createAccessLogWriter, type AccessLogWriter } from './access-log-writer.js'
import { BackendPool } from './backend-pool.js'
import { ClientConnection } from './client-connection.js'
import { systemClock, type Clock } from './clock.js'
import { defaultLogger, subscribeDiagnostics } from './diagnostics.js'
import { ClbProxyEvents, type ClbProxyEventMap } from './events.js'
import type { ClbProxyOptions, ResolvedOptions } from './options.js'
import { resolveOptions } from './resolve-options.js'

export interface ClbProxyHooks {
  /** Diagnostics destination (default: pino JSON on stderr). */
  readonly logger?: Logger
  /** Time source (default: the system clock); tests freeze it to assert exact log lines. */
  readonly clock?: Clock
  /** Access-log stream instead of `options.accessLog` (tests read lines from it). */
  readonly accessLogStream?: NodeJS.WritableStream
}

export interface ClbProxy {
  /** e.g. http://127.0.0.1:8080, with the port actually bound. */
  readonly url: string
  readonly address: { readonly host: string; readonly port: number }
  readonly options: ResolvedOptions
  readonly events: ClbProxyEvents
  on<K extends keyof ClbProxyEventMap>(event: K, listener: (...args: ClbProxyEventMap[K]) => void): this
  off<K extends keyof ClbProxyEventMap>(event: K, listener: (...args: ClbProxyEventMap[K]) => void): this
  /** Sockets open right now: client connections and backend connections. */
  openSockets (): { readonly clients: number; readonly backends: number }
  /**
   * Stops accepting, lets in-flight exchanges finish for up to drainTimeoutSeconds, cuts the rest,
   * closes every backend connection and flushes the access log. Idempotent.
   */
  close (): Promise<void>
}

/** Starts a proxy. Options are validated in full before any socket opens (OptionError otherwise). */
export async function startClbProxy (input: ClbProxyOptions, hooks: ClbProxyHooks = {}): Promise<ClbProxy> {
  const options = resolveOptions(input)
  const events = new ClbProxyEvents()
  const clock = hooks.clock ?? systemClock
  const logger = hooks.logger ?? defaultLogger()
  const pool = new BackendPool(options.backends, { idleTimeoutMs: options.idleTimeoutSeconds * 1000, keepaliveRace: options.keepaliveRace, clock, events })
  const context = { options, pool, clock, events }
  const connections = new Set<ClientConnection>()
  let whenAllClosed: (() => void) | null = null

  let accessLog: AccessLogWriter | null = null
  if (hooks.accessLogStream !== undefined) accessLog = createAccessLogWriter({ stream: hooks.accessLogStream })
  else if (options.accessLog !== null) accessLog = createAccessLogWriter({ destination: options.accessLog })
  const writer = accessLog
  if (writer !== null) {
    events.on('exchange', (record) => {
      // A line that cannot be written must not take the proxy down; say so on stderr instead.
      try { writer.write(record.log) } catch (error) { logger.error({ err: error }, 'access-log line not written') }
    })
  }
  const unsubscribeDiagnostics = subscribeDiagnostics(events, logger)
  events.on('backend-idle-event', (event) => {
    if (event.event === 'extra-bytes') {
      logger.warn({ ...event, defect: 'EXTRA_BYTES_AFTER_RESPONSE' }, `instance ${event.backend} sent ${event.bytes} bytes on an idle kept-alive connection; connection closed`)
      return
    }
    logger.warn({ ...event, idleTimeoutSeconds: options.idleTimeoutSeconds, keepaliveRace: options.keepaliveRace },
      `instance ${event.backend} closed a kept-alive connection after ${event.idleSeconds.toFixed(3)} s idle, before the ` +
      `${options.idleTimeoutSeconds} s idle timeout: on a real CLB a request reusing it gets a 504. Set the backend's ` +
      'keep-alive timeout above the idle timeout' + (options.keepaliveRace === 'emulate' ? ' (emulated: the next request that would reuse it gets 504)' : ''))
  })

  // allowHalfOpen: a client may send its request and then FIN; it still gets its response.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const connection = new ClientConnection(socket, context, (closed) => {
      connections.delete(closed)
      if (connections.size === 0) whenAllClosed?.()
    })
    connections.add(connection)
  })
  server.listen({ host: options.listen.host, port: options.listen.port })
  try {
    await once(server, 'listening')
  } catch (error) {
    unsubscribeDiagnostics()
    await writer?.close()
    throw error
  }
  const bound = server.address() as net.AddressInfo
  const host = options.listen.host
  const address = { host, port: bound.port }
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound.port}`

  let closing: Promise<void> | null = null
  const close = async (): Promise<void> => {
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const connection of connections) connection.closeWhenIdle()
    if (connections.size > 0) {
      const drained = new Promise<void>((resolve) => { whenAllClosed = resolve })
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, options.drainTimeoutSeconds * 1000) })
      await Promise.race([drained, deadline])
      clearTimeout(timer)
      for (const connection of connections) connection.destroy()
    }
    await serverClosed
    pool.destroyAll()
    unsubscribeDiagnostics()
    await writer?.close()
  }

  const proxy: ClbProxy = {
    url,
    address,
    options,
    events,
    on (event, listener) { events.on(event, listener as never); return proxy },
    off (event, listener) { events.off(event, listener as never); return proxy },
    openSockets: () => ({ clients: connections.size, backends: pool.openConnections }),
    close: () => (closing ??= close())
  }
  return proxy
}


