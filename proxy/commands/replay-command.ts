/**
 * `clb-proxy replay FILE [--listen HOST:PORT]`: serves the response bytes of a capture file from a
 * replay backend (proxy/byte-servers/replay.ts) and prints how to put clb-proxy in front of it and the curl
 * command that sends the captured request (peers-validation.md §7 item 5).
 *
 * Output: the banner on stdout (this command has no access log), errors on stderr.
 * Exit codes, as for clb-proxy itself: 0 after a clean stop (SIGINT/SIGTERM) or --help; 1 when the
 * backend cannot listen; 2 for a bad argument or a capture file that cannot be read or parsed.
 *
 * A capture file can come from someone else (a ticket, a chat): everything read from it is
 * foreign text. What the banner prints from it goes through terminalSafe() (no control byte or
 * 8-bit byte reaches the terminal), and nothing from it is spliced into a suggested command line
 * unless it is exactly what clb-proxy itself writes: the proxy-options line only when every word
 * is one of our judging flags with a valid value, the method only when it is an HTTP token, the
 * target only as a path, percent-encoded where a byte cannot be typed.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { CaptureFormatError, parseCapture, unescapeCaptureText, type ParsedCapture } from '../observers/capture-format.js'
import { shellQuote, terminalSafe } from '../observers/diagnostics-escape.js'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, listenForStop, type CliIo } from './command-line.js'
import { CLB_DEFAULTS, type ClbProxyOptions } from '../core/options.js'
import { startReplayBackend, type ReplayBackend } from '../byte-servers/replay.js'
import { OptionError, quoteValue, resolveOptions } from '../core/resolve-options.js'

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
      io.stderr.write(`clb-proxy replay: cannot listen on ${hostPort(listen)}: ${terminalSafe(describeFsError(error as NodeJS.ErrnoException))}\n`)
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

/** Our choice: characters of a capture's field shown in the banner (a request line can be 1 MiB long). */
const MAX_SHOWN_CHARS = 200

/** Text read from a capture file (or its name), as it may be shown on a terminal: escaped and bounded. */
function shown (text: string): string {
  const cut = text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}...(${text.length - MAX_SHOWN_CHARS} more characters)` : text
  return terminalSafe(cut)
}

/** The judging flags a capture's `proxy-options:` line may hold: exactly the ones formatCapture writes. */
const JUDGING_FLAGS: Readonly<Record<string, (value: string) => ClbProxyOptions | null>> = Object.freeze({
  '--profile': (value) => value === 'clb' || value === 'strict' ? { profile: value } : null,
  '--idle-timeout': (value) => /^[0-9]{1,7}$/.test(value) ? { idleTimeoutSeconds: Number(value) } : null,
  '--max-head': (value) => /^[0-9]{1,10}$/.test(value) ? { maxHeadBytes: Number(value) } : null,
  '--response-buffer': (value) => /^[0-9]{1,10}$/.test(value) ? { responseBufferBytes: Number(value) } : null,
  '--response-hold': (value) => /^[0-9]{1,5}$/.test(value) ? { responseHoldMs: Number(value) } : null
})

/**
 * The flags of a `proxy-options:` line, when every word is one of our judging flags followed by a
 * value in its range (each flag once); null when anything else is there: a hand-edited or hostile
 * file must not get `--access-log /etc/...` or `--admin 0.0.0.0:80` offered as ours.
 */
export function judgingFlagsFrom (text: string): string[] | null {
  const words = text.split(' ').filter((word) => word !== '')
  if (words.length % 2 !== 0) return null
  const seen = new Set<string>()
  let options: ClbProxyOptions = {}
  for (let index = 0; index < words.length; index += 2) {
    const flag = words[index] as string
    const parse = Object.hasOwn(JUDGING_FLAGS, flag) ? JUDGING_FLAGS[flag] : undefined
    const parsed = parse?.(words[index + 1] as string) ?? null
    if (parsed === null || seen.has(flag)) return null
    seen.add(flag)
    options = { ...options, ...parsed }
  }
  try {
    resolveOptions(options, { requireBackends: false })
  } catch (error) {
    if (error instanceof OptionError) return null
    throw error
  }
  return words
}

/** What is served, the clb-proxy line to put in front of it, and the curl line to send. */
export function replayBanner (file: string, capture: ParsedCapture, backend: Pick<ReplayBackend, 'url'>): string {
  const field = (name: string): string | undefined => capture.fields.get(name)?.at(-1)
  const then = capture.afterResponse === 'close' ? 'then closes the connection' : 'then holds the connection open, silent'
  const proxyUrl = `http://${hostPort(CLB_DEFAULTS.listen)}`
  const proxyOptionsText = field('proxy-options') ?? ''
  const proxyFlags = judgingFlagsFrom(proxyOptionsText)
  const proxyCommand = ['clb-proxy', '--backend', backend.url, ...(proxyFlags ?? [])]
  const lines = [
    `clb-proxy replay: ${backend.url} answers every request with the ${capture.responseBytes.length} response bytes of ${terminalSafe(file)}, ${then}`
  ]
  const request = field('request')
  const status = field('elb-status')
  if (request !== undefined || status !== undefined) {
    const why = field('primary-defect')
    lines.push(`  captured: ${shown(request ?? '-')} -> ${shown(status ?? '-')}${why !== undefined && why !== '-' ? ` ${shown(why)}` : ''} (${shown(field('outcome') ?? '-')})`)
  }
  const curl = curlCommand(request, proxyUrl)
  lines.push(
    'Put clb-proxy in front of it:',
    `  ${proxyCommand.map(shellQuote).join(' ')}`
  )
  if (proxyFlags === null) {
    lines.push(`  (the capture's proxy-options line is not one clb-proxy writes, so none of it is used: ${shown(proxyOptionsText)})`)
  }
  lines.push(
    'Then send the captured request through it:',
    `  ${curl.command.map(shellQuote).join(' ')}`,
    ...curl.notes.map((note) => `  (${note})`),
    'Press Ctrl-C to stop.',
    ''
  )
  return lines.join('\n')
}

/** RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/**
 * Bytes a URL may hold as they are (RFC 3986 section 2: unreserved, reserved, and "%" of an
 * existing percent-encoding); every other byte of a captured target is percent-encoded.
 */
const URL_BYTE = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]$/

/**
 * curl with the captured method and target; HEAD is `-I` (curl -X HEAD would wait for a body).
 * The `request:` field is `METHOD target HTTP/x.y`, escaped: the method is used only when it is
 * an HTTP token; the target only when it is a path, with the bytes a URL cannot hold as they are
 * percent-encoded. `-g` keeps curl from reading [ ] { } as its URL globs, `--path-as-is` from
 * removing dot segments.
 */
function curlCommand (request: string | undefined, proxyUrl: string): { command: string[]; notes: string[] } {
  const words = (request ?? '').split(' ')
  const method = words.length >= 3 ? words[0] as string : ''
  const escapedTarget = words.length >= 3 ? words.slice(1, -1).join(' ') : ''
  const notes: string[] = []
  const command = ['curl', '-v']
  if (method === 'HEAD') command.push('-I')
  else if (TOKEN.test(method) && method !== 'GET') command.push('-X', method)
  else if (method !== 'GET' && method !== '' && method !== '-') notes.push(`the captured method is not an HTTP token, so curl sends GET: ${shown(method)}`)
  const target = unescapeCaptureText(escapedTarget)
  let path = '/'
  if (target !== null && target[0] === 0x2f) {
    path = ''
    let encoded = false
    for (const byte of target) {
      const char = String.fromCharCode(byte)
      if (byte < 0x80 && URL_BYTE.test(char)) path += char
      else {
        path += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
        encoded = true
      }
    }
    if (encoded) notes.push('bytes of the captured target that a URL cannot hold as they are were percent-encoded: the path is not byte for byte the captured one')
    if (/[[\]{}]/.test(path)) command.push('-g')
    if (/\/\.\.?(?:[/?#]|$)/.test(path)) command.push('--path-as-is')
  } else if (escapedTarget !== '' && escapedTarget !== '-') {
    notes.push(`the captured target is not a path, so curl requests /: ${shown(escapedTarget)}`)
  }
  command.push(`${proxyUrl}${path}`)
  return { command, notes }
}

function usageError (io: CliIo, message: string): number {
  // The message can quote the file's name or a line of its text.
  io.stderr.write(`clb-proxy replay: ${terminalSafe(message)}\nTry 'clb-proxy replay --help'\n`)
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

