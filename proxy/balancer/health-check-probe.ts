/**
 * One health check of one instance (clb-behavior.md section 5.6): connect, for HTTP/HTTPS send one
 * GET and judge the answer from its raw bytes with the same ResponseParser and judge() as the data
 * path, decide, and close everything before the promise resolves. The promise never rejects: a
 * refused connection, a reset, a timeout or bad bytes are all a failed check with a reason.
 *
 * What passes (API-HC HealthCheck.Target):
 * - TCP: "a health check simply attempts to open a TCP connection to the instance on the specified
 *   port. Failure to connect within the configured timeout is considered unhealthy."
 * - SSL: CLB-HC: "An SSL health check succeeds if the SSL handshake succeeds."
 * - HTTP/HTTPS: "a HTTP GET request is issued to the instance on the given port and path. Any answer
 *   other than "200 OK" within the timeout period is considered unhealthy."
 */
import net from 'node:net'
import type { Clock } from '../core/clock.js'
import type { HealthCheckResult } from '../core/events.js'
import type { HealthCheckTarget } from '../core/health-check-target.js'
import { CLB_DEFAULTS } from '../core/options.js'
import type { Defect } from '../../validators/defects.js'
import { ResponseParser } from '../../validators/response-parser.js'
import { judge } from '../../validators/verdict.js'
import { instanceReadyEvent, openInstanceSocket } from './instance-socket.js'

export interface ProbeSettings {
  readonly target: HealthCheckTarget
  /** HealthCheck.Timeout: "The amount of time ... during which no response means a failed health check" (API-HC), in ms. */
  readonly timeoutMs: number
  readonly clock: Clock
  /** Largest response head accepted (HDR_TOO_LARGE beyond); default CLB_DEFAULTS.maxHeadBytes. */
  readonly maxHeadBytes?: number
  /**
   * PEM text of the CA an HTTPS/SSL check's certificate must chain to (options.backendCa, as for
   * the data path's https instances); null or absent: any certificate passes.
   */
  readonly backendCa?: string | null
}

export type { HealthCheckResult }

/**
 * How much of a 200's body is read before it is judged on what arrived. A health check only needs
 * the status and a well-formed head; the body is read so that its framing defects (more bytes than
 * Content-Length, a broken chunk) count, but a check must not download a large page every interval.
 * Our choice (CLB does not say how much it reads): the 64 KiB after the head, the same size as the
 * default head limit. Defects past that bound are not counted, whatever the read sizes were.
 */
export const MAX_BODY_BYTES = 64 * 1024

/** A decided check, before the clock reading that completes it. */
type Decision = Omit<HealthCheckResult, 'startedAtMicros' | 'durationMs' | 'summary'> & {
  readonly summary: (durationMs: number) => string
}

export async function probeInstance (address: { host: string, port: number }, settings: ProbeSettings, signal?: AbortSignal): Promise<HealthCheckResult> {
  const { target, timeoutMs, clock } = settings
  const startedAtMicros = clock.nowMicros()
  const complete = (decision: Decision): HealthCheckResult => {
    const durationMs = Math.max(0, clock.nowMicros() - startedAtMicros) / 1000
    return { ...decision, startedAtMicros, durationMs, summary: decision.summary(durationMs) }
  }
  if (signal?.aborted === true) return complete(ABORTED)

  const host = address.host
  const port = target.port ?? address.port
  const secure = target.protocol === 'SSL' || target.protocol === 'HTTPS'
  const http = target.protocol === 'HTTP' || target.protocol === 'HTTPS'

  return await new Promise<HealthCheckResult>((resolve) => {
    let decided = false
    let connected = false
    let socket: net.Socket | null = null
    let socketClosed = false
    const parser = http ? new ResponseParser({ requestMethod: 'GET', maxHeadBytes: settings.maxHeadBytes ?? CLB_DEFAULTS.maxHeadBytes }) : null

    const decide = (decision: Decision): void => {
      if (decided) return
      decided = true
      let result = complete(decision)
      // CLB-HC: only a response "within the response timeout period" counts. One read after it (its
      // timer came late: a busy event loop) is a timeout too, as the duration it reports says.
      if (decision !== ABORTED && decision.error !== 'timeout' && result.durationMs > timeoutMs) {
        result = { ...result, passed: false, error: 'timeout', summary: `${result.summary}, past the ${within(timeoutMs)} timeout` }
      }
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (socket === null || socketClosed) return resolve(result)
      // Resolved only once the socket is closed: nothing of this check is left open.
      socket.once('close', () => resolve(result))
      socket.destroy()
    }

    // CLB-HC: "If the load balancer receives any response other than "200 OK" within the response
    // timeout period, the instance is considered unhealthy"; API-HC for TCP: "Failure to connect
    // within the configured timeout is considered unhealthy".
    const timer = setTimeout(() => decide(timedOut(timeoutMs, connected, secure, parser)), timeoutMs)
    const onAbort = (): void => decide(ABORTED)
    signal?.addEventListener('abort', onAbort, { once: true })

    function closedBy (errorCode: string | null): void {
      if (decided) return
      // A FIN after the request, or any end after response bytes: the parser judges what arrived
      // (EMPTY_RESPONSE, HEADERS_TRUNCATED, BODY_SHORT_CL... or a complete unframed message).
      if (parser !== null && connected && (errorCode === null || parser.bytesReceived > 0)) {
        parser.finish()
        const decision = judgeResponse(parser, errorCode)
        if (decision !== null) return decide(decision)
      }
      decide(connectionFailed(errorCode, connected, secure))
    }

    // The target's protocol decides (API-HC: "The protocol is either TCP, HTTP, HTTPS, or SSL"),
    // opened as the data path opens an instance of that protocol (instance-socket.ts): SNI for a
    // host name, and without backendCa any certificate (CLB-LISTEN "Back-End Server Authentication"
    // off), so self-signed certificates pass.
    const checked = { host, port, protocol: secure ? (http ? 'https' : 'ssl') : (http ? 'http' : 'tcp') } as const
    try {
      socket = openInstanceSocket(checked, { backendCa: settings.backendCa ?? null })
    } catch (error) {
      // A port or host node:net refuses outright (ERR_SOCKET_BAD_PORT...): a failed check, not a throw.
      return closedBy((error as NodeJS.ErrnoException).code ?? 'ERR_INVALID_ADDRESS')
    }
    const connection = socket

    connection.on(instanceReadyEvent(checked), () => {
      connected = true
      if (!http) {
        decide({ passed: true, status: null, defect: null, error: null, summary: (ms) => `${secure ? 'TLS handshake' : 'connected'} in ${Math.round(ms)} ms` })
        return
      }
      connection.write(healthCheckRequest(target.path ?? '/', host, port))
    })
    connection.on('data', (chunk: Buffer) => {
      if (decided || parser === null) return
      parser.push(chunk)
      const decision = judgeResponse(parser, null)
      if (decision !== null) decide(decision)
    })
    // The instance closed (FIN), or the connection failed or was reset. A FIN before the TLS
    // handshake completed is followed by node:tls's own ECONNRESET ("Client network socket
    // disconnected before secure TLS connection was established"): that error decides.
    connection.on('end', () => { if (connected) closedBy(null) })
    connection.on('error', (error: NodeJS.ErrnoException) => closedBy(error.code ?? error.name))
    connection.on('close', () => {
      socketClosed = true
      closedBy(null)
    })
  })
}

/**
 * The request: O-HCUA and O-CTB show `GET <ping path> HTTP/1.1` with `User-Agent: ELB-HealthChecker/1.0`
 * (clb-behavior.md section 5.6); CLB's other headers are UNCONFIRMED. Host because HTTP/1.1
 * requires it (RFC 9112 section 3.2: "A client MUST send a Host header field ... in all HTTP/1.1
 * request messages"), naming the address and port connected to (an IPv6 literal in brackets, RFC
 * 9110 section 7.2); Connection: close because "Each health check request is independent" (CLB-HC):
 * one connection per check, which the instance may close as soon as it has answered.
 */
export function healthCheckRequest (path: string, host: string, port: number): Buffer {
  const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: ELB-HealthChecker/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n`,
    'latin1'
  )
}

/**
 * The verdict on what arrived so far, or null while it is not decided (after `parser.finish()` it
 * is always decided). `errorCode`: the system error that ended the connection, if one did.
 */
function judgeResponse (parser: ResponseParser, errorCode: string | null): Decision | null {
  const head = parser.head
  // Defects past the body bound are not counted, so the verdict does not depend on read sizes.
  const bound = head === null ? Infinity : head.end + MAX_BODY_BYTES
  const counted = parser.defects.filter((found) => found.offset < bound)
  // A malformed 200 is not a 200: CLB could not parse it (KC-502 lists what CLB cannot parse).
  // Every defect that stops the parser rejects under 'clb' (validators/defects.ts), so an invalid
  // response is decided here, unless what stopped it lies past the body bound (then passed below).
  const rejecting = judge(counted, 'clb').primary
  if (rejecting !== null) return malformed(head?.statusCode ?? null, rejecting, errorCode)
  if (head === null) return null
  // Any status but 200 fails as soon as the head is read: the body cannot change the verdict.
  if (head.statusCode !== 200) {
    // A redirect names where it points: `/health` answered by `/health/` is the classic mistake.
    const location = head.statusCode >= 300 && head.statusCode < 400 ? head.fields.find((f) => f.lowerName === 'location')?.value : undefined
    const to = location === undefined ? '' : ` to ${location.length > 200 ? `${location.slice(0, 200)}...` : location}`
    return { passed: false, status: head.statusCode, defect: null, error: errorCode, summary: () => `${head.statusCode}${to}, not 200` }
  }
  const bodyBytes = parser.bytesReceived - head.end
  // CLB-HC, Ping Path: "If the response includes a body, your application must either set the
  // Content-Length header to a value greater than or equal to zero, or specify Transfer-Encoding
  // with a value set to 'chunked'", and CLB-HC-TS lists "The value of the Content-Length header in
  // the response is not set" as a cause of a failing check. So a 200 read until close fails once a
  // body byte arrives (decided at that byte; a bodiless one passes when the instance closes).
  // Whether HDR_BLANK_LINE or this is named may depend on the read sizes; the verdict does not.
  if (head.framing.kind === 'until-close' && bodyBytes > 0) {
    const unframed = parser.defects.find((found) => found.code === 'TE_UNSUPPORTED' || found.code === 'BODY_UNTIL_CLOSE')
    return {
      passed: false,
      status: 200,
      defect: unframed === undefined ? null : toResultDefect(unframed),
      error: errorCode,
      summary: () => '200 with a body but neither Content-Length nor Transfer-Encoding: chunked'
    }
  }
  // Complete (judged with the read that completed it, as the data path judges a response; after
  // the instance closed, an unframed message without a body), or MAX_BODY_BYTES of body read:
  // judged on what arrived.
  if (parser.state === 'complete' || bodyBytes >= MAX_BODY_BYTES) {
    return { passed: true, status: 200, defect: null, error: null, summary: (ms) => `200 in ${Math.round(ms)} ms` }
  }
  return null
}

function malformed (status: number | null, found: Defect, errorCode: string | null): Decision {
  const summary = found.code === 'EMPTY_RESPONSE'
    ? 'the instance closed the connection without answering (EMPTY_RESPONSE)'
    : `malformed ${status ?? 'response'}: ${found.code} at byte ${found.offset} (${found.message})`
  return { passed: false, status, defect: toResultDefect(found), error: errorCode, summary: () => summary }
}

function toResultDefect (found: Defect): HealthCheckResult['defect'] {
  return { code: found.code, offset: found.offset, message: found.message }
}

const ABORTED: Decision = Object.freeze({
  passed: false,
  status: null,
  defect: null,
  error: 'aborted',
  summary: () => 'aborted: the proxy is closing'
})

/** A timeout in words: `4 s`, `240 ms`. */
function within (timeoutMs: number): string {
  return timeoutMs >= 1000 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`
}

function timedOut (timeoutMs: number, connected: boolean, secure: boolean, parser: ResponseParser | null): Decision {
  const head = parser?.head ?? null
  let what = 'no answer'
  if (!connected) what = secure ? 'no TLS handshake' : 'no connection'
  else if (head !== null) what = `${head.statusCode} not complete`
  else if (parser !== null && parser.bytesReceived > 0) what = 'no complete answer'
  return { passed: false, status: head?.statusCode ?? null, defect: null, error: 'timeout', summary: () => `${what} within ${within(timeoutMs)}` }
}

const SYSTEM_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out'
}

/** Errors that mean no TCP connection was made, so no TLS handshake was attempted. */
const CONNECT_ERRORS: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ERR_SOCKET_BAD_PORT'])

function connectionFailed (errorCode: string | null, connected: boolean, secure: boolean): Decision {
  const known = errorCode === null ? undefined : SYSTEM_ERRORS[errorCode]
  let summary: string
  if (errorCode === null) summary = 'the instance closed the connection'
  else if (known !== undefined) summary = `${known} (${errorCode})`
  else summary = `connection failed (${errorCode})`
  // An error after the TCP connection and before the handshake completed is the handshake's.
  if (secure && !connected && !CONNECT_ERRORS.has(errorCode ?? '')) {
    summary = known === undefined && errorCode !== null ? `TLS handshake failed (${errorCode})` : `TLS handshake failed: ${summary}`
  }
  return { passed: false, status: null, defect: null, error: errorCode, summary: () => summary }
}
