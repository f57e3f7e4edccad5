/**
 * The command line: a thin adapter that turns flags and environment variables into the same
 * ClbProxyOptions the library takes, validates them in full before anything listens, starts the
 * proxy (and the demo backend when no --backend is given), and stops on SIGINT/SIGTERM.
 *
 * Exit codes: 0 after --help, --version or a clean stop; 1 when the proxy could not start (or
 * stop) cleanly; 2 for a bad flag, flag value or environment value.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
// Type-only: erased at runtime. The modules themselves are imported in serve().
import type { ClbProxy } from '../library/clb-proxy.js'
import type { DemoBackend } from '../byte-servers/demo-backend.js'
import { CLB_DEFAULTS, type BackendAddress, type ClbProxyOptions, type ResolvedOptions } from '../core/options.js'
import {
  OPTION_RULES,
  OptionError,
  parseByteSize,
  quoteValue,
  resolveOptions,
  type OptionField
} from '../core/resolve-options.js'
import { readVersion } from './version.js'

export type StopSignal = 'SIGINT' | 'SIGTERM'

/** Where stop signals come from: `process` by default; tests pass an EventEmitter and emit 'SIGTERM'. */
export interface SignalSource {
  once(event: StopSignal, listener: () => void): unknown
  removeListener(event: StopSignal, listener: () => void): unknown
}

export interface CliIo {
  readonly stdout: NodeJS.WritableStream
  /** Banners and errors go here: stdout carries the access log by default. */
  readonly stderr: NodeJS.WritableStream
  readonly signals?: SignalSource
}

// Entries kept for the admin listener's /entries when the CLI runs with --admin.
const CLI_RECORDED_ENTRIES_WITH_ADMIN = 1000

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

/** One row per option: its flag, its environment variable, how its text becomes a value, and its help. */
export interface OptionFlag {
  readonly field: OptionField
  /** Without the leading `--`. */
  readonly flag: string
  readonly env: string
  readonly valueName: string
  readonly multiple: boolean
  readonly summary: string
  readonly defaultText: string
  /** Turns the text of one flag value or env entry into the option value; throws OptionError. */
  readonly fromText: (text: string) => unknown
}

const KIB = 1024
const MIB = 1024 * KIB

function formatBytes(bytes: number): string {
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes} bytes (${bytes / MIB} MiB)`
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes} bytes (${bytes / KIB} KiB)`
  return `${bytes} bytes`
}

function asIs(text: string): string {
  return text
}

/** Decimal seconds such as `60` or `2.5`; anything else gets the field's own rule in the message. */
function secondsFromText(field: OptionField): (text: string) => number {
  return (text) => {
    if (!/^[0-9]+(?:\.[0-9]+)?$/.test(text)) throw new OptionError({ field, value: text, rule: OPTION_RULES[field] })
    return Number(text)
  }
}

/** A whole number such as `100`; anything else gets the field's own rule in the message. */
function countFromText(field: OptionField): (text: string) => number {
  return (text) => {
    if (!/^[0-9]+$/.test(text)) throw new OptionError({ field, value: text, rule: OPTION_RULES[field] })
    return Number(text)
  }
}

function bytesFromText(field: OptionField): (text: string) => number {
  return (text) => {
    const bytes = parseByteSize(text)
    if (bytes === undefined) {
      throw new OptionError({
        field,
        value: text,
        rule: `${OPTION_RULES[field]}; sizes may be written 65536, 64k, 64KiB, 1m or 1MiB`
      })
    }
    return bytes
  }
}

export const OPTION_FLAGS: readonly OptionFlag[] = Object.freeze([
  {
    field: 'listen',
    flag: 'listen',
    env: 'CLB_LISTEN',
    valueName: 'HOST:PORT',
    multiple: false,
    summary: 'Address the proxy listens on. IPv6 as [::1]:8080; port 0 picks a free port.',
    defaultText: `${CLB_DEFAULTS.listen.host}:${CLB_DEFAULTS.listen.port}`,
    fromText: asIs
  },
  {
    field: 'backends',
    flag: 'backend',
    env: 'CLB_BACKENDS',
    valueName: 'URL',
    multiple: true,
    summary: 'An instance to forward to, http://HOST:PORT (port 80 if omitted). Repeatable.',
    defaultText: 'none: start the built-in demo backend',
    fromText: asIs
  },
  {
    field: 'accessLog',
    flag: 'access-log',
    env: 'CLB_ACCESS_LOG',
    valueName: 'PATH|-',
    multiple: false,
    summary: "Where CLB-format access-log lines go: a file (appended to) or '-' for stdout.",
    defaultText: CLB_DEFAULTS.accessLog === '-' ? '- (stdout)' : String(CLB_DEFAULTS.accessLog),
    fromText: asIs
  },
  {
    field: 'name',
    flag: 'name',
    env: 'CLB_NAME',
    valueName: 'NAME',
    multiple: false,
    summary: 'The elb field of access-log lines: 1-32 letters, digits or hyphens, no hyphen at either end.',
    defaultText: CLB_DEFAULTS.name,
    fromText: asIs
  },
  {
    field: 'idleTimeoutSeconds',
    flag: 'idle-timeout',
    env: 'CLB_IDLE_TIMEOUT',
    valueName: 'SECONDS',
    multiple: false,
    summary: "Idle timeout of client and backend connections, 1-4000 (CLB's range); a silent backend: 504.",
    defaultText: `${CLB_DEFAULTS.idleTimeoutSeconds} s`,
    fromText: secondsFromText('idleTimeoutSeconds')
  },
  {
    field: 'responseBufferBytes',
    flag: 'response-buffer',
    env: 'CLB_RESPONSE_BUFFER',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Response bytes held back and judged before the client sees any, 0 to 1 GiB (64k, 1MiB...).',
    defaultText: formatBytes(CLB_DEFAULTS.responseBufferBytes),
    fromText: bytesFromText('responseBufferBytes')
  },
  {
    field: 'responseHoldMs',
    flag: 'response-hold',
    env: 'CLB_RESPONSE_HOLD',
    valueName: 'MS',
    multiple: false,
    summary: 'How long an incomplete response is held and judged after its head, then it streams (0-10000).',
    defaultText: `${CLB_DEFAULTS.responseHoldMs} ms`,
    fromText: countFromText('responseHoldMs')
  },
  {
    field: 'lingerSeconds',
    flag: 'linger',
    env: 'CLB_LINGER',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'After a decision to close, how long the client\'s further bytes are discarded (0-60).',
    defaultText: `${CLB_DEFAULTS.lingerSeconds} s`,
    fromText: secondsFromText('lingerSeconds')
  },
  {
    field: 'maxHeadBytes',
    flag: 'max-head',
    env: 'CLB_MAX_HEAD',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Largest request or response head (start line + headers) accepted, 1 KiB to 1 MiB.',
    defaultText: formatBytes(CLB_DEFAULTS.maxHeadBytes),
    fromText: bytesFromText('maxHeadBytes')
  },
  {
    field: 'profile',
    flag: 'profile',
    env: 'CLB_PROFILE',
    valueName: 'clb|strict',
    multiple: false,
    summary: "How defects CLB's documentation is silent on are judged: as CLB is believed to, or strictly.",
    defaultText: CLB_DEFAULTS.profile,
    fromText: asIs
  },
  {
    field: 'drainTimeoutSeconds',
    flag: 'drain-timeout',
    env: 'CLB_DRAIN_TIMEOUT',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'On SIGINT/SIGTERM, how long in-flight requests may finish before they are cut (0-3600).',
    defaultText: `${CLB_DEFAULTS.drainTimeoutSeconds} s`,
    fromText: secondsFromText('drainTimeoutSeconds')
  },
  {
    field: 'captureDir',
    flag: 'capture-dir',
    env: 'CLB_CAPTURE_DIR',
    valueName: 'PATH',
    multiple: false,
    summary: 'Directory where each rejected response is captured, one file each (see clb-proxy replay).',
    defaultText: '<os temp dir>/clb-proxy-captures',
    fromText: asIs
  },
  {
    field: 'maxCaptures',
    flag: 'max-captures',
    env: 'CLB_MAX_CAPTURES',
    valueName: 'COUNT',
    multiple: false,
    summary: 'Most capture files kept; the oldest are removed first (1-100000).',
    defaultText: String(CLB_DEFAULTS.maxCaptures),
    fromText: countFromText('maxCaptures')
  },
  {
    field: 'captureBytes',
    flag: 'capture-bytes',
    env: 'CLB_CAPTURE_BYTES',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Bytes of a rejected response kept in its capture, 1 KiB to 16 MiB.',
    defaultText: formatBytes(CLB_DEFAULTS.captureBytes),
    fromText: bytesFromText('captureBytes')
  },
  {
    field: 'keepaliveRace',
    flag: 'keepalive-race',
    env: 'CLB_KEEPALIVE_RACE',
    valueName: 'detect|emulate',
    multiple: false,
    summary: 'An instance closing a kept-alive connection early: warn (detect), or also send 504 (emulate).',
    defaultText: CLB_DEFAULTS.keepaliveRace,
    fromText: asIs
  },
  {
    field: 'admin',
    flag: 'admin',
    env: 'CLB_ADMIN',
    valueName: 'HOST:PORT',
    multiple: false,
    summary: 'Admin HTTP listener: /metrics (CloudWatch names), /captures, /healthz.',
    defaultText: 'none',
    fromText: asIs
  }
] satisfies OptionFlag[])

const PARSE_ARGS_OPTIONS = Object.freeze({
  ...Object.fromEntries(
    OPTION_FLAGS.map((option) => [option.flag, { type: 'string' as const, multiple: option.multiple }])
  ),
  help: { type: 'boolean' as const, short: 'h' },
  version: { type: 'boolean' as const }
})

export function helpText(): string {
  const lines = [
    'Usage: clb-proxy [options]',
    '       clb-proxy check URL [options]     (clb-proxy check --help)',
    '       clb-proxy replay FILE [options]   (clb-proxy replay --help)',
    '',
    'A local reverse proxy that behaves like an AWS Classic Load Balancer: it judges backend',
    "responses from their raw bytes, answers with CLB's own 502/503/504 responses and writes",
    'CLB-format access-log lines. With no --backend it starts a demo backend and prints curl',
    'commands to try against it.',
    '',
    'Options (a flag overrides its environment variable; an empty variable counts as unset):'
  ]
  for (const option of OPTION_FLAGS) {
    lines.push(`  --${option.flag} ${option.valueName}`)
    lines.push(`      ${option.summary}`)
    lines.push(`      env ${option.env}${option.multiple ? ' (comma-separated)' : ''}; default ${option.defaultText}`)
  }
  lines.push(
    '  -h, --help',
    '      Print this help and exit.',
    '  --version',
    '      Print the version and exit.',
    '',
    'Stops on SIGINT (Ctrl-C) or SIGTERM after in-flight requests finish; a second Ctrl-C quits at once.',
    'Exit status: 0 after a clean stop, 1 if the proxy could not start or stop cleanly,',
    '2 for a bad option (nothing is started then).',
    'Every option, its range and where the range comes from: docs/options.md',
    ''
  )
  return lines.join('\n')
}

// --- flags and environment --------------------------------------------------------------

type ParsedValues = Record<string, string | boolean | string[] | undefined>

type CommandLine =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'serve'; readonly values: ParsedValues }
  | { readonly kind: 'usage-error'; readonly message: string }

function parseCommandLine(argv: readonly string[]): CommandLine {
  let values: ParsedValues
  try {
    values = parseArgs({ args: [...argv], options: PARSE_ARGS_OPTIONS, strict: true, allowPositionals: false }).values
  } catch (error) {
    if (typeof (error as NodeJS.ErrnoException).code !== 'string' || !(error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS_')) {
      throw error
    }
    return { kind: 'usage-error', message: explainServeParseFailure(argv) ?? (error as Error).message }
  }
  if (values.help === true) return { kind: 'help' }
  if (values.version === true) return { kind: 'version' }
  return { kind: 'serve', values }
}

function explainServeParseFailure(argv: readonly string[]): string | undefined {
  return explainParseFailure(
    argv,
    PARSE_ARGS_OPTIONS,
    (flag) => OPTION_FLAGS.find((option) => option.flag === flag)?.valueName ?? 'VALUE',
    (value) => `unexpected argument ${quoteValue(value)} (clb-proxy takes only options)`
  )
}

/**
 * Strict parseArgs says that a command line is wrong; a lenient pass over its tokens says which
 * argument, in our words (Node's own messages vary between versions and suggest positionals).
 * Shared by the subcommands: `valueNameOf` names a flag's value, and `rejectPositional` (null when
 * positionals are allowed) says what is wrong with one.
 */
export function explainParseFailure(
  argv: readonly string[],
  options: NonNullable<ParseArgsConfig['options']>,
  valueNameOf: (flag: string) => string,
  rejectPositional: ((value: string) => string) | null
): string | undefined {
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true
  })
  for (const token of tokens) {
    if (token.kind === 'positional' && rejectPositional !== null) return rejectPositional(token.value)
    if (token.kind !== 'option') continue
    const spec = Object.hasOwn(options, token.name) ? options[token.name] : undefined
    if (spec === undefined) return `unknown option '${token.rawName}'`
    if (spec.type === 'boolean') {
      if (token.value !== undefined) return `option '${token.rawName}' does not take a value`
      continue
    }
    if (token.value === undefined) return `option '${token.rawName}' needs a value (${token.rawName} ${valueNameOf(token.name)})`
    if (token.inlineValue === false && token.value.length > 1 && token.value.startsWith('-')) {
      return `option '${token.rawName}' needs a value, but the next argument ${quoteValue(token.value)} looks like an option (write ${token.rawName}=${token.value} if it is the value)`
    }
  }
  return undefined
}

/** Where a field's text came from, to name that flag or variable (and quote that text) in errors. */
interface FieldSource {
  readonly name: string
  readonly text: string
  readonly isEnv: boolean
}

interface BuiltOptions {
  readonly options: ClbProxyOptions
  readonly sources: ReadonlyMap<string, FieldSource>
}

/** Flags override environment variables; an environment variable set to '' counts as unset. */
function buildOptions(values: ParsedValues, env: NodeJS.ProcessEnv): BuiltOptions {
  const options: Record<string, unknown> = {}
  const sources = new Map<string, FieldSource>()
  for (const option of OPTION_FLAGS) {
    const flagValue = values[option.flag]
    const envText = env[option.env]
    let texts: string[]
    let source: FieldSource
    if (typeof flagValue === 'string' || Array.isArray(flagValue)) {
      texts = typeof flagValue === 'string' ? [flagValue] : flagValue
      source = { name: `--${option.flag}`, text: texts.join(','), isEnv: false }
    } else if (envText !== undefined && envText !== '') {
      // CLB_BACKENDS is a comma-separated list; spaces after the commas are allowed.
      texts = option.multiple ? envText.split(',').map((entry) => entry.trim()) : [envText]
      source = { name: option.env, text: envText, isEnv: true }
    } else {
      continue
    }
    sources.set(option.field, source)
    try {
      const parsed = texts.map((text) => option.fromText(text))
      options[option.field] = option.multiple ? parsed : parsed[0]
    } catch (error) {
      if (error instanceof OptionError) throw new CliOptionError(describeForCli(error, sources))
      throw error
    }
  }
  return { options: options as ClbProxyOptions, sources }
}

class CliOptionError extends Error {}

/** The resolver's sentence, with the flag or variable the user actually set and the text they typed. */
function describeForCli(error: OptionError, sources: ReadonlyMap<string, FieldSource>): string {
  const source = sources.get(error.field)
  if (source === undefined) return error.message
  if (error.field === 'backends') {
    const entry = /^backends\[(\d+)\]/.exec(error.label)
    const name = source.isEnv && entry !== null ? `${source.name} entry ${Number(entry[1]) + 1}` : source.name
    return error.describeAs(name)
  }
  return `${source.name} ${error.rule}, got ${quoteValue(source.text)}`
}

// --- serving ----------------------------------------------------------------------------

/** Subcommands, each in its own module, loaded only when used. */
export const SUBCOMMANDS = Object.freeze({
  check: 'Send one request straight to a backend and explain whether CLB would pass its response.',
  replay: 'Start a backend that answers every request with the bytes of a capture file.'
})

export async function run(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  if (argv[0] === 'check') return (await import('./check-command.js')).runCheck(argv.slice(1), env, io)
  if (argv[0] === 'replay') return (await import('./replay-command.js')).runReplay(argv.slice(1), env, io)
  const commandLine = parseCommandLine(argv)
  switch (commandLine.kind) {
    case 'usage-error':
      return usageError(io, commandLine.message)
    case 'help':
      io.stdout.write(helpText())
      return EXIT_OK
    case 'version':
      io.stdout.write(`clb-proxy ${readVersion()}\n`)
      return EXIT_OK
    case 'serve':
      break
  }

  let built: BuiltOptions
  try {
    built = buildOptions(commandLine.values, env)
  } catch (error) {
    if (error instanceof CliOptionError) return usageError(io, error.message)
    throw error
  }
  let resolved: ResolvedOptions
  try {
    // Every option is checked here, before any socket opens. No backends is fine for the CLI:
    // the demo backend stands in for them.
    resolved = resolveOptions(built.options, { requireBackends: false })
  } catch (error) {
    if (error instanceof OptionError) return usageError(io, describeForCli(error, built.sources))
    throw error
  }
  return serve(built.options, resolved, io)
}

function usageError(io: CliIo, message: string): number {
  io.stderr.write(`clb-proxy: ${message}\nTry 'clb-proxy --help'\n`)
  return EXIT_USAGE
}

/**
 * The proxy modules are imported here, not at the top: --help, --version and a bad option are
 * answered without loading the proxy and its dependencies.
 */
async function serve(options: ClbProxyOptions, resolved: ResolvedOptions, io: CliIo): Promise<number> {
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

/** Resolves with the first SIGINT or SIGTERM; dispose() removes the listeners. Shared by the subcommands. */
export function listenForStop(signals: SignalSource): { stopped: Promise<StopSignal>; dispose(): void } {
  let resolveStopped: (signal: StopSignal) => void = () => undefined
  const stopped = new Promise<StopSignal>((resolve) => {
    resolveStopped = resolve
  })
  const onInterrupt = (): void => resolveStopped('SIGINT')
  const onTerminate = (): void => resolveStopped('SIGTERM')
  signals.once('SIGINT', onInterrupt)
  signals.once('SIGTERM', onTerminate)
  return {
    stopped,
    dispose() {
      signals.removeListener('SIGINT', onInterrupt)
      signals.removeListener('SIGTERM', onTerminate)
    }
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
