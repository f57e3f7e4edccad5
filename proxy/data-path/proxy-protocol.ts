/**
 * The proxy protocol v1 header CLB sends to an instance before a TCP or SSL listener's bytes
 * when its ProxyProtocolPolicyType is enabled (CLB-PROXY). HAProxy's specification, section 2.1
 * (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): "PROXY" SP ("TCP4" | "TCP6" |
 * "UNKNOWN") SP source-address SP destination-address SP source-port SP destination-port CRLF,
 * addresses in their canonical text form, ports in decimal without leading zeros; at most 107 bytes.
 * CLB's own example (CLB-PROXY): `PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\n`.
 */
import { isIP } from 'node:net'

export interface ProxyProtocolEndpoints {
  /** The client's address and port (the TCP peer of the listener's connection). */
  readonly clientAddress: string
  readonly clientPort: number
  /** The listener's own address and port, which the client connected to. */
  readonly listenerAddress: string
  readonly listenerPort: number
}

/**
 * The v1 header line, CRLF included. An IPv4 address Node reports in its IPv6-mapped form
 * (`::ffff:127.0.0.1`, on a dual-stack listener) is written as IPv4, TCP4, as the specification
 * wants the family the connection really has ("TCP4" for "TCP over IPv4"). Addresses of different
 * families, or of no family, give `PROXY UNKNOWN` (section 2.1: "the receiver must ignore anything
 * presented before the CRLF is found").
 */
export function proxyProtocolV1Header (endpoints: ProxyProtocolEndpoints): Buffer {
  const source = unmapIpv4(endpoints.clientAddress)
  const destination = unmapIpv4(endpoints.listenerAddress)
  const family = isIP(source)
  if (family === 0 || family !== isIP(destination)) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1')
  const protocol = family === 4 ? 'TCP4' : 'TCP6'
  return Buffer.from(`PROXY ${protocol} ${source} ${destination} ${endpoints.clientPort} ${endpoints.listenerPort}\r\n`, 'latin1')
}

const MAPPED_IPV4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i

/**
 * An IPv4 address as itself: a dual-stack listener (`[::]`) reports an IPv4 peer in its mapped form
 * (RFC 4291 section 2.5.5.2, `::ffff:127.0.0.1`); the access log, X-Forwarded-For and the PROXY
 * line name the client as CLB would, `127.0.0.1`.
 */
export function unmapIpv4 (address: string): string {
  return address.length > 7 && (address.charCodeAt(0) === 0x3a) ? (MAPPED_IPV4.exec(address)?.[1] ?? address) : address
}
