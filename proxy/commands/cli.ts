/**
 * The command line: `run()`, a thin adapter that dispatches `check` and `replay` to their modules,
 * parses the proxy's own flags, turns them and the environment variables into the same
 * ClbProxyOptions the library takes, validates them in full before anything listens, and hands
 * them to `serve()` (serve-command.ts). The flag table is in option-flags.ts; what the commands
 * share (streams, signals, exit codes) in command-line.ts.
 *
 * Exit codes: 0 after --help, --version or a clean stop; 1 when the proxy could not start (or
 * stop) cleanly; 2 for a bad flag, flag value or environment value.
 */
import { parseArgs } from 'node:util'
import type { ClbProxyOptions, ResolvedOptions } from '../core/options.js'
import { OptionError, quoteValue, resolveOptions } from '../core/resolve-options.js'
import { EXIT_OK, explainParseFailure, usageError, type CliIo } from './command-line.js'
import { OPTION_FLAGS, SWITCH_FLAGS, helpText, namesAsFlags, namesAsVariables } from './option-flags.js'
import { serve, withDemoHealthCheck, type OptionNaming } from './serve-command.js'
import { readVersion } from './version.js'


// --- flags and environment --------------------------------------------------------------

const PARSE_ARGS_OPTIONS = Object.freeze({
  ...Object.fromEntries(
    OPTION_FLAGS.map((option) => [option.flag, { type: 'string' as const, multiple: option.multiple }])
  ),
  ...Object.fromEntries(SWITCH_FLAGS.map((option) => [option.flag, { type: 'boolean' as const }])),
  help: { type: 'boolean' as const, short: 'h' },
  version: { type: 'boolean' as const }
})

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
    (value) => `unexpected argument ${quoteValue(value)} (clb-proxy takes options, or a command first: ${Object.keys(SUBCOMMANDS).join(', ')})`
  )
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
  // listen and listeners both name the front end. A flag beats the other's variable, and
  // CLB_LISTENERS beats CLB_LISTEN (the image sets CLB_LISTEN; a compose file's CLB_LISTENERS or a
  // --listener must not clash with it). Both flags: the resolver refuses them.
  const listenSource = sources.get('listen')
  const listenersSource = sources.get('listeners')
  if (listenSource !== undefined && listenersSource !== undefined && (listenSource.isEnv || listenersSource.isEnv)) {
    const overridden = listenSource.isEnv ? 'listen' : 'listeners'
    delete options[overridden]
    sources.delete(overridden)
  }
  for (const option of SWITCH_FLAGS) {
    const envText = option.env === undefined ? undefined : env[option.env]
    if (values[option.flag] !== true && option.env !== undefined && option.envFromText !== undefined && envText !== undefined && envText !== '') {
      sources.set(option.field, { name: option.env, text: envText, isEnv: true })
      try {
        options[option.field] = option.envFromText(envText)
      } catch (error) {
        if (error instanceof OptionError) throw new CliOptionError(describeForCli(error, sources))
        throw error
      }
      continue
    }
    if (values[option.flag] !== true) continue
    options[option.field] = option.value
    sources.set(option.field, { name: `--${option.flag}`, text: '', isEnv: false })
  }
  return { options: options as ClbProxyOptions, sources }
}

class CliOptionError extends Error {}

/** The resolver's sentence, with the flag or variable the user actually set and the text they typed. */
function describeForCli(error: OptionError, sources: ReadonlyMap<string, FieldSource>): string {
  const source = sources.get(error.field)
  if (source === undefined) return error.message
  if (error.field === 'backends' || error.field === 'listeners') {
    // A list: name the entry and quote its own text.
    const entry = /^(?:backends|listeners)\[(\d+)\]/.exec(error.label)
    const name = source.isEnv && entry !== null ? `${source.name} entry ${Number(entry[1]) + 1}` : source.name
    return namesAsFlags(error.describeAs(name))
  }
  const namesAsSource = source.isEnv ? namesAsVariables : namesAsFlags
  return `${source.name} ${namesAsSource(forTheCommandLine(error.rule))}, got ${quoteValue(source.text)}`
}

/** Options named as the user set them: the flag, or the environment variable (docs/options.md, Errors). */
function namingFor (sources: ReadonlyMap<string, FieldSource>): OptionNaming {
  const nameOf = (field: string): string => {
    const source = sources.get(field)
    if (source !== undefined) return source.name
    const option = OPTION_FLAGS.find((candidate) => candidate.field === field)
    return option === undefined ? field : `--${option.flag}`
  }
  return {
    nameOf,
    describe: (error) => sources.has(error.field) ? describeForCli(error, sources) : namesAsFlags(error.describeAs(nameOf(error.field)))
  }
}


/**
 * A rule's `, or null for/to ...` alternative is the library's: no flag or variable can say null.
 * It ends the rule, or comes before the parenthesis that says what was wrong with the value.
 */
export function forTheCommandLine (rule: string): string {
  // "a file path, '-' for stdout, or null for no access log" -> "a file path or '-' for stdout".
  const listed = /, ([^,()]+), or null (?:for|to) [^()]*?(?=$| \()/
  if (listed.test(rule)) return rule.replace(listed, ' or $1')
  // "(RFC 6265 token characters, not AWSELB or AWSELBCORS), or null for ..." -> "(..., not AWSELB or AWSELBCORS)".
  return rule.replace(/,? or null (?:for|to) [^()]*?(?=$| \()/, '')
}

// --- dispatch ---------------------------------------------------------------------------

/** Subcommands, each in its own module, loaded only when used. */
export const SUBCOMMANDS = Object.freeze({
  check: 'Send one request straight to a backend and explain whether CLB would pass its response.',
  replay: 'Start a backend that answers every request with the bytes of a capture file.',
  analyze: 'Triage CLB access logs (.log, .gz, S3 trees): errors per minute, causes, slow instances.'
})

export async function run(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  if (argv[0] === 'check') return (await import('./check-command.js')).runCheck(argv.slice(1), env, io)
  if (argv[0] === 'replay') return (await import('./replay-command.js')).runReplay(argv.slice(1), env, io)
  if (argv[0] === 'analyze') return (await import('./analyze-command.js')).runAnalyze(argv.slice(1), env, io)
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
    // The demo's health check joins the user's health options (--health-timeout 5 with the
    // interval at 5, say): checked now too, not after the demo instances listen.
    if (resolved.backends.length === 0) resolveOptions(withDemoHealthCheck(built.options), { requireBackends: false })
  } catch (error) {
    if (error instanceof OptionError) return usageError(io, describeForCli(error, built.sources))
    throw error
  }
  return serve(built.options, resolved, io, namingFor(built.sources))
}
