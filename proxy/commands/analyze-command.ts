/**
 * `clb-proxy analyze PATH... [--json | --html FILE] | --athena`: triage of real CLB access logs
 * (and clb-proxy's own). Reads plain and gzip files, pipes, standard input (`-`) and S3-layout
 * directory trees as streams
 * (analyze-read.ts), counts in bounded memory (analyze-stats.ts), and reports what AWS tells
 * users to look for (analyze-report.ts), as text, JSON or a self-contained HTML page
 * (analyze-output.ts); `--athena` prints the same report as SQL for the official Athena table
 * (analyze-athena.ts).
 *
 * Output: the report on stdout (or in the --html FILE), a progress bar on stderr when it is a
 * terminal. Exit codes, as for the other commands: 0 on success; 1 when a file cannot be read
 * midway (e.g. a corrupt gzip: each such file is named on stderr after the report, which still
 * counts every line read); 2 for a bad argument, a PATH that does not exist, a directory with no
 * log file under it, or an input with no CLB access-log line.
 */
import { open, realpath, rm, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { renderAthena } from './analyze-athena.js'
import { renderHtml, renderText } from './analyze-output.js'
import { InputError, listInputs, Progress, readFailure, readInto, STDIN_PATH, type InputFile } from './analyze-read.js'
import { buildReport } from './analyze-report.js'
import { AnalyzeStats } from './analyze-stats.js'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, explainParseFailure, type CliIo } from './command-line.js'
import { OPTION_LIMITS, OPTION_RULES, quoteValue } from '../core/resolve-options.js'
import { CLB_DEFAULTS } from '../core/options.js'

const ANALYZE_OPTIONS = Object.freeze({
  json: { type: 'boolean' as const },
  html: { type: 'string' as const },
  athena: { type: 'boolean' as const },
  'idle-timeout': { type: 'string' as const },
  help: { type: 'boolean' as const, short: 'h' }
})

export function analyzeHelpText (): string {
  return [
    'Usage: clb-proxy analyze PATH... [--json | --html FILE] [--idle-timeout SECONDS]',
    '       clb-proxy analyze --athena',
    '',
    'Reads Classic Load Balancer access logs (and clb-proxy\'s own): .log files, .gz files, and',
    'directories in the S3 layout (AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/...),',
    'and reports requests and errors per minute, ELB-generated vs backend-generated 4XX/5XX,',
    '502s from the backend itself, the instances and paths with the most errors,',
    'backend_processing_time percentiles, each error signature with its likely cause, and the',
    'keep-alive signature (fast 504s with -1 timings) with its fix. Lines that are not CLB lines',
    'are counted and the first 20 listed with file and line number.',
    '',
    "A PATH of '-' reads standard input; a pipe, FIFO or process substitution (<(zcat ...)) is",
    'read as a stream, as a file is. Gzip is recognised by its first bytes, whatever the name.',
    '',
    'Options:',
    '  --json       Print the report as JSON.',
    '  --html FILE  Also write the report as a self-contained HTML page to FILE.',
    '  --athena     Print the Athena table for CLB logs and the report as SQL queries.',
    '  --idle-timeout SECONDS',
    "               The load balancer's idle timeout (default 60, CLB's default): it tells",
    '               the keep-alive race from requests slower than the idle timeout.',
    '  -h, --help   Print this help and exit.',
    '',
    'A file that fails while being read (e.g. a corrupt gzip) is named on stderr after the report,',
    'which counts the lines read from every file.',
    '',
    'Exit status: 0 on success, 1 if a file fails while being read, 2 for a bad argument, a PATH',
    'that does not exist, a directory with no .log or .gz file under it, or an input with no CLB',
    'access-log line (an ALB log, for instance).',
    ''
  ].join('\n')
}

function usageError (io: CliIo, message: string): number {
  io.stderr.write(`clb-proxy analyze: ${message}\nTry 'clb-proxy analyze --help'\n`)
  return EXIT_USAGE
}

export interface AnalyzeResult {
  readonly stats: AnalyzeStats
  readonly files: number
  /** The files that failed, in order, and why; `partly` when some bytes were read first (their lines are in `stats`). */
  readonly failures: ReadonlyArray<{ readonly path: string, readonly reason: string, readonly partly: boolean }>
}

/**
 * Reads every file into one AnalyzeStats; the progress line goes to `progressTo` on a terminal.
 * A file that fails (a corrupt gzip, unreadable) does not stop the others: in an S3 tree of
 * hundreds of files, one bad object should not hide the rest.
 */
export async function analyzeFiles (files: readonly InputFile[], progressTo: NodeJS.WritableStream): Promise<AnalyzeResult> {
  const stats = new AnalyzeStats()
  const failures: Array<{ path: string, reason: string, partly: boolean }> = []
  const progress = new Progress(progressTo, files.some((file) => file.size === null) ? null : files.reduce((sum, file) => sum + (file.size ?? 0), 0))
  try {
    for (const file of files) {
      let read = 0
      try {
        await readInto(file, stats, (bytes) => {
          read += bytes
          progress.add(bytes, stats.lines)
        })
      } catch (error) {
        const reason = readFailure(error)
        if (reason === null) throw error
        failures.push({ path: file.path, reason, partly: read > 0 })
      }
    }
  } finally {
    progress.end()
  }
  return { stats, files: files.length, failures }
}

/** After the report, so that on a terminal they are the last lines, not scrolled away by it. */
function reportFailures (io: CliIo, result: AnalyzeResult): number {
  if (result.failures.length === 0) return EXIT_OK
  for (const { path, reason, partly } of result.failures) io.stderr.write(`clb-proxy analyze: cannot read '${path}'${partly ? ' to its end' : ''}: ${reason}\n`)
  io.stderr.write(`clb-proxy analyze: ${result.failures.length} of ${result.files} files could not be read to their end; the report counts the lines read before each error\n`)
  return EXIT_FAILURE
}

/** Files named in a message: the first few, then how many more. */
const FILES_NAMED = 5

function namedFiles (paths: readonly string[]): string {
  const named = paths.slice(0, FILES_NAMED).map((path) => `'${path}'`).join(', ')
  return paths.length > FILES_NAMED ? `${named} and ${paths.length - FILES_NAMED} more files` : named
}

/**
 * Not one CLB line in the input (an ALB or nginx log, a binary file): a report of 0 requests would
 * look like a quiet load balancer. Refused as a wrong PATH is, after the files that failed are named.
 */
function refuseNotClb (io: CliIo, result: AnalyzeResult, files: readonly InputFile[]): number {
  reportFailures(io, result)
  const { lines, albLines } = result.stats
  io.stderr.write(`clb-proxy analyze: no line of ${namedFiles(files.map((file) => file.path))} is a CLB access-log line (${lines} line${lines === 1 ? '' : 's'} read); nothing to report\n`)
  if (albLines * 2 > result.stats.unparseable) {
    io.stderr.write('clb-proxy analyze: this looks like an Application Load Balancer log (its lines start with a type: http, https, h2, grpcs, ws, wss); analyze reads Classic Load Balancer logs, whose lines start with the timestamp\n')
  }
  return EXIT_USAGE
}

export async function runAnalyze (argv: string[], _env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  let values: { json?: boolean | undefined, html?: string | undefined, athena?: boolean | undefined, 'idle-timeout'?: string | undefined, help?: boolean | undefined }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: ANALYZE_OPTIONS, strict: true, allowPositionals: true }))
  } catch (error) {
    if (!String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) throw error
    return usageError(io, explainParseFailure(argv, ANALYZE_OPTIONS, (name) => name === 'idle-timeout' ? 'SECONDS' : 'FILE', null) ?? (error as Error).message)
  }
  if (values.help === true) {
    io.stdout.write(analyzeHelpText())
    return EXIT_OK
  }
  if (values.athena === true) {
    if (positionals.length > 0 || values.json === true || values.html !== undefined || values['idle-timeout'] !== undefined) {
      const other = positionals[0] ?? (values.json === true ? '--json' : values.html !== undefined ? '--html' : '--idle-timeout')
      return usageError(io, `--athena takes no PATH and no other option (got ${quoteValue(other)})`)
    }
    io.stdout.write(renderAthena())
    return EXIT_OK
  }
  if (positionals.length === 0) return usageError(io, 'missing PATH: an access-log file, a .gz file or a directory of them')
  if (values.json === true && values.html !== undefined) return usageError(io, 'choose one of --json and --html')
  if (values.html === '') return usageError(io, "option '--html' needs a value (--html FILE)")
  const idleTimeout = values['idle-timeout'] ?? String(CLB_DEFAULTS.idleTimeoutSeconds)
  const idleTimeoutSeconds = /^[0-9]{1,4}$/.test(idleTimeout) ? Number(idleTimeout) : NaN
  const idleLimits = OPTION_LIMITS.idleTimeoutSeconds
  if (!(idleTimeoutSeconds >= idleLimits.min && idleTimeoutSeconds <= idleLimits.max)) {
    return usageError(io, `--idle-timeout ${OPTION_RULES.idleTimeoutSeconds}, got ${quoteValue(idleTimeout)}`)
  }

  let files: InputFile[]
  let inputRealPaths: ReadonlySet<string>
  try {
    // io.stdin is a getter that opens standard input: touched only when `-` is named.
    const listed = await listInputs(positionals, positionals.includes(STDIN_PATH) ? io.stdin : undefined)
    files = listed.files
    inputRealPaths = listed.realPaths
    if (listed.alreadyListed.length > 0) io.stderr.write(`clb-proxy analyze: read once, skipped as already read: ${namedFiles(listed.alreadyListed)}\n`)
  } catch (error) {
    if (error instanceof InputError) return usageError(io, error.message)
    throw error
  }
  // The HTML file is checked before anything is read, so that a mistyped directory is told at
  // once, not after the whole input; it is opened for appending, which empties nothing: a file
  // is only replaced by the report, once there is one. An input named as FILE is refused.
  let createdHtmlFile = false
  if (values.html !== undefined) {
    const htmlPath = values.html
    const existing = await realpath(htmlPath).catch(() => null)
    if (existing !== null && inputRealPaths.has(existing)) {
      return usageError(io, `--html ${quoteValue(htmlPath)} is one of the inputs: the report would overwrite the log it reads`)
    }
    try {
      await (await open(htmlPath, 'a')).close()
    } catch (error) {
      return cannotWrite(io, htmlPath, error)
    }
    createdHtmlFile = existing === null
  }
  const result = await analyzeFiles(files, io.stderr)
  if (result.stats.clbLines === 0 && result.stats.unparseable > 0) {
    // No report: a file made for it goes too (one that was there before is left as it was).
    if (createdHtmlFile) await rm(values.html as string, { force: true })
    return refuseNotClb(io, result, files)
  }
  const report = buildReport(result.stats, result.files, { idleTimeoutSeconds })
  if (values.json === true) {
    io.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
    return reportFailures(io, result)
  }
  io.stdout.write(renderText(report))
  if (values.html !== undefined) {
    try {
      await writeFile(values.html, renderHtml(report))
    } catch (error) {
      reportFailures(io, result)
      return cannotWrite(io, values.html, error)
    }
    io.stdout.write(`HTML report written to ${values.html}\n`)
  }
  return reportFailures(io, result)
}

function cannotWrite (io: CliIo, path: string, error: unknown): number {
  const reason = readFailure(error)
  if (reason === null) throw error
  io.stderr.write(`clb-proxy analyze: cannot write ${quoteValue(path)}: ${reason}\n`)
  return EXIT_FAILURE
}
