// bench/analyze.mjs: lines/s of `clb-proxy analyze --json FILE` on a generated CLB access log of
// 1,000,000 lines (a mix of statuses), and of GoAccess parsing the same file with the CLB
// log-format of docs/access-log.md when goaccess is installed. Needs the built dist/.
// Usage: node bench/analyze.mjs [LINES]
import { execFileSync, spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const LINES = Number(process.argv[2] ?? 1_000_000)
const BIN = fileURLToPath(new URL('../dist/bin/clb-proxy.js', import.meta.url))
const GOACCESS_CLB_LOG_FORMAT = '%dT%t.%^ %^ %h:%^ %^ %^ %T %^ %s %^ %^ %b "%r" "%u" %k %K'

function line (i) {
  const ts = new Date(Date.UTC(2024, 0, 1) + Math.floor(i / 200) * 1000).toISOString().replace('Z', '456Z')
  const request = `"GET http://lb.example.com:80/api/v1/items/${i % 500}?page=${i % 7} HTTP/1.1" "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2`
  const client = `203.0.113.${i % 250}:${10000 + (i % 50000)}`
  switch (i % 50) {
    case 0: return `${ts} my-lb ${client} - -1 -1 -1 504 0 0 0 ${request}`
    case 1: return `${ts} my-lb ${client} - -1 -1 -1 503 0 0 0 ${request}`
    case 2: return `${ts} my-lb ${client} 10.0.1.${i % 9}:80 0.000041 0.0021 0.000035 502 - 0 0 ${request}`
    case 3: return `${ts} my-lb ${client} 10.0.1.${i % 9}:80 0.00004 0.31 0.00002 502 502 0 166 ${request}`
    case 4: return `${ts} my-lb ${client} 10.0.1.${i % 9}:80 0.00004 0.012 0.00002 404 404 0 9 ${request}`
    default: return `${ts} my-lb ${client} 10.0.1.${i % 9}:80 0.000073 0.00${1 + (i % 9)}048 0.000057 200 200 0 2${i % 10}9 ${request}`
  }
}

const dir = mkdtempSync(join(tmpdir(), 'clb-analyze-bench-'))
const file = join(dir, 'access.log')
try {
  const fd = openSync(file, 'w')
  let batch = []
  for (let i = 0; i < LINES; i++) {
    batch.push(line(i))
    if (batch.length === 20000) { writeSync(fd, batch.join('\n') + '\n'); batch = [] }
  }
  if (batch.length > 0) writeSync(fd, batch.join('\n') + '\n')
  closeSync(fd)
  console.log(`${LINES} lines, ${(statSync(file).size / 2 ** 20).toFixed(1)} MiB in ${file}`)

  const time = (command, args) => {
    const start = process.hrtime.bigint()
    const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 })
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    if (result.status !== 0) throw new Error(`${command} exited ${result.status}: ${result.stderr}`)
    return seconds
  }
  const ours = time(process.execPath, [BIN, 'analyze', '--json', file])
  console.log(`clb-proxy analyze --json: ${ours.toFixed(2)} s, ${Math.round(LINES / ours).toLocaleString('en-US')} lines/s`)

  let goaccess = null
  try { execFileSync('goaccess', ['--version'], { stdio: 'ignore' }); goaccess = true } catch { goaccess = false }
  if (goaccess) {
    const theirs = time('goaccess', [file, '--no-global-config', `--log-format=${GOACCESS_CLB_LOG_FORMAT}`, '--date-format=%Y-%m-%d', '--time-format=%H:%M:%S', '-o', join(dir, 'report.json')])
    console.log(`goaccess (json report):   ${theirs.toFixed(2)} s, ${Math.round(LINES / theirs).toLocaleString('en-US')} lines/s`)
    console.log(`ratio (clb-proxy analyze / goaccess lines/s): ${(theirs / ours).toFixed(2)}`)
  } else {
    console.log('goaccess not installed: only clb-proxy measured')
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
