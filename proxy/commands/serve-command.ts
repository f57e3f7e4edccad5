/**
 * Serving: `serve()` starts the proxy in front of the backends, or in front of two instances of the
 * built-in demo backend (demo-a, demo-b) behind a fast health check when none is given, prints its
 * banner, waits for SIGINT/SIGTERM and stops it, letting in-flight requests finish. A start or stop
 * failure becomes one line that names the address or file and the system error, and an exit code.
 */
import path from 'node:path'
import { isIP } from 'node:net'
// Type-only: erased at runtime. The modules themselves are imported in serve().
import type { ClbProxy } from '../library/clb-proxy.js'
import type { DemoBackend } from '../byte-servers/demo-backend.js'
import type { MachineCertificate } from './machine-certificate.js'
import type { BackendAddress, ClbProxyOptions, ListenerProtocol, ResolvedOptions } from '../core/options.js'
// Small modules the option resolver loads anyway.
import { CLB_DEFAULTS, instanceProtocolOf, isLayer7 } from '../core/options.js'
import { formatHealthCheckTarget } from '../core/health-check-target.js'
import { OptionError } from '../core/resolve-options.js'
import { EXIT_FAILURE, EXIT_OK, listenForStop, usageError, type CliIo } from './command-line.js'
import { OPTION_FLAGS } from './option-flags.js'

// Entries kept for the admin listener's /entries when the CLI runs with --admin.
const CLI_RECORDED_ENTRIES_WITH_ADMIN = 1000

/** The demo's instances, in registration order: two, so that one can fail while the other serves. */
export const DEMO_INSTANCE_NAMES: readonly string[] = Object.freeze(['demo-a', 'demo-b'])

/**
 * The demo's health check: CLB's minimums (API-HC HealthCheck: Interval 5-300 s, Timeout 2-60 s,
 * thresholds 2-10), so an instance that starts failing leaves service within about 10 s. CLB's
 * defaults (CLB_DEFAULTS: 30 s, 5 s, HealthyThreshold 10) would keep a first-time user waiting minutes.
 */
export const DEMO_HEALTH_CHECK = Object.freeze({
  healthCheck: 'HTTP:/health',
  healthIntervalSeconds: 5,
  healthTimeoutSeconds: 2,
  healthyThreshold: 2,
  unhealthyThreshold: 2
})

type HealthField = keyof typeof DEMO_HEALTH_CHECK
const HEALTH_FIELDS_COUNT = Object.keys(DEMO_HEALTH_CHECK).length

/** How the banner names a health option the user set (by flag or environment variable). */
const HEALTH_FIELD_TEXT: Readonly<Record<HealthField, string>> = Object.freeze({
  healthCheck: 'target',
  healthIntervalSeconds: 'interval',
  healthTimeoutSeconds: 'timeout',
  healthyThreshold: 'healthy threshold',
  unhealthyThreshold: 'unhealthy threshold'
})

type DemoModule = typeof import('../byte-servers/demo-backend.js')

interface DemoRun {
  readonly module: DemoModule
  /** The instances started so far, in DEMO_INSTANCE_NAMES order. */
  readonly instances: DemoBackend[]
  /** The 503 status line CLB answers when no instance is in service. */
  readonly noInstanceStatusLine: string
}

/** How the command line names an option: the flag or the environment variable that set it (cli.ts). */
export interface OptionNaming {
  /** `--access-log`, or `CLB_ACCESS_LOG` when that variable set it. */
  nameOf (field: string): string
  /** A bad option's sentence, naming it so. */
  describe (error: OptionError): string
}

/**
 * The proxy modules are imported here, not at the top: --help, --version and a bad option are
 * answered without loading the proxy and its dependencies.
 */
export async function serve(options: ClbProxyOptions, resolved: ResolvedOptions, io: CliIo, naming: OptionNaming): Promise<number> {
  const signals = io.signals ?? process
  const stop = listenForStop(signals)
  let demo: DemoRun | undefined
  let proxy: ClbProxy | undefined
  let stopping = false
  // Log rotation (logrotate's postrotate `kill -USR2 <pid>`): the access-log file is opened again
  // by its path. Listened to from the start to the end: without a listener SIGUSR2 terminates.
  const reopenAccessLog = (): void => {
    if (proxy === undefined) {
      return void io.stderr.write(`clb-proxy: SIGUSR2 received ${stopping ? 'while stopping' : 'while starting'}; the access log is not reopened\n`)
    }
    const reopened = proxy.reopenAccessLog()
    io.stderr.write(reopened
      ? 'clb-proxy: SIGUSR2 received; access log reopened\n'
      : 'clb-proxy: SIGUSR2 received; no access-log file was reopened (stdout, no file open yet, or its open failed: see above)\n')
  }
  signals.on('SIGUSR2', reopenAccessLog)
  try {
    let backends: readonly (BackendAddress | string)[] = resolved.backends
    let proxyOptions = options
    if (backends.length === 0) {
      const module = await import('../byte-servers/demo-backend.js')
      const { SYNTHETIC_RESPONSES } = await import('../data-path/synthetic-responses.js')
      const noInstanceStatusLine = SYNTHETIC_RESPONSES[503].toString('latin1').split('\r\n')[0] ?? ''
      demo = { module, instances: [], noInstanceStatusLine }
      try {
        for (const name of DEMO_INSTANCE_NAMES) {
          demo.instances.push(await module.startDemoBackend({ host: '127.0.0.1', port: 0, name }))
        }
      } catch (error) {
        io.stderr.write(`clb-proxy: cannot start the demo backend on 127.0.0.1: ${describeSystemError(error)}\n`)
        return EXIT_FAILURE
      }
      // CLB-LISTEN pairs HTTP/HTTPS listeners with http instances and TCP/SSL listeners with tcp
      // ones: the demo instances are registered for each kind of listener given (as http, as tcp,
      // or both), and never as an instance no listener routes to.
      const http = resolved.listeners.some((listener) => isLayer7(listener.protocol))
      const tcp = resolved.listeners.some((listener) => !isLayer7(listener.protocol))
      backends = [
        ...(http ? demo.instances.map((instance) => ({ host: instance.host, port: instance.port })) : []),
        ...(tcp ? demo.instances.map((instance) => ({ host: instance.host, port: instance.port, protocol: 'tcp' as const })) : [])
      ]
      // Through startClbProxy, so the demo's values pass the same resolveOptions as the user's.
      proxyOptions = withDemoHealthCheck(options)
    }

    // HTTPS/SSL listeners without --tls-cert: the user's saved self-signed certificate (made once,
    // reused across runs and proxies, so one `curl --cacert` or browser exception keeps working).
    let machine: MachineCertificate | null = null
    if (resolved.tlsCert === null && resolved.listeners.some((listener) => listener.protocol === 'https' || listener.protocol === 'ssl')) {
      machine = (await import('./machine-certificate.js')).machineCertificate()
      if (machine !== null) proxyOptions = { ...proxyOptions, tlsCert: machine.certFile, tlsKey: machine.keyFile }
    }

    const { startClbProxy } = await import('../library/clb-proxy.js')
    try {
      // '-' means this run's stdout. For the real process the library writes to fd 1 itself
      // (buffered); an in-process caller's stream is handed over so the lines reach it.
      const accessLogStream = resolved.accessLog === '-' && io.stdout !== process.stdout ? io.stdout : undefined
      // Only the admin listener's /entries reads recorded entries; without it the CLI keeps none
      // (the access log already has every line), so a long run holds no per-request memory.
      const maxRecordedEntries = resolved.admin === null ? 0 : CLI_RECORDED_ENTRIES_WITH_ADMIN
      // Diagnostics: plain text for a person at a terminal, pino's JSON lines for pipes and files.
      const logger = (io.stderr as { isTTY?: boolean }).isTTY === true
        ? (await import('../observers/diagnostics-text.js')).textLogger(io.stderr)
        : undefined
      proxy = await startClbProxy({ ...proxyOptions, backends }, {
        maxRecordedEntries,
        ...(accessLogStream === undefined ? {} : { accessLogStream }),
        ...(logger === undefined ? {} : { logger })
      })
    } catch (error) {
      // A file an option names that cannot be used (tlsCert, tlsKey, backendCa), found at start.
      if (error instanceof OptionError) return usageError(io, naming.describe(error))
      io.stderr.write(`clb-proxy: ${describeStartFailure(error, resolved, naming)}\n`)
      return EXIT_FAILURE
    }

    if (demo !== undefined) await firstHealthChecks(proxy)
    io.stderr.write(demo === undefined ? backendsBanner(proxy, resolved) + healthCheckNotice(proxy, options) : demoBanner(proxy, demo, options, resolved, machine))
    io.stderr.write(listenersBanner(proxy, machine) + unusedOptionsNotice(proxy, options))
    if (proxy.adminUrl !== null) io.stderr.write(`clb-proxy: admin listener on ${proxy.adminUrl} (dashboard at /; /metrics, /metrics.json, /entries, /captures, /instances, /healthz)\n`)
    const signal = await stop.stopped
    stopping = true
    stop.dispose() // a second Ctrl-C now gets Node's default: quit at once
    io.stderr.write(
      `clb-proxy: ${signal} received; letting in-flight requests finish (up to ${resolved.drainTimeoutSeconds} s)\n`
    )
    const running = proxy
    proxy = undefined
    try {
      await running.close()
    } catch (error) {
      io.stderr.write(`clb-proxy: error while stopping: ${describeStopFailure(error, resolved)}\n`)
      return EXIT_FAILURE
    }
    return EXIT_OK
  } finally {
    stop.dispose()
    stopping = true
    await proxy?.close()
    await Promise.all(demo?.instances.map((instance) => instance.close()) ?? [])
    signals.removeListener('SIGUSR2', reopenAccessLog)
  }
}

/**
 * The user's health options win, each on its own (flag or environment variable); the demo's
 * settings fill the others.
 */
export function withDemoHealthCheck(options: ClbProxyOptions): ClbProxyOptions {
  const userTimeout = options.healthTimeoutSeconds
  return {
    ...options,
    healthCheck: options.healthCheck === undefined ? DEMO_HEALTH_CHECK.healthCheck : options.healthCheck,
    // API-HC HealthCheck.Timeout: "This value must be less than the Interval value": a timeout of
    // the user's at or above the demo's interval moves the interval just past it.
    healthIntervalSeconds:
      options.healthIntervalSeconds ?? Math.max(DEMO_HEALTH_CHECK.healthIntervalSeconds, (userTimeout ?? 0) + 1),
    healthTimeoutSeconds: userTimeout ?? DEMO_HEALTH_CHECK.healthTimeoutSeconds,
    healthyThreshold: options.healthyThreshold ?? DEMO_HEALTH_CHECK.healthyThreshold,
    unhealthyThreshold: options.unhealthyThreshold ?? DEMO_HEALTH_CHECK.unhealthyThreshold
  }
}

/**
 * Resolves once every instance has had its first health check, or after one health-check timeout
 * and a second. A new instance is in service after its first passing check (CLB-CW
 * HealthyHostCount), so the banner shows settled states, its diagnostic lines come before the
 * banner, and a first request does not meet "registration in progress".
 */
async function firstHealthChecks(proxy: ClbProxy): Promise<void> {
  if (proxy.options.healthCheck !== null) {
    const waiting = new Set(
      proxy.instances().filter((instance) => instance.LastChecks.length === 0).map((instance) => instance.InstanceId)
    )
    if (waiting.size > 0) {
      await new Promise<void>((resolve) => {
        const onCheck = ({ instanceId }: { readonly instanceId: string }): void => {
          waiting.delete(instanceId)
          if (waiting.size === 0) done()
        }
        const done = (): void => {
          clearTimeout(timer)
          proxy.off('health-check', onCheck)
          resolve()
        }
        const timer = setTimeout(done, (proxy.options.healthTimeoutSeconds + 1) * 1000)
        proxy.on('health-check', onCheck)
      })
    }
  }
  // The state change a check causes is emitted after its 'health-check' event, and a diagnostics
  // stream may hold a line for a tick: let both reach stderr before the banner does.
  await new Promise<void>((resolve) => setImmediate(resolve))
}

function hostPort(address: { readonly host: string; readonly port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

function accessLogText(accessLog: string | null): string {
  if (accessLog === null) return 'off'
  return accessLog === '-' ? 'stdout' : accessLog
}

/**
 * With --health-check: one line that says how instances are checked. Without it, but with a
 * health-check setting: one line that says the setting does nothing (no check runs, every instance
 * is in service), instead of ignoring it in silence.
 */
function healthCheckNotice(proxy: ClbProxy, options: ClbProxyOptions): string {
  const resolved = proxy.options
  if (resolved.healthCheck !== null) {
    return `clb-proxy: health check ${formatHealthCheckTarget(resolved.healthCheck)} every ${resolved.healthIntervalSeconds} s, ` +
      `timeout ${resolved.healthTimeoutSeconds} s, healthy threshold ${resolved.healthyThreshold}, unhealthy threshold ${resolved.unhealthyThreshold}; ` +
      'each instance is OutOfService until its first check passes\n'
  }
  const flags = (Object.keys(DEMO_HEALTH_CHECK) as HealthField[])
    .filter((field) => field !== 'healthCheck' && options[field] !== undefined)
    .map((field) => `--${OPTION_FLAGS.find((option) => option.field === field)?.flag ?? field}`)
  if (flags.length === 0) return ''
  return `clb-proxy: ${flags.join(', ')} ${flags.length === 1 ? 'has' : 'have'} no effect without --health-check: no health check runs, every instance is in service\n`
}

function backendsBanner(proxy: ClbProxy, resolved: ResolvedOptions): string {
  // A backend given twice is one registered instance (its id comes from its address).
  const backends = [...new Set(resolved.backends.map((backend) => `${instanceProtocolOf(backend)}://${hostPort(backend)}`))].join(', ')
  const listening = proxy.listeners.map((listener) => listener.url).join(', ')
  return `clb-proxy: listening on ${listening}, forwarding to ${backends} (access log: ${accessLogText(resolved.accessLog)})\n`
}

/**
 * With more than the one HTTP listener: what each listener does, how to try a TCP one, what proxy
 * protocol does to an instance that does not expect it, and which certificate HTTPS/SSL use.
 */
function listenersBanner(proxy: ClbProxy, machine: MachineCertificate | null): string {
  const listeners = proxy.listeners
  if (listeners.length === 1 && listeners[0]?.protocol === 'http') return ''
  const trust = machine === null ? '-k' : `--cacert ${machine.certFile}`
  const width = Math.max(...listeners.map((listener) => listener.url.length))
  const lines = ['Listeners (one access log for all):']
  for (const listener of listeners) {
    lines.push(`  ${listener.url.padEnd(width)}  ${LISTENER_TEXT[listener.protocol]}`)
    if (isLayer7(listener.protocol)) continue
    const curl = `curl -i ${listener.protocol === 'ssl' ? `${trust} https` : 'http'}://${hostPort(listener)}/`
    if (proxy.options.proxyProtocol) {
      lines.push('      proxy protocol v1 is on: each connection starts with "PROXY TCP4 <client> <listener> <ports>"',
        '      An instance that does not expect it answers 400 to every request (the classic misconfiguration):',
        `        ${curl}`)
    } else {
      lines.push(`      bytes pass unchanged (a WebSocket works here, not on an HTTP listener): ${curl}`)
    }
  }
  const certificate = proxy.certificate
  if (certificate !== null) {
    lines.push('')
    if (machine !== null) {
      const names = certificate.subjectAltNames.map((name) => name.replace(/^[^:]+:/, '').replace(/^0:0:0:0:0:0:0:1$/, '::1'))
      lines.push(`HTTPS and SSL listeners use your self-signed certificate for ${names.join(', ')} (${machine.reused ? 'made earlier, reused' : 'made now'});`,
        `  trust it with curl --cacert ${machine.certFile}`)
    } else if (proxy.options.tlsCert === null) {
      lines.push('HTTPS and SSL listeners use a self-signed certificate made in memory (it could not be saved); curl needs -k')
    } else {
      lines.push(`HTTPS and SSL listeners use the certificate ${proxy.options.tlsCert}`)
    }
    lines.push(`  SHA-256 fingerprint ${certificate.fingerprint256}`, `  security policy ${proxy.options.securityPolicy}`)
  }
  return lines.join('\n') + '\n'
}

/** Options that change nothing with these listeners and instances: said, instead of ignored in silence. */
function unusedOptionsNotice(proxy: ClbProxy, options: ClbProxyOptions): string {
  const resolved = proxy.options
  const hasTls = resolved.listeners.some((listener) => listener.protocol === 'https' || listener.protocol === 'ssl')
  const hasPassthrough = resolved.listeners.some((listener) => !isLayer7(listener.protocol))
  const tlsInstances = resolved.backends.some((backend) => instanceProtocolOf(backend) === 'https' || instanceProtocolOf(backend) === 'ssl')
  const unused: string[] = []
  if (resolved.proxyProtocol && !hasPassthrough) unused.push('--proxy-protocol applies to tcp and ssl listeners only')
  if (!hasTls && (options.tlsCert !== undefined || options.securityPolicy !== undefined)) unused.push('--tls-cert, --tls-key and --security-policy apply to https and ssl listeners only')
  if (resolved.backendCa !== null && !tlsInstances) unused.push('--backend-ca applies to https:// and ssl:// instances only')
  return unused.map((text) => `clb-proxy: ${text}: it has no effect here\n`).join('')
}

const LISTENER_TEXT: Readonly<Record<ListenerProtocol, string>> = Object.freeze({
  http: 'HTTP, to http/https instances',
  https: 'HTTPS (TLS ends here), to http/https instances',
  tcp: 'TCP, bytes passed through to tcp/ssl instances, round robin; a log line per connection',
  ssl: 'SSL (TLS ends here), bytes passed through to tcp/ssl instances, round robin'
})

/**
 * The demo's table of curl commands, through the first HTTP or HTTPS listener (an HTTPS one with
 * the certificate to trust); with only TCP/SSL listeners there is no table: their bytes pass
 * unchanged, so the defect routes come back as the instance wrote them, with no 502 of ours.
 */
function demoTryBlock(proxy: ClbProxy, demo: DemoRun, machine: MachineCertificate | null): string {
  const listener = proxy.listeners.find((candidate) => isLayer7(candidate.protocol))
  if (listener === undefined) {
    return [
      'Your listeners are TCP/SSL only: bytes pass through unchanged, so the demo\'s defect routes reach',
      'the client as the instance wrote them (a CLB answers 502 for them on HTTP/HTTPS listeners only).'
    ].join('\n')
  }
  const base = listener.protocol === 'http'
    ? listener.url
    : `${machine === null ? '-k' : `--cacert ${machine.certFile}`} https://${hostPort(listener)}`
  return demo.module.formatTryTable(base).replace(/\n+$/, '')
}

function demoBanner(proxy: ClbProxy, demo: DemoRun, userOptions: ClbProxyOptions, resolved: ResolvedOptions, machine: MachineCertificate | null): string {
  const names = demo.instances.map((instance) => instance.name ?? instance.url)
  return [
    `clb-proxy: listening on ${proxy.listeners.map((listener) => listener.url).join(', ')} (access log: ${accessLogText(resolved.accessLog)})`,
    `clb-proxy: no --backend given, so requests go to the built-in demo backend: two instances, ${names.join(' and ')}`,
    ...(proxy.instances().length > demo.instances.length
      ? ['clb-proxy: each is registered twice, as http:// for the HTTP/HTTPS listeners and as tcp:// (its own instance id) for the TCP/SSL ones']
      : []),
    '',
    demoTryBlock(proxy, demo, machine),
    '',
    ...demoHealthBlock(proxy, demo, userOptions),
    '',
    'Press Ctrl-C to stop.',
    ''
  ].join('\n')
}

/** The instances, the health check, and how to take one out of service and what follows. */
function demoHealthBlock(proxy: ClbProxy, demo: DemoRun, userOptions: ClbProxyOptions): string[] {
  const settings = proxy.options
  const { DEMO_HEALTH_PATH, DEMO_HEALTH_FAIL_PATH, DEMO_HEALTH_PASS_PATH, DEMO_INSTANCE_HEADER } = demo.module
  const described = proxy.instances()
  const rows = demo.instances.map((instance) => {
    const description = described.find((candidate) => candidate.Address === hostPort(instance))
    return {
      name: instance.name ?? '',
      id: description?.InstanceId ?? '-',
      address: hostPort(instance),
      url: instance.url,
      state: description?.State ?? '-'
    }
  })
  const nameWidth = Math.max(...rows.map((row) => row.name.length))
  const urlWidth = Math.max(...rows.map((row) => row.url.length))
  const table = rows.map((row) => `  ${row.name.padEnd(nameWidth)}  ${row.id}  ${row.url.padEnd(urlWidth)}  ${row.state}`)
  const target = settings.healthCheck
  // Not from the command line, where --health-check takes a target and the demo fills one in.
  if (target === null) {
    return ['Health checks are off: every registered instance is in service.', '', ...table]
  }

  const userSet = (Object.keys(DEMO_HEALTH_CHECK) as HealthField[]).filter((field) => userOptions[field] !== undefined)
  const whose =
    userSet.length === 0
      ? "the demo's settings: CLB's minimums, so that a change shows within seconds"
      : userSet.length === HEALTH_FIELDS_COUNT
        ? 'all yours'
        : `yours: ${userSet.map((field) => HEALTH_FIELD_TEXT[field]).join(', ')}; the rest are the demo's`
  const lines = [
    `Health checks (${whose}):`,
    `  target ${formatHealthCheckTarget(target)}, every ${settings.healthIntervalSeconds} s, timeout ${settings.healthTimeoutSeconds} s, ` +
      `healthy threshold ${settings.healthyThreshold}, unhealthy threshold ${settings.unhealthyThreshold}`,
    `  (CLB's defaults: every ${CLB_DEFAULTS.healthIntervalSeconds} s, timeout ${CLB_DEFAULTS.healthTimeoutSeconds} s, ` +
      `healthy threshold ${CLB_DEFAULTS.healthyThreshold}, unhealthy threshold ${CLB_DEFAULTS.unhealthyThreshold})`,
    '',
    ...table
  ]
  // The walk-through needs the demo's own check: an HTTP GET of /health on each instance's port.
  if (target.protocol !== 'HTTP' || target.port !== null || target.path !== DEMO_HEALTH_PATH) {
    lines.push(
      '',
      `  Your health check does not request ${DEMO_HEALTH_PATH} on each instance's own port, so the demo's`,
      `  ${DEMO_HEALTH_FAIL_PATH} and ${DEMO_HEALTH_PASS_PATH} switches do not change what it sees.`
    )
    return lines
  }
  const [first, second] = rows
  if (first === undefined || second === undefined) return lines
  const failSeconds = settings.unhealthyThreshold * settings.healthIntervalSeconds
  const passSeconds = settings.healthyThreshold * settings.healthIntervalSeconds
  lines.push(
    '',
    // CLB-LISTEN: HTTP/HTTPS listeners route each request to the least busy instance; TCP/SSL
    // listeners each connection to the next instance in turn.
    settings.listeners.some((listener) => isLayer7(listener.protocol))
      ? `  Requests go to both (least outstanding requests, ties take turns); curl -i shows which one`
      : `  Connections go to both in turn (round robin, as TCP/SSL listeners route); curl -i shows which one`,
    `  answered in its ${DEMO_INSTANCE_HEADER} header, and the access log names its port.`,
    '',
    `  Make ${first.name} fail its health check. Ask ${first.name} directly: through the proxy the request`,
    '  would reach whichever instance the load balancer picks.',
    `    curl ${first.url}${DEMO_HEALTH_FAIL_PATH}`,
    `  After ${settings.unhealthyThreshold} failed checks (within about ${failSeconds} s) stderr shows`,
    `    instance ${first.id} (${first.address}): InService -> OutOfService (Instance: ...)`,
    `  and every request goes to ${second.name}. Make ${second.name} fail too`,
    `    curl ${second.url}${DEMO_HEALTH_FAIL_PATH}`,
    '  and with no instance in service the proxy answers every request itself, as CLB does:',
    `    ${demo.noInstanceStatusLine}`,
    `  Make ${first.name} pass again (InService after ${settings.healthyThreshold} passed checks, within about ${passSeconds} s):`,
    `    curl ${first.url}${DEMO_HEALTH_PASS_PATH}`
  )
  return lines
}

/** EADDRINUSE and friends as one line that names the address; anything else by its message. */
function describeStartFailure(error: unknown, resolved: ResolvedOptions, naming: OptionNaming): string {
  const systemError = error as NodeJS.ErrnoException & { address?: unknown; port?: unknown; hostname?: unknown }
  // The admin listener opens after the proxy's own: an address only it asked for is its failure.
  const admin = resolved.admin
  const forAdmin = (matches: (where: { host: string, port: number }) => boolean): string =>
    admin !== null && matches(admin) && !resolved.listeners.some(matches) ? ' for the admin listener' : ''
  if (systemError.syscall === 'listen' || systemError.syscall === 'bind') {
    if (typeof systemError.address !== 'string' || typeof systemError.port !== 'number') return `cannot listen on ${hostPort(resolved.listen)}: ${describeSystemError(error)}`
    const { address, port } = systemError as { address: string, port: number }
    // A host name (localhost) is resolved before the bind: its port alone tells.
    const bound = (where: { host: string, port: number }): boolean => where.port === port && (where.host === address || isIP(where.host) === 0)
    return `cannot listen on ${hostPort({ host: address, port })}${forAdmin(bound)}: ${describeSystemError(error)}`
  }
  if (systemError.syscall === 'getaddrinfo') {
    // The address whose host name could not be resolved: a listener's, or the admin listener's.
    const named = (where: { host: string }): boolean => where.host === systemError.hostname
    const where = resolved.listeners.find(named) ?? (admin !== null && named(admin) ? admin : resolved.listen)
    return `cannot listen on ${hostPort(where)}${forAdmin(named)}: ${describeSystemError(error)}`
  }
  if (systemError.syscall === 'open' && typeof systemError.path === 'string') {
    return `cannot open the access log ${systemError.path}: ${describeSystemError(error)}`
  }
  if (systemError.syscall === 'mkdir' && typeof systemError.path === 'string') {
    return `cannot create the folder ${systemError.path}${folderOwner(systemError.path, resolved, naming)}: ${describeSystemError(error)}`
  }
  return `cannot start: ${describeSystemError(error)}`
}

/**
 * ` for --flag` (or ` for CLB_VARIABLE`, as it was set) when the folder is on the path of that
 * option's value (the options that create folders).
 */
function folderOwner (folder: string, resolved: ResolvedOptions, naming: OptionNaming): string {
  const target = path.resolve(folder)
  const owners: Array<[string, string | null]> = [
    ['accessLog', resolved.accessLog === '-' ? null : resolved.accessLog],
    ['accessLogDir', resolved.accessLogDir],
    ['captureDir', resolved.captureDir]
  ]
  for (const [field, value] of owners) {
    if (value === null) continue
    const resolvedValue = path.resolve(value)
    if (resolvedValue === target || resolvedValue.startsWith(`${target}${path.sep}`)) return ` for ${naming.nameOf(field)}`
  }
  return ''
}

const SYSTEM_ERROR_TEXT: Readonly<Record<string, string>> = Object.freeze({
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'the address is not available on this machine',
  ENOTFOUND: 'the host name was not found',
  EAI_AGAIN: 'the host name could not be resolved right now',
  ENOENT: 'no such file or directory',
  EISDIR: 'it is a directory',
  EEXIST: 'a file of that name is in the way',
  ENOTDIR: 'a part of the path is a file, not a folder'
})

/**
 * Why a stop was not clean. Only the access log writes to a pipe: an EPIPE means its reader went
 * away (stdout in `clb-proxy | head -1`, or a FIFO or /dev/stdout named by --access-log), reported
 * when it happened; the lines logged since were dropped, so the stop is not clean (exit 1), and
 * this says why in the user's words.
 */
function describeStopFailure(error: unknown, resolved: ResolvedOptions): string {
  if ((error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE') {
    if (resolved.accessLog !== '-' && resolved.accessLog !== null) return `the access log ${resolved.accessLog} lost lines: its reader went away while the proxy ran (EPIPE, reported then)`
    return 'the access log on stdout lost lines: its reader went away while the proxy ran (EPIPE, reported then); ' +
      'to keep every line, log to a file (--access-log FILE) or keep the reader until the proxy stops'
  }
  return describeSystemError(error)
}

function describeSystemError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === 'string') {
    const text = SYSTEM_ERROR_TEXT[code]
    if (text !== undefined) return `${text} (${code})`
  }
  return error instanceof Error ? error.message : String(error)
}
