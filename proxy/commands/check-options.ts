/**
 * `clb-proxy check`, its options and the request they describe: every option is validated and the
 * request is built before any socket opens (lesson 8 of docs/style.md: validate everything, then
 * freeze). A bad option throws OptionError naming the field.
 */
import { TCHAR } from '../../validators/bytes.js'
import { CLB_DEFAULTS, type Profile } from '../core/options.js'
import { OPTION_LIMITS, OPTION_RULES, OptionError } from '../core/resolve-options.js'
import { readVersion } from './version.js'

export interface CheckHeader {
  readonly name: string
  readonly value: string
}

/** What to send and how to judge it: every field is validated by resolveCheckOptions. */
export interface CheckRequestOptions {
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
  /**
   * Seconds after the request was sent when reading a response that is still arriving stops, at
   * its first read after that moment (a stream: SSE, a chunked body that never ends). It never
   * cuts a silence short: silence is judged by `timeoutSeconds`. Default: the idle timeout.
   */
  readonly maxTimeSeconds?: number
  /** Largest response head accepted (HDR_TOO_LARGE beyond). Default CLB_DEFAULTS.maxHeadBytes. */
  readonly maxHeadBytes?: number
  /** Default `clb-proxy-check/<version>`. */
  readonly userAgent?: string
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
  readonly maxTimeSeconds: number
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
  keepaliveWaitSeconds: `must be a number of seconds from 0 to ${MAX_WAIT_SECONDS} (0 skips the keep-alive measurement)`,
  maxTimeSeconds: `must be a number of seconds greater than 0 and at most ${MAX_WAIT_SECONDS}`
})

/** Validates every field and builds the request before any socket opens; throws OptionError. */
export function resolveCheckOptions (input: CheckRequestOptions): ResolvedCheckOptions {
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
  // One idle timeout of streaming by default: with --timeout at the idle timeout too, a stream
  // that gets this far has sent a byte within every idle timeout for a whole one (CLB-IDLE).
  const maxTimeSeconds = input.maxTimeSeconds ?? idleTimeoutSeconds
  if (!isSeconds(maxTimeSeconds) || maxTimeSeconds === 0) {
    throw new OptionError({ field: 'maxTimeSeconds', value: maxTimeSeconds, rule: CHECK_OPTION_RULES.maxTimeSeconds })
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
    maxTimeSeconds,
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
