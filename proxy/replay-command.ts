/**
 * `clb-proxy replay FILE [--listen HOST:PORT]`: serves the response bytes of a capture file from a
 * replay backend (proxy/replay.ts) and prints how to put clb-proxy in front of it and the curl
 * command that sends the captured request (peers-validation.md §7 item 5).
 *
 * Output: the banner on stdout (this command has no access log), errors on stderr.
 * Exit codes, as for clb-proxy itself: 0 after a clean stop (SIGINT/SIGTERM) or --help; 1 when the
 * backend cannot listen; 2 for a bad argument or a capture file that cannot be read or parsed.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { CaptureFormatError, parseCapture, type ParsedCapture } from './captures.js'
// Type-only: cli.ts loads this module; a value import back would be a cycle.
import { listenForStop, type CliIo } from './cli.js'
import { CLB_DEFAULTS } from './options.js'
import { startReplayBackend, type ReplayBackend } from './replay.js'
import { OptionError, quoteValue, resolveOptions } from './resolve-options.js'

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const REPLAY_OPTIONS = Object.freeze({
  listen: { type: 'string' as const },
  help: { type: 'boolean' as const, short: 'h' }
})

export function replayHelpText (): string {
  return [
    'Usage: clb-proxy replay FILE [--listen HOST:PORT]',
    '',
    'Starts a backend that answers every request with exactly the response bytes of a capture',
    'FILE (clb-proxy writes one into --capture-dir for each rejected response; docs/captures.md),',
    'then closes the connection, or keeps it open and silent if the file says after-response: hold.',
    'It prints the clb-proxy command to put in front of it and the curl command to send.',
    '',
    'Options:',
    '  --listen HOST:PORT',
    '      Address the replay backend listens on. IPv6 as [::1]:8081; port 0 picks a free port.',
    '      default 127.0.0.1:0',
    '  -h, --help',
    '      Print this help and exit.',
    '',
    'Stops on SIGINT (Ctrl-C) or SIGTERM. Exit status: 0 after a clean stop, 1 if it cannot listen,',
    '2 for a bad argument or a capture file that cannot be read.',
    ''
  ].join('\n')
}

export async function runReplay (argv: string[], _env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  let values: { listen?: string | undefined; help?: boolean | undefined }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: REPLAY_OPTIONS, strict: true, allowPositionals: true }))
  } catch (error) {
    if (!String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) throw error
    return usageError(io, explainParseFailure(argv) ?? (error as Error).message)
  }
  if (values.help === true) {
    io.stdout.write(replayHelpText())
    return EXIT_OK
  }
  if (positionals.length === 0) return usageError(io, 'missing FILE: the capture file to serve')
  if (positionals.length > 1) return usageError(io, `unexpected argument ${quoteValue(positionals[1])} (replay takes one FILE)`)
  const file = positionals[0] as string

  let listen: { host: string; port: number } = { host: '127.0.0.1', port: 0 }
  if (values.listen !== undefined) {
    try {
      listen = { ...resolveOptions({ listen: values.listen }, { requireBackends: false }).listen }
    } catch (error) {
      if (error instanceof OptionError) return usageError(io, error.describeAs('--listen'))
      throw error
    }
  }

  let capture: ParsedCapture
  try {
    capture = parseCapture(await readFile(file, 'utf8'))
  } catch (error) {
    if (error instanceof CaptureFormatError) return usageError(io, `${quoteValue(file)} is not a capture file: ${error.message}`)
    const code = (error as NodeJS.ErrnoException).code
    if (typeof code === 'string') return usageError(io, `cannot read the capture file ${quoteValue(file)}: ${describeFsError(error as NodeJS.ErrnoException)}`)
    throw error
  }

  const stop = listenForStop(io.signals ?? process)
  let backend: ReplayBackend | undefined
  try {
    try {
      backend = await startReplayBackend({ bytes: capture.responseBytes, afterResponse: capture.afterResponse, ...listen })
    } catch (error) {
      io.stderr.write(`clb-proxy replay: cannot listen on ${hostPort(listen)}: ${describeFsError(error as NodeJS.ErrnoException)}\n`)
      return EXIT_FAILURE
    }
    io.stdout.write(replayBanner(file, capture, backend))
    const signal = await stop.stopped
    io.stdout.write(`clb-proxy replay: ${signal} received; stopped after ${backend.requests} request(s)\n`)
    return EXIT_OK
  } finally {
    stop.dispose()
    await backend?.close()
  }
}

/** Which argument strict parseArgs refused, in our words (Node's own messages vary between versions). */
function explainParseFailure (argv: readonly string[]): string | undefined {
  const { tokens } = parseArgs({ args: [...argv], options: REPLAY_OPTIONS, strict: false, allowPositionals: true, tokens: true })
  for (const token of tokens) {
    if (token.kind !== 'option') continue
    if (!Object.hasOwn(REPLAY_OPTIONS, token.name)) return `unknown option '${token.rawName}'`
    if (token.name === 'help' && token.value !== undefined) return `option '${token.rawName}' does not take a value`
    if (token.name === 'listen' && token.value === undefined) return `option '${token.rawName}' needs a value (${token.rawName} HOST:PORT)`
  }
  return undefined
}

/** What is served, the clb-proxy line to put in front of it, and the curl line to send. */
export function replayBanner (file: string, capture: ParsedCapture, backend: Pick<ReplayBackend, 'url'>): string {
  const field = (name: string): string | undefined => capture.fields.get(name)?.at(-1)
  const then = capture.afterResponse === 'close' ? 'then closes the connection' : 'then holds the connection open, silent'
  const proxyUrl = `http://${hostPort(CLB_DEFAULTS.listen)}`
  const proxyCommand = ['clb-proxy', '--backend', backend.url, ...(field('proxy-options') ?? '').split(' ').filter((word) => word !== '')]
  const lines = [
    `clb-proxy replay: ${backend.url} answers every request with the ${capture.responseBytes.length} response bytes of ${file}, ${then}`
  ]
  const request = field('request')
  const status = field('elb-status')
  if (request !== undefined || status !== undefined) {
    const why = field('primary-defect')
    lines.push(`  captured: ${request ?? '-'} -> ${status ?? '-'}${why !== undefined && why !== '-' ? ` ${why}` : ''} (${field('outcome') ?? '-'})`)
  }
  lines.push(
    'Put clb-proxy in front of it:',
    `  ${proxyCommand.map(shellQuote).join(' ')}`,
    'Then send the captured request through it:',
    `  ${curlCommand(request, proxyUrl).map(shellQuote).join(' ')}`,
    'Press Ctrl-C to stop.',
    ''
  )
  return lines.join('\n')
}

/** curl with the captured method and target; HEAD is `-I` (curl -X HEAD would wait for a body). */
function curlCommand (request: string | undefined, proxyUrl: string): string[] {
  const [method, target] = (request ?? '').split(' ')
  const path = target !== undefined && target.startsWith('/') ? target : '/'
  const command = ['curl', '-v']
  if (method === 'HEAD') command.push('-I')
  else if (method !== undefined && method !== '' && method !== '-' && method !== 'GET') command.push('-X', method)
  command.push(`${proxyUrl}${path}`)
  return command
}

/** A word as a POSIX shell reads it back: bare when it is safe, else in single quotes. */
function shellQuote (word: string): string {
  if (/^[A-Za-z0-9_/.:=@%+,-]+$/.test(word)) return word
  return `'${word.replaceAll("'", "'\\''")}'`
}

function usageError (io: CliIo, message: string): number {
  io.stderr.write(`clb-proxy replay: ${message}\nTry 'clb-proxy replay --help'\n`)
  return EXIT_USAGE
}

function hostPort (address: { readonly host: string; readonly port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

const SYSTEM_ERROR_TEXT: Readonly<Record<string, string>> = Object.freeze({
  ENOENT: 'no such file or directory',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EADDRINUSE: 'the address is already in use',
  EADDRNOTAVAIL: 'the address is not available on this machine',
  ENOTFOUND: 'the host name was not found'
})

function describeFsError (error: NodeJS.ErrnoException): string {
  const text = error.code === undefined ? undefined : SYSTEM_ERROR_TEXT[error.code]
  return text === undefined ? error.message : `${text} (${error.code})`
}

