import type { RequestHead } from '../../validators/request-parser.js'

// RFC 9110 section 7.6.1: a proxy MUST remove hop-by-hop fields (Connection and the fields it
// lists, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding's hop partners, Upgrade) before forwarding.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade'])

export interface ForwardingContext {
  /** The TCP peer of the client connection. */
  readonly clientAddress: string
  /** The listener port the client connected to. */
  readonly listenerPort: number
  /** The listener's own address, used as Host for HTTP/1.0 requests that have none (ELB-HOW). */
  readonly listenerAddress: string
  /** X-Forwarded-Proto: "the protocol ... that a client used to connect to your load balancer" (CLB-XFF). */
  readonly listenerProtocol: 'http' | 'https'
}

/**
 * The request head as CLB sends it to the instance (ELB-HOW, CLB-XFF): X-Forwarded-For gets the
 * client address appended ("Otherwise, the load balancer appends the client IP address to the
 * existing header"), X-Forwarded-Proto and X-Forwarded-Port are replaced, Expect is answered by
 * the load balancer and removed, hop-by-hop fields are dropped (an HTTP/1.0 keep-alive request
 * gets the load balancer's own `Connection: keep-alive`), obs-fold is already unfolded. Each
 * field line is written `name: value` (RFC 9112 section 5.1: the whitespace around a value is not
 * part of it; docs/clb-choices.md, Requests).
 */
export function buildForwardedHead (head: RequestHead, context: ForwardingContext): Buffer {
  // Made only for a request with a Connection header (this runs for every request).
  let listed: Set<string> | null = null
  for (const field of head.fields) {
    if (field.lowerName !== 'connection') continue
    listed ??= new Set<string>()
    for (const item of field.value.split(',')) listed.add(item.trim().toLowerCase())
  }
  let text = `${head.method} ${head.target} ${head.version}\r\n`
  // The values of the client's X-Forwarded-For fields, each followed by ", ".
  let forwardedFor = ''
  let hasHost = false
  let sentContentLength = false
  for (const field of head.fields) {
    const name = field.lowerName
    if (HOP_BY_HOP.has(name) || (listed !== null && listed.has(name)) || name === 'expect' ||
      name === 'x-forwarded-proto' || name === 'x-forwarded-port') continue
    if (name === 'content-length') {
      // RFC 9110 section 8.6: repeated identical values may be replaced by one; send exactly one.
      if (head.contentLengthIgnored || sentContentLength) continue
      sentContentLength = true
    }
    if (name === 'x-forwarded-for') {
      if (field.value.length > 0) forwardedFor += `${field.value}, `
      continue
    }
    if (name === 'host') hasHost = true
    text += `${field.name}: ${field.value}\r\n`
  }
  if (!hasHost) text += `Host: ${context.listenerAddress}\r\n`
  text += `X-Forwarded-For: ${forwardedFor}${context.clientAddress}\r\nX-Forwarded-Proto: ${context.listenerProtocol}\r\nX-Forwarded-Port: ${context.listenerPort}\r\n`
  // RFC 9112 section 9.3: an HTTP/1.0 connection persists only if 'the "keep-alive" connection
  // option is present'; otherwise "the connection will close after the current response". The
  // client's Connection field is its own, dropped above. The client connection is kept when it
  // asked (as nginx keeps it), so the load balancer asks the instance too, in its own name: an
  // instance such as node:http then answers with keep-alive instead of closing, as it does when the
  // client talks to it directly. docs/clb-choices.md, Requests.
  if (head.version === 'HTTP/1.0' && listed !== null && listed.has('keep-alive')) text += 'Connection: keep-alive\r\n'
  return Buffer.from(`${text}\r\n`, 'latin1')
}

/** The Host header without its port, for the access log's request field; null when absent. */
export function hostWithoutPort (head: RequestHead | null): string | null {
  const host = head === null ? null : fieldValue(head.fields, 'host')
  if (host === null || host.length === 0) return null
  if (host.startsWith('[')) {
    const close = host.indexOf(']')
    return close === -1 ? host : host.slice(0, close + 1)
  }
  const colon = host.lastIndexOf(':')
  return colon === -1 ? host : host.slice(0, colon)
}

/** The value of the first field named `lowerName` (lower case), or null. A loop: this runs for every request. */
export function fieldValue (fields: RequestHead['fields'], lowerName: string): string | null {
  for (const field of fields) if (field.lowerName === lowerName) return field.value
  return null
}
