import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import { createAccessLogWriter, type AccessLogWriter } from '../observers/access-log-writer.js'
import { createAccessLogDirWriter } from '../observers/access-log-dir.js'
import { BackendPool, type BalancerSettings } from '../balancer/backend-pool.js'
import { describeInstance, type InstanceDescription } from '../balancer/instance-description.js'
import { StickinessPolicy } from '../balancer/stickiness-policy.js'
import { ClientConnection } from '../data-path/client-connection.js'
import { PassthroughConnection } from '../data-path/tcp-passthrough.js'
import { tlsServerOptionsFor } from '../data-path/security-policies.js'
import { ServerCertificateError, generateSelfSignedCertificate, loadServerCertificate, type ServerCertificate } from '../data-path/server-certificate.js'
import { systemClock, type Clock } from '../core/clock.js'
import { subscribeCaptures } from '../observers/captures.js'
import type { CaptureSummary } from '../observers/capture-format.js'
import type { AdminServer } from '../admin/admin-server.js'
import { ClbMetrics, subscribeMetrics, type DatapointMetric, type MetricStatistics, type MetricsSnapshot, type StatisticsQuery } from '../observers/metrics.js'
import { DEFAULT_MAX_RECORDED_ENTRIES, Recorder, WaitForError, subscribeRecorder, type AccessLogEntry, type WaitForOptions } from '../observers/recorder.js'
import { defaultLogger, silentLogger, subscribeDiagnostics } from '../observers/diagnostics.js'
import { ClbProxyEvents, type ClbProxyEventMap, type InstanceState, type InstanceStateName } from '../core/events.js'
import type { BackendAddress, ClbProxyOptions, ListenerProtocol, ResolvedOptions } from '../core/options.js'
import { OptionError, instanceWithoutListener, resolveBackendAddress, resolveOptions } from '../core/resolve-options.js'
import { readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'

export interface ClbProxyHooks {
  /**
   * Diagnostics destination (default: pino JSON on stderr); null for none. Any pino-like logger:
   * an object with `info`, `warn` and `error` methods taking (fields, message).
   */
  readonly logger?: DiagnosticsLogger | null
  /** Time source (default: the system clock); tests freeze it to assert exact log lines. */
  readonly clock?: Clock
  /** Access-log stream instead of `options.accessLog` (tests read lines from it). */
  readonly accessLogStream?: NodeJS.WritableStream
  /**
   * Access-log entries kept in memory for entries(), lines(), waitFor() and the admin /entries
   * route: the last N (default DEFAULT_MAX_RECORDED_ENTRIES, 10 000); 0 keeps none.
   */
  readonly maxRecordedEntries?: number
  /**
   * Multiplies the health-check interval and timeout and the draining timeout, which keep CLB's
   * ranges (seconds): tests set e.g. 0.01 so a 5 s interval runs every 50 ms. Default 1.
   */
  readonly timeScale?: number
}

/** A front-end connection of any listener: what close() asks of each. */
interface FrontEndConnection {
  /** Shutdown: finish what is in flight, then close (closes at once when idle). */
  closeWhenIdle (): void
  /** The drain deadline: cut what is still in flight. */
  closeAtDrainDeadline (): void
}

/** One listener as bound: its protocol, address and the port actually bound. */
export interface BoundListener {
  readonly protocol: ListenerProtocol
  readonly host: string
  readonly port: number
  /** e.g. `https://127.0.0.1:8443`, `tcp://127.0.0.1:8081`. */
  readonly url: string
}

export interface WaitForInstanceStateOptions {
  /** Default 10 000 ms. */
  readonly timeoutMs?: number
}

/** The events `proxy.on()` / `proxy.off()` take: the lifecycle events plus 'request'. */
export interface ClbProxyHandleEventMap extends ClbProxyEventMap {
  /** One per request, after the client got its answer: the access-log entry. */
  request: [AccessLogEntry]
}

export interface ClbProxy {
  /** The first listener's URL, e.g. http://127.0.0.1:8080, with the port actually bound. */
  readonly url: string
  /** The first listener's address, with the port actually bound. */
  readonly address: { readonly host: string; readonly port: number }
  /** Every listener, in the order of options.listeners, with the ports actually bound. */
  readonly listeners: readonly BoundListener[]
  /**
   * The HTTPS/SSL listeners' certificate (PEM, key, SHA-256 fingerprint): trust `certificate.cert`
   * in a test's client (`ca`) when it was generated (`selfSigned`); null without such listeners.
   */
  readonly certificate: ServerCertificate | null
  readonly options: ResolvedOptions
  readonly events: ClbProxyEvents
  /** The admin listener's URL (options.admin) with the port actually bound; null when there is none. */
  readonly adminUrl: string | null
  on<K extends keyof ClbProxyHandleEventMap>(event: K, listener: (...args: ClbProxyHandleEventMap[K]) => void): this
  off<K extends keyof ClbProxyHandleEventMap>(event: K, listener: (...args: ClbProxyHandleEventMap[K]) => void): this
  /** The access-log entries since start, oldest first (the last maxRecordedEntries, 10 000 by default). */
  entries (): readonly AccessLogEntry[]
  /** The same entries' CLB access-log lines. */
  lines (): string[]
  /**
   * The first entry, already kept or still to come, for which `predicate` is true. Rejects with a
   * WaitForError after `timeoutMs` (default 10 000) or when the proxy closes without a match.
   */
  waitFor (predicate: (entry: AccessLogEntry) => boolean, options?: WaitForOptions): Promise<AccessLogEntry>
  /** The capture files kept now, newest first (empty when captureDir is null). */
  captures (): CaptureSummary[]
  /** Counters named after CLB's CloudWatch metrics, cumulative since start. */
  metrics (): MetricsSnapshot
  /**
   * One metric's datapoints per period (default 60 s), like `aws cloudwatch get-metric-statistics`:
   * SampleCount, Sum, Average, Minimum, Maximum; the last 24 hours are kept.
   */
  metricStatistics (metric: DatapointMetric, query?: StatisticsQuery): MetricStatistics
  /** Sockets open right now: client connections and backend connections. */
  openSockets (): { readonly clients: number; readonly backends: number }
  /** The registered instances, DescribeInstanceHealth-style, in registration order (draining ones included). */
  instances (): InstanceDescription[]
  /**
   * Registers an instance (`http://HOST:PORT` or `{ host, port }`); with health checks it is in
   * service after its first passing check. Registering an address already registered returns it.
   * Throws an OptionError for a bad address.
   */
  register (url: string | BackendAddress): InstanceDescription
  /**
   * Deregisters an instance by id: no new requests; in-flight ones finish within the draining
   * timeout (or get 504 when draining is disabled). False for an unknown id; throws after close().
   */
  deregister (id: string): boolean
  /**
   * Resolves with the instance's state once its State is `state` (at once if it already is). A
   * deregistered instance reads OutOfService ("Instance is not currently registered with the
   * LoadBalancer."). Rejects with a WaitForError after `timeoutMs` or when the proxy closes; at once
   * with a TypeError for a state that does not exist and a RangeError for an id never registered.
   */
  waitForInstanceState (id: string, state: InstanceStateName, options?: WaitForInstanceStateOptions): Promise<InstanceState>
  /**
   * Log rotation: the access-log file (options.accessLog, and the open file of options.accessLogDir)
   * is opened again by its path; later lines go there. False when no file was reopened (no access
   * log, stdout, a caller's stream, an open that failed: reported as 'reopen-failed') or after close().
   */
  reopenAccessLog (): boolean
  /**
   * Stops accepting, lets in-flight exchanges finish for up to drainTimeoutSeconds, cuts the rest,
   * closes every backend connection and flushes the access log. Idempotent.
   */
  close (): Promise<void>
}

/** DescribeInstanceHealth's states, what waitForInstanceState can wait for. */
const INSTANCE_STATE_NAMES: readonly InstanceStateName[] = Object.freeze(['InService', 'OutOfService', 'Unknown'])

/** Starts a proxy. Options are validated in full before any socket opens (OptionError otherwise). */
export async function startClbProxy (input: ClbProxyOptions, hooks: ClbProxyHooks = {}): Promise<ClbProxy> {
  const options = resolveOptions(input)
  // Before any socket or file opens, like the options: a bad maxRecordedEntries throws a RangeError.
  const recorder = new Recorder(hooks.maxRecordedEntries ?? DEFAULT_MAX_RECORDED_ENTRIES)
  const events = new ClbProxyEvents()
  const clock = hooks.clock ?? systemClock
  // Checked now, like the options: a wrong logger would otherwise throw at the first diagnostic, from inside an exchange.
  const logger = hooks.logger === null ? silentLogger() : hooks.logger ?? defaultLogger()
  for (const method of ['info', 'warn', 'error'] as const) {
    if (typeof (logger as Partial<DiagnosticsLogger> | null)?.[method] !== 'function') {
      throw new TypeError(`hooks.logger must be a pino logger (an object with info, warn and error methods) or null for none; its ${method} is ${typeof (logger as Partial<DiagnosticsLogger> | null)?.[method]}`)
    }
  }
  const timeScale = hooks.timeScale ?? 1
  if (typeof timeScale !== 'number' || !(timeScale > 0) || timeScale > 1) throw new RangeError(`hooks.timeScale must be a number above 0 and at most 1, got ${String(timeScale)}`)
  // Files named by options are read now, before any socket opens: one that cannot be read is a bad option.
  const backendCa = options.backendCa === null ? null : readCaFile(options.backendCa)
  const certificate = serverCertificateFor(options)
  const balancerSettings: BalancerSettings = {
    backendCa,
    idleTimeoutMs: options.idleTimeoutSeconds * 1000,
    keepaliveRace: options.keepaliveRace,
    clock,
    events,
    maxInstanceConnections: options.maxInstanceConnections,
    surgeQueueSize: options.surgeQueueSize,
    drainingTimeoutMs: options.drainingTimeoutSeconds * 1000 * timeScale,
    healthCheck: options.healthCheck === null
      ? null
      : {
          target: options.healthCheck,
          intervalMs: options.healthIntervalSeconds * 1000 * timeScale,
          timeoutMs: options.healthTimeoutSeconds * 1000 * timeScale,
          healthyThreshold: options.healthyThreshold,
          unhealthyThreshold: options.unhealthyThreshold,
          maxHeadBytes: options.maxHeadBytes
        }
  }
  const pool = new BackendPool(options.backends, balancerSettings)
  /** An instance to register at run time (library, admin API): refused, as at start, when no listener routes to it. */
  const routableAddress = (url: string | BackendAddress): BackendAddress => {
    const address = resolveBackendAddress(url)
    const unpaired = instanceWithoutListener(address, options.listeners.map((listener) => listener.protocol))
    if (unpaired !== null) throw new OptionError({ field: 'backends', label: 'url', value: url, rule: unpaired })
    return address
  }
  const stickiness = options.stickyDurationSeconds !== null
    ? new StickinessPolicy({ kind: 'duration', expirationSeconds: options.stickyDurationSeconds, loadBalancerName: options.name }, () => pool.instances)
    : options.stickyAppCookie !== null
      ? new StickinessPolicy({ kind: 'application', cookieName: options.stickyAppCookie, loadBalancerName: options.name }, () => pool.instances)
      : null
  const context = { options, pool, stickiness, clock, events }
  // Instances no longer registered, by id: their last state, for waitForInstanceState.
  const deregistered = new Map<string, InstanceState>()
  events.on('instance-state', (change) => {
    if (change.registered) deregistered.delete(change.instanceId)
    else deregistered.set(change.instanceId, change.current)
  })
  const connections = new Set<FrontEndConnection>()
  let whenAllClosed: (() => void) | null = null

  // Every observer below is a subscriber of the lifecycle events (docs/architecture.md); none is
  // on the data path. A destination that fails while the proxy runs is reported on the
  // diagnostics logger when it happens, once per kind of failure, and the proxy keeps serving.
  const onAccessLogProblem: NonNullable<Parameters<typeof createAccessLogWriter>[0]['onProblem']> = (problem, message) => {
    const details = problem.kind === 'write-error'
      ? { err: problem.error }
      : problem.kind === 'reopen-failed' ? { kind: problem.kind, file: problem.file, err: problem.error } : problem
    if (problem.kind === 'written-again') logger.info({ notice: 'access-log', ...details }, message)
    else if (problem.kind === 'close-waiting') logger.warn({ notice: 'access-log', ...details }, message)
    else logger.error({ notice: 'access-log', ...details }, message)
  }
  // Files laid out as CLB delivers them to S3 (spec §3.1); created first, so a bad directory fails
  // before any file opens. Named after the listener's bound address once it is known.
  let listenerIp = options.listen.host
  const accessLogDir = options.accessLogDir === null
    ? null
    : createAccessLogDirWriter({ dir: options.accessLogDir, emitIntervalMinutes: options.emitIntervalMinutes, loadBalancerName: options.name, ipAddress: () => listenerIp, clock, onProblem: onAccessLogProblem })
  let accessLog: AccessLogWriter | null = null
  if (hooks.accessLogStream !== undefined) accessLog = createAccessLogWriter({ stream: hooks.accessLogStream, onProblem: onAccessLogProblem })
  else if (options.accessLog !== null) accessLog = createAccessLogWriter({ destination: options.accessLog, onProblem: onAccessLogProblem })
  const writer = accessLog
  for (const destination of [writer, accessLogDir]) {
    if (destination === null) continue
    events.on('exchange', (record) => {
      // A line that cannot be written must not take the proxy down; say so on stderr instead.
      try { destination.write(record.log) } catch (error) { logger.error({ err: error }, 'access-log line not written') }
    })
  }
  // The capture writer decides each capture's file name when it first sees the record, so the
  // diagnostic of the same record can name the file and its replay command (captureFileFor).
  const captures = subscribeCaptures(events, options, logger)
  const unsubscribeDiagnostics = subscribeDiagnostics(events, logger, { ...options, captureFileFor: (record) => captures.fileFor(record) })
  const unsubscribeRecorder = subscribeRecorder(events, recorder)
  const metrics = new ClbMetrics({ loadBalancerName: options.name, sinceMicros: clock.nowMicros(), nowMicros: () => clock.nowMicros() })
  const unsubscribeMetrics = subscribeMetrics(events, metrics)
  // Every subscriber is in place: registering the instances now is seen by all of them.
  pool.start()

  // allowHalfOpen: a client may send its request and then FIN; it still gets its response.
  const serverOptions = { allowHalfOpen: true, noDelay: true }
  const tlsOptions = certificate === null
    ? null
    : {
        ...serverOptions,
        ...tlsServerOptionsFor(options.securityPolicy),
        cert: certificate.cert,
        key: certificate.key,
        // CLB-IDLE applies from the first byte: a client that never finishes its handshake is closed then.
        handshakeTimeout: options.idleTimeoutSeconds * 1000
      }
  const passthroughContext = { options, pool, clock, events, backendCa }
  const track = (connection: FrontEndConnection): void => { connections.add(connection) }
  const untrack = (closed: FrontEndConnection): void => {
    connections.delete(closed)
    if (connections.size === 0) whenAllClosed?.()
  }
  const tlsTransports = new Set<net.Socket>()
  const servers = options.listeners.map((listener) => {
    const layer7 = listener.protocol === 'http' || listener.protocol === 'https'
    const onConnection = layer7
      ? (socket: net.Socket) => track(new ClientConnection(socket, context, untrack))
      : (socket: net.Socket) => track(new PassthroughConnection(socket, passthroughContext, untrack))
    // An HTTPS or SSL listener hands its connections over after the handshake ('secureConnection').
    const server: net.Server = listener.protocol === 'https' || listener.protocol === 'ssl'
      ? tls.createServer(tlsOptions as tls.TlsOptions, onConnection)
      : net.createServer(serverOptions, onConnection)
    if (server instanceof tls.Server) {
      // Every TCP connection of a TLS listener, until it closes: one still in its handshake is not
      // a front-end connection yet, and close() must end it (those past it are closed by then).
      server.on('connection', (raw: net.Socket) => {
        tlsTransports.add(raw)
        raw.once('close', () => tlsTransports.delete(raw))
      })
    }
    server.listen({ host: listener.host, port: listener.port })
    return server
  })
  try {
    await Promise.all(servers.map(async (server) => await once(server, 'listening')))
  } catch (error) {
    await Promise.all(servers.map(async (server) => await new Promise<void>((resolve) => server.close(() => resolve()))))
    await pool.destroyAll()
    unsubscribeDiagnostics()
    await captures.close()
    await writer?.close()
    await accessLogDir?.close()
    throw error
  }
  const listeners: BoundListener[] = options.listeners.map((listener, index) => {
    const port = ((servers[index] as net.Server).address() as net.AddressInfo).port
    const bracketed = listener.host.includes(':') ? `[${listener.host}]` : listener.host
    return Object.freeze({ protocol: listener.protocol, host: listener.host, port, url: `${listener.protocol}://${bracketed}:${port}` })
  })
  listenerIp = ((servers[0] as net.Server).address() as net.AddressInfo).address
  const first = listeners[0] as BoundListener
  const address = { host: first.host, port: first.port }
  const url = first.url

  let closing: Promise<void> | null = null
  let closed = false
  const stateWaiters = new Set<{ closed: () => void }>()

  const currentState = (id: string): InstanceState | undefined => pool.find(id)?.state ?? deregistered.get(id)
  const waitForInstanceState = async (id: string, state: InstanceStateName, waitOptions: WaitForInstanceStateOptions = {}): Promise<InstanceState> => {
    // A state that does not exist, or an id this proxy never gave, would wait out the whole timeout for nothing.
    if (!INSTANCE_STATE_NAMES.includes(state)) throw new TypeError(`waitForInstanceState: state must be one of ${INSTANCE_STATE_NAMES.join(', ')}, got ${JSON.stringify(state)}`)
    const now = currentState(id)
    if (now === undefined) {
      const known = pool.instances.map((instance) => instance.id)
      throw new RangeError(`waitForInstanceState: no instance ${JSON.stringify(id)} was ever registered with this proxy (registered now: ${known.length === 0 ? 'none' : known.join(', ')})`)
    }
    if (now?.State === state) return now
    const timeoutMs = waitOptions.timeoutMs ?? 10000
    return await new Promise<InstanceState>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        events.off('instance-state', onChange)
        stateWaiters.delete(waiter)
      }
      const onChange = (): void => {
        const current = currentState(id)
        if (current?.State !== state) return
        done()
        resolve(current)
      }
      const waiter = {
        closed: () => {
          done()
          reject(new WaitForError('CLB_WAIT_FOR_CLOSED', `the proxy closed before instance ${id} was ${state}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        const last = currentState(id)
        reject(new WaitForError('CLB_WAIT_FOR_TIMEOUT', `instance ${id} was not ${state} within ${timeoutMs} ms (it is ${last === undefined ? 'not registered' : `${last.State}: ${last.Description}`})`))
      }, timeoutMs)
      if (closed) return waiter.closed()
      stateWaiters.add(waiter)
      events.on('instance-state', onChange)
    })
  }
  const close = async (): Promise<void> => {
    const serverClosed = Promise.all(servers.map(async (server) => await new Promise<void>((resolve) => server.close(() => resolve()))))
    for (const connection of connections) connection.closeWhenIdle()
    if (connections.size > 0) {
      const drained = new Promise<void>((resolve) => { whenAllClosed = resolve })
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, options.drainTimeoutSeconds * 1000) })
      await Promise.race([drained, deadline])
      clearTimeout(timer)
      for (const connection of connections) connection.closeAtDrainDeadline()
      // Each cut exchange finishes (and is logged) in its client connection's 'close' handler: wait
      // for those before the backend connections go, or a backend close would be judged first.
      await drained
    }
    // Clients that never finished their TLS handshake would hold server.close() until the handshake timeout.
    for (const raw of tlsTransports) raw.destroy()
    await serverClosed
    await pool.destroyAll()
    closed = true
    for (const waiter of [...stateWaiters]) waiter.closed()
    unsubscribeDiagnostics()
    try {
      // Independent of each other: a capture directory that fails must not keep the access log
      // from being flushed, nor the other way round.
      const [capturesClosed, accessLogClosed, accessLogDirClosed] = await Promise.allSettled([captures.close(), writer?.close(), accessLogDir?.close()])
      if (accessLogClosed.status === 'rejected') throw accessLogClosed.reason
      if (accessLogDirClosed.status === 'rejected') throw accessLogDirClosed.reason
      if (capturesClosed.status === 'rejected') throw capturesClosed.reason
    } finally {
      // After the drain, so an exchange that finished during it could still satisfy a waitFor;
      // in a finally, so a failed access-log flush still stops the admin listener and the waiters.
      recorder.close()
      unsubscribeRecorder()
      unsubscribeMetrics()
      await admin?.close()
    }
  }

  let admin: AdminServer | null = null
  if (options.admin !== null) {
    try {
      // Loaded only when asked for: fastify adds about 15 MiB to the resident set of every proxy.
      const { startAdminServer } = await import('../admin/admin-server.js')
      admin = await startAdminServer(options.admin, {
        metrics: () => metrics.snapshot(),
        metricStatistics: (metric, query) => metrics.statistics(metric, query),
        entries: () => recorder.entries(),
        captures: () => captures.list(),
        capturesSettled: () => captures.settled(),
        instances: () => pool.instances.map(describeInstance),
        register: (url) => describeInstance(pool.register(routableAddress(url))),
        deregister: (id) => pool.deregister(id),
        onEntry: (listener) => {
          recorder.on('entry', listener)
          return () => { recorder.off('entry', listener) }
        },
        onInstanceState: (listener) => {
          events.on('instance-state', listener)
          return () => { events.off('instance-state', listener) }
        }
      })
      // The admin API serves captures and can register instances: say so when it is reachable from elsewhere.
      if (!isLoopback(options.admin.host)) {
        logger.warn({ notice: 'admin-not-loopback', admin: admin.url }, `the admin listener ${admin.url} is bound beyond loopback: anyone who can reach it can read captures and register or deregister instances`)
      }
    } catch (error) {
      await close()
      throw error
    }
  }

  const proxy: ClbProxy = {
    url,
    address,
    listeners,
    certificate,
    options,
    events,
    adminUrl: admin?.url ?? null,
    on (event, listener) {
      if (event === 'request') recorder.on('entry', listener as never)
      else events.on(event, listener as never)
      return proxy
    },
    off (event, listener) {
      if (event === 'request') recorder.off('entry', listener as never)
      else events.off(event, listener as never)
      return proxy
    },
    entries: () => recorder.entries(),
    lines: () => recorder.lines(),
    waitFor: (predicate, waitOptions) => recorder.waitFor(predicate, waitOptions),
    captures: () => captures.list(),
    metrics: () => metrics.snapshot(),
    metricStatistics: (metric, query) => metrics.statistics(metric, query),
    openSockets: () => ({ clients: connections.size, backends: pool.openConnections }),
    instances: () => pool.instances.map(describeInstance),
    register: (url) => describeInstance(pool.register(routableAddress(url))),
    deregister: (id) => pool.deregister(id),
    waitForInstanceState,
    reopenAccessLog: () => {
      if (closing !== null) return false
      // Both, when both are set.
      const file = writer?.reopen() ?? false
      const dirFile = accessLogDir?.reopen() ?? false
      return file || dirFile
    },
    close: () => (closing ??= close())
  }
  return proxy
}

let selfSigned: ServerCertificate | null = null

/**
 * The certificate of the HTTPS and SSL listeners: the user's (tlsCert, tlsKey), checked now, or
 * one generated for localhost and 127.0.0.1; null when no listener needs one.
 */
function serverCertificateFor (options: ResolvedOptions): ServerCertificate | null {
  if (!options.listeners.some((listener) => listener.protocol === 'https' || listener.protocol === 'ssl')) return null
  // Generated once per process (an RSA key takes 0.1-0.5 s): every proxy a test suite starts shares it.
  if (options.tlsCert === null || options.tlsKey === null) return (selfSigned ??= generateSelfSignedCertificate())
  try {
    return loadServerCertificate(readOptionFile('tlsCert', options.tlsCert), readOptionFile('tlsKey', options.tlsKey))
  } catch (error) {
    if (!(error instanceof ServerCertificateError)) throw error
    throw new OptionError({ field: error.field, value: options[error.field], rule: `must be ${error.field === 'tlsCert' ? 'a PEM certificate' : 'the PEM private key of tlsCert'}: ${error.message}` })
  }
}

/** backendCa's file: PEM text with at least one certificate (a key or anything else would make every handshake fail). */
function readCaFile (path: string): string {
  const text = readOptionFile('backendCa', path)
  try {
    // eslint-disable-next-line no-new -- parsing is the check
    new X509Certificate(text)
  } catch (error) {
    throw new OptionError({ field: 'backendCa', value: path, rule: `must be a PEM CA certificate file (${(error as Error).message})` })
  }
  return text
}

/** The text of a file an option names; an OptionError naming the field when it cannot be read. */
function readOptionFile (field: 'backendCa' | 'tlsCert' | 'tlsKey', path: string): string {
  try {
    return readFileSync(path, 'latin1')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error)
    throw new OptionError({ field, value: path, rule: `must be a readable file (${code})` })
  }
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
