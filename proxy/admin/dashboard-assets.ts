/**
 * The dashboard's page, script and style, shipped with the package (no CDN, no network: it works
 * offline). Plain DOM and one EventSource; the chart is SVG drawn by the script.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>clb-proxy</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="dashboard.css">
<link rel="icon" href="data:,">
</head>
<body>
<header><h1>clb-proxy</h1><span id="status">connecting...</span></header>
<main>
<section id="chart-section"><h2>5XX per minute: <span class="elb-key">ELB</span> vs <span class="backend-key">Backend</span></h2><svg id="chart" width="600" height="160" role="img" aria-label="HTTPCode_ELB_5XX and HTTPCode_Backend_5XX per minute"></svg></section>
<section><h2>Instances</h2><table id="instances"><thead><tr><th>InstanceId</th><th>Address</th><th>State</th><th>ReasonCode</th><th>Description</th><th>Last check</th></tr></thead><tbody></tbody></table></section>
<section><h2>Requests <small>(coloured by who generated the status: <span class="elb-key">ELB</span> or <span class="backend-key">Backend</span>)</small></h2><table id="entries"><thead><tr><th>status</th><th>backend</th><th>outcome</th><th>request</th><th>access-log line</th></tr></thead><tbody></tbody></table></section>
<section><h2>Captures</h2><ul id="captures"></ul><div id="capture" hidden><h3 id="capture-title"></h3><p>Replay it: <code id="replay"></code> <button id="copy-replay" type="button">copy</button></p><p id="capture-defects"></p><pre id="capture-bytes"></pre></div></section>
</main>
<script src="dashboard.js"></script>
</body>
</html>
`

export const DASHBOARD_CSS = `body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { display: flex; gap: 1em; align-items: baseline; padding: 0.5em 1em; background: #232f3e; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
main { padding: 0 1em 2em; }
h2 { font-size: 1em; margin: 1.2em 0 0.4em; }
#chart text.axis { font-size: 10px; fill: #555; }
#chart line.baseline { stroke: #bbb; stroke-width: 1; }
td.request { font-family: ui-monospace, monospace; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 24em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
td.line { font-family: ui-monospace, monospace; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 60em; }
tr.elb td.status, .elb-key { color: #fff; background: #c7254e; padding: 0 4px; }
tr.backend td.status, .backend-key { color: #fff; background: #2e7d32; padding: 0 4px; }
tr.InService td.state { color: #2e7d32; font-weight: bold; }
tr.OutOfService td.state { color: #c7254e; font-weight: bold; }
tr.Unknown td.state { color: #b26a00; font-weight: bold; }
#captures li { cursor: pointer; text-decoration: underline; }
#capture-bytes { font-family: ui-monospace, monospace; font-size: 12px; background: #f7f7f7; padding: 0.5em; white-space: pre-wrap; word-break: break-all; }
#capture-bytes .defect { background: #ffd54f; outline: 2px solid #c7254e; }
`

export const DASHBOARD_JS = `'use strict'
const MAX_ROWS = 200
const $ = (selector) => document.querySelector(selector)
const text = (value) => document.createTextNode(value === null || value === undefined ? '-' : String(value))
function cell (row, value, className) {
  const td = document.createElement('td')
  if (className) td.className = className
  td.appendChild(text(value))
  row.appendChild(td)
  return td
}
async function json (path) {
  const response = await fetch(path)
  if (!response.ok) throw new Error(path + ': ' + response.status)
  return response.json()
}

function addEntry (entry, atTop) {
  const row = document.createElement('tr')
  row.className = entry.elbGenerated ? 'elb' : 'backend'
  row.dataset.status = String(entry.record.elbStatusCode)
  row.dataset.outcome = entry.outcome
  cell(row, entry.record.elbStatusCode, 'status')
  cell(row, entry.record.backend === null ? null : entry.record.backend.address + ':' + entry.record.backend.port)
  cell(row, entry.outcome)
  // Method and target on their own: in the line they come after the timings, cut off on a narrow screen.
  const request = cell(row, entry.record.method === null ? null : entry.record.method + ' ' + entry.record.target, 'request')
  request.title = request.textContent
  const line = cell(row, entry.line, 'line')
  line.title = entry.line
  const body = $('#entries tbody')
  if (atTop) body.insertBefore(row, body.firstChild)
  else body.appendChild(row)
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1)
}

async function loadInstances () {
  const { InstanceStates } = await json('instances')
  const body = $('#instances tbody')
  body.textContent = ''
  for (const instance of InstanceStates) {
    const row = document.createElement('tr')
    row.className = instance.State
    row.dataset.instanceId = instance.InstanceId
    cell(row, instance.InstanceId)
    cell(row, instance.Address)
    cell(row, instance.State, 'state')
    cell(row, instance.ReasonCode)
    cell(row, instance.Description)
    const last = instance.LastChecks[instance.LastChecks.length - 1]
    cell(row, last === undefined ? null : last.summary)
    body.appendChild(row)
  }
}

let chartPending = null
function loadChartSoon () {
  // At most one refresh per second however many requests arrive.
  if (chartPending !== null) return
  chartPending = setTimeout(() => { chartPending = null; loadChart().catch(showError) }, 1000)
}
async function loadChart () {
  const [elb, backend] = await Promise.all([
    json('metrics.json?metric=HTTPCode_ELB_5XX&period=60'),
    json('metrics.json?metric=HTTPCode_Backend_5XX&period=60')
  ])
  // Keyed by the minute's epoch milliseconds. A minute without a 5XX has no datapoint (as in
  // CloudWatch): the 30 slots ending at this minute (or at the last minute with one, if the
  // proxy's clock is ahead) are all drawn, empty ones at 0, so that two bars side by side are two
  // consecutive minutes and errors that stopped are seen to stop.
  const MINUTE = 60000
  const minutes = new Map()
  for (const point of elb.Datapoints) minutes.set(Date.parse(point.Timestamp), { elb: point.Sum, backend: 0 })
  for (const point of backend.Datapoints) {
    const at = Date.parse(point.Timestamp)
    minutes.set(at, { elb: 0, ...minutes.get(at), backend: point.Sum })
  }
  const svg = $('#chart')
  svg.textContent = ''
  const ns = 'http://www.w3.org/2000/svg'
  const now = Date.now()
  const last = Math.max(now - now % MINUTE, ...minutes.keys())
  const rows = Array.from({ length: 30 }, (_, index) => {
    const at = last - (29 - index) * MINUTE
    return [new Date(at).toISOString().replace('.000Z', 'Z'), minutes.get(at) ?? { elb: 0, backend: 0 }]
  })
  const max = Math.max(1, ...rows.map(([, v]) => Math.max(v.elb, v.backend)))
  const label = (x, y, anchor, words) => {
    const element = document.createElementNS(ns, 'text')
    element.setAttribute('x', String(x))
    element.setAttribute('y', String(y))
    element.setAttribute('text-anchor', anchor)
    element.setAttribute('class', 'axis')
    element.textContent = words
    svg.appendChild(element)
  }
  label(0, 9, 'start', 'max ' + max)
  // Quiet minutes are the chart too: without a 5XX it says so, above its baseline.
  if (rows.every(([, v]) => v.elb === 0 && v.backend === 0)) label(300, 80, 'middle', 'no 5XX in these 30 minutes')
  const baseline = document.createElementNS(ns, 'line')
  for (const [name, value] of [['x1', '0'], ['y1', '140.5'], ['x2', '600'], ['y2', '140.5'], ['class', 'baseline']]) baseline.setAttribute(name, value)
  svg.appendChild(baseline)
  label(0, 156, 'start', rows[0][0].slice(11, 16))
  label(594, 156, 'end', rows[29][0].slice(11, 16) + ' UTC')
  rows.forEach(([minute, values], index) => {
    for (const [kind, offset, colour] of [['elb', 0, '#c7254e'], ['backend', 8, '#2e7d32']]) {
      const height = Math.round(values[kind] / max * 130)
      const bar = document.createElementNS(ns, 'rect')
      bar.setAttribute('x', String(index * 20 + offset))
      bar.setAttribute('y', String(140 - height))
      bar.setAttribute('width', '7')
      bar.setAttribute('height', String(height))
      bar.setAttribute('fill', colour)
      bar.setAttribute('class', kind)
      bar.dataset.minute = minute
      bar.dataset.count = String(values[kind])
      const title = document.createElementNS(ns, 'title')
      title.textContent = minute + ' ' + (kind === 'elb' ? 'HTTPCode_ELB_5XX' : 'HTTPCode_Backend_5XX') + ' ' + values[kind]
      bar.appendChild(title)
      svg.appendChild(bar)
    }
  })
}

async function loadCaptures () {
  const { captures } = await json('captures')
  const list = $('#captures')
  list.textContent = ''
  for (const capture of captures) {
    const item = document.createElement('li')
    item.dataset.name = capture.name
    item.appendChild(text((capture.elbStatus || '') + ' ' + (capture.request || '') + ' ' + (capture.primaryDefect || '') +
      (capture.earlierRun ? ' (an earlier run)' : '')))
    item.addEventListener('click', () => showCapture(capture.name).catch(showError))
    list.appendChild(item)
  }
}

async function showCapture (name) {
  const capture = await json('captures/' + encodeURIComponent(name) + '/bytes')
  $('#capture').hidden = false
  $('#capture-title').textContent = name
  $('#replay').textContent = capture.replay
  $('#capture-defects').textContent = capture.defects.map((d) => d.code + ' at byte ' + d.offset + ': ' + d.message).join('; ')
  const bytes = atob(capture.responseBase64)
  const offsets = new Set(capture.defects.map((d) => d.offset))
  const pre = $('#capture-bytes')
  pre.textContent = ''
  let run = ''
  const flush = () => { if (run !== '') { pre.appendChild(text(run)); run = '' } }
  for (let i = 0; i < bytes.length; i++) {
    const code = bytes.charCodeAt(i)
    const shown = code === 13 ? '\\\\r' : code === 10 ? '\\\\n\\n' : code < 32 || code > 126 ? '\\\\x' + code.toString(16).padStart(2, '0') : bytes[i]
    if (!offsets.has(i)) { run += shown; continue }
    flush()
    const mark = document.createElement('mark')
    mark.className = 'defect'
    mark.dataset.offset = String(i)
    mark.title = capture.defects.filter((d) => d.offset === i).map((d) => d.code).join(', ')
    mark.appendChild(text(shown))
    pre.appendChild(mark)
  }
  flush()
}

function showError (error) { $('#status').textContent = String(error) }

$('#copy-replay').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('#replay').textContent))

async function start () {
  const { entries } = await json('entries?limit=100')
  for (const entry of entries) addEntry(entry, true)
  await Promise.all([loadInstances(), loadChart(), loadCaptures()])
  // The chart moves on with the minutes, also when no request comes.
  setInterval(loadChartSoon, 60000)
  // Live updates without polling: the server pushes each access-log entry and each state change.
  const events = new EventSource('events')
  events.addEventListener('open', () => { $('#status').textContent = 'live' })
  events.addEventListener('error', () => { $('#status').textContent = 'reconnecting...' })
  events.addEventListener('entry', (event) => {
    const entry = JSON.parse(event.data)
    addEntry(entry, true)
    if (entry.elbGenerated || entry.record.elbStatusCode >= 500) loadChartSoon()
    if (entry.elbGenerated) loadCaptures().catch(showError)
  })
  events.addEventListener('instance', () => loadInstances().catch(showError))
}
start().catch(showError)
`
