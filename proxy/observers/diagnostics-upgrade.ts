/**
 * The diagnostic of requests that asked to switch protocols (an Upgrade header, e.g. WebSocket),
 * a subscriber of the 'upgrade-dropped' lifecycle event.
 *
 * CLB HTTP/HTTPS listeners do not pass protocol upgrades: users report the Upgrade header dropped
 * and the request answered as a plain request (clb-behavior.md section 5.10, O-WS: socket.io#1846
 * "looks like the Upgrade header is being dropped"); AWS documents WebSockets for Application Load
 * Balancers only (ELB-HOW), and TCP/SSL listeners pass any bytes through (CLB-LISTEN), with proxy
 * protocol to keep the client's address (CLB-PROXY).
 *
 * One line per path (method and target without its query) the first time; later requests on the
 * same path only increase its count, and the counts are printed when the proxy stops. At most
 * MAX_UPGRADE_PATHS paths are remembered: a client that varies the path cannot grow the memory.
 */
import type { DiagnosticsLogger } from '../core/diagnostics-logger.js'
import { escapeForeign } from './diagnostics-escape.js'
import type { ClbProxyEventMap, ClbProxyEvents } from '../core/events.js'

type UpgradeDropped = ClbProxyEventMap['upgrade-dropped'][0]

/** Our choice: distinct paths remembered; requests on further paths are counted together. */
export const MAX_UPGRADE_PATHS = 1000
/** Our choice: characters of a path, and of the Upgrade value, kept in a line (escaped). */
const MAX_PATH_CHARS = 200
const MAX_PROTOCOL_CHARS = 60
/** Paths listed in the summary printed when the proxy stops. */
const MAX_PATHS_IN_SUMMARY = 10

export const UPGRADE_FIX = 'for WebSocket or another upgrade behind a Classic Load Balancer, use a TCP or SSL listener ' +
  '(optionally with proxy protocol, to keep the client\'s address), or an Application Load Balancer, which supports WebSockets'

/** `GET /chat` for `GET /chat?room=1`: the path the count is kept for, escaped and bounded. */
export function upgradePath (method: string, target: string): string {
  const end = target.search(/[?#]/)
  return escapeForeign(`${method} ${end === -1 ? target : target.slice(0, end)}`, MAX_PATH_CHARS)
}

export function subscribeUpgradeDiagnostics (events: ClbProxyEvents, logger: DiagnosticsLogger): () => void {
  const counts = new Map<string, number>()
  let requestsOnOtherPaths = 0

  const onUpgrade = (event: UpgradeDropped): void => {
    const path = upgradePath(event.method, event.target)
    const count = counts.get(path)
    if (count !== undefined) {
      counts.set(path, count + 1)
      return
    }
    if (counts.size >= MAX_UPGRADE_PATHS) {
      requestsOnOtherPaths++
      if (requestsOnOtherPaths === 1) {
        logger.warn({ notice: 'upgrade-dropped-paths-full', maxPaths: MAX_UPGRADE_PATHS },
          `upgrade requests came on more than ${MAX_UPGRADE_PATHS} paths: requests on further paths are counted together, not printed`)
      }
      return
    }
    counts.set(path, 1)
    const protocol = escapeForeign(event.protocol, MAX_PROTOCOL_CHARS)
    logger.warn({ notice: 'upgrade-dropped', request: path, protocol, count: 1, fix: UPGRADE_FIX },
      `${path} asked to upgrade to ${protocol}: CLB HTTP listeners do not pass protocol upgrades such as WebSocket, so ` +
      'the Upgrade and Connection headers were dropped and the request reached the instance as a plain request, ' +
      'which typically answers 404 or 400. Later requests on this path are counted, not printed')
  }

  events.on('upgrade-dropped', onUpgrade)
  return () => {
    events.off('upgrade-dropped', onUpgrade)
    const repeated = [...counts].filter(([, count]) => count > 1).sort((a, b) => b[1] - a[1])
    if (repeated.length > 0 || requestsOnOtherPaths > 0) {
      const listed = repeated.slice(0, MAX_PATHS_IN_SUMMARY).map(([path, count]) => `${path} x ${count}`)
      if (repeated.length > MAX_PATHS_IN_SUMMARY) listed.push(`${repeated.length - MAX_PATHS_IN_SUMMARY} more path(s)`)
      if (requestsOnOtherPaths > 0) listed.push(`${requestsOnOtherPaths} request(s) on paths not remembered`)
      const total = [...counts.values()].reduce((sum, count) => sum + count, 0) + requestsOnOtherPaths
      logger.info({ notice: 'upgrade-dropped-total', total, paths: counts.size, fix: UPGRADE_FIX },
        `upgrade requests whose Upgrade header was dropped: ${total} in total; ${listed.join(', ')}`)
    }
    counts.clear()
  }
}
