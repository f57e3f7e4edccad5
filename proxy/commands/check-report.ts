/**
 * `clb-proxy check`, the report: what reading the response showed, and CLB's verdict on it. Pure:
 * check-probe.ts gathers the facts from the socket (a ResponseReading) and `judgeReading` turns
 * them into a CheckReport, deciding the verdict the way the proxy does (validators/verdict.ts
 * `judge`) and whether CLB would reuse the connection (so whether the keep-alive wait runs).
 * check-text.ts and check-json.ts render a report.
 */
import { defectAction, type Defect, type DefectAction } from '../../validators/defects.js'
import { hasConnectionToken } from '../../validators/field-line.js'
import type { ResponseFraming, ResponseHead } from '../../validators/response-parser.js'
import { judge } from '../../validators/verdict.js'
import type { Profile } from '../core/options.js'
import { SYNTHETIC_RESPONSES } from '../data-path/synthetic-responses.js'
import type { CheckHeader, ResolvedCheckOptions } from './check-options.js'

/**
 * How reading the response ended:
 * - 'complete': the response was framed to its end (by its framing, or by the close for a body
 *   delimited by the connection closing);
 * - 'invalid': a defect made the bytes impossible to frame; reading stopped there;
 * - 'closed': the instance closed (FIN or reset) before the response was complete;
 * - 'timeout': nothing arrived for `timeoutSeconds` before the response was complete;
 * - 'deadline': the response was still arriving after `maxTimeSeconds` (a stream); reading
 *   stopped at the first read after that moment.
 */
export type CheckEnding = 'complete' | 'invalid' | 'closed' | 'timeout' | 'deadline'

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
  readonly maxTimeSeconds: number
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
  /** The first CAPTURE_PREFIX_BYTES (check-probe.ts) received, then a window around each later defect. */
  readonly captured: readonly CapturedBytes[]
}

/** What the probe saw while reading the response: the facts a report is judged from. */
export interface ResponseReading {
  readonly ending: CheckEnding
  readonly bytesReceived: number
  /** The final (non-1xx) head, or null when it was not read to its end. */
  readonly head: ResponseHead | null
  readonly interimResponses: number
  /** Every defect the parser found, in the order found. */
  readonly defects: readonly Defect[]
  /** Bytes kept for display, in any order. */
  readonly captured: readonly CapturedBytes[]
}

/**
 * The report on a reading. Its keepAlive is final, except 'waiting' when CLB would reuse the
 * connection and a keep-alive wait is to follow (the probe then fills it in: `withKeepAlive`).
 */
export function judgeReading (reading: ResponseReading, options: ResolvedCheckOptions): CheckReport {
  const { ending, head } = reading
  const defects: CheckDefect[] = reading.defects.map((found) => ({ ...found, action: defectAction(found.code, options.profile) }))
  const verdict = decideVerdict(ending, defects, head, options, reading.bytesReceived)
  const notReusable = ending === 'complete' && verdict.action !== 'reject' ? whyNotReusable(head as ResponseHead, defects, options) : null
  const keepAlive: KeepAliveReport =
    ending !== 'complete' || verdict.action === 'reject'
      ? notMeasured('not-reusable', verdict.status !== null
        ? `CLB closes the backend connection after answering ${verdict.status}`
        : ending === 'deadline' ? 'the response was still streaming when --max-time ran out' : 'the response was not complete')
      : notReusable !== null
        ? notMeasured('not-reusable', notReusable)
        : options.keepaliveWaitSeconds === 0
          ? notMeasured('skipped', null)
          : notMeasured('waiting', null)
  return {
    url: options.url,
    address: { host: options.host, port: options.port },
    profile: options.profile,
    idleTimeoutSeconds: options.idleTimeoutSeconds,
    timeoutSeconds: options.timeoutSeconds,
    keepaliveWaitSeconds: options.keepaliveWaitSeconds,
    maxTimeSeconds: options.maxTimeSeconds,
    request: {
      method: options.method,
      target: options.target,
      headers: options.headers,
      bodyBytes: options.body.length
    },
    bytesReceived: reading.bytesReceived,
    ending,
    head: head === null ? null : responseHead(head),
    interimResponses: reading.interimResponses,
    defects,
    verdict,
    keepAlive,
    captured: [...reading.captured].sort((a, b) => a.start - b.start)
  }
}

/** The report with the keep-alive measurement's outcome. */
export function withKeepAlive (report: CheckReport, keepAlive: KeepAliveReport): CheckReport {
  return { ...report, keepAlive }
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

/** The status line of one of CLB's own responses, e.g. '502 BAD_GATEWAY' (proxy/data-path/synthetic-responses.ts). */
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
    if (head !== null) {
      // The head was complete: clb-proxy commits a response still incomplete responseHoldMs after
      // its head (docs/architecture.md, the commit rule), so the client already has the head and the
      // bytes so far; the silence then ends the connection (CLB-IDLE), not a 504.
      const body = bytesReceived - head.end
      return {
        action: 'reject',
        status: null,
        primary: null,
        summary: `CLB would stream the ${head.statusCode} response, then close the connection: the client gets the head and ${body} body byte(s), ` +
          `then the instance sent nothing for ${waited} s${shorter} and the response stays incomplete (logged ${head.statusCode} ${head.statusCode})`
      }
    }
    const what = bytesReceived === 0
      ? `the instance sent no response within ${waited} s${shorter}`
      : `the response head was incomplete after ${bytesReceived} bytes and the instance then sent nothing for ${waited} s${shorter}`
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
  if (head === null && ending === 'deadline') {
    // CLB relays nothing before a complete head, and answers 504 once the instance is silent for
    // the idle timeout (CLB-HTTPERR 504 cause 1); a head still trickling in is on its way there.
    return {
      action: 'reject',
      status: 504,
      primary: null,
      summary: `CLB would answer ${syntheticStatus(504)} once the instance goes silent for the idle timeout (${options.idleTimeoutSeconds} s): ` +
        `the response head was still incomplete after ${bytesReceived} bytes when --max-time ${formatSeconds(options.maxTimeSeconds)} s ran out`
    }
  }
  if (head === null) throw new Error(`bug: a ${ending} response with no head and no rejecting defect`)
  const status = head.statusCode
  if (ending === 'deadline') {
    // CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
    // elapses, the load balancer closes the connection": a response that keeps arriving keeps it
    // open and is streamed to the client. Only the bytes so far can be judged.
    const streaming = `still streaming after ${bytesReceived} bytes when --max-time ${formatSeconds(options.maxTimeSeconds)} s ran out`
    if (verdict.warnings.length > 0) {
      const count = verdict.warnings.length === 1 ? '1 warning' : `${verdict.warnings.length} warnings`
      return { action: 'warn', status: null, primary: null, summary: `passes with warnings so far: ${streaming}; CLB would stream the ${status} response to the client as it arrives (${count} above)` }
    }
    return { action: 'pass', status: null, primary: null, summary: `passes so far: ${streaming}; CLB would stream the ${status} response to the client as it arrives` }
  }
  if (verdict.warnings.length > 0) {
    const count = verdict.warnings.length === 1 ? '1 warning' : `${verdict.warnings.length} warnings`
    return { action: 'warn', status: null, primary: null, summary: `passes with warnings: CLB would relay the ${status} response (${count} above)` }
  }
  return { action: 'pass', status: null, primary: null, summary: `passes: CLB would relay the ${status} response unchanged` }
}

// --- small helpers shared by the probe and the renderers ---------------------------------

/** At most three decimals, no trailing zeros: 60, 0.2, 5.002. */
export function formatSeconds (seconds: number): string {
  return String(Number(seconds.toFixed(3)))
}

/** `host:port`, with an IPv6 host in brackets. */
export function hostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
