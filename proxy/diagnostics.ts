import { pino, type Logger } from 'pino'
import { escapeBytes } from '../validators/bytes.js'
import { DEFECTS } from '../validators/defects.js'
import type { ClbProxyEvents, ExchangeRecord } from './events.js'

// Bytes shown on each side of a defect's offset.
const EXCERPT_RADIUS = 40

/** The default diagnostics logger: JSON lines on stderr, so stdout stays the access log. */
export function defaultLogger (): Logger {
  return pino({ name: 'clb-proxy' }, pino.destination({ dest: 2, sync: false }))
}

/** The escaped bytes around `offset`, with the offset where the excerpt starts. */
export function excerptAround (bytes: Buffer, offset: number): { excerpt: string; excerptOffset: number } {
  const start = Math.max(0, offset - EXCERPT_RADIUS)
  const end = Math.min(bytes.length, offset + EXCERPT_RADIUS)
  return { excerpt: escapeBytes(bytes, start, end), excerptOffset: start }
}

/**
 * Subscribes the structured diagnostic: each ELB-generated error says why (defect code, offset,
 * the bytes around it), and each relayed response with warnings lists them.
 */
export function subscribeDiagnostics (events: ClbProxyEvents, logger: Logger): () => void {
  const onExchange = (record: ExchangeRecord): void => {
    // A clean relayed response says nothing: return before building anything (once per request).
    if (!record.elbGenerated && record.defects.length === 0) return
    const request = `${record.log.method ?? '-'} ${record.log.target ?? '-'}`
    const base = { outcome: record.outcome, elbStatus: record.log.elbStatusCode, request, backend: record.log.backend === null ? null : `${record.log.backend.address}:${record.log.backend.port}` }
    const primary = record.primaryDefect
    if (primary !== null) {
      const source = primary.code.startsWith('REQUEST_') ? record.requestHead : record.responseBytes
      logger.warn({
        ...base,
        defect: primary.code,
        offset: primary.offset,
        source: DEFECTS[primary.code].source,
        ...(source === null ? {} : excerptAround(source, primary.offset)),
        otherDefects: record.defects.filter((d) => d !== primary).map((d) => `${d.code}@${d.offset}`)
      }, `${record.log.elbStatusCode ?? '-'} from the load balancer: ${primary.message}`)
      return
    }
    if (record.elbGenerated) {
      logger.warn(base, `${record.log.elbStatusCode ?? '-'} from the load balancer: ${describeOutcome(record)}`)
      return
    }
    if (record.defects.length > 0) {
      logger.info({ ...base, warnings: record.defects.map((d) => ({ code: d.code, offset: d.offset, message: d.message })) },
        `${record.log.elbStatusCode ?? '-'} relayed with ${record.defects.length} warning(s)`)
    }
  }
  events.on('exchange', onExchange)
  return () => { events.off('exchange', onExchange) }
}

function describeOutcome (record: ExchangeRecord): string {
  switch (record.outcome) {
    case 'backend-closed': return 'the instance closed the connection without sending a response'
    case 'keepalive-race': return 'emulated keep-alive race: this request would have reused a kept-alive connection that the instance had closed before the idle timeout'
    case 'backend-timeout': return 'the instance did not answer within the idle timeout'
    case 'backend-unreachable': return 'no instance could be connected to'
    case 'drain-timeout': return 'the proxy was stopping and the drain timeout passed before the instance answered'
    case 'client-timeout': return 'the client did not finish its request within the idle timeout'
    case 'client-closed': return 'the client closed the connection before the response'
    case 'cut': return 'the response was aborted after it had started'
    default: return record.outcome
  }
}
