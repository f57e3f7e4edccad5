/**
 * What every command of the command line shares: the streams and stop signals a command is given
 * (`CliIo`, `SignalSource`, `listenForStop`), the exit codes, the proxy's usage error, and
 * `explainParseFailure`, which says in our words which argument strict parseArgs refused.
 *
 * Exit codes: 0 after --help, --version or a clean stop; 1 when the proxy could not start (or
 * stop) cleanly; 2 for a bad flag, flag value or environment value.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { quoteValue } from '../core/resolve-options.js'

export type StopSignal = 'SIGINT' | 'SIGTERM'
/** Reopens the access-log file (log rotation): pino's convention; SIGUSR1 is Node's, for its inspector. */
export type ReopenSignal = 'SIGUSR2'

/** Where signals come from: `process` by default; tests pass an EventEmitter and emit 'SIGTERM'. */
export interface SignalSource {
  once(event: StopSignal, listener: () => void): unknown
  on(event: ReopenSignal, listener: () => void): unknown
  removeListener(event: StopSignal | ReopenSignal, listener: () => void): unknown
}

export interface CliIo {
  readonly stdout: NodeJS.WritableStream
  /** Banners and errors go here: stdout carries the access log by default. */
  readonly stderr: NodeJS.WritableStream
  /** Read only by `analyze -`; none: `-` is refused as a bad argument. */
  readonly stdin?: NodeJS.ReadableStream
  readonly signals?: SignalSource
}

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

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

/** The proxy's own usage error (the subcommands name themselves in theirs): the message, then where help is. */
export function usageError(io: CliIo, message: string): number {
  io.stderr.write(`clb-proxy: ${message}\nTry 'clb-proxy --help'\n`)
  return EXIT_USAGE
}
