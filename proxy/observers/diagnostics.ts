/**
 * The diagnostics: one structured record per ELB-generated answer that says why (defect code,
 * byte offset, the bytes around it, the instance and its system error, the capture file and the
 * command that replays it), one per relayed response with warnings, and the notices of
 * diagnostics-keepalive.ts (early closes of kept-alive connections) and diagnostics-upgrade.ts
 * (dropped protocol upgrades). All are subscribers of the lifecycle events (proxy/core/events.ts).
 *
 * Every record stays small whatever the backend or the client sent: foreign text (the request,
 * defect messages that quote header values) is escaped and cut (diagnostics-escape.ts), the
 * excerpt is EXCERPT_RADIUS bytes each side of the offset, and defects are listed per code with a
 * count and their first offsets, for at most MAX_CODES_LISTED codes.
 */
import { pino, type Logger } from 'pino'
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import { escapeBytes } from '../../validators/bytes.js'
import { DEFECTS, type Defect, type DefectCode } from '../../validators/defects.js'
import { judge } from '../../validators/verdict.js'
import { escapeForeign, shellQuote } from './diagnostics-escape.js'
import { subscribeKeepaliveDiagnostics } from './diagnostics-keepalive.js'
import { MAX_ERROR_CHARS, describeConnectionError, subscribeConnectionDiagnostics } from './diagnostics-connections.js'
import { subscribeUpgradeDiagnostics } from './diagnostics-upgrade.js'
import { subscribeInstanceDiagnostics } from './diagnostics-instances.js'
import type { ClbProxyEvents, ExchangeRecord } from '../core/events.js'
import type { ResolvedOptions } from '../core/options.js'

// Bytes shown on each side of a defect's offset.
const EXCERPT_RADIUS = 40
/** Our choice: characters of `METHOD target` kept in a diagnostic (escaped). */
const MAX_REQUEST_CHARS = 200
/** Our choice: characters of a defect message kept (escaped): messages quote header values, which can be 1 MiB long. */
const MAX_MESSAGE_CHARS = 240
/** Our choice: characters of each warning's message (up to MAX_CODES_LISTED of them in one record). */
const MAX_WARNING_MESSAGE_CHARS = 120
/** Our choice: defect codes listed per record; a response can hold every code of the registry. */
export const MAX_CODES_LISTED = 8
/** The parser keeps the first few occurrences of each code; a diagnostic shows this many offsets. */
const OFFSETS_LISTED = 3

/** The default diagnostics logger: JSON lines on stderr, so stdout stays the access log. */
export function defaultLogger (): Logger {
  return pino({ name: 'clb-proxy' }, pino.destination({ dest: 2, sync: false }))
}

/** A logger that writes nothing: `hooks.logger: null`, diagnostics off (no pino import needed in a test). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

/** The escaped bytes around `offset`, with the offset where the excerpt starts. */
export function excerptAround (bytes: Buffer, offset: number): { excerpt: string; excerptOffset: number } {
  const start = Math.max(0, offset - EXCERPT_RADIUS)
  const end = Math.min(bytes.length, offset + EXCERPT_RADIUS)
  return { excerpt: escapeBytes(bytes, start, end), excerptOffset: start }
}

/** One defect code of a record: how many times it was found, and where the first ones are. */
export interface DefectSummary {
  readonly code: DefectCode
  readonly count: number
  readonly firstOffsets: readonly number[]
  /** The first occurrence's message, escaped and cut (warnings only). */
  readonly message?: string
}

/**
 * The defects of a record per code, in the order each code was first found, without `leaveOut`
 * (the primary defect, described on its own): at most MAX_CODES_LISTED codes, and the number of
 * codes left out. `counts` (ExchangeRecord.defectCounts) has the totals; `defects` only the first
 * occurrences of each code.
 */
export function summarizeDefects (defects: readonly Defect[], counts: Readonly<Partial<Record<DefectCode, number>>>,
  leaveOut: Defect | null, withMessages: boolean): { listed: DefectSummary[]; moreCodes: number; total: number } {
  const byCode = new Map<DefectCode, { offsets: number[]; message: string; listedCount: number }>()
  for (const found of defects) {
    let entry = byCode.get(found.code)
    if (entry === undefined) {
      entry = { offsets: [], message: found.message, listedCount: 0 }
      byCode.set(found.code, entry)
    }
    entry.listedCount++
    if (found !== leaveOut && entry.offsets.length < OFFSETS_LISTED) entry.offsets.push(found.offset)
  }
  const summaries: DefectSummary[] = []
  for (const [code, entry] of byCode) {
    const total = Math.max(counts[code] ?? 0, entry.listedCount) - (leaveOut?.code === code ? 1 : 0)
    if (total <= 0) continue
    summaries.push({
      code,
      count: total,
      firstOffsets: entry.offsets,
      ...(withMessages ? { message: escapeForeign(entry.message, MAX_WARNING_MESSAGE_CHARS) } : {})
    })
  }
  return {
    listed: summaries.slice(0, MAX_CODES_LISTED),
    moreCodes: Math.max(0, summaries.length - MAX_CODES_LISTED),
    total: summaries.reduce((sum, summary) => sum + summary.count, 0)
  }
}

export interface DiagnosticsOptions extends Pick<ResolvedOptions, 'idleTimeoutSeconds' | 'keepaliveRace' | 'profile'> {
  /** Whether health checks run (a failing instance stays in service without them). */
  readonly healthCheck?: ResolvedOptions['healthCheck']
  /** For the 400 of desync mitigation: the mode that blocked the request. */
  readonly desyncMode?: ResolvedOptions['desyncMode']
  /** For a 503 with no instance in service: each instance's state and last check (diagnostics-instances.ts). */
  readonly describeInstances?: () => string
  /** For a spillover 503: the limits that were reached. */
  readonly maxInstanceConnections?: number
  readonly surgeQueueSize?: number
  /**
   * The capture file a record is written to, when it is captured (CaptureStore.fileFor); the
   * capture writer decides the name when it queues the record. Absent when captures are off.
   */
  readonly captureFileFor?: (record: ExchangeRecord) => string | null
}

/**
 * Subscribes every diagnostic: exchanges, kept-alive connections, dropped upgrades. The returned
 * function unsubscribes them and prints the totals the once-per-cause notices did not show.
 */
export function subscribeDiagnostics (events: ClbProxyEvents, logger: DiagnosticsLogger, options: DiagnosticsOptions): () => void {
  const instances = subscribeInstanceDiagnostics(events, logger)
  const unsubscribers = [
    () => instances.unsubscribe(),
    subscribeExchangeDiagnostics(events, logger, { ...options, describeInstances: () => instances.describeInstances() }),
    subscribeKeepaliveDiagnostics(events, logger, options),
    subscribeConnectionDiagnostics(events, logger, { healthChecked: options.healthCheck !== undefined && options.healthCheck !== null }),
    subscribeUpgradeDiagnostics(events, logger)
  ]
  return () => { for (const unsubscribe of unsubscribers) unsubscribe() }
}

/**
 * Each ELB-generated answer says why; each relayed (or cut) response with defects lists them.
 */
export function subscribeExchangeDiagnostics (events: ClbProxyEvents, logger: DiagnosticsLogger, options: DiagnosticsOptions): () => void {
  const onExchange = (record: ExchangeRecord): void => {
    // CLB-DESYNC: a request that is not Compliant but was routed (monitor mode, Acceptable or
    // Ambiguous in defensive) still says its tier and reason; a blocked one says it in its 400 below.
    const desync = record.desync
    if (desync !== undefined && desync.tier !== 'Compliant' && record.outcome !== 'desync-blocked') describeRoutedDesync(record, desync, logger, options)
    if (record.outcome === 'passthrough' || record.outcome === 'passthrough-refused') {
      describePassthrough(record, logger, options)
      return
    }
    // A clean relayed response says nothing: return before building anything (once per request).
    // A cut one always says why the client's connection was aborted.
    if (!record.elbGenerated && record.outcome !== 'cut' && record.defects.length === 0) return
    const status = record.log.elbStatusCode ?? '-'
    const base = {
      outcome: record.outcome,
      elbStatus: record.log.elbStatusCode,
      request: escapeForeign(`${record.log.method ?? '-'} ${record.log.target ?? '-'}`, MAX_REQUEST_CHARS),
      backend: record.log.backend === null ? null : `${record.log.backend.address}:${record.log.backend.port}`,
      instance: record.instance,
      backendError: record.backendError === null ? null : escapeForeign(record.backendError, MAX_ERROR_CHARS),
      ...(record.outcome === 'backend-tls-failed' && record.backendErrorMessage != null
        ? { backendErrorMessage: escapeForeign(record.backendErrorMessage, MAX_MESSAGE_CHARS) }
        : {}),
      ...captureFields(options.captureFileFor?.(record) ?? null)
    }
    const primary = record.primaryDefect
    if (record.elbGenerated && primary !== null) {
      const source = primary.code.startsWith('REQUEST_') ? record.requestHead : record.responseBytes
      const others = summarizeDefects(record.defects, record.defectCounts, primary, false)
      logger.warn({
        ...base,
        defect: primary.code,
        offset: primary.offset,
        source: DEFECTS[primary.code].source,
        ...(source === null ? {} : excerptAround(source, primary.offset)),
        otherDefects: others.listed,
        ...(others.moreCodes > 0 ? { moreDefectCodes: others.moreCodes } : {})
      }, `${status} from the load balancer: ${escapeForeign(primary.message, MAX_MESSAGE_CHARS)}${connectionNote(record)}${extraBlankLineNote(record, primary)}`)
      return
    }
    if (record.elbGenerated) {
      const fix = fixFor(record, options)
      logger.warn(fix === null ? base : { ...base, fix }, `${status} from the load balancer: ${describeOutcome(record, options)}`)
      return
    }
    if (record.outcome === 'cut') {
      // The response was committed (past responseBufferBytes, or streaming after responseHoldMs) when a
      // rejecting defect arrived, or the instance stopped before the end of it.
      const deciding = judge(record.defects, options.profile).primary
      const others = summarizeDefects(record.defects, record.defectCounts, deciding, true)
      logger.warn({
        ...base,
        ...(record.cutReason === null ? {} : { cutReason: record.cutReason }),
        ...(deciding === null ? {} : { defect: deciding.code, offset: deciding.offset, source: DEFECTS[deciding.code].source }),
        ...(deciding === null || record.responseBytes === null ? {} : excerptAround(record.responseBytes, deciding.offset)),
        warnings: others.listed,
        ...(others.moreCodes > 0 ? { moreDefectCodes: others.moreCodes } : {})
      }, `${status} relayed, then the client connection was aborted: ` + (deciding === null
        ? describeCut(record, options)
        : `a defect arrived after the response had started: ${escapeForeign(deciding.message, MAX_MESSAGE_CHARS)}`))
      return
    }
    const warnings = summarizeDefects(record.defects, record.defectCounts, null, true)
    logger.info({ ...base, warnings: warnings.listed, ...(warnings.moreCodes > 0 ? { moreDefectCodes: warnings.moreCodes } : {}) },
      `${status} relayed with ${warnings.total} warning(s)`)
  }
  events.on('exchange', onExchange)
  return () => { events.off('exchange', onExchange) }
}

function describeRoutedDesync (record: ExchangeRecord, desync: NonNullable<ExchangeRecord['desync']>, logger: DiagnosticsLogger, options: DiagnosticsOptions): void {
  const mode = options.desyncMode ?? 'defensive'
  const closed = mode === 'defensive' && desync.tier === 'Ambiguous' ? '; both connections are closed after the response' : ''
  logger.info({
    notice: 'desync',
    tier: desync.tier,
    reason: desync.reason,
    offset: desync.offset,
    request: escapeForeign(`${record.log.method ?? '-'} ${record.log.target ?? '-'}`, MAX_REQUEST_CHARS)
  }, `desync mitigation mode ${mode} routed a ${desync.tier} request (${desync.reason}): ${escapeForeign(desync.message ?? desync.reason, MAX_MESSAGE_CHARS)}` +
    `${desync.offset === null ? '' : ` (byte ${desync.offset} of the request head)`}${closed}; counted in DesyncMitigationMode_NonCompliant_Request_Count`)
}

/** A TCP/SSL listener's connection: said only when it could not be joined to an instance, or was cut. */
function describePassthrough (record: ExchangeRecord, logger: DiagnosticsLogger, options: DiagnosticsOptions): void {
  const client = `${record.log.clientAddress}:${record.log.clientPort}`
  const listener = `${record.log.scheme} listener port ${record.log.listenerPort}`
  if (record.outcome === 'passthrough-refused') {
    const why = record.instance === null || record.backendError === null
      ? 'no tcp/ssl instance is in service (a TCP/SSL listener routes to tcp:// and ssl:// instances only)'
      : record.tlsHandshakeFailed === true
        ? describeTlsFailure(record.instance, record.backendError, record.backendErrorMessage ?? null)
        : `the connection to ${record.instance} failed: ${escapeForeign(record.backendError, MAX_ERROR_CHARS)}${record.backendErrorMessage == null ? '' : ` (${escapeForeign(record.backendErrorMessage, MAX_MESSAGE_CHARS)})`}`
    logger.warn({ outcome: record.outcome, instance: record.instance, backendError: record.backendError }, `connection from ${client} on the ${listener} was closed without an instance: ${why}`)
    return
  }
  if (record.cutReason === null) return
  const how = record.cutReason === 'idle-timeout'
    ? `nothing was sent or received for the ${options.idleTimeoutSeconds} s idle timeout (CLB-IDLE)`
    : record.cutReason === 'instance-deregistered'
      ? `its instance ${record.instance ?? ''} was deregistered (draining disabled or timed out)`
      : record.cutReason === 'shutdown'
        ? 'the proxy stopped and its drain timeout passed'
        : record.cutReason === 'client-gone' ? 'the client reset the connection' : 'the instance reset the connection'
  logger.info({ outcome: record.outcome, cutReason: record.cutReason, instance: record.instance }, `connection from ${client} on the ${listener} was closed: ${how}`)
}

/** The capture file and the command that replays it; nothing when the record is not captured. */
function captureFields (file: string | null): { capture?: string; replay?: string } {
  if (file === null) return {}
  return { capture: file, replay: `clb-proxy replay ${shellQuote(file)}` }
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')

/**
 * For a 502 on too many body bytes whose body starts with an empty line: the likely cause is a
 * second CRLF after the headers (KC-502 "more than one CRLF between each header"), which the
 * defect alone does not say (it is found where the shifted body overruns Content-Length).
 */
function extraBlankLineNote (record: ExchangeRecord, primary: Defect): string {
  const bytes = record.responseBytes
  if (primary.code !== 'BODY_EXCEEDS_CL' || bytes === null) return ''
  const headEnd = bytes.indexOf(HEAD_END)
  if (headEnd === -1) return ''
  const bodyStart = headEnd + HEAD_END.length
  if (bytes[bodyStart] !== 0x0d || bytes[bodyStart + 1] !== 0x0a) return ''
  return `; the body starts with an empty line (CRLF at byte ${bodyStart}, right after the blank line that ended the head): ` +
    'more than one CRLF after the headers (KC-502) shifts the body past its Content-Length'
}

/** For the 504 of an instance that closed without a byte: which instance, and how (a reset names its error). */
function connectionNote (record: ExchangeRecord): string {
  if (record.outcome !== 'backend-closed' || record.instance === null) return ''
  const error = record.backendError === null ? '' : `, ${escapeForeign(record.backendError, MAX_ERROR_CHARS)}`
  return ` (instance ${record.instance}${error})`
}

/** Verify errors node:tls reports when an instance's certificate does not chain to the CA (backendCa). */
const UNTRUSTED_CERTIFICATE = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE'])
/**
 * OpenSSL's codes for "no TLS version in common", and its reasons for them (node:tls reports the
 * reason under EPROTO when request bytes were queued during the handshake).
 */
const NO_COMMON_VERSION = new Set(['ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION'])
const NO_COMMON_VERSION_REASON = /protocol version|no protocols available|unsupported protocol/
/** "No cipher in common" or another refusal of the handshake by the instance. */
const REFUSED_HANDSHAKE = new Set(['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_NO_SHARED_CIPHER'])
const REFUSED_HANDSHAKE_REASON = /handshake failure|no shared cipher/
/** "The bytes that came back are not TLS": a plain HTTP (or other) server on that port. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST'])
const NOT_TLS_REASON = /wrong version number|packet length too long|http request/

/**
 * Why the TLS handshake with an https instance failed: the instance, Node's error code and words,
 * and the likely fix.
 */
export function describeTlsFailure (instance: string, code: string, message: string | null): string {
  const error = `${escapeForeign(code, MAX_ERROR_CHARS)}${message === null ? '' : `: ${escapeForeign(message, MAX_MESSAGE_CHARS)}`}`
  return `TLS handshake with ${instance} failed (${error})${tlsFailureCause(code, message ?? '')}`
}

function tlsFailureCause (code: string, words: string): string {
  if (UNTRUSTED_CERTIFICATE.has(code)) return '; its certificate does not chain to the CA given as backendCa (--backend-ca)'
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return '; its certificate does not name the host it was registered with'
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return '; its certificate is outside its validity period'
  if (NO_COMMON_VERSION.has(code) || NO_COMMON_VERSION_REASON.test(words)) return '; no TLS version in common (the proxy offers TLSv1.2 and TLSv1.3)'
  if (REFUSED_HANDSHAKE.has(code) || REFUSED_HANDSHAKE_REASON.test(words)) return '; no cipher in common, or the instance refused the handshake'
  if (NOT_TLS.has(code) || NOT_TLS_REASON.test(words)) return '; the instance does not speak TLS on that port (register it as http:// if it serves plain HTTP)'
  if (code === 'ECONNRESET') return '; the instance closed or reset the connection during the handshake'
  if (code === 'ETIMEDOUT') return '; the instance accepted the connection but did not complete the handshake'
  return ''
}

function describeOutcome (record: ExchangeRecord, options: DiagnosticsOptions): string {
  const instance = record.instance
  switch (record.outcome) {
    case 'backend-closed': return `the instance${instance === null ? '' : ` ${instance}`} closed the connection without sending a response`
    case 'keepalive-race': return 'emulated keep-alive race: this request would have reused a kept-alive connection that the instance' +
      `${instance === null ? '' : ` ${instance}`} had closed before the idle timeout`
    case 'backend-timeout': return `the instance${instance === null ? '' : ` ${instance}`} did not answer within the ` +
      `${options.idleTimeoutSeconds} s idle timeout${record.responseBytes === null ? '' : ` (it sent ${record.responseBytes.length} byte(s) of a response, then nothing)`}`
    // CLB-HTTPERR 503: "There are no registered instances", "There are no healthy instances".
    case 'backend-unreachable':
      if (instance === null) return 'no instance is registered'
      if (record.connectionFailures !== undefined) {
        // CLB-CW BackendConnectionErrors: "the load balancer retries the connection": every try is named.
        return `no instance could be connected to; tried ${record.connectionFailures.length}: ` +
          record.connectionFailures.map((failure) => describeConnectionError(failure.instance, failure.error)).join('; ')
      }
      if (record.backendError === null) return `connection to ${instance} could not be established`
      return describeConnectionError(instance, record.backendError)
    // O-408: CLB answered 408 when its HTTPS instance could not complete the TLS handshake.
    case 'backend-tls-failed': return describeTlsFailure(instance ?? 'the instance', record.backendError ?? 'ECONNRESET', record.backendErrorMessage ?? null)
    case 'no-healthy-instance': return options.describeInstances?.() ?? 'no registered instance is in service'
    // CLB-CW SpilloverCount: "rejected because the surge queue is full".
    case 'spillover': return 'spillover: every instance in service was serving as many requests at once as it may ' +
      `(${options.maxInstanceConnections ?? 'the maximum'}) and the surge queue was full (${options.surgeQueueSize ?? 'its maximum'})`
    case 'instance-deregistered': return `the instance${instance === null ? '' : ` ${instance}`} was deregistered, or failed its health checks, ` +
      'before it answered (connection draining disabled or its timeout passed; CLB-DRAIN: in-flight requests "are not completed")'
    case 'drain-timeout': return record.log.elbStatusCode === 408
      ? 'the proxy was stopping and the drain timeout passed before the client finished sending its request'
      : `the proxy was stopping and the drain timeout passed before the instance${instance === null ? '' : ` ${instance}`} answered`
    case 'client-timeout': return 'the client did not finish its request within the idle timeout'
    case 'client-closed': return 'the client closed the connection before the response'
    case 'bad-request': return 'the request was malformed'
    // CLB-DESYNC: the mode "blocks the request, serves a 400 response to the client, and closes the client connection".
    case 'desync-blocked': return record.desync === undefined
      ? 'desync mitigation blocked the request'
      : `desync mitigation mode ${options.desyncMode ?? 'defensive'} blocks ${record.desync.tier} requests: ${escapeForeign(record.desync.message ?? record.desync.reason, MAX_MESSAGE_CHARS)}` +
        `${record.desync.offset === null ? '' : ` (byte ${record.desync.offset} of the request head)`}; the client connection is closed`
    case 'cut': return 'the response was aborted after it had started'
    default: return record.outcome
  }
}

/** What to change so that an ELB-generated answer stops happening, where the cause says it; null where it does not. */
function fixFor (record: ExchangeRecord, options: DiagnosticsOptions): string | null {
  // CLB-HTTPERR 504 cause 1: the application is slower than the idle timeout (spec §2.2).
  if (record.outcome === 'backend-timeout') {
    return `have the instance answer (or start its response) within the ${options.idleTimeoutSeconds} s idle timeout, or raise the ` +
      'idle timeout above the slowest request (--idle-timeout here; ConnectionSettings.IdleTimeout on the load balancer, up to 4000 s)'
  }
  return null
}

/** Why a response that had started was cut, in words (the record's cutReason). */
function describeCut (record: ExchangeRecord, options: { readonly idleTimeoutSeconds: number }): string {
  const instance = `the instance${record.instance === null ? '' : ` ${record.instance}`}`
  switch (record.cutReason) {
    case 'client-gone': return 'the client closed its connection while the response was being sent'
    case 'idle-timeout': return `nothing was sent or received for the ${options.idleTimeoutSeconds} s idle timeout (CLB-IDLE: the load balancer closes the connection)`
    case 'shutdown': return 'the proxy was stopping and the drain timeout passed while the response was being sent'
    case 'request-abandoned': return 'the client stopped sending its request body while the response was being sent'
    case 'instance-deregistered': return `${instance} was deregistered, or failed its health checks, while the response was being sent (connection draining disabled or its timeout passed)`
    default:
      return `${instance} stopped before the response was complete` +
        `${record.backendError === null ? '' : ` (${escapeForeign(record.backendError, MAX_ERROR_CHARS)})`}`
  }
}
