import { createHash } from 'node:crypto'
import type { BackendAddress } from '../core/options.js'

/**
 * An EC2-style instance id for a registered address: `i-` and 17 hex digits (the format of EC2's
 * long ids, e.g. i-0123456789abcdef0), derived from `host:port` alone, so an instance keeps its id
 * across restarts and the access log, diagnostics and admin API agree on it.
 */
export function instanceIdFor (address: BackendAddress): string {
  // http instances keep the id they had before other protocols existed: host:port alone.
  const protocol = address.protocol ?? 'http'
  const key = protocol === 'http' ? `${address.host}:${address.port}` : `${protocol}://${address.host}:${address.port}`
  const digest = createHash('sha256').update(key).digest('hex')
  return `i-${digest.slice(0, 17)}`
}

/** `host:port`, IPv6 in brackets: how an instance is named in logs and diagnostics. */
export function instanceLabel (address: BackendAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}
