/**
 * `clb-proxy check URL [options]`: the CLI adapter over proxy/commands/check.ts and its parts. It turns flags (and the
 * CLB_PROFILE, CLB_IDLE_TIMEOUT and CLB_MAX_HEAD variables the proxy also reads) into
 * CheckOptions, validates them before any socket opens, prints the report, and maps the verdict
 * to an exit code.
 *
 * Exit codes: 0 when CLB would relay the response (with or without warnings); 1 when CLB would
 * answer with its own 502 or 504; 2 for a usage error or when the instance cannot be connected to.
 */
import { parseArgs } from 'node:util'
import { checkBackend, type CheckOptions } from './check.js'
import { checkReportJson } from './check-json.js'
import { CHECK_OPTION_RULES, isValidHeader, resolveCheckOptions, type CheckHeader } from './check-options.js'
import { CheckConnectionError } from './check-probe.js'
import type { CheckReport } from './check-report.js'
import { renderKeepAlivePart, renderKeepAliveWaitLine, renderResponsePart } from './check-text.js'
import { explainParseFailure, type CliIo } from './command-line.js'
import { OPTION_FLAGS, type OptionFlag } from './option-flags.js'
import type { Profile } from '../core/options.js'
import { OptionError, quoteValue } from '../core/resolve-options.js'

const EXIT_PASS = 0
const EXIT_REJECT = 1
const EXIT_USAGE = 2

/** The proxy's own rows for the flags `check` shares with it: same flag, variable and parsing. */
function sharedFlag (flag: string): OptionFlag {
  const row = OPTION_FLAGS.find((option) => option.flag === flag)
  if (row === undefined) throw new Error(`bug: OPTION_FLAGS has no --${flag}`)
  return row
}

const SHARED_FLAGS = Object.freeze({
  profile: sharedFlag('profile'),
  idleTimeoutSeconds: sharedFlag('idle-timeout'),
  maxHeadBytes: sharedFlag('max-head')
})

const PARSE_ARGS_OPTIONS = Object.freeze({
  method: { type: 'string' as const },
  header: { type: 'string' as const, multiple: true },
  data: { type: 'string' as const },
  profile: { type: 'string' as const },
  'idle-timeout': { type: 'string' as const },
  'max-head': { type: 'string' as const },
  'keepalive-wait': { type: 'string' as const },
  timeout: { type: 'string' as const },
  'max-time': { type: 'string' as const },
  json: { type: 'boolean' as const },
  help: { type: 'boolean' as const, short: 'h' }
})

/** Value names for "needs a value" messages. */
const VALUE_NAMES: Readonly<Record<string, string>> = Object.freeze({
  method: 'METHOD',
  header: "'NAME: VALUE'",
  data: 'TEXT',
  profile: 'clb|strict',
  'idle-timeout': 'SECONDS',
  'max-head': 'BYTES',
  'keepalive-wait': 'SECONDS',
  timeout: 'SECONDS',
  'max-time': 'SECONDS'
})

export function checkHelpText (): string {
  return [
    'Usage: clb-proxy check URL [options]',
    '',
    "AWS's troubleshooting step for ELB 502s (curl -vko /dev/null server_instance_IP), automated:",
    'sends one request straight to the instance at URL, reads the raw response and shows it with',
    'byte offsets, marks every defect under the byte where it is, and says whether a Classic Load',
    'Balancer would relay the response or answer 502/504 itself. After a complete response it keeps',
    'the connection open to see whether the instance closes it before the idle timeout (the cause',
    'of intermittent 504s).',
    '',
    'URL is http://HOST[:PORT][/path][?query] (port 80 if omitted; only http:).',
    '',
    'Options:',
    '  --method METHOD',
    '      Request method. Default GET.',
    "  --header 'NAME: VALUE'",
    '      An extra request header; repeatable. Replaces the default Host, User-Agent or Connection',
    '      header of the same name.',
    '  --data TEXT',
    '      A request body (UTF-8); Content-Length is added.',
    `  --profile clb|strict`,
    `      ${SHARED_FLAGS.profile.summary}`,
    `      env ${SHARED_FLAGS.profile.env}; default ${SHARED_FLAGS.profile.defaultText}`,
    '  --idle-timeout SECONDS',
    "      CLB's idle timeout, 1-4000; the default for --timeout, --max-time and --keepalive-wait.",
    `      env ${SHARED_FLAGS.idleTimeoutSeconds.env}; default ${SHARED_FLAGS.idleTimeoutSeconds.defaultText}`,
    '  --max-head BYTES',
    `      ${SHARED_FLAGS.maxHeadBytes.summary}`,
    `      env ${SHARED_FLAGS.maxHeadBytes.env}; default ${SHARED_FLAGS.maxHeadBytes.defaultText}`,
    '  --timeout SECONDS',
    '      Give up on the response after this long without a byte (CLB answers 504). Default: the',
    '      idle timeout.',
    '  --max-time SECONDS',
    '      A response still arriving after this long (a stream: SSE, a chunked body that never',
    '      ends) is judged on what arrived: reading stops at its first read after the deadline.',
    '      Silence is judged by --timeout. Default: the idle timeout.',
    '  --keepalive-wait SECONDS',
    '      After a complete response, wait up to this long for the instance to close the idle',
    '      connection; 0 skips. Default: the idle timeout.',
    '  --json',
    '      Print the report as JSON (fields in docs/check.md) instead of text.',
    '  -h, --help',
    '      Print this help and exit.',
    '',
    'Exit status: 0 when CLB would relay the response (with or without warnings), 1 when it would',
    'answer 502 or 504 itself, 2 for a bad option or when the instance cannot be connected to.',
    'More: docs/check.md',
    ''
  ].join('\n')
}

type Parsed =
  | { readonly kind: 'help' }
  | { readonly kind: 'check'; readonly options: CheckOptions; readonly json: boolean }

export async function runCheck (argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  let parsed: Parsed
  try {
    parsed = parseCheckCommandLine(argv, env)
  } catch (error) {
    if (error instanceof UsageError) return usageError(io, error.message)
    throw error
  }
  if (parsed.kind === 'help') {
    io.stdout.write(checkHelpText())
    return EXIT_PASS
  }
  const json = parsed.json
  let report: CheckReport
  try {
    report = await checkBackend({
      ...parsed.options,
      // Text output streams: the verdict first, then the keep-alive wait and what it showed.
      onResponseJudged: json ? undefined : (judged) => { io.stdout.write(renderResponsePart(judged) + renderKeepAliveWaitLine(judged)) }
    })
  } catch (error) {
    if (error instanceof CheckConnectionError) {
      io.stderr.write(`clb-proxy check: ${error.message}\n`)
      return EXIT_USAGE
    }
    throw error
  }
  io.stdout.write(json ? `${JSON.stringify(checkReportJson(report), null, 2)}\n` : renderKeepAlivePart(report))
  return report.verdict.action === 'reject' ? EXIT_REJECT : EXIT_PASS
}

function usageError (io: CliIo, message: string): number {
  io.stderr.write(`clb-proxy check: ${message}\nTry 'clb-proxy check --help'\n`)
  return EXIT_USAGE
}

/** A command-line mistake, already phrased with the flag or variable the user set. */
class UsageError extends Error {}

/** Where a field's text came from, to name that flag or variable and quote the text in errors. */
interface Source {
  readonly name: string
  readonly text: string
}

function parseCheckCommandLine (argv: readonly string[], env: NodeJS.ProcessEnv): Parsed {
  let values: Record<string, string | boolean | string[] | undefined>
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: PARSE_ARGS_OPTIONS, strict: true, allowPositionals: true }))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) throw error
    throw new UsageError(explainParseFailure(argv, PARSE_ARGS_OPTIONS, (flag) => VALUE_NAMES[flag] ?? 'VALUE', null) ?? (error as Error).message)
  }
  if (values.help === true) return { kind: 'help' }
  const [url, ...extra] = positionals
  if (url === undefined) throw new UsageError('missing the URL to check (e.g. clb-proxy check http://127.0.0.1:3000/)')
  if (extra[0] !== undefined) throw new UsageError(`unexpected argument ${quoteValue(extra[0])} (check takes one URL)`)

  const sources = new Map<string, Source>([['url', { name: 'the URL', text: url }]])
  const text = (flag: string): string | undefined => {
    const value = values[flag]
    return typeof value === 'string' ? value : undefined
  }
  try {
    const options: {
      -readonly [K in keyof CheckOptions]: CheckOptions[K]
    } = { url }
    const method = text('method')
    if (method !== undefined) {
      sources.set('method', { name: '--method', text: method })
      options.method = method
    }
    const headerTexts = values.header
    if (Array.isArray(headerTexts)) options.headers = headerTexts.map((headerText) => parseHeader(headerText))
    const data = text('data')
    if (data !== undefined) options.data = data
    const profile = sharedValue(SHARED_FLAGS.profile, text('profile'), env, sources)
    if (profile !== undefined) options.profile = profile as Profile
    const idle = sharedValue(SHARED_FLAGS.idleTimeoutSeconds, text('idle-timeout'), env, sources)
    if (idle !== undefined) options.idleTimeoutSeconds = idle as number
    const maxHead = sharedValue(SHARED_FLAGS.maxHeadBytes, text('max-head'), env, sources)
    if (maxHead !== undefined) options.maxHeadBytes = maxHead as number
    const timeout = text('timeout')
    if (timeout !== undefined) {
      sources.set('timeoutSeconds', { name: '--timeout', text: timeout })
      options.timeoutSeconds = secondsFromText('timeoutSeconds', timeout)
    }
    const maxTime = text('max-time')
    if (maxTime !== undefined) {
      sources.set('maxTimeSeconds', { name: '--max-time', text: maxTime })
      options.maxTimeSeconds = secondsFromText('maxTimeSeconds', maxTime)
    }
    const keepaliveWait = text('keepalive-wait')
    if (keepaliveWait !== undefined) {
      sources.set('keepaliveWaitSeconds', { name: '--keepalive-wait', text: keepaliveWait })
      options.keepaliveWaitSeconds = secondsFromText('keepaliveWaitSeconds', keepaliveWait)
    }
    // Everything is checked here, before the command connects anywhere.
    resolveCheckOptions(options)
    return { kind: 'check', options, json: values.json === true }
  } catch (error) {
    if (error instanceof OptionError) throw new UsageError(describeForCli(error, sources))
    throw error
  }
}

/** A flag the proxy also has: the flag wins over its environment variable; '' counts as unset. */
function sharedValue (row: OptionFlag, flagText: string | undefined, env: NodeJS.ProcessEnv, sources: Map<string, Source>): unknown {
  const envText = env[row.env]
  let source: Source
  if (flagText !== undefined) source = { name: `--${row.flag}`, text: flagText }
  else if (envText !== undefined && envText !== '') source = { name: row.env, text: envText }
  else return undefined
  sources.set(row.field, source)
  return row.fromText(source.text)
}

/** Decimal seconds such as `60` or `0.2`. */
function secondsFromText (field: 'timeoutSeconds' | 'maxTimeSeconds' | 'keepaliveWaitSeconds', text: string): number {
  if (!/^[0-9]+(?:\.[0-9]+)?$/.test(text)) throw new OptionError({ field, value: text, rule: CHECK_OPTION_RULES[field] })
  return Number(text)
}

/** `Name: value`, as curl -H takes it; the value loses its surrounding whitespace (RFC 9112 section 5: OWS). */
function parseHeader (text: string): CheckHeader {
  const colon = text.indexOf(':')
  if (colon === -1) throw new UsageError(`--header ${CHECK_OPTION_RULES.headers}, got ${quoteValue(text)}`)
  const header = { name: text.slice(0, colon), value: text.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '') }
  if (!isValidHeader(header)) throw new UsageError(`--header ${CHECK_OPTION_RULES.headers}, got ${quoteValue(text)}`)
  return header
}

/** The rule, after the flag or variable the user set, with the text they typed. */
function describeForCli (error: OptionError, sources: ReadonlyMap<string, Source>): string {
  const source = sources.get(error.field)
  if (source === undefined) return error.message
  return `${source.name} ${error.rule}, got ${quoteValue(source.text)}`
}

