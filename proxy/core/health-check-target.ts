/**
 * CLB's health-check Target string, parsed and formatted. Pure: text in, a typed target or a short
 * error out, never a throw.
 *
 * API-HC HealthCheck.Target: "The protocol is either TCP, HTTP, HTTPS, or SSL. The range of valid
 * ports is one (1) through 65535." Examples: "TCP:5000", "SSL:5000", "HTTP:80/weather/us/wa/seattle".
 * A local shorthand leaves the port out (`HTTP:/health`, `TCP`): each instance is checked on its
 * own port, since a local proxy's instances rarely share one port the way EC2 instances do.
 */

export type HealthCheckProtocol = 'HTTP' | 'HTTPS' | 'TCP' | 'SSL'

export interface HealthCheckTarget {
  readonly protocol: HealthCheckProtocol
  /** null: each instance's own port. */
  readonly port: number | null
  /** HTTP/HTTPS only: the ping path, starting with '/'; null for TCP/SSL. */
  readonly path: string | null
}

const EXPECTED = 'expected PROTOCOL:PORT/PATH (HTTP, HTTPS) or PROTOCOL:PORT (TCP, SSL), e.g. HTTP:80/health or TCP:5000'

// API-HC: "The total length of the HTTP ping target must be 1024 16-bit Unicode characters or less."
export const MAX_HTTP_TARGET_LENGTH = 1024

const PROTOCOLS: ReadonlySet<string> = new Set<HealthCheckProtocol>(['HTTP', 'HTTPS', 'TCP', 'SSL'])

export function parseHealthCheckTarget (text: string): HealthCheckTarget | { readonly error: string } {
  if (typeof text !== 'string' || text.length === 0) return { error: EXPECTED }
  const colon = text.indexOf(':')
  const protocolText = colon === -1 ? text : text.slice(0, colon)
  const rest = colon === -1 ? null : text.slice(colon + 1)
  const protocol = protocolText.toUpperCase()
  if (!PROTOCOLS.has(protocol)) {
    if (protocolText.includes('/')) return { error: EXPECTED }
    return { error: `unknown protocol "${protocolText}": ${EXPECTED}` }
  }
  if (protocol === 'HTTP' || protocol === 'HTTPS') return parseHttpTarget(protocol, text, rest)
  return parseTcpTarget(protocol as 'TCP' | 'SSL', rest)
}

/** HTTP:PORT/PATH or HTTPS:PORT/PATH (API-HC), or the shorthand HTTP:/PATH (the instance's port). */
function parseHttpTarget (protocol: 'HTTP' | 'HTTPS', text: string, rest: string | null): HealthCheckTarget | { readonly error: string } {
  // API-HC: "The total length of the HTTP ping target must be 1024 16-bit Unicode characters or less."
  if (text.length > MAX_HTTP_TARGET_LENGTH) {
    return { error: `an HTTP ping target is at most ${MAX_HTTP_TARGET_LENGTH} characters (this one has ${text.length})` }
  }
  const slash = rest === null ? -1 : rest.indexOf('/')
  if (rest === null || slash === -1) {
    // API-HC: "for HTTP/HTTPS, you must include a ping path in the string".
    return { error: `${protocol} needs a path starting with "/": expected ${protocol}:PORT/PATH, e.g. ${protocol}:80/health` }
  }
  const portText = rest.slice(0, slash)
  const port = portText === '' ? null : parsePort(portText)
  if (port === undefined) return { error: portError(portText) }
  const path = rest.slice(slash)
  const badAt = firstNonPrintable(path)
  if (badAt !== -1) {
    // The path goes on the request line (`GET <path> HTTP/1.1`, RFC 9112 section 3): a space or a
    // control character there would make another request line.
    return { error: `the path must be printable ASCII without spaces: character ${badAt + 1} of "${printable(path)}" is not` }
  }
  // RFC 9112 section 3.2: the request-target is origin-form, path and query; a fragment is never sent.
  if (path.includes('#')) return { error: `the path may not hold a fragment ("#..."), which is never sent on a request line: "${printable(path)}"` }
  return { protocol, port, path }
}

/** TCP:PORT or SSL:PORT (API-HC), or the shorthand TCP / SSL (the instance's port). */
function parseTcpTarget (protocol: 'TCP' | 'SSL', rest: string | null): HealthCheckTarget | { readonly error: string } {
  if (rest === null) return { protocol, port: null, path: null }
  if (rest.includes('/')) return { error: `${protocol} takes no path: expected ${protocol}:PORT, e.g. ${protocol}:5000` }
  const port = parsePort(rest)
  if (port === undefined) return { error: portError(rest) }
  return { protocol, port, path: null }
}

/** 1-65535 written in decimal digits; undefined otherwise. */
function parsePort (text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : undefined
}

function portError (text: string): string {
  // API-HC: "The range of valid ports is one (1) through 65535."
  return `port "${printable(text)}" is not a number from 1 to 65535: ${EXPECTED}`
}

/** Index of the first character outside printable ASCII (0x21-0x7E, so a space counts), or -1. */
function firstNonPrintable (text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x21 || code > 0x7e) return i
  }
  return -1
}

/** The text for an error message: cut to 60 characters, anything outside printable ASCII as \uXXXX. */
function printable (text: string): string {
  const cut = text.length > 60 ? `${text.slice(0, 60)}...` : text
  return cut.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** The inverse of parseHealthCheckTarget: `HTTP:80/health`, `TCP:5000`; a null port is left out (`HTTP:/health`, `TCP`). */
export function formatHealthCheckTarget (target: HealthCheckTarget): string {
  const port = target.port === null ? '' : String(target.port)
  if (target.protocol === 'HTTP' || target.protocol === 'HTTPS') return `${target.protocol}:${port}${target.path ?? '/'}`
  return port === '' ? target.protocol : `${target.protocol}:${port}`
}
