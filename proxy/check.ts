/**
 * `clb-proxy check`, the library part: AWS's troubleshooting step for ELB 502s ("curl -vko
 * /dev/null server_instance_IP", KC-502), automated. One request goes straight to the instance
 * over a raw `net` socket; its response is read with our own ResponseParser and judged as the
 * proxy judges it; after a complete, reusable response the connection is kept open to measure
 * when the instance closes it (the keep-alive race behind intermittent 504s, CLB-HTTPERR 504
 * cause 2, CLB-IDLE, CLB-BACKEND).
 *
 * `checkBackend` does the I/O. `renderCheckReport` and `checkReportJson` are pure: a report in,
 * text or a JSON-ready object out. docs/check.md describes the output and the JSON shape.
 */
import net from 'node:net'
import { escapeBytes, TCHAR } from '../validators/bytes.js'
import { DEFECTS, defectAction, type Defect, type DefectAction, type DefectCode, type DefectSource } from '../validators/defects.js'
import { hasConnectionToken } from '../validators/field-line.js'
import { ResponseParser, type ResponseFraming, type ResponseHead } from '../validators/response-parser.js'
import { judge } from '../validators/verdict.js'
import { readVersion } from './version.js'
import { systemClock, type Clock } from './clock.js'
import { CLB_DEFAULTS, type Profile } from './options.js'
import { OPTION_LIMITS, OPTION_RULES, OptionError } from './resolve-options.js'
import { SYNTHETIC_RESPONSES } from './synthetic-responses.js'

// --- options ----------------------------------------------------------------------------

export interface CheckHeader {
  readonly name: string
  readonly value: string
}

export interface CheckOptions {
  /** The instance and the request target: `http://HOST[:PORT][/path][?query]`. Only http:. */
  readonly url: string
  /** Default 'GET'. */
  readonly method?: string
  /** Sent after Host, User-Agent and Connection; one with the same name replaces that default. */
  readonly headers?: readonly CheckHeader[]
  /** A request body (UTF-8); Content-Length is added unless a header gives Content-Length or Transfer-Encoding. */
  readonly data?: string | null
  /** How defects CLB's documentation is silent on are judged. Default CLB_DEFAULTS.profile. */
  readonly profile?: Profile
  /** CLB's idle timeout, 1-4000 s. Default CLB_DEFAULTS.idleTimeoutSeconds (60). */
  readonly idleTimeoutSeconds?: number
  /** Seconds without a byte from the instance before giving up on the response. Default: the idle timeout. */
  readonly timeoutSeconds?: number
  /** Seconds to wait for the instance to close the idle connection after the response; 0 skips. Default: the idle timeout. */
  readonly keepaliveWaitSeconds?: number
  /** Largest response head accepted (HDR_TOO_LARGE beyond). Default CLB_DEFAULTS.maxHeadBytes. */
  readonly maxHeadBytes?: number
  /** Default `clb-proxy-check/<version>`. */
  readonly userAgent?: string
  /** Measures how long the instance kept the idle connection open. Default: the system clock. */
  readonly clock?: Clock
  /**
   * Called exactly once, when the response is judged and before any keep-alive wait, with the
   * report so far: its keepAlive.outcome is 'waiting' when a wait follows, and final otherwise.
   * The CLI prints the verdict from here so a user is not left staring at a silent terminal.
   */
  readonly onResponseJudged?: (report: CheckReport) => void
}

export interface ResolvedCheckOptions {
  readonly url: string
  readonly host: string
  readonly port: number
  readonly method: string
  /** path and query of the URL, e.g. '/health?full=1'. */
  readonly target: string
  /** Every header line sent, in order (defaults, the caller's headers, Content-Length). */
  readonly headers: readonly CheckHeader[]
  readonly body: Buffer
  readonly profile: Profile
  readonly idleTimeoutSeconds: number
  readonly timeoutSeconds: number
  readonly keepaliveWaitSeconds: number
  readonly maxHeadBytes: number
}

/** A generous upper bound on any wait, in the spirit of CLB's 4000 s idle timeout maximum. */
const MAX_WAIT_SECONDS = OPTION_LIMITS.idleTimeoutSeconds.max

export const CHECK_OPTION_RULES = Object.freeze({
  url: 'must be an http://HOST[:PORT][/path] URL (port 1 to 65535; https is not supported: CLB speaks HTTP to instances behind an HTTP listener)',
  method: 'must be an HTTP method: letters, digits and !#$%&\'*+-.^_`|~ only',
  headers: "must be 'Name: value' with a token name and no CR, LF or NUL in the value",
  data: 'must be text',
  timeoutSeconds: `must be a number of seconds greater than 0 and at most ${MAX_WAIT_SECONDS}`,
  keepaliveWaitSeconds: `must be a number of seconds from 0 to ${MAX_WAIT_SECONDS} (0 skips the keep-alive measurement)`
})

/** Validates every field and builds the request before any socket opens; throws OptionError. */
export function resolveCheckOptions (input: CheckOptions): ResolvedCheckOptions {
  const location = resolveUrl(input.url)
  const method = input.method ?? 'GET'
  if (typeof method !== 'string' || method.length === 0 || !isToken(method)) {
    throw new OptionError({ field: 'method', value: method, rule: CHECK_OPTION_RULES.method })
  }
  const profile = input.profile ?? CLB_DEFAULTS.profile
  if (profile !== 'clb' && profile !== 'strict') throw new OptionError({ field: 'profile', value: profile, rule: OPTION_RULES.profile })
  const idleTimeoutSeconds = input.idleTimeoutSeconds ?? CLB_DEFAULTS.idleTimeoutSeconds
  const idleRange = OPTION_LIMITS.idleTimeoutSeconds
  if (!Number.isInteger(idleTimeoutSeconds) || idleTimeoutSeconds < idleRange.min || idleTimeoutSeconds > idleRange.max) {
    throw new OptionError({ field: 'idleTimeoutSeconds', value: idleTimeoutSeconds, rule: OPTION_RULES.idleTimeoutSeconds })
  }
  const timeoutSeconds = input.timeoutSeconds ?? idleTimeoutSeconds
  if (!isSeconds(timeoutSeconds) || timeoutSeconds === 0) {
    throw new OptionError({ field: 'timeoutSeconds', value: timeoutSeconds, rule: CHECK_OPTION_RULES.timeoutSeconds })
  }
  const keepaliveWaitSeconds = input.keepaliveWaitSeconds ?? idleTimeoutSeconds
  if (!isSeconds(keepaliveWaitSeconds)) {
    throw new OptionError({ field: 'keepaliveWaitSeconds', value: keepaliveWaitSeconds, rule: CHECK_OPTION_RULES.keepaliveWaitSeconds })
  }
  const maxHeadBytes = input.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes
  const headRange = OPTION_LIMITS.maxHeadBytes
  if (!Number.isInteger(maxHeadBytes) || maxHeadBytes < headRange.min || maxHeadBytes > headRange.max) {
    throw new OptionError({ field: 'maxHeadBytes', value: maxHeadBytes, rule: OPTION_RULES.maxHeadBytes })
  }
  const data = input.data ?? null
  if (data !== null && typeof data !== 'string') throw new OptionError({ field: 'data', value: data, rule: CHECK_OPTION_RULES.data })
  const extra = input.headers ?? []
  for (const header of extra) checkHeader(header)
  const body = data === null ? Buffer.alloc(0) : Buffer.from(data, 'utf8')
  const has = (name: string): boolean => extra.some((header) => header.name.toLowerCase() === name)
  const defaults: CheckHeader[] = [
    { name: 'Host', value: location.hostHeader },
    { name: 'User-Agent', value: input.userAgent ?? `clb-proxy-check/${readVersion()}` },
    // CLB keeps backend connections alive and reuses them (ELB-HOW: "pre-open connections").
    { name: 'Connection', value: 'keep-alive' }
  ]
  const headers = [...defaults.filter((header) => !has(header.name.toLowerCase())), ...extra]
  if (data !== null && !has('content-length') && !has('transfer-encoding')) {
    headers.push({ name: 'Content-Length', value: String(body.length) })
  }
  return Object.freeze({
    url: input.url,
    host: location.host,
    port: location.port,
    method,
    target: location.target,
    headers: Object.freeze(headers.map((header) => Object.freeze({ ...header }))),
    body,
    profile,
    idleTimeoutSeconds,
    timeoutSeconds,
    keepaliveWaitSeconds,
    maxHeadBytes
  })
}

function isSeconds (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_WAIT_SECONDS
}

function isToken (text: string): boolean {
  for (let i = 0; i < text.length; i++) if (TCHAR[text.charCodeAt(i)] !== 1) return false
  return true
}

function checkHeader (header: CheckHeader): void {
  if (isValidHeader(header)) return
  const shown = typeof header === 'object' && header !== null ? `${String(header.name)}: ${String(header.value)}` : header
  throw new OptionError({ field: 'headers', value: shown, rule: CHECK_OPTION_RULES.headers })
}

/** A token name (RFC 9110 section 5.6.2) and a value of VCHAR, SP, HTAB or obs-text (section 5.5). */
export function isValidHeader (header: CheckHeader): boolean {
  return typeof header === 'object' && header !== null && typeof header.name === 'string' &&
    typeof header.value === 'string' && header.name.length > 0 && isToken(header.name) &&
    // eslint-disable-next-line no-control-regex
    !/[\0-\x08\x0a-\x1f\x7f]|[^\0-\xff]/.test(header.value)
}

function resolveUrl (url: unknown): { host: string; port: number; target: string; hostHeader: string } {
  const invalid = (rule: string = CHECK_OPTION_RULES.url): OptionError => new OptionError({ field: 'url', value: url, rule })
  if (typeof url !== 'string') throw invalid()
  // `localhost:3000` parses as the scheme "localhost:"; `127.0.0.1:3000` does not parse at all.
  const withoutScheme = !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url) && /^[^:/?#]+:\d+(?:[/?#]|$)/.test(url)
  const rule = CHECK_OPTION_RULES.url + (withoutScheme ? ` (did you mean "http://${url}"?)` : '')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalid(rule)
  }
  if (parsed.protocol !== 'http:') throw invalid(rule)
  if (parsed.username !== '' || parsed.password !== '') throw invalid('must be an http:// URL without a user name or password')
  if (parsed.hostname === '' || parsed.port === '0') throw invalid()
  // The WHATWG parser keeps IPv6 hosts in brackets; net.connect wants them bare.
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname
  return {
    host,
    port: parsed.port === '' ? 80 : Number(parsed.port),
    // RFC 9112 section 3.2.1 origin-form: absolute-path [ "?" query ]. The fragment is never sent.
    target: parsed.pathname + parsed.search,
    hostHeader: parsed.host
  }
}

/** The request bytes: RFC 9112 section 3 request line, then the header lines and the body. */
export function buildCheckRequest (options: ResolvedCheckOptions): Buffer {
  let text = `${options.method} ${options.target} HTTP/1.1\r\n`
  for (const header of options.headers) text += `${header.name}: ${header.value}\r\n`
  return Buffer.concat([Buffer.from(text + '\r\n', 'latin1'), options.body])
}

// --- the report -------------------------------------------------------------------------

/**
 * How reading the response ended:
 * - 'complete': the response was framed to its end (by its framing, or by the close for a body
 *   delimited by the connection closing);
 * - 'invalid': a defect made the bytes impossible to frame; reading stopped there;
 * - 'closed': the instance closed (FIN or reset) before the response was complete;
 * - 'timeout': nothing arrived for `timeoutSeconds` before the response was complete.
 */
export type CheckEnding = 'complete' | 'invalid' | 'closed' | 'timeout'

export interface CheckDefect extends Defect {
  /** What the profile does with it. */
  readonly action: DefectAction
}

export interface CheckVerdict {
  /** 'reject': CLB answers with its own status instead of relaying; 'warn': relayed, with warnings. */
  readonly action: 'pass' | 'warn' | 'reject'
  /** The status CLB would generate itself, or null when it relays the response. */
  readonly status: 502 | 504 | null
  /** The defect that decides a rejection; null when none does (passes, or a timeout). */
  readonly primary: CheckDefect | null
  /** The verdict as one line of text. */
  readonly summary: string
}

/**
 * - 'closed' / 'stayed-open' / 'extra-bytes': the connection was watched after the response;
 * - 'waiting': only in the report handed to onResponseJudged, before the wait;
 * - 'skipped': keepaliveWaitSeconds was 0;
 * - 'not-reusable': CLB would not reuse this connection anyway; `note` says why.
 */
export type KeepAliveOutcome = 'closed' | 'stayed-open' | 'extra-bytes' | 'waiting' | 'skipped' | 'not-reusable'

export interface KeepAliveReport {
  /** True when the idle connection was watched after the response. */
  readonly measured: boolean
  /** Seconds from the end of the response to the instance closing the connection; null unless it closed. */
  readonly closedAfterSeconds: number | null
  /** Seconds actually watched. */
  readonly waitedSeconds: number
  readonly outcome: KeepAliveOutcome
  /** For 'not-reusable': why. */
  readonly note: string | null
  /** For 'extra-bytes': how many bytes arrived on the idle connection, and the first of them. */
  readonly extraBytes: number
  readonly extraExcerpt: Buffer | null
}

export interface CheckResponseHead {
  readonly version: string
  readonly statusCode: number
  readonly reason: string
  readonly headers: readonly CheckHeader[]
  /** Absolute offset just past the blank line that ended the (final) head. */
  readonly end: number
  readonly framing: ResponseFraming
  readonly reusable: boolean
}

/** Bytes kept for display: `bytes` starts at absolute offset `start` of the response. */
export interface CapturedBytes {
  readonly start: number
  readonly bytes: Buffer
}

export interface CheckReport {
  readonly url: string
  readonly address: { readonly host: string; readonly port: number }
  readonly profile: Profile
  readonly idleTimeoutSeconds: number
  readonly timeoutSeconds: number
  readonly keepaliveWaitSeconds: number
  readonly request: {
    readonly method: string
    readonly target: string
    readonly headers: readonly CheckHeader[]
    readonly bodyBytes: number
  }
  readonly bytesReceived: number
  readonly ending: CheckEnding
  readonly head: CheckResponseHead | null
  readonly interimResponses: number
  /** Every defect, in the order found. */
  readonly defects: readonly CheckDefect[]
  readonly verdict: CheckVerdict
  readonly keepAlive: KeepAliveReport
  /** The first CAPTURE_PREFIX_BYTES received, then a window around each later defect. */
  readonly captured: readonly CapturedBytes[]
}

/** The instance could not be connected to: a connection error, not a verdict. */
export class CheckConnectionError extends Error {
  readonly code: string
  constructor (readonly address: string, code: string, detail: string) {
    super(`cannot connect to ${address}: ${code}${detail === '' ? '' : ` (${detail})`}`)
    this.name = 'CheckConnectionError'
    this.code = code
  }
}

/** Bytes kept from the start of the response for display (the rest is parsed, not kept). */
export const CAPTURE_PREFIX_BYTES = 64 * 1024
/** Bytes kept on each side of a defect found past the prefix. */
const DEFECT_WINDOW_BYTES = 256
/** Bytes of an unexpected write on the idle connection kept for display. */
const EXTRA_EXCERPT_BYTES = 64

// --- the I/O ----------------------------------------------------------------------------

/**
 * Sends one request to the instance and reads its response with ResponseParser until it is
 * complete, invalid, the instance closes, or nothing arrives for `timeoutSeconds`; then, after a
 * complete reusable response, waits up to `keepaliveWaitSeconds` for the instance to close the
 * idle connection. Resolves with the report; rejects with OptionError (before any socket opens)
 * or CheckConnectionError.
 */
export async function checkBackend (input: CheckOptions): Promise<CheckReport> {
  const options = resolveCheckOptions(input)
  const socket = await connect(options)
  return new CheckRun(socket, options, input.clock ?? systemClock, input.onResponseJudged).done
}

function connect (options: ResolvedCheckOptions): Promise<net.Socket> {
  const address = hostPort(options.host, options.port)
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: options.host, port: options.port })
    const fail = (code: string, detail: string): void => {
      socket.destroy()
      reject(new CheckConnectionError(address, code, detail))
    }
    const onTimeout = (): void => fail('ETIMEDOUT', `no connection within ${formatSeconds(options.timeoutSeconds)} s`)
    const onError = (error: NodeJS.ErrnoException): void => fail(error.code ?? 'ERROR', CONNECT_ERROR_TEXT[error.code ?? ''] ?? error.message)
    socket.setTimeout(options.timeoutSeconds * 1000)
    socket.once('timeout', onTimeout)
    socket.once('error', onError)
    socket.once('connect', () => {
      socket.off('timeout', onTimeout).off('error', onError)
      resolve(socket)
    })
  })
}

const CONNECT_ERROR_TEXT: Readonly<Record<string, string>> = Object.freeze({
  ECONNREFUSED: 'connection refused: nothing listens on that port',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name was not found',
  EAI_AGAIN: 'the host name could not be resolved right now',
  EADDRNOTAVAIL: 'the address is not available'
})

/** One check on one connected socket: reading the response, then the keep-alive wait. */
class CheckRun {
  readonly done: Promise<CheckReport>
  private resolveDone: (report: CheckReport) => void = () => undefined
  private phase: 'reading' | 'waiting' | 'finished' = 'reading'
  private readonly parser: ResponseParser
  private readonly captured: CapturedBytes[] = []
  private prefixBytes = 0
  private report: CheckReport | null = null
  private completedAtMicros = 0
  private waitTimer: NodeJS.Timeout | null = null

  constructor (
    private readonly socket: net.Socket,
    private readonly options: ResolvedCheckOptions,
    private readonly clock: Clock,
    private readonly onResponseJudged: ((report: CheckReport) => void) | undefined
  ) {
    this.done = new Promise((resolve) => { this.resolveDone = resolve })
    this.parser = new ResponseParser({ requestMethod: options.method, maxHeadBytes: options.maxHeadBytes })
    // CLB-IDLE: the idle timer restarts with every byte; a silent instance gets 504 (CLB-HTTPERR 504 cause 1).
    socket.setTimeout(options.timeoutSeconds * 1000)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('timeout', () => this.onTimeout())
    // 'end' is the instance's FIN; 'close' without it is a reset (or a failed write). Both are a close.
    socket.on('end', () => this.onClosed())
    socket.on('close', () => this.onClosed())
    socket.on('error', () => undefined)
    socket.write(buildCheckRequest(options))
  }

  private onData (chunk: Buffer): void {
    if (this.phase === 'waiting') return this.onIdleBytes(chunk)
    if (this.phase !== 'reading') return
    const chunkStart = this.parser.bytesReceived
    const defectsBefore = this.parser.defects.length
    this.parser.push(chunk)
    this.keep(chunk, chunkStart, defectsBefore)
    if (this.parser.state === 'invalid') return this.judged('invalid')
    if (this.parser.state === 'complete') return this.judged('complete')
  }

  private onTimeout (): void {
    if (this.phase === 'reading') this.judged('timeout')
  }

  private onClosed (): void {
    if (this.phase === 'waiting') {
      const seconds = this.secondsSinceResponse()
      return this.finish({ measured: true, closedAfterSeconds: seconds, waitedSeconds: seconds, outcome: 'closed', note: null, extraBytes: 0, extraExcerpt: null })
    }
    if (this.phase !== 'reading') return
    const defectsBefore = this.parser.defects.length
    this.parser.finish()
    this.keep(Buffer.alloc(0), this.parser.bytesReceived, defectsBefore)
    this.judged(this.parser.state === 'complete' ? 'complete' : 'closed')
  }

  private onIdleBytes (chunk: Buffer): void {
    const seconds = this.secondsSinceResponse()
    this.finish({
      measured: true,
      closedAfterSeconds: null,
      waitedSeconds: seconds,
      outcome: 'extra-bytes',
      note: null,
      extraBytes: chunk.length,
      extraExcerpt: Buffer.from(chunk.subarray(0, EXTRA_EXCERPT_BYTES))
    })
  }

  /** Keeps the prefix for display, and a window around any new defect past it. */
  private keep (chunk: Buffer, chunkStart: number, defectsBefore: number): void {
    if (this.prefixBytes < CAPTURE_PREFIX_BYTES && chunk.length > 0) {
      const part = Buffer.from(chunk.subarray(0, CAPTURE_PREFIX_BYTES - this.prefixBytes))
      const last = this.captured[0]
      this.captured[0] = { start: 0, bytes: last === undefined ? part : Buffer.concat([last.bytes, part]) }
      this.prefixBytes += part.length
    }
    for (const found of this.parser.defects.slice(defectsBefore)) {
      if (found.offset < this.prefixBytes) continue
      const from = Math.max(chunkStart, found.offset - DEFECT_WINDOW_BYTES)
      const to = Math.min(chunkStart + chunk.length, found.offset + DEFECT_WINDOW_BYTES)
      if (to <= from || this.captured.some((kept) => kept.start <= from && kept.start + kept.bytes.length >= to)) continue
      this.captured.push({ start: from, bytes: Buffer.from(chunk.subarray(from - chunkStart, to - chunkStart)) })
    }
  }

  private judged (ending: CheckEnding): void {
    this.completedAtMicros = this.clock.nowMicros()
    const head = this.parser.head
    const defects: CheckDefect[] = this.parser.defects.map((found) => ({ ...found, action: defectAction(found.code, this.options.profile) }))
    const verdict = decideVerdict(ending, defects, head, this.options, this.parser.bytesReceived)
    const notReusable = ending === 'complete' && verdict.action !== 'reject' ? whyNotReusable(head as ResponseHead, defects, this.options) : null
    const keepAlive: KeepAliveReport =
      ending !== 'complete' || verdict.action === 'reject'
        ? notMeasured('not-reusable', verdict.status === null ? 'the response was not complete' : `CLB closes the backend connection after answering ${verdict.status}`)
        : notReusable !== null
          ? notMeasured('not-reusable', notReusable)
          : this.options.keepaliveWaitSeconds === 0
            ? notMeasured('skipped', null)
            : notMeasured('waiting', null)
    this.report = {
      url: this.options.url,
      address: { host: this.options.host, port: this.options.port },
      profile: this.options.profile,
      idleTimeoutSeconds: this.options.idleTimeoutSeconds,
      timeoutSeconds: this.options.timeoutSeconds,
      keepaliveWaitSeconds: this.options.keepaliveWaitSeconds,
      request: {
        method: this.options.method,
        target: this.options.target,
        headers: this.options.headers,
        bodyBytes: this.options.body.length
      },
      bytesReceived: this.parser.bytesReceived,
      ending,
      head: head === null ? null : responseHead(head),
      interimResponses: this.parser.interimResponses,
      defects,
      verdict,
      keepAlive,
      captured: [...this.captured].sort((a, b) => a.start - b.start)
    }
    if (keepAlive.outcome !== 'waiting') return this.finish(keepAlive)
    this.phase = 'waiting'
    this.socket.setTimeout(0)
    this.onResponseJudged?.(this.report)
    const waitSeconds = this.options.keepaliveWaitSeconds
    this.waitTimer = setTimeout(() => {
      this.finish({ measured: true, closedAfterSeconds: null, waitedSeconds: waitSeconds, outcome: 'stayed-open', note: null, extraBytes: 0, extraExcerpt: null })
    }, waitSeconds * 1000)
  }

  private secondsSinceResponse (): number {
    return Math.round(Math.max(0, this.clock.nowMicros() - this.completedAtMicros) / 1000) / 1000
  }

  private finish (keepAlive: KeepAliveReport): void {
    if (this.phase === 'finished') return
    const wasWaiting = this.phase === 'waiting'
    this.phase = 'finished'
    if (this.waitTimer !== null) clearTimeout(this.waitTimer)
    this.socket.destroy()
    const report = { ...(this.report as CheckReport), keepAlive }
    if (!wasWaiting) this.onResponseJudged?.(report)
    this.resolveDone(report)
  }
}

function notMeasured (outcome: KeepAliveOutcome, note: string | null): KeepAliveReport {
  return { measured: false, closedAfterSeconds: null, waitedSeconds: 0, outcome, note, extraBytes: 0, extraExcerpt: null }
}

function responseHead (head: ResponseHead): CheckResponseHead {
  return {
    version: head.version,
    statusCode: head.statusCode,
    reason: head.reason,
    headers: head.fields.map((field) => ({ name: field.name, value: field.value })),
    end: head.end,
    framing: head.framing,
    reusable: head.reusable
  }
}

/** Why CLB would not keep this connection for another request; null when it would. */
function whyNotReusable (head: ResponseHead, defects: readonly CheckDefect[], options: ResolvedCheckOptions): string | null {
  if (options.headers.some((header) => header.name.toLowerCase() === 'connection' && /(^|,)\s*close\s*(,|$)/i.test(header.value))) {
    return 'the request said Connection: close'
  }
  if (hasConnectionToken(head.fields, 'close')) return 'the response says Connection: close'
  if (head.framing.kind === 'until-close') return 'the response body ran until the connection closed'
  if (head.version === 'HTTP/1.0' && !hasConnectionToken(head.fields, 'keep-alive')) {
    return 'an HTTP/1.0 response without Connection: keep-alive ends the connection (RFC 9112 section 9.3)'
  }
  if (!head.reusable) return 'a response with both Transfer-Encoding and Content-Length must be followed by a close (RFC 9112 section 6.3)'
  const extra = defects.find((found) => found.code === 'EXTRA_BYTES_AFTER_RESPONSE' || found.code === 'BODY_NOT_ALLOWED')
  if (extra !== undefined) return `bytes followed the response (${extra.code}); CLB does not reuse such a connection`
  return null
}

/** The status line of one of CLB's own responses, e.g. '502 BAD_GATEWAY' (proxy/synthetic-responses.ts). */
function syntheticStatus (status: 502 | 504): string {
  const text = SYNTHETIC_RESPONSES[status].toString('latin1')
  return text.slice('HTTP/1.1 '.length, text.indexOf('\r\n'))
}

function decideVerdict (ending: CheckEnding, defects: readonly CheckDefect[], head: ResponseHead | null,
  options: ResolvedCheckOptions, bytesReceived: number): CheckVerdict {
  if (ending === 'timeout') {
    // CLB-HTTPERR 504 cause 1: the request "did not complete within the idle timeout period".
    const waited = formatSeconds(options.timeoutSeconds)
    const shorter = options.timeoutSeconds < options.idleTimeoutSeconds
      ? ` (--timeout; CLB itself waits for the idle timeout, ${options.idleTimeoutSeconds} s)`
      : ''
    const what = bytesReceived === 0
      ? `the instance sent no response within ${waited} s${shorter}`
      : `the response was incomplete after ${bytesReceived} bytes and the instance then sent nothing for ${waited} s${shorter}`
    return { action: 'reject', status: 504, primary: null, summary: `CLB would answer ${syntheticStatus(504)}: ${what}` }
  }
  const verdict = judge(defects, options.profile)
  const primary = verdict.primary === null ? null : defects.find((found) => found === verdict.primary) ?? null
  if (primary !== null && primary.code === 'EMPTY_RESPONSE') {
    // CLB-HTTPERR 504 cause 2: "Registered instances closing the connection to Elastic Load Balancing."
    return { action: 'reject', status: 504, primary, summary: `CLB would answer ${syntheticStatus(504)}: the instance closed the connection without a response` }
  }
  if (primary !== null) {
    // KC-502: a response that "can't be parsed by your Classic Load Balancer".
    return { action: 'reject', status: 502, primary, summary: `CLB would answer ${syntheticStatus(502)} (ELB-generated): ${primary.message}` }
  }
  if (head === null) throw new Error(`bug: a ${ending} response with no head and no rejecting defect`)
  const status = head.statusCode
  if (verdict.warnings.length > 0) {
    const count = verdict.warnings.length === 1 ? '1 warning' : `${verdict.warnings.length} warnings`
    return { action: 'warn', status: null, primary: null, summary: `passes with warnings: CLB would relay the ${status} response (${count} above)` }
  }
  return { action: 'pass', status: null, primary: null, summary: `passes: CLB would relay the ${status} response unchanged` }
}

// --- rendering (pure) -------------------------------------------------------------------

/** The whole text output of `clb-proxy check`, as printed. */
export function renderCheckReport (report: CheckReport): string {
  return renderResponsePart(report) + renderKeepAliveWaitLine(report) + renderKeepAlivePart(report)
}

/** The request, the response dump, the defects and the verdict line. */
export function renderResponsePart (report: CheckReport): string {
  const lines: string[] = [
    `checking ${report.url} (profile ${report.profile}, idle timeout ${report.idleTimeoutSeconds} s)`,
    `> ${report.request.method} ${report.request.target} HTTP/1.1`,
    ...report.request.headers.map((header) => `> ${header.name}: ${escapeText(header.value)}`),
    report.request.bodyBytes === 0 ? '>' : `> (${report.request.bodyBytes} body bytes)`,
    '',
    responseHeadline(report),
    ...renderDump(report),
    '',
    ...renderDefectList(report),
    '',
    report.verdict.summary
  ]
  return lines.join('\n') + '\n'
}

/** The line printed before the keep-alive wait (empty when there is no wait). */
export function renderKeepAliveWaitLine (report: CheckReport): string {
  if (report.keepAlive.outcome !== 'waiting' && !report.keepAlive.measured) return ''
  return `\nwaiting up to ${formatSeconds(report.keepaliveWaitSeconds)} s to see whether the backend closes the idle connection; --keepalive-wait 0 skips\n`
}

/** What the keep-alive wait showed (empty while it is still running). */
export function renderKeepAlivePart (report: CheckReport): string {
  const keepAlive = report.keepAlive
  const idle = report.idleTimeoutSeconds
  switch (keepAlive.outcome) {
    case 'waiting':
      return ''
    case 'skipped':
      return '\nkeep-alive: not measured (--keepalive-wait 0)\n'
    case 'not-reusable':
      return `\nkeep-alive: not measured: ${keepAlive.note ?? 'CLB would not reuse the connection'}\n`
    case 'extra-bytes':
      return `keep-alive: the backend sent ${keepAlive.extraBytes} more bytes on the idle connection ` +
        `${formatSeconds(keepAlive.waitedSeconds)} s after the response (EXTRA_BYTES_AFTER_RESPONSE, ` +
        `${defectAction('EXTRA_BYTES_AFTER_RESPONSE', report.profile)}): CLB does not reuse such a connection. ` +
        `They start: "${escapeBytes(keepAlive.extraExcerpt ?? Buffer.alloc(0))}"\n`
    case 'stayed-open':
      if (keepAlive.waitedSeconds >= idle) {
        return `keep-alive: the backend kept the idle connection open for the whole wait (${formatSeconds(keepAlive.waitedSeconds)} s, ` +
          `at least the idle timeout of ${idle} s): good, CLB closes idle connections first\n`
      }
      return `keep-alive: the backend kept the idle connection open for the whole wait (${formatSeconds(keepAlive.waitedSeconds)} s); ` +
        `the idle timeout is ${idle} s, so an earlier close than that is not ruled out (--keepalive-wait ${idle} waits that long)\n`
    case 'closed': {
      const after = formatSeconds(keepAlive.closedAfterSeconds ?? 0)
      if ((keepAlive.closedAfterSeconds ?? 0) >= idle) {
        return `keep-alive: the backend closed the idle connection ${after} s after the response, not before CLB's idle timeout (${idle} s): good, CLB closes idle connections first\n`
      }
      return [
        `keep-alive: WARNING: the backend closed the idle connection ${after} s after the response, before CLB's idle timeout (${idle} s).`,
        '  CLB keeps backend connections open after a response and reuses them for later requests. When it',
        '  sends a request on a connection just as the backend closes it, CLB answers 504 GATEWAY_TIMEOUT and',
        '  the backend never logs the request: the most common cause of intermittent CLB 504s',
        '  (CLB-HTTPERR 504: "Registered instances closing the connection to Elastic Load Balancing").',
        `  Fix: make the backend's keep-alive timeout greater than the idle timeout (e.g. ${idle + 5} s), so that`,
        '  CLB is the one that closes idle connections (CLB-IDLE); AWS: "The keep-alive timeout should be at',
        '  least 60 seconds" (CLB-BACKEND). Node\'s http server closes idle connections after 5 s by default',
        `  (server.keepAliveTimeout = 5000 in Node 20 and 22): set server.keepAliveTimeout = ${(idle + 5) * 1000}.`,
        '  Elsewhere: nginx keepalive_timeout, gunicorn --keep-alive, Apache KeepAliveTimeout.',
        ''
      ].join('\n')
    }
  }
}

function responseHeadline (report: CheckReport): string {
  const n = report.bytesReceived
  const from = hostPort(report.address.host, report.address.port)
  switch (report.ending) {
    case 'complete': {
      const framing = report.head === null ? '' : ` (${describeFraming(report.head.framing)})`
      return `< ${n} bytes from ${from}: a complete response${framing}; offsets count from its first byte`
    }
    case 'invalid':
      return `< ${n} bytes from ${from}: invalid, reading stopped at the defect; offsets count from the first byte`
    case 'closed':
      return n === 0
        ? `< ${from} closed the connection without sending a byte`
        : `< ${n} bytes from ${from}, then it closed the connection; offsets count from the first byte`
    case 'timeout':
      return n === 0
        ? `< nothing from ${from} within ${formatSeconds(report.timeoutSeconds)} s`
        : `< ${n} bytes from ${from}, then nothing for ${formatSeconds(report.timeoutSeconds)} s; offsets count from the first byte`
  }
}

function describeFraming (framing: ResponseFraming): string {
  switch (framing.kind) {
    case 'no-body': return 'no body'
    case 'content-length': return `Content-Length: ${framing.length}`
    case 'chunked': return 'chunked'
    case 'until-close': return 'body delimited by the connection closing'
  }
}

function renderDefectList (report: CheckReport): string[] {
  if (report.defects.length === 0) return [`defects (profile ${report.profile}): none`]
  const sorted = [...report.defects].sort((a, b) => a.offset - b.offset)
  const lines = [`defects (profile ${report.profile}):`]
  for (const found of sorted) {
    lines.push(`  ${found.code} at offset ${found.offset}, ${found.action}: ${found.message}`)
    lines.push(`    ${SOURCE_TEXT[DEFECTS[found.code].source]}`)
  }
  return lines
}

/** Why the default verdict is what it is (validators/defects.ts `source`). */
const SOURCE_TEXT: Readonly<Record<DefectSource, string>> = Object.freeze({
  'aws-documented': 'AWS lists this among the causes of ELB-generated 502s (KC-502)',
  'aws-504': 'AWS: an instance closing the connection makes CLB answer 504 (CLB-HTTPERR)',
  'aws-400': 'AWS: CLB answers 400 (CLB-HTTPERR)',
  'peer-consensus': 'not in the AWS docs; every strict proxy (HAProxy, nginx, Envoy, llhttp) rejects it',
  'peers-split': 'not in the AWS docs; proxies disagree, so the clb profile warns and strict rejects',
  'our-choice': "not in the AWS docs; clb-proxy's choice (docs/defects.md)"
})

// --- the HAProxy-style dump -------------------------------------------------------------

/** Head bytes shown at most; defects further in get their own excerpt. */
const SHOWN_HEAD_BYTES = 8 * 1024
/** Context kept around a defect: at most this many bytes before it on its line, and after it. */
const SHOWN_CONTEXT_BYTES = 512
/** HAProxy `show errors` wraps lines at 79 columns; the prefix `  00000  ` takes 9 of them. */
const WRAP_COLUMNS = 79

interface ByteRange { start: number; end: number }

/**
 * The response bytes as HAProxy's `show errors` prints them (peers-validation.md section 1.2):
 * one input line per output line, prefixed by the offset of its first byte, escaped, wrapped at
 * 79 columns with `NNNNN+` continuations; under the line holding each defect, a `^` at its byte.
 */
function renderDump (report: CheckReport): string[] {
  if (report.bytesReceived === 0) return []
  const ranges = shownRanges(report)
  const byDefect = [...report.defects].sort((a, b) => a.offset - b.offset)
  const placed = new Set<CheckDefect>()
  const lines: string[] = []
  let shownUpTo = 0
  let lastPiece = ''
  for (const range of ranges) {
    if (range.start > shownUpTo) lines.push(`  ... (${range.start - shownUpTo} bytes not shown)`)
    const bytes = sliceCaptured(report.captured, range)
    for (const line of splitLines(bytes, range.start)) {
      for (const piece of wrap(line.bytes, line.start)) {
        lastPiece = piece.prefix + piece.text
        lines.push(lastPiece)
        for (const found of byDefect) {
          if (placed.has(found) || found.offset < piece.start || found.offset >= piece.start + piece.length) continue
          placed.add(found)
          const column = piece.prefix.length + escapeBytes(line.bytes, piece.start - line.start, found.offset - line.start).length
          lines.push(`${' '.repeat(column)}^ ${found.code}: ${found.message}`)
        }
      }
    }
    shownUpTo = range.end
  }
  // Defects at the very end (the connection closed there): a marker after the last byte shown.
  const atEnd = byDefect.filter((found) => !placed.has(found) && found.offset === shownUpTo && shownUpTo === report.bytesReceived)
  if (atEnd.length > 0) {
    const endsLine = lastByte(report.captured, shownUpTo) === 0x0a
    const prefix = offsetPrefix(shownUpTo, false)
    if (endsLine) lines.push(prefix.trimEnd())
    const column = endsLine ? prefix.length : lastPiece.length
    for (const found of atEnd) lines.push(`${' '.repeat(column)}^ ${found.code}: ${found.message}`)
  }
  if (report.bytesReceived > shownUpTo) lines.push(`  ... (${report.bytesReceived - shownUpTo} more bytes not shown)`)
  return lines
}

/** The head (or what stands for it), plus each defect's line and the line after it. */
function shownRanges (report: CheckReport): ByteRange[] {
  const prefix = report.captured.find((kept) => kept.start === 0)
  const ranges: ByteRange[] = []
  if (prefix !== undefined) {
    const headEnd = report.head?.end ?? guessHeadEnd(prefix.bytes)
    ranges.push({ start: 0, end: Math.min(headEnd, SHOWN_HEAD_BYTES, prefix.bytes.length) })
  }
  for (const found of report.defects) {
    // A defect may sit just past the last byte (the connection closed there): its line is the last one.
    const kept = report.captured.find((k) => k.start <= found.offset && found.offset <= k.start + k.bytes.length)
    if (kept === undefined) continue
    const at = found.offset - kept.start
    // Buffer#lastIndexOf counts a negative offset from the end, hence the guard for at = 0.
    let start = at === 0 ? 0 : kept.bytes.lastIndexOf(0x0a, at - 1) + 1
    start = Math.max(start, at - SHOWN_CONTEXT_BYTES)
    let end = lineEnd(kept.bytes, at)
    end = lineEnd(kept.bytes, end)
    end = Math.min(end, at + SHOWN_CONTEXT_BYTES)
    ranges.push({ start: kept.start + start, end: kept.start + end })
  }
  ranges.sort((a, b) => a.start - b.start)
  const merged: ByteRange[] = []
  for (const range of ranges) {
    const previous = merged[merged.length - 1]
    if (previous !== undefined && range.start <= previous.end && isCaptured(report.captured, previous.start, range.end)) {
      previous.end = Math.max(previous.end, range.end)
    } else if (range.end > range.start) {
      merged.push({ ...range })
    }
  }
  return merged
}

/** Just past the LF that ends the line holding `at`, or the end of the bytes. */
function lineEnd (bytes: Buffer, at: number): number {
  const lf = bytes.indexOf(0x0a, at)
  return lf === -1 ? bytes.length : lf + 1
}

/** Where the head would end when the parser stopped before it did: the first blank line, or all. */
function guessHeadEnd (bytes: Buffer): number {
  const crlf = bytes.indexOf('\r\n\r\n', 0, 'latin1')
  const lf = bytes.indexOf('\n\n', 0, 'latin1')
  const ends = [crlf === -1 ? -1 : crlf + 4, lf === -1 ? -1 : lf + 2].filter((end) => end !== -1)
  return ends.length === 0 ? bytes.length : Math.min(...ends)
}

function isCaptured (captured: readonly CapturedBytes[], start: number, end: number): boolean {
  return captured.some((kept) => kept.start <= start && kept.start + kept.bytes.length >= end)
}

function sliceCaptured (captured: readonly CapturedBytes[], range: ByteRange): Buffer {
  const kept = captured.find((k) => k.start <= range.start && k.start + k.bytes.length >= range.end)
  if (kept === undefined) throw new Error(`bug: bytes ${range.start}-${range.end} were shown but not captured`)
  return kept.bytes.subarray(range.start - kept.start, range.end - kept.start)
}

function lastByte (captured: readonly CapturedBytes[], end: number): number | undefined {
  const kept = captured.find((k) => k.start < end && k.start + k.bytes.length >= end)
  return kept?.bytes[end - 1 - kept.start]
}

interface DumpLine { start: number; bytes: Buffer }

/** Splits at LF, each line keeping its terminator (shown escaped, as HAProxy does). */
function splitLines (bytes: Buffer, start: number): DumpLine[] {
  const lines: DumpLine[] = []
  let from = 0
  while (from < bytes.length) {
    const end = lineEnd(bytes, from)
    lines.push({ start: start + from, bytes: bytes.subarray(from, end) })
    from = end
  }
  return lines
}

interface DumpPiece { prefix: string; text: string; start: number; length: number }

function offsetPrefix (offset: number, continuation: boolean): string {
  return `  ${String(offset).padStart(5, '0')}${continuation ? '+' : ' '} `
}

/** One line as one or more pieces of at most 79 columns; an escape sequence is never split. */
function wrap (bytes: Buffer, start: number): DumpPiece[] {
  const pieces: DumpPiece[] = []
  let pieceStart = 0
  let text = ''
  for (let i = 0; i < bytes.length; i++) {
    const escaped = escapeBytes(bytes, i, i + 1)
    const width = offsetPrefix(start + pieceStart, pieceStart > 0).length + text.length + escaped.length
    if (width > WRAP_COLUMNS && text.length > 0) {
      pieces.push({ prefix: offsetPrefix(start + pieceStart, pieceStart > 0), text, start: start + pieceStart, length: i - pieceStart })
      pieceStart = i
      text = ''
    }
    text += escaped
  }
  pieces.push({ prefix: offsetPrefix(start + pieceStart, pieceStart > 0), text, start: start + pieceStart, length: bytes.length - pieceStart })
  return pieces
}

// --- JSON (pure) ------------------------------------------------------------------------

/** Bytes of the response shown escaped in `rawExcerpt`. */
export const RAW_EXCERPT_BYTES = 4096

export interface CheckReportJson {
  readonly url: string
  readonly profile: Profile
  readonly idleTimeoutSeconds: number
  readonly request: {
    readonly method: string
    readonly target: string
    readonly host: string
    readonly port: number
    readonly headers: readonly CheckHeader[]
    readonly bodyBytes: number
  }
  readonly bytesReceived: number
  readonly ending: CheckEnding
  readonly head: {
    readonly statusLine: string
    readonly version: string
    readonly statusCode: number
    readonly reason: string
    readonly headers: readonly CheckHeader[]
    readonly bytes: number
    readonly framing: string
    readonly contentLength: number | null
  } | null
  readonly defects: ReadonlyArray<{ readonly code: DefectCode; readonly offset: number; readonly message: string; readonly action: DefectAction }>
  readonly verdict: {
    readonly action: CheckVerdict['action']
    readonly status: 502 | 504 | null
    readonly primary: { readonly code: DefectCode; readonly offset: number; readonly message: string; readonly action: DefectAction } | null
    readonly summary: string
  }
  readonly keepAlive: {
    readonly measured: boolean
    readonly closedAfterSeconds: number | null
    readonly waitedSeconds: number
    readonly outcome: KeepAliveOutcome
    readonly note: string | null
    readonly extraBytes: number
    /** The first bytes that arrived on the idle connection, escaped; null when none did. */
    readonly extraExcerpt: string | null
  }
  /** The first RAW_EXCERPT_BYTES of the response, escaped like the dump (\r \n \t \\ \xHH). */
  readonly rawExcerpt: string
}

/** The report as the JSON object `clb-proxy check --json` prints (field names are a contract). */
export function checkReportJson (report: CheckReport): CheckReportJson {
  const head = report.head
  const prefix = report.captured.find((kept) => kept.start === 0)?.bytes ?? Buffer.alloc(0)
  const defect = (found: CheckDefect): CheckReportJson['defects'][number] =>
    ({ code: found.code, offset: found.offset, message: found.message, action: found.action })
  return {
    url: report.url,
    profile: report.profile,
    idleTimeoutSeconds: report.idleTimeoutSeconds,
    request: {
      method: report.request.method,
      target: report.request.target,
      host: report.address.host,
      port: report.address.port,
      headers: report.request.headers.map((header) => ({ name: header.name, value: header.value })),
      bodyBytes: report.request.bodyBytes
    },
    bytesReceived: report.bytesReceived,
    ending: report.ending,
    head: head === null
      ? null
      : {
          statusLine: `${head.version} ${String(head.statusCode)}${head.reason === '' ? '' : ` ${head.reason}`}`,
          version: head.version,
          statusCode: head.statusCode,
          reason: head.reason,
          headers: head.headers.map((header) => ({ name: header.name, value: header.value })),
          bytes: head.end,
          framing: head.framing.kind,
          contentLength: head.framing.kind === 'content-length' ? head.framing.length : null
        },
    defects: report.defects.map(defect),
    verdict: {
      action: report.verdict.action,
      status: report.verdict.status,
      primary: report.verdict.primary === null ? null : defect(report.verdict.primary),
      summary: report.verdict.summary
    },
    keepAlive: {
      measured: report.keepAlive.measured,
      closedAfterSeconds: report.keepAlive.closedAfterSeconds,
      waitedSeconds: report.keepAlive.waitedSeconds,
      outcome: report.keepAlive.outcome,
      note: report.keepAlive.note,
      extraBytes: report.keepAlive.extraBytes,
      extraExcerpt: report.keepAlive.extraExcerpt === null ? null : escapeBytes(report.keepAlive.extraExcerpt)
    },
    rawExcerpt: escapeBytes(prefix, 0, Math.min(prefix.length, RAW_EXCERPT_BYTES))
  }
}

// --- small helpers ----------------------------------------------------------------------

/** At most three decimals, no trailing zeros: 60, 0.2, 5.002. */
export function formatSeconds (seconds: number): string {
  return String(Number(seconds.toFixed(3)))
}

function hostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

function escapeText (text: string): string {
  return escapeBytes(Buffer.from(text, 'latin1'))
}
