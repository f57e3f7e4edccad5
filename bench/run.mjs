#!/usr/bin/env node
/**
 * clb-proxy beside http-proxy 1.18.1 and nginx, all in front of one backend, loaded by wrk one
 * after another in the same run. `npm run bench` builds first; bench/README.md explains every
 * number. Plain JS, no build step: it starts the built CLI (dist/bin/clb-proxy.js).
 *
 * Per target: requests/s and latency percentiles (wrk's own latency distribution, through a Lua
 * done() hook), CPU time per request (utime+stime of the target's processes from /proc/<pid>/stat
 * before and after the measured run, divided by the requests wrk completed), peak RSS (VmHWM).
 * Results go to stdout as a table and to bench/results/<timestamp>.json.
 *
 * Every child (backend, proxies, nginx master and workers, wrk) is killed when this process exits,
 * whatever the reason; every wait is bounded.
 */
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import { SourceMap } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const REPO_ROOT = path.dirname(BENCH_DIR)
const RESULTS_DIR = path.join(BENCH_DIR, 'results')
const CLB_CLI = path.join(REPO_ROOT, 'dist', 'bin', 'clb-proxy.js')
const TARGET_NAMES = ['backend', 'clb-proxy', 'http-proxy', 'nginx']
// The issue's goal: clb-proxy's CPU per request at most half of http-proxy's on small responses.
const CPU_RATIO_GOAL = 0.5

// Bounds on every wait (milliseconds).
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 10_000
const WRK_GRACE_MS = 30_000
const CONNECT_POLL_MS = 50
const CONNECT_POLL_ATTEMPTS = 200
const NGINX_START_ATTEMPTS = 3

const USAGE = `Usage: npm run bench -- [options]   (or: node bench/run.mjs [options] after npm run build)

  --duration SECONDS     measured wrk run per target (default 10)
  --warmup SECONDS       unmeasured wrk run before each target's measured run (default 2)
  --connections N        wrk connections (default 32)
  --threads N            wrk threads (default 1; the machine this was written on has 2 cores)
  --targets LIST         comma-separated subset of ${TARGET_NAMES.join(',')} (default: all)
  --cpu-prof             run clb-proxy and http-proxy under node --cpu-prof and print their hot
                         spots (profiling slows them: compare CPU numbers only from runs without it)
  -h, --help             this text
`

// --- command line -----------------------------------------------------------------------

function parseCommandLine (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '32' },
      threads: { type: 'string', default: '1' },
      targets: { type: 'string', default: TARGET_NAMES.join(',') },
      'cpu-prof': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  const integer = (flag, text, min) => {
    const match = /^([0-9]+)s?$/.exec(text)
    const value = match === null ? NaN : Number(match[1])
    if (!Number.isSafeInteger(value) || value < min) usageError(`--${flag} must be an integer >= ${min}, got '${text}'`)
    return value
  }
  const targets = values.targets.split(',').map((name) => name.trim()).filter((name) => name !== '')
  for (const name of targets) {
    if (!TARGET_NAMES.includes(name)) usageError(`--targets: unknown target '${name}' (known: ${TARGET_NAMES.join(', ')})`)
  }
  const settings = {
    durationSeconds: integer('duration', values.duration, 1),
    warmupSeconds: integer('warmup', values.warmup, 0),
    connections: integer('connections', values.connections, 1),
    threads: integer('threads', values.threads, 1),
    targets,
    cpuProf: values['cpu-prof']
  }
  if (settings.threads > settings.connections) usageError('--threads must not exceed --connections (wrk needs a connection per thread)')
  return Object.freeze(settings)
}

function usageError (message) {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`)
  process.exit(2)
}

// --- child processes: tracked, bounded, always killed -----------------------------------

/** Every process we started (ChildProcess) and extra pids we must kill (nginx workers). */
const children = new Set()
const extraPids = new Set()
/** The run's temp dir (logs, configs): removed on success and on Ctrl-C, kept when something failed. */
let runDir = null

function isRunning (child) {
  return child.exitCode === null && child.signalCode === null
}

function killEverything (signal) {
  for (const child of children) {
    if (isRunning(child)) {
      try { process.kill(child.pid, signal) } catch {}
    }
  }
  for (const pid of extraPids) {
    try { process.kill(pid, signal) } catch {}
  }
}

/**
 * Kills every child and waits (bounded) until our direct children have exited, so none is left
 * behind as a zombie. An nginx master gets SIGTERM (fast shutdown: it kills and reaps its workers);
 * everything else SIGKILL.
 */
async function abortEverything () {
  const exits = []
  for (const child of children) {
    if (!isRunning(child)) continue
    exits.push(once(child, 'exit'))
    try { process.kill(child.pid, child.abortSignal ?? 'SIGKILL') } catch {}
  }
  const timer = setTimeout(() => killEverything('SIGKILL'), STOP_TIMEOUT_MS)
  await Promise.all(exits)
  clearTimeout(timer)
  killEverything('SIGKILL') // nginx workers, if their master did not take them down
}

// Last resort when the process exits any other way: nothing may outlive the run.
process.on('exit', () => killEverything('SIGKILL'))
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal} received; stopping every child process\n`)
    abortEverything().finally(() => {
      if (runDir !== null) fs.rmSync(runDir, { recursive: true, force: true })
      process.exit(130)
    })
  })
}

/**
 * Starts `command`, copies its stdout/stderr to files in `logDir`, and resolves once `ready`
 * (a RegExp) matches its stdout or stderr, with the match. Rejects if it exits first or after
 * START_TIMEOUT_MS.
 */
async function startProcess ({ name, command, args, logDir, ready, cwd = REPO_ROOT }) {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.on('error', () => undefined) // reported through 'exit' / the ready timeout below
  const stdoutFile = fs.createWriteStream(path.join(logDir, `${name}.stdout.log`))
  const stderrFile = fs.createWriteStream(path.join(logDir, `${name}.stderr.log`))
  child.stdout.pipe(stdoutFile)
  child.stderr.pipe(stderrFile)
  let seen = ''
  let settle
  const readyMatch = new Promise((resolve, reject) => {
    settle = { resolve, reject }
  })
  const timer = setTimeout(() => settle.reject(new Error(`${name} did not become ready within ${START_TIMEOUT_MS} ms; output:\n${seen}`)), START_TIMEOUT_MS)
  const scan = (chunk) => {
    if (seen.length < 64 * 1024) seen += chunk.toString('utf8')
    const match = ready === null ? null : ready.exec(seen)
    if (match !== null) settle.resolve(match)
  }
  child.stdout.on('data', scan)
  child.stderr.on('data', scan)
  child.once('exit', (code, signal) => settle.reject(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready; output:\n${seen}`)))
  try {
    const match = await readyMatch
    return { name, child, pid: child.pid, match }
  } finally {
    clearTimeout(timer)
    child.stdout.off('data', scan)
    child.stderr.off('data', scan)
  }
}

/** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; resolves when the process has exited. */
async function stopProcess (child, signal = 'SIGTERM') {
  if (!isRunning(child)) return
  const exited = once(child, 'exit')
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

// --- /proc ------------------------------------------------------------------------------

const CLOCK_TICKS_PER_SECOND = readClockTicks()

function readClockTicks () {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const ticks = Number(result.stdout?.trim())
  if (result.status !== 0 || !Number.isSafeInteger(ticks) || ticks <= 0) {
    throw new Error(`getconf CLK_TCK failed: ${result.stderr ?? result.error?.message}`)
  }
  return ticks
}

/**
 * utime and stime of one process, in clock ticks (proc(5): fields 14 and 15 of /proc/<pid>/stat;
 * for a process, these sum all its threads). Parsed after the last ')' since the command name
 * may contain spaces.
 */
function cpuTicks (pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  return { user: Number(fields[14 - 3]), system: Number(fields[15 - 3]) }
}

function sumCpuTicks (pids) {
  return pids.map(cpuTicks).reduce((sum, ticks) => ({ user: sum.user + ticks.user, system: sum.system + ticks.system }), { user: 0, system: 0 })
}

/** Peak resident set size (VmHWM) in KiB, summed over the pids. */
function peakRssKiB (pids) {
  let total = 0
  for (const pid of pids) {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    if (match === null) throw new Error(`no VmHWM in /proc/${pid}/status`)
    total += Number(match[1])
  }
  return total
}

/** Pids whose parent is `parentPid` (nginx workers). */
function childPidsOf (parentPid) {
  const pids = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat
    try { stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8') } catch { continue }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[4 - 3]) === parentPid) pids.push(Number(entry))
  }
  return pids
}

// --- the processes under test -----------------------------------------------------------

async function startBackendProcess (logDir) {
  const started = await startProcess({
    name: 'backend',
    command: process.execPath,
    args: [path.join(BENCH_DIR, 'backend.mjs'), '--port', '0'],
    logDir,
    ready: /^listening (\d+)$/m
  })
  return { ...started, port: Number(started.match[1]) }
}

function nodeArgs (settings, logDir, name) {
  return settings.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.join(logDir, `${name}-profile`)] : []
}

async function startClbProxyTarget (settings, logDir, backendPort) {
  if (!fs.existsSync(CLB_CLI)) throw new Error(`${CLB_CLI} is missing: run npm run build (npm run bench does)`)
  const accessLog = path.join(logDir, 'clb-proxy-access.log')
  const started = await startProcess({
    name: 'clb-proxy',
    command: process.execPath,
    args: [...nodeArgs(settings, logDir, 'clb-proxy'), CLB_CLI,
      '--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${backendPort}`, '--access-log', accessLog],
    logDir,
    // The CLI's banner on stderr: "clb-proxy: listening on http://127.0.0.1:PORT, forwarding to ..."
    ready: /listening on http:\/\/127\.0\.0\.1:(\d+)/
  })
  return {
    name: 'clb-proxy',
    port: Number(started.match[1]),
    processes: [started.child],
    pids: () => [started.pid],
    accessLog,
    stop: () => stopProcess(started.child)
  }
}

async function startHttpProxyTarget (settings, logDir, backendPort) {
  const started = await startProcess({
    name: 'http-proxy',
    command: process.execPath,
    args: [...nodeArgs(settings, logDir, 'http-proxy'), path.join(BENCH_DIR, 'http-proxy-server.mjs'),
      '--target', `http://127.0.0.1:${backendPort}`],
    logDir,
    ready: /^listening (\d+)$/m
  })
  return {
    name: 'http-proxy',
    port: Number(started.match[1]),
    processes: [started.child],
    pids: () => [started.pid],
    stop: () => stopProcess(started.child)
  }
}

function nginxVersion () {
  const result = spawnSync('nginx', ['-v'], { encoding: 'utf8' })
  if (result.error !== undefined) return null
  return (result.stderr || result.stdout).trim().replace(/^nginx version: /, '')
}

/** A free port on 127.0.0.1 for nginx, which cannot listen on port 0 and report the port. */
async function freePort () {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function nginxConfig (dir, port, backendPort) {
  return `# Generated by bench/run.mjs
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;

events {
  worker_connections 1024;
}

http {
  access_log ${dir}/nginx-access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 32;
    # Like clb-proxy and http-proxy, never retire a kept-alive backend connection (default 1000).
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:${port};
    # Same for client connections: wrk's connections live for the whole run (default 1000).
    keepalive_requests 1000000;

    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
}

async function waitForPort (port, isAlive) {
  for (let attempt = 0; attempt < CONNECT_POLL_ATTEMPTS; attempt++) {
    if (!isAlive()) return false
    const connected = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (connected) return true
    await new Promise((resolve) => setTimeout(resolve, CONNECT_POLL_MS))
  }
  return false
}

async function startNginxTarget (logDir, backendPort) {
  const dir = path.join(logDir, 'nginx')
  fs.mkdirSync(dir, { recursive: true })
  // Workers run as "nobody" when we are root; they must be able to reach their temp paths.
  fs.chmodSync(logDir, 0o755)
  fs.chmodSync(dir, 0o755)
  let lastError = null
  for (let attempt = 1; attempt <= NGINX_START_ATTEMPTS; attempt++) {
    const port = await freePort()
    const configFile = path.join(dir, 'nginx.conf')
    fs.writeFileSync(configFile, nginxConfig(dir, port, backendPort))
    const child = spawn('nginx', ['-p', dir, '-e', path.join(dir, 'nginx-error.log'), '-c', configFile],
      { stdio: ['ignore', 'ignore', 'ignore'] })
    child.abortSignal = 'SIGTERM'
    children.add(child)
    child.on('error', () => undefined)
    if (await waitForPort(port, () => isRunning(child))) {
      const workers = childPidsOf(child.pid)
      if (workers.length === 0) throw new Error('nginx answered but no worker process was found')
      for (const pid of workers) extraPids.add(pid)
      return {
        name: 'nginx',
        port,
        processes: [child],
        // master + workers, both do work per request (the master very little).
        pids: () => [child.pid, ...workers],
        stop: async () => {
          await stopProcess(child, 'SIGQUIT') // graceful: workers finish and exit, then the master
          for (const pid of workers) extraPids.delete(pid)
        }
      }
    }
    await stopProcess(child, 'SIGKILL')
    for (const pid of childPidsOf(child.pid)) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    lastError = new Error(`nginx did not start on 127.0.0.1:${port} (attempt ${attempt}); see ${dir}/nginx-error.log:\n` +
      readTail(path.join(dir, 'nginx-error.log')))
  }
  throw lastError
}

function readTail (file) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-10).join('\n')
  } catch {
    return '(no log)'
  }
}

// --- wrk --------------------------------------------------------------------------------

const WRK_DONE_SCRIPT = `-- Written by bench/run.mjs: prints wrk's summary and latency distribution as one JSON line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.3f,"stdev":%.3f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p99_9":%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
`

function wrkVersion () {
  const result = spawnSync('wrk', ['-v'], { encoding: 'utf8' })
  if (result.error !== undefined) return null
  return (result.stdout.split('\n')[0] ?? '').replace(/\s+Copyright.*$/, '').trim()
}

/** Runs wrk for `seconds` against url; resolves with the parsed summary and wrk's text output. */
async function runWrk (url, seconds, settings, scriptFile) {
  const args = ['-t', String(settings.threads), '-c', String(settings.connections), '-d', `${seconds}s`,
    '--latency', '-s', scriptFile, url]
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text) => { stdout += text })
  child.stderr.setEncoding('utf8').on('data', (text) => { stderr += text })
  const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + WRK_GRACE_MS)
  const [code, signal] = await once(child, 'close')
  clearTimeout(timer)
  children.delete(child)
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${stdout}${stderr}`)
  const line = stdout.split('\n').find((text) => text.startsWith('WRK_JSON '))
  if (line === undefined) throw new Error(`wrk printed no summary:\n${stdout}${stderr}`)
  const summary = JSON.parse(line.slice('WRK_JSON '.length))
  return { summary, text: stdout.replace(/^WRK_JSON .*\n?/m, '') }
}

// --- measuring --------------------------------------------------------------------------

async function measureTarget (target, backend, settings, scriptFile) {
  const url = `http://127.0.0.1:${target.port}/`
  process.stderr.write(`bench: ${target.name}: warm-up ${settings.warmupSeconds} s, then ${settings.durationSeconds} s measured (${url})\n`)
  if (settings.warmupSeconds > 0) await runWrk(url, settings.warmupSeconds, settings, scriptFile)
  const pids = target.pids()
  const ticksBefore = sumCpuTicks(pids)
  const backendTicksBefore = cpuTicks(backend.pid)
  const startedAt = process.hrtime.bigint()
  const { summary, text } = await runWrk(url, settings.durationSeconds, settings, scriptFile)
  const wallSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9
  const ticksAfter = sumCpuTicks(pids)
  const backendTicksAfter = cpuTicks(backend.pid)
  const userSeconds = (ticksAfter.user - ticksBefore.user) / CLOCK_TICKS_PER_SECOND
  const systemSeconds = (ticksAfter.system - ticksBefore.system) / CLOCK_TICKS_PER_SECOND
  const cpuSeconds = userSeconds + systemSeconds
  const backendCpuSeconds = (backendTicksAfter.user + backendTicksAfter.system - backendTicksBefore.user - backendTicksBefore.system) /
    CLOCK_TICKS_PER_SECOND
  for (const processHandle of target.processes) {
    if (!isRunning(processHandle)) throw new Error(`${target.name} died during its run`)
  }
  const requests = summary.requests
  const socketErrors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  return {
    name: target.name,
    url,
    pids,
    requests,
    wrkDurationSeconds: summary.duration_us / 1e6,
    requestsPerSecond: requests / (summary.duration_us / 1e6),
    latencyMs: Object.fromEntries(Object.entries(summary.latency_us).map(([key, micros]) => [key, micros / 1000])),
    // wrk counts a status >= 400 as a "Non-2xx or 3xx response"; the backend only ever answers 200.
    non2xxResponses: summary.errors.status,
    socketErrors: { connect: summary.errors.connect, read: summary.errors.read, write: summary.errors.write, timeout: summary.errors.timeout },
    socketErrorCount: socketErrors,
    cpuSeconds,
    cpuUserSeconds: userSeconds,
    cpuSystemSeconds: systemSeconds,
    cpuMicrosPerRequest: requests > 0 ? (cpuSeconds / requests) * 1e6 : null,
    cpuSystemMicrosPerRequest: requests > 0 ? (systemSeconds / requests) * 1e6 : null,
    cpuPercentOfOneCore: (cpuSeconds / wallSeconds) * 100,
    peakRssKiB: peakRssKiB(pids),
    backendCpuMicrosPerRequest: requests > 0 ? (backendCpuSeconds / requests) * 1e6 : null,
    wrkOutput: text
  }
}

// --- reporting --------------------------------------------------------------------------

function fixed (value, digits) {
  return value === null || value === undefined ? '-' : value.toFixed(digits)
}

function formatTable (results) {
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU us/req', 'of it sys', 'CPU %core', 'peak RSS MiB', 'backend us/req', 'non-2xx', 'sock err']
  const rows = results.map((r) => [
    r.name,
    fixed(r.requestsPerSecond, 0),
    fixed(r.latencyMs.p50, 2),
    fixed(r.latencyMs.p99, 2),
    fixed(r.cpuMicrosPerRequest, 1),
    fixed(r.cpuSystemMicrosPerRequest, 1),
    fixed(r.cpuPercentOfOneCore, 0),
    fixed(r.peakRssKiB / 1024, 1),
    fixed(r.backendCpuMicrosPerRequest, 1),
    String(r.non2xxResponses),
    String(r.socketErrorCount)
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)))
  const line = (cells) => '| ' + cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])).join(' | ') + ' |'
  const rule = '|' + widths.map((width, column) => column === 0 ? '-'.repeat(width + 2) : '-'.repeat(width + 1) + ':').join('|') + '|'
  return [line(header), rule, ...rows.map(line)].join('\n')
}

function computeRatios (results) {
  const reference = results.find((r) => r.name === 'http-proxy')
  if (reference === undefined) return []
  const ratio = (a, b) => (a === null || b === null || b === 0 ? null : a / b)
  return results
    .filter((r) => r.name === 'clb-proxy' || r.name === 'nginx')
    .map((r) => ({
      target: r.name,
      relativeTo: 'http-proxy',
      cpuPerRequest: ratio(r.cpuMicrosPerRequest, reference.cpuMicrosPerRequest),
      requestsPerSecond: ratio(r.requestsPerSecond, reference.requestsPerSecond),
      p99Latency: ratio(r.latencyMs.p99, reference.latencyMs.p99),
      peakRss: ratio(r.peakRssKiB, reference.peakRssKiB)
    }))
}

function formatRatios (ratios) {
  const lines = []
  for (const r of ratios) {
    lines.push(`CPU/req   ${r.target} / ${r.relativeTo} = ${fixed(r.cpuPerRequest, 2)}x`)
    lines.push(`req/s     ${r.target} / ${r.relativeTo} = ${fixed(r.requestsPerSecond, 2)}x`)
    lines.push(`p99       ${r.target} / ${r.relativeTo} = ${fixed(r.p99Latency, 2)}x`)
    lines.push(`peak RSS  ${r.target} / ${r.relativeTo} = ${fixed(r.peakRss, 2)}x`)
  }
  return lines.join('\n')
}

function countLines (file) {
  try {
    const text = fs.readFileSync(file, 'utf8')
    return text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
  } catch {
    return null
  }
}

// --- CPU profiles (--cpu-prof) ----------------------------------------------------------

/** dist/*.js line -> TypeScript source line, through the .js.map files tsc writes next to dist. */
const sourceMaps = new Map()
function sourceLocation (url, lineNumber, columnNumber) {
  if (!url.startsWith('file://')) return `${url}:${lineNumber + 1}`
  const file = fileURLToPath(url)
  const relative = path.relative(REPO_ROOT, file)
  if (!relative.startsWith(`dist${path.sep}`)) return `${relative.startsWith('..') ? file : relative}:${lineNumber + 1}`
  if (!sourceMaps.has(file)) {
    let map = null
    try { map = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8'))) } catch {}
    sourceMaps.set(file, map)
  }
  const entry = sourceMaps.get(file)?.findEntry(lineNumber, columnNumber)
  if (entry === undefined || entry.originalSource === undefined) return `${relative}:${lineNumber + 1}`
  const source = path.relative(REPO_ROOT, path.resolve(path.dirname(file), entry.originalSource.replace(/^file:\/\//, '')))
  return `${source}:${entry.originalLine + 1}`
}

/**
 * Top on-CPU frames of a .cpuprofile (V8 CPU profile JSON) by self time, as a share of the
 * samples that were not "(idle)" (the process idles while other targets run). A native frame
 * (socket write, fs write) is labelled with its nearest JavaScript caller outside node: internals
 * (or, when only node: internals called it, the nearest of those), so
 * "writeBuffer (native) <- start proxy/exchange.ts:73" names the function of ours that issued the
 * syscall. Locations are where a function starts (V8 profiles record no call sites).
 */
function hotSpots (profileFile, limit = 15) {
  const profile = JSON.parse(fs.readFileSync(profileFile, 'utf8'))
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
  const selfMicros = new Map()
  for (let index = 0; index < profile.samples.length; index++) {
    const id = profile.samples[index]
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0))
  }
  const describe = (node) => `${node.callFrame.functionName || '(anonymous)'} ${sourceLocation(node.callFrame.url, node.callFrame.lineNumber, node.callFrame.columnNumber)}`
  // The nearest caller in our code or a dependency; failing that, the nearest node: internal.
  const nearestCaller = (id) => {
    let internal = null
    for (let current = parentOf.get(id); current !== undefined; current = parentOf.get(current)) {
      const url = byId.get(current).callFrame.url
      if (url === '') continue
      if (!url.startsWith('node:')) return describe(byId.get(current))
      internal ??= describe(byId.get(current))
    }
    return internal
  }
  let busyMicros = 0
  const byFrame = new Map()
  for (const [id, micros] of selfMicros) {
    const node = byId.get(id)
    const name = node.callFrame.functionName
    if (name === '(idle)') continue
    busyMicros += micros
    let key
    if (node.callFrame.url !== '') key = describe(node)
    else if (name.startsWith('(')) key = name // (program), (garbage collector)
    else key = `${name} (native) <- ${nearestCaller(id) ?? '?'}`
    byFrame.set(key, (byFrame.get(key) ?? 0) + micros)
  }
  return {
    busySeconds: busyMicros / 1e6,
    frames: [...byFrame.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([frame, micros]) => ({ frame, selfPercentOfBusy: (micros / busyMicros) * 100 }))
  }
}

function reportProfiles (logDir, names, destination) {
  const report = {}
  for (const name of names) {
    const dir = path.join(logDir, `${name}-profile`)
    if (!fs.existsSync(dir)) continue
    const files = fs.readdirSync(dir).filter((file) => file.endsWith('.cpuprofile'))
    if (files.length === 0) continue
    fs.mkdirSync(destination, { recursive: true })
    const copy = path.join(destination, `${name}.cpuprofile`)
    fs.copyFileSync(path.join(dir, files[0]), copy)
    const spots = hotSpots(copy)
    report[name] = { profile: path.relative(REPO_ROOT, copy), ...spots }
    process.stdout.write(`\nHot spots of ${name} (self time, % of ${spots.busySeconds.toFixed(1)} s on CPU; ${path.relative(REPO_ROOT, copy)}):\n`)
    for (const spot of spots.frames) process.stdout.write(`  ${spot.selfPercentOfBusy.toFixed(1).padStart(5)}%  ${spot.frame}\n`)
  }
  return report
}

// --- main -------------------------------------------------------------------------------

async function main () {
  const settings = parseCommandLine(process.argv.slice(2))
  const wrk = wrkVersion()
  if (wrk === null) throw new Error('wrk is not installed (Debian: apt-get install -y wrk)')
  const nginx = nginxVersion()
  const startedAt = new Date()
  const timestamp = startedAt.toISOString().replace(/[:.]/g, '-')
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clb-bench-'))
  runDir = logDir
  const scriptFile = path.join(logDir, 'wrk-done.lua')
  fs.writeFileSync(scriptFile, WRK_DONE_SCRIPT)
  const notes = []
  const wanted = new Set(settings.targets)
  if (wanted.has('nginx') && nginx === null) {
    wanted.delete('nginx')
    notes.push('nginx is not installed: skipped (Debian: apt-get install -y nginx)')
    process.stderr.write(`bench: NOTE: ${notes.at(-1)}\n`)
  }

  const backend = await startBackendProcess(logDir)
  const targets = []
  const results = []
  let failure = null
  try {
    if (wanted.has('backend')) {
      targets.push({ name: 'backend', port: backend.port, processes: [backend.child], pids: () => [backend.pid], stop: async () => {} })
    }
    if (wanted.has('clb-proxy')) targets.push(await startClbProxyTarget(settings, logDir, backend.port))
    if (wanted.has('http-proxy')) targets.push(await startHttpProxyTarget(settings, logDir, backend.port))
    if (wanted.has('nginx')) targets.push(await startNginxTarget(logDir, backend.port))
    for (const target of targets) results.push(await measureTarget(target, backend, settings, scriptFile))
  } catch (error) {
    failure = error
  } finally {
    for (const target of targets) await target.stop()
    await stopProcess(backend.child)
  }
  if (failure !== null) {
    process.stderr.write(`bench: logs kept in ${logDir}\n`)
    throw failure
  }

  const clb = targets.find((target) => target.name === 'clb-proxy')
  const accessLogLines = clb === undefined ? null : countLines(clb.accessLog)
  const ratios = computeRatios(results)
  const clbRatio = ratios.find((r) => r.target === 'clb-proxy')?.cpuPerRequest ?? null
  const goal = clbRatio === null
    ? { goal: `clb-proxy CPU/request <= ${CPU_RATIO_GOAL}x http-proxy's`, ratio: null, met: null }
    : { goal: `clb-proxy CPU/request <= ${CPU_RATIO_GOAL}x http-proxy's`, ratio: clbRatio, met: clbRatio <= CPU_RATIO_GOAL }

  const command = `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim()
  process.stdout.write(`\nclb-proxy benchmark, ${startedAt.toISOString()}: ${command}\n`)
  process.stdout.write(`wrk -t${settings.threads} -c${settings.connections} -d${settings.durationSeconds}s --latency (warm-up ${settings.warmupSeconds} s each), ` +
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ${wrk}, nginx ${nginx ?? 'not installed'}\n\n`)
  process.stdout.write(`${formatTable(results)}\n\n`)
  if (ratios.length > 0) process.stdout.write(`${formatRatios(ratios)}\n\n`)
  if (goal.met !== null) {
    process.stdout.write(`Issue goal (${goal.goal}): ${goal.met ? 'MET' : 'NOT MET'} (${fixed(goal.ratio, 2)}x)\n`)
  }
  if (accessLogLines !== null) {
    process.stdout.write(`clb-proxy access log: ${accessLogLines} lines (warm-up + measured requests, plus any in flight when wrk stopped)\n`)
  }
  for (const note of notes) process.stdout.write(`Note: ${note}\n`)

  const profiles = settings.cpuProf ? reportProfiles(logDir, ['clb-proxy', 'http-proxy'], path.join(RESULTS_DIR, `${timestamp}-profiles`)) : null
  if (settings.cpuProf) process.stdout.write('\n(--cpu-prof run: profiling overhead is included in the CPU numbers above)\n')

  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  const resultFile = path.join(RESULTS_DIR, `${timestamp}.json`)
  fs.writeFileSync(resultFile, JSON.stringify({
    date: startedAt.toISOString(),
    command,
    settings,
    environment: {
      node: process.version,
      wrk,
      nginx,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? null,
      clockTicksPerSecond: CLOCK_TICKS_PER_SECOND,
      platform: `${os.type()} ${os.release()}`
    },
    results,
    ratios,
    goal,
    clbAccessLogLines: accessLogLines,
    profiles,
    notes
  }, null, 2) + '\n')
  process.stdout.write(`\nResults: ${path.relative(process.cwd(), resultFile)}\n`)

  const failed = results.filter((r) => r.non2xxResponses > 0 || r.socketErrorCount > 0)
  if (failed.length > 0) {
    for (const r of failed) {
      process.stderr.write(`\nbench: ERROR: ${r.name} returned ${r.non2xxResponses} non-2xx responses and ` +
        `${r.socketErrorCount} socket errors ${JSON.stringify(r.socketErrors)}; logs kept in ${logDir}\n${r.wrkOutput}\n`)
    }
    return 1
  }
  fs.rmSync(logDir, { recursive: true, force: true })
  return 0
}

main().then((code) => {
  process.exitCode = code
}, async (error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  await abortEverything()
  process.exitCode = 1
})
