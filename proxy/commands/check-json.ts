/**
 * `clb-proxy check --json`, the JSON form of a report (pure). The field names are a contract,
 * documented in docs/check.md "JSON".
 */
import { escapeBytes } from '../../validators/bytes.js'
import type { DefectAction, DefectCode } from '../../validators/defects.js'
import type { Profile } from '../core/options.js'
import type { CheckHeader } from './check-options.js'
import type { CheckDefect, CheckEnding, CheckReport, CheckVerdict, KeepAliveOutcome } from './check-report.js'

/** Bytes of the response shown escaped in `rawExcerpt`. */
export const RAW_EXCERPT_BYTES = 4096

export interface CheckReportJson {
  readonly url: string
  readonly profile: Profile
  readonly idleTimeoutSeconds: number
  readonly request: {
    readonly method: string
    readonly target: string
    readonly host: string
    readonly port: number
    readonly headers: readonly CheckHeader[]
    readonly bodyBytes: number
  }
  readonly bytesReceived: number
  readonly ending: CheckEnding
  readonly head: {
    readonly statusLine: string
    readonly version: string
    readonly statusCode: number
    readonly reason: string
    readonly headers: readonly CheckHeader[]
    readonly bytes: number
    readonly framing: string
    readonly contentLength: number | null
  } | null
  readonly defects: ReadonlyArray<{ readonly code: DefectCode; readonly offset: number; readonly message: string; readonly action: DefectAction }>
  readonly verdict: {
    readonly action: CheckVerdict['action']
    readonly status: 502 | 504 | null
    readonly primary: { readonly code: DefectCode; readonly offset: number; readonly message: string; readonly action: DefectAction } | null
    readonly summary: string
  }
  readonly keepAlive: {
    readonly measured: boolean
    readonly closedAfterSeconds: number | null
    readonly waitedSeconds: number
    readonly outcome: KeepAliveOutcome
    readonly note: string | null
    readonly extraBytes: number
    /** The first bytes that arrived on the idle connection, escaped; null when none did. */
    readonly extraExcerpt: string | null
  }
  /** The first RAW_EXCERPT_BYTES of the response, escaped like the dump (\r \n \t \\ \xHH). */
  readonly rawExcerpt: string
}

/** The report as the JSON object `clb-proxy check --json` prints (field names are a contract). */
export function checkReportJson (report: CheckReport): CheckReportJson {
  const head = report.head
  const prefix = report.captured.find((kept) => kept.start === 0)?.bytes ?? Buffer.alloc(0)
  const defect = (found: CheckDefect): CheckReportJson['defects'][number] =>
    ({ code: found.code, offset: found.offset, message: found.message, action: found.action })
  return {
    url: report.url,
    profile: report.profile,
    idleTimeoutSeconds: report.idleTimeoutSeconds,
    request: {
      method: report.request.method,
      target: report.request.target,
      host: report.address.host,
      port: report.address.port,
      headers: report.request.headers.map((header) => ({ name: header.name, value: header.value })),
      bodyBytes: report.request.bodyBytes
    },
    bytesReceived: report.bytesReceived,
    ending: report.ending,
    head: head === null
      ? null
      : {
          statusLine: `${head.version} ${String(head.statusCode)}${head.reason === '' ? '' : ` ${head.reason}`}`,
          version: head.version,
          statusCode: head.statusCode,
          reason: head.reason,
          headers: head.headers.map((header) => ({ name: header.name, value: header.value })),
          bytes: head.end,
          framing: head.framing.kind,
          contentLength: head.framing.kind === 'content-length' ? head.framing.length : null
        },
    defects: report.defects.map(defect),
    verdict: {
      action: report.verdict.action,
      status: report.verdict.status,
      primary: report.verdict.primary === null ? null : defect(report.verdict.primary),
      summary: report.verdict.summary
    },
    keepAlive: {
      measured: report.keepAlive.measured,
      closedAfterSeconds: report.keepAlive.closedAfterSeconds,
      waitedSeconds: report.keepAlive.waitedSeconds,
      outcome: report.keepAlive.outcome,
      note: report.keepAlive.note,
      extraBytes: report.keepAlive.extraBytes,
      extraExcerpt: report.keepAlive.extraExcerpt === null ? null : escapeBytes(report.keepAlive.extraExcerpt)
    },
    rawExcerpt: escapeBytes(prefix, 0, Math.min(prefix.length, RAW_EXCERPT_BYTES))
  }
}
