/**
 * Serving: `serve()` starts the proxy in front of the backends, or in front of the built-in demo
 * backend when none is given, prints its banner, waits for SIGINT/SIGTERM and stops it, letting
 * in-flight requests finish. A start or stop failure becomes one line that names the address or
 * file and the system error, and an exit code.
 */
// Type-only: erased at runtime. The modules themselves are imported in serve().
import type { ClbProxy } from '../library/clb-proxy.js'
import type { DemoBackend } from '../byte-servers/demo-backend.js'
import type { BackendAddress, ClbProxyOptions, ResolvedOptions } from '../core/options.js'
import { OptionError } from '../core/resolve-options.js'
import { EXIT_FAILURE, EXIT_OK, listenForStop, usageError, type CliIo } from './command-line.js'

// Entries kept for the admin listener's /entries when the CLI runs with --admin.
const CLI_RECORDED_ENTRIES_WITH_ADMIN = 1000

/**
 * The proxy modules are imported here, not at the top: --help, --version and a bad option are
 * answered without loading the proxy and its dependencies.
 */
export async function serve(options: ClbProxyOptions, resolved: ResolvedOptions, io: CliIo): Promise<number> {
  const stop = listenForStop(io.signals ?? process)
  let demo: { readonly backend: DemoBackend; readonly formatTryTable: (proxyUrl: string) => string } | undefined
  let proxy: ClbProxy | undefined
  try {
    let backends: readonly (BackendAddress | string)[] = resolved.backends
    if (backends.length === 0) {
      const { startDemoBackend, formatTryTable } = await import('../byte-servers/demo-backend.js')
      try {
        demo = { backend: await startDemoBackend({ host: '127.0.0.1', port: 0 }), formatTryTable }
      } catch (error) {
        io.stderr.write(`clb-proxy: cannot start the demo backend on 127.0.0.1: ${describeSystemError(error)}\n`)
        return EXIT_FAILURE
      }
      backends = [{ host: demo.backend.host, port: demo.backend.port }]
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
      proxy = await startClbProxy({ ...options, backends }, {
        maxRecordedEntries,
        ...(accessLogStream === undefined ? {} : { accessLogStream }),
        ...(logger === undefined ? {} : { logger })
      })
    } catch (error) {
      if (error instanceof OptionError) return usageError(io, error.message)
      io.stderr.write(`clb-proxy: ${describeStartFailure(error, resolved)}\n`)
      return EXIT_FAILURE
    }

    io.stderr.write(
      demo === undefined
        ? backendsBanner(proxy, resolved)
        : demoBanner(proxy, demo.backend, demo.formatTryTable(proxy.url), resolved)
    )
    if (proxy.adminUrl !== null) io.stderr.write(`clb-proxy: admin listener on ${proxy.adminUrl} (/metrics, /entries, /captures, /healthz)\n`)
    const signal = await stop.stopped
    stop.dispose() // a second Ctrl-C now gets Node's default: quit at once
    io.stderr.write(
      `clb-proxy: ${signal} received; letting in-flight requests finish (up to ${resolved.drainTimeoutSeconds} s)\n`
    )
    const running = proxy
    proxy = undefined
    try {
      await running.close()
    } catch (error) {
      io.stderr.write(`clb-proxy: error while stopping: ${describeSystemError(error)}\n`)
      return EXIT_FAILURE
    }
    return EXIT_OK
  } finally {
    stop.dispose()
    await proxy?.close()
    await demo?.backend.close()
  }
}

function hostPort(address: { readonly host: string; readonly port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

function accessLogText(accessLog: string | null): string {
  if (accessLog === null) return 'off'
  return accessLog === '-' ? 'stdout' : accessLog
}

function backendsBanner(proxy: ClbProxy, resolved: ResolvedOptions): string {
  const backends = resolved.backends.map((backend) => `http://${hostPort(backend)}`).join(', ')
  return `clb-proxy: listening on ${proxy.url}, forwarding to ${backends} (access log: ${accessLogText(resolved.accessLog)})\n`
}

function demoBanner(proxy: ClbProxy, demo: DemoBackend, tryTable: string, resolved: ResolvedOptions): string {
  return [
    `clb-proxy: listening on ${proxy.url} (access log: ${accessLogText(resolved.accessLog)})`,
    `clb-proxy: no --backend given, so requests go to the built-in demo backend at ${demo.url}`,
    '',
    tryTable.replace(/\n+$/, ''),
    '',
    'Press Ctrl-C to stop.',
    ''
  ].join('\n')
}

/** EADDRINUSE and friends as one line that names the address; anything else by its message. */
function describeStartFailure(error: unknown, resolved: ResolvedOptions): string {
  const systemError = error as NodeJS.ErrnoException & { address?: unknown; port?: unknown }
  if (systemError.syscall === 'listen' || systemError.syscall === 'bind') {
    const address =
      typeof systemError.address === 'string' && typeof systemError.port === 'number'
        ? hostPort({ host: systemError.address, port: systemError.port })
        : hostPort(resolved.listen)
    return `cannot listen on ${address}: ${describeSystemError(error)}`
  }
  if (systemError.syscall === 'getaddrinfo') {
    return `cannot listen on ${hostPort(resolved.listen)}: ${describeSystemError(error)}`
  }
  if (systemError.syscall === 'open' && typeof systemError.path === 'string') {
    return `cannot open the access log ${systemError.path}: ${describeSystemError(error)}`
  }
  return `cannot start: ${describeSystemError(error)}`
}

const SYSTEM_ERROR_TEXT: Readonly<Record<string, string>> = Object.freeze({
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'the address is not available on this machine',
  ENOTFOUND: 'the host name was not found',
  EAI_AGAIN: 'the host name could not be resolved right now',
  ENOENT: 'no such file or directory',
  EISDIR: 'it is a directory'
})

function describeSystemError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === 'string') {
    const text = SYSTEM_ERROR_TEXT[code]
    if (text !== undefined) return `${text} (${code})`
  }
  return error instanceof Error ? error.message : String(error)
}
