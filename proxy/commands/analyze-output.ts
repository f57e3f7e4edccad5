/**
 * The text (default) and HTML (`--html FILE`) renderings of an AnalyzeReport. The HTML page is
 * self-contained: inline CSS, an inline SVG bar chart, no script, no external asset. Text from
 * the log (paths, instances, unparseable lines) is foreign: its control characters are written
 * visibly (unicodeTerminalSafe, as the diagnostics write foreign bytes) on a terminal and in the
 * page, and it is escaped for HTML in the page.
 */
import { unicodeTerminalSafe as visible } from '../observers/diagnostics-escape.js'
import type { AnalyzeReport } from './analyze-report.js'

/** Our choice: rows of the per-minute table in the text report, a day of minutes; JSON and HTML have every row. */
export const MAX_TEXT_TIME_ROWS = 1440

/** The mark of a line cut to UNPARSEABLE_TEXT_MAX characters, added after escaping. */
const CUT_MARK = '…'

function percent (part: number, whole: number): string {
  return whole === 0 ? '0%' : `${((part / whole) * 100).toFixed(2)}%`
}

function secs (value: number): string {
  return `${Number(value.toFixed(6))} s`
}

/** `1 line`, `2 lines`: a count with its noun. */
function counted (count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

/** What the lines hold: requests, and TCP/SSL connections when there are some. */
function linesHold (report: AnalyzeReport): string {
  const tcp = report.totals.tcp
  return `${counted(report.requests, 'request')}${tcp > 0 ? ` and ${counted(tcp, 'TCP/SSL connection')}` : ''}`
}

function bucketLabel (report: AnalyzeReport): string {
  return report.bucketMinutes === 1 ? 'minute' : `${report.bucketMinutes} minutes`
}

/** The load balancers of the lines (the `elb` field) and, when there are several, the warning that their counts are mixed. */
function loadBalancerLines (report: AnalyzeReport): string[] {
  const balancers = report.loadBalancers
  if (balancers.count === 0) return []
  const named = balancers.rows.map((row) => `${row.name} (${counted(row.lines, 'line')})`).join(', ')
  const more = balancers.count > balancers.rows.length ? ` and ${balancers.count - balancers.rows.length} more` : ''
  if (balancers.count === 1) return [`load balancer: ${named}`]
  return [
    `load balancers: ${named}${more}${balancers.approximate ? ' (approximate counts)' : ''}`,
    `warning: the lines of ${balancers.count} load balancers (the elb field) are counted together; analyze the logs of one load balancer at a time to tell them apart`
  ]
}

/** Our choice: the slowest answered request under this share of the idle timeout is "far below it" (docs/analyze.md). */
const FAR_BELOW_SHARE = 0.1

/** KC-504, the cause an unanswered log cannot rule out. */
const KC_504_MOST_COMMON = 'KC-504: "The most common reason for an HTTP 504 error is that a corresponding instance didn\'t respond to the request within the configured idle timeout"'

/** What the 504s of the keep-alive signature most likely are, in lines of the text report (the HTML page joins them). */
function keepAliveVerdict (keepAlive: NonNullable<AnalyzeReport['keepAlive']>): string[] {
  const idle = keepAlive.idleTimeoutSeconds
  if (keepAlive.verdict === 'no answered request') {
    return [
      'No request was answered by an instance in these lines, so the log cannot tell the idle-timeout cause',
      `(${KC_504_MOST_COMMON})`,
      'from instances closing kept-alive connections early. The CloudWatch Latency metric (data points at the idle',
      'timeout) or the instance\'s own logs (a request it never logged) tell which.'
    ]
  }
  if (keepAlive.verdict === 'paths never answered') {
    const never = keepAlive.neverAnsweredPaths
    return [
      `${never.count} of these ${keepAlive.count} 504s are on paths no instance answered in these lines: ${never.rows.map((row) => `${visible(row.path)} (${row.errors})`).join(', ')}${never.paths > never.rows.length ? ` and ${never.paths - never.rows.length} more` : ''}.`,
      'A request that timed out is logged with backend:port - and -1 timings (CLB-LOGS), so no answered line shows how slow',
      `these paths are: they are the likely idle-timeout cause (${KC_504_MOST_COMMON}),`,
      `not the keep-alive race: make them answer within the idle timeout of ${idle} s (--idle-timeout) or raise it.`,
      ...(keepAlive.count > never.count ? [`The other ${keepAlive.count - never.count} may still be the keep-alive race, whose fix follows.`] : [])
    ]
  }
  const share = keepAlive.slowestAnsweredSeconds / idle
  return [
    `The slowest request an instance answered took ${secs(keepAlive.slowestAnsweredSeconds)} (backend_processing_time), against an idle timeout of ${idle} s (--idle-timeout);`,
    keepAlive.verdict === 'keep-alive race'
      ? share < FAR_BELOW_SHARE
        ? 'far below it, so these 504s are most likely instances closing kept-alive connections early.'
        : 'under half of it, so these 504s are more likely instances closing kept-alive connections early, but requests slower than the idle timeout may cause some.'
      : 'close to it: requests slower than the idle timeout may cause some or all of these 504s (CLB-HTTPERR 504: the application' +
        ' did not answer within the idle timeout); then the fix is a faster answer or a longer idle timeout.'
  ]
}

export function renderText (report: AnalyzeReport): string {
  const out: string[] = []
  const t = report.totals
  out.push(`clb-proxy analyze: ${linesHold(report)} in ${counted(report.files, 'file')} (${counted(report.lines, 'line')}, ${report.unparseable.count} unparseable${report.blankLines > 0 ? `, ${report.blankLines} blank` : ''})`)
  if (report.firstMinute !== null) out.push(`from ${report.firstMinute} to ${report.lastMinute}`)
  out.push(...loadBalancerLines(report).map(visible))
  out.push('')
  out.push('Errors, by who generated them (elb_status_code vs backend_status_code, KC-502):')
  out.push(`  ELB 4XX      ${String(t.elb4xx).padStart(9)}  ${percent(t.elb4xx, report.requests)}`)
  out.push(`  ELB 5XX      ${String(t.elb5xx).padStart(9)}  ${percent(t.elb5xx, report.requests)}`)
  out.push(`  backend 4XX  ${String(t.backend4xx).padStart(9)}  ${percent(t.backend4xx, report.requests)}`)
  out.push(`  backend 5XX  ${String(t.backend5xx).padStart(9)}  ${percent(t.backend5xx, report.requests)}`)
  out.push(`  502 502      ${String(t.both502).padStart(9)}  (both codes 502: the backend's own 502s)`)
  if (t.tcp > 0) out.push(`  (over HTTP/HTTPS requests; ${t.tcp === 1 ? 'the TCP/SSL listener connection' : `the ${t.tcp} TCP/SSL listener connections`}, "- - - " with elb_status_code -, ${t.tcp === 1 ? 'has' : 'have'} no status)`)
  if (t.noStatus > 0) out.push(`  no status sent (elb_status_code -): ${t.noStatus}`)
  out.push('')
  if (report.signatures.length > 0) {
    out.push('Error signatures (elb backend_status backend:port timings: count, likely cause):')
    for (const s of report.signatures) {
      out.push(`  ${s.elbStatus} ${s.backendStatus} ${s.backend === 'instance' ? 'backend:port' : '-'} ${s.timings === 'all -1' ? '-1 -1 -1' : 'timed'}: ${s.count}`)
      out.push(`      ${s.generatedBy === 'elb' ? 'ELB-generated' : 'backend-generated'}: ${s.cause} [${s.source}]`)
    }
    if (report.otherSignatures > 0) out.push(`  (${report.otherSignatures} more error lines with rarer signatures)`)
    out.push('')
  }
  if (report.keepAlive !== null) {
    out.push(`Keep-alive signature: ${report.keepAlive.count} 504s with no backend and -1 timings.`)
    for (const line of keepAliveVerdict(report.keepAlive)) out.push(`  ${line}`)
    out.push(`  Fix${report.keepAlive.likelyKeepAliveRace === true ? '' : ' of the keep-alive race'}: ${report.keepAlive.advice}`)
    out.push('')
  }
  const latency = report.backendProcessingTime
  if (latency !== null) {
    out.push(`backend_processing_time over ${counted(latency.count, 'request')}: p50 ${secs(latency.p50)}, p90 ${secs(latency.p90)}, p99 ${secs(latency.p99)}, max ${secs(latency.max)}`)
    out.push('')
  }
  if (report.topInstances.rows.length > 0) {
    out.push(`Instances with the most errors${report.topInstances.approximate ? ' (approximate: many distinct instances)' : ''}:`)
    for (const row of report.topInstances.rows) out.push(`  ${String(row.errors).padStart(9)}  ${visible(row.instance)}`)
    out.push('')
  }
  if (report.topPaths.rows.length > 0) {
    out.push(`Paths with the most errors${report.topPaths.approximate ? ' (approximate: many distinct paths)' : ''}:`)
    for (const row of report.topPaths.rows) out.push(`  ${String(row.errors).padStart(9)}  ${visible(row.path)}`)
    out.push('')
  }
  if (report.perMinute.length > 0) {
    // TCP/SSL connections get a column of their own when the lines hold some: a TCP-only log has no request in any row.
    const connections = t.tcp > 0
    out.push(`Per ${bucketLabel(report)} (UTC): requests, ${connections ? 'TCP/SSL connections, ' : ''}errors, error rate; ELB 4XX/5XX, backend 4XX/5XX`)
    for (const m of report.perMinute.slice(0, MAX_TEXT_TIME_ROWS)) {
      out.push(`  ${m.minute}  ${String(m.requests).padStart(8)}  ${connections ? `${String(m.connections).padStart(8)}  ` : ''}${String(m.errors).padStart(7)}  ${percent(m.errors, m.requests).padStart(7)}   ${m.elb4xx}/${m.elb5xx}  ${m.backend4xx}/${m.backend5xx}`)
    }
    const left = report.perMinute.length - MAX_TEXT_TIME_ROWS
    if (left > 0) out.push(`  (${left} more rows, to ${report.lastMinute as string}, left out here: --json and --html have them all)`)
    out.push('')
  }
  if (report.unparseable.count > 0) {
    out.push(`Unparseable lines: ${report.unparseable.count}${report.unparseable.count > report.unparseable.listed.length ? ` (the first ${report.unparseable.listed.length} listed)` : ''}`)
    // The file once, as a heading: an S3 name is over 100 characters, and the line's text must stay visible.
    let file: string | null = null
    for (const u of report.unparseable.listed) {
      if (u.file !== file) {
        file = u.file
        out.push(`  ${visible(file)}:`)
      }
      out.push(`    ${u.line} (${u.reason}): ${visible(u.text)}${u.truncated ? CUT_MARK : ''}`)
    }
    out.push('')
  }
  return out.join('\n')
}

/** Text for the page: control bytes written visibly as on a terminal (a page is read, and copied to one), then HTML-escaped. */
function html (text: string): string {
  return visible(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** The chart of a log of TCP/SSL listeners only draws its connections: it has no request. */
function drawsConnections (report: AnalyzeReport): boolean {
  return report.requests === 0 && report.totals.tcp > 0
}

function chartTitle (report: AnalyzeReport): string {
  return `${drawsConnections(report) ? 'TCP/SSL connections' : 'Requests and errors'} per ${bucketLabel(report)}`
}

/**
 * An inline SVG bar chart: requests (grey) and errors (red) per bucket, each bar where its time
 * falls between the first bucket and the end of the last: a bucket without a line has no row, and
 * placed side by side, two bars a year apart would look like consecutive minutes.
 */
function chart (report: AnalyzeReport): string {
  const rows = report.perMinute
  if (rows.length === 0) return '<p>No requests.</p>'
  const width = 900
  const height = 200
  const bucketMs = report.bucketMinutes * 60_000
  const starts = rows.map((r) => Date.parse(r.minute))
  const first = starts[0] as number
  const span = (starts[starts.length - 1] as number) - first + bucketMs
  // At least 2 units wide: a bucket of a long span stays visible.
  const barWidth = Math.max((bucketMs / span) * width, 2)
  // A log of TCP/SSL listeners only has no request to draw: its bars are its connections.
  const connectionsOnly = drawsConnections(report)
  const drawn = (row: typeof rows[number]): number => connectionsOnly ? row.connections : row.requests
  const max = Math.max(...rows.map(drawn), 1)
  const bars = rows.map((r, i) => {
    const x = Math.min((((starts[i] as number) - first) / span) * width, width - barWidth).toFixed(2)
    const w = Math.max(barWidth - 1, 1).toFixed(2)
    const h = ((drawn(r) / max) * height).toFixed(2)
    const eh = ((r.errors / max) * height).toFixed(2)
    const connections = r.connections > 0 ? `, ${counted(r.connections, 'TCP/SSL connection')}` : ''
    return `<g><title>${html(r.minute)}: ${counted(r.requests, 'request')}, ${counted(r.errors, 'error')}${connections}</title>` +
      `<rect x="${x}" y="${(height - Number(h)).toFixed(2)}" width="${w}" height="${h}" class="req"/>` +
      `<rect x="${x}" y="${(height - Number(eh)).toFixed(2)}" width="${w}" height="${eh}" class="err"/></g>`
  }).join('')
  return `<svg viewBox="0 0 ${width} ${height + 20}" width="100%" role="img" aria-label="${html(chartTitle(report))}">${bars}` +
    `<text x="0" y="${height + 15}">${html(rows[0]?.minute ?? '')}</text><text x="${width}" y="${height + 15}" text-anchor="end">${html(rows[rows.length - 1]?.minute ?? '')}</text></svg>`
}

export function renderHtml (report: AnalyzeReport): string {
  const t = report.totals
  const table = (head: string[], rows: Array<Array<string | number>>): string =>
    `<table><tr>${head.map((h) => `<th>${html(h)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r.map((c) => `<td>${html(String(c))}</td>`).join('')}</tr>`).join('')}</table>`
  const latency = report.backendProcessingTime
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>clb-proxy analyze</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.req{fill:#9aa}.err{fill:#c33}svg text{font-size:11px;fill:#555}code{background:#f4f4f4}
</style></head><body>
<h1>CLB access-log triage</h1>
<p>${linesHold(report)} in ${counted(report.files, 'file')}, ${counted(report.lines, 'line')}, ${report.unparseable.count} unparseable${report.firstMinute !== null ? `, from ${html(report.firstMinute)} to ${html(report.lastMinute ?? '')}` : ''}.</p>
${loadBalancerLines(report).map((line) => `<p>${html(line)}</p>`).join('\n')}
<h2>${html(chartTitle(report))}</h2>
${chart(report)}
<h2>Errors by who generated them</h2>
${table(['kind', 'count'], [['ELB 4XX', t.elb4xx], ['ELB 5XX', t.elb5xx], ['backend 4XX', t.backend4xx], ['backend 5XX', t.backend5xx], ['502 502 (the backend\'s own 502s)', t.both502], ['TCP/SSL listener connections (not requests)', t.tcp]])}
<h2>Error signatures</h2>
${table(['elb', 'backend status', 'backend:port', 'timings', 'count', 'generated by', 'likely cause', 'source'], report.signatures.map((s) => [s.elbStatus, s.backendStatus, s.backend, s.timings, s.count, s.generatedBy, s.cause, s.source]))}
${report.keepAlive !== null ? `<h2>Keep-alive signature</h2><p>${report.keepAlive.count} 504s with no backend and -1 timings. ${html(keepAliveVerdict(report.keepAlive).join(' '))}</p><p>${html(report.keepAlive.advice)}</p>` : ''}
<h2>backend_processing_time</h2>
${latency === null ? '<p>No measured request.</p>' : table(['count', 'p50 (s)', 'p90 (s)', 'p99 (s)', 'max (s)'], [[latency.count, latency.p50, latency.p90, latency.p99, latency.max]])}
<h2>Instances with the most errors${report.topInstances.approximate ? ' (approximate)' : ''}</h2>
${table(['backend:port', 'errors'], report.topInstances.rows.map((r) => [r.instance, r.errors]))}
<h2>Paths with the most errors${report.topPaths.approximate ? ' (approximate)' : ''}</h2>
${table(['path', 'errors'], report.topPaths.rows.map((r) => [r.path, r.errors]))}
<h2>Unparseable lines: ${report.unparseable.count}</h2>
${table(['file:line', 'why', 'text'], report.unparseable.listed.map((u) => [`${u.file}:${u.line}`, u.reason, `${u.text}${u.truncated ? CUT_MARK : ''}`]))}
</body></html>
`
}
