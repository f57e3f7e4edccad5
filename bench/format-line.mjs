#!/usr/bin/env node
/**
 * What one access-log line costs: its bytes written into a byte batch from a /small request's
 * record, as the access-log writer does for each request (writeAccessLogLine; with a build from
 * before it, formatAccessLogLine and the copy of its string into the batch). Prints
 * nanoseconds per line for each of --rounds measured rounds of --lines lines (after two unmeasured
 * rounds for the JIT). Needs `npm run build`.
 *
 *   node bench/format-line.mjs [--lines N] [--rounds N] [--dist DIR]
 *
 * --dist points at another build's dist/ (e.g. a worktree of an older commit), to compare builds
 * in one sitting.
 */
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '1000000' },
    rounds: { type: 'string', default: '5' },
    dist: { type: 'string', default: path.join(REPO_ROOT, 'dist') }
  }
})
const lines = Number(values.lines)
const rounds = Number(values.rounds)
for (const [name, value] of [['--lines', lines], ['--rounds', rounds]]) {
  if (!Number.isSafeInteger(value) || value < 1) {
    process.stderr.write(`bench/format-line.mjs: ${name} must be a whole number >= 1, got ${JSON.stringify(String(value))}\n`)
    process.exit(2)
  }
}

const { formatAccessLogLine, writeAccessLogLine } = await import(pathToFileURL(path.join(path.resolve(values.dist), 'proxy/observers/access-log-format.js')).href)

// 1,000 records as wrk's /small requests make them: 50 client ports, timings that vary.
const start = Date.now() * 1000
const records = Array.from({ length: 1000 }, (_, i) => ({
  receivedAtMicros: start + i * 37,
  elbName: 'clb-proxy',
  clientAddress: '127.0.0.1',
  clientPort: 40000 + (i % 50),
  backend: { address: '127.0.0.1', port: 38211 },
  requestProcessingSeconds: 0.000041,
  backendProcessingSeconds: (112 + (i % 7)) / 1e6,
  responseProcessingSeconds: 0.000009,
  elbStatusCode: 200,
  backendStatusCode: 200,
  receivedBytes: 0,
  sentBytes: 64,
  method: 'GET',
  scheme: 'http',
  host: '127.0.0.1',
  listenerPort: 18080,
  target: '/small',
  httpVersion: 'HTTP/1.1',
  userAgent: null,
  sslCipher: null,
  sslProtocol: null
}))

const batch = Buffer.allocUnsafe(64 * 1024)
let written = 0
function formatAndCopy (count) {
  if (writeAccessLogLine !== undefined) {
    for (let n = 0; n < count; n++) written += writeAccessLogLine(records[n % records.length], batch, 0)
    return
  }
  for (let n = 0; n < count; n++) {
    const line = formatAccessLogLine(records[n % records.length])
    written += batch.write(line, 0, 'latin1')
  }
}

formatAndCopy(lines)
formatAndCopy(lines)
const results = []
for (let round = 0; round < rounds; round++) {
  const began = process.hrtime.bigint()
  formatAndCopy(lines)
  results.push(Number(process.hrtime.bigint() - began) / lines)
}
const sorted = [...results].sort((a, b) => a - b)
process.stdout.write(`${writeAccessLogLine === undefined ? 'format + copy' : 'bytes'} of one access-log line (${values.dist}): ${results.map((ns) => ns.toFixed(0)).join(', ')} ns; ` +
  `median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ns (${written} bytes copied)\n`)
