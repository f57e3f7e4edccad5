#!/usr/bin/env node
/**
 * clb-proxy beside http-proxy 1.18.1, nginx and node-pipe (the floor for any Node proxy: bytes moved
 * and nothing else), all in front of one backend, loaded by wrk one
 * after another in the same run, on three routes: GET /small (64 B), GET /large (1 MiB) and
 * POST /echo (4 KiB echoed back). `npm run bench` builds first; bench/README.md explains every
 * number. Plain JS, no build step: it starts the built CLI (dist/bin/clb-proxy.js).
 *
 * Per route and target: requests/s and latency percentiles (wrk's own latency distribution,
 * through a Lua done() hook), CPU time per request (utime+stime of the target's processes from
 * /proc/<pid>/stat before and after the measured run, divided by the requests wrk completed), peak
 * RSS (VmHWM; every target is started fresh for each route). Then ratios of clb-proxy against
 * nginx, http-proxy and node-pipe, and the issue's targets marked met or missed. Results go to stdout and to
 * bench/results/<timestamp>.json.
 *
 * Where taskset exists and at least 2 CPUs are allowed, the target under load runs alone on the
 * last CPU and wrk and the backend on the others.
 *
 * Every child (backend, proxies, nginx master and workers, wrk) is killed when this process exits,
 * whatever the reason; every wait is bounded.
 */
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ROUTES } from './backend.mjs'
import { formatTop, readProfile, topFunctions } from './profile-top.mjs'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const REPO_ROOT = path.dirname(BENCH_DIR)
const RESULTS_DIR = path.join(BENCH_DIR, 'results')
const CLB_CLI = path.join(REPO_ROOT, 'dist', 'bin', 'clb-proxy.js')
const TARGET_NAMES = ['backend', 'clb-proxy', 'http-proxy', 'nginx', 'node-pipe']
/** Another build of clb-proxy (--baseline DIR), measured beside this one: what a change gains or costs. */
const BASELINE = 'baseline'
/** The targets clb-proxy's ratios are taken against, in the order the tables list them. */
const PEERS = ['nginx', 'http-proxy', 'node-pipe', BASELINE]
const ROUTE_NAMES = Object.keys(ROUTES)
const NODE_TARGETS = ['clb-proxy', 'http-proxy', 'node-pipe', BASELINE]

/**
 * The issue's targets (issue 7, item 8), as ratios of clb-proxy to a peer measured in the same run.
 * `routes: null` means every route that was run.
 */
const TARGETS = [
  { metric: 'cpu', peer: 'nginx', limit: 2, routes: null, text: 'CPU/req <= 2x nginx' },
  { metric: 'cpu', peer: 'http-proxy', limit: 0.4, routes: ['small'], text: 'CPU/req <= 0.4x http-proxy' },
  { metric: 'p99', peer: 'nginx', limit: 2, routes: null, text: 'p99 <= 2x nginx' }
]

// Bounds on every wait (milliseconds).
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 10_000
const WRK_GRACE_MS = 30_000
const CHECK_TIMEOUT_MS = 10_000
const CONNECT_POLL_MS = 50
const CONNECT_POLL_ATTEMPTS = 200
const NGINX_START_ATTEMPTS = 3
// Start-up, the check request and shutdown per route and target, for the duration estimate.
const OVERHEAD_SECONDS_PER_RUN = 1

const USAGE = `Usage: npm run bench -- [options]   (or: node bench/run.mjs [options] after npm run build)

Every option can also be set by the environment variable in brackets; an option wins over it.

  --duration SECONDS     measured wrk run per route and target (BENCH_DURATION, default 10)
  --warmup SECONDS       unmeasured wrk run before each measured run (BENCH_WARMUP, default 2)
  --connections N        wrk connections (BENCH_CONNECTIONS, default 50)
  --threads N            wrk threads (BENCH_THREADS, default 1)
  --routes LIST          comma-separated subset of ${ROUTE_NAMES.join(',')} (BENCH_ROUTES, default: all)
  --targets LIST         comma-separated subset of ${TARGET_NAMES.join(',')} (BENCH_TARGETS, default: all)
  --pin / --no-pin       run the target alone on one CPU with taskset (BENCH_PIN=1|0, default: on
                         when taskset exists and 2 or more CPUs are allowed)
  --cpu-prof             run the Node proxies under node --cpu-prof, one profile per route,
                         and print their top functions (BENCH_CPU_PROF=1; profiling slows them:
                         compare CPU numbers only from runs without it)
  --profile-top N        functions printed per profile (BENCH_PROFILE_TOP, default 12)
  --rounds N             measure every target N times per route, in a rotating order, and report
                         each number's median over the rounds (BENCH_ROUNDS, default 1)
  --baseline DIR         also run the clb-proxy built in DIR (a checkout or git worktree where
                         npm run build has run: DIR/dist/bin/clb-proxy.js) as the target
                         '${BASELINE}', and give clb-proxy's ratios to it: a change measured against
                         the build before it in the same run (BENCH_BASELINE)
  -h, --help             this text

Defaults take about 3.5 minutes: 3 routes x 5 targets x (2 s + 10 s) plus start-up.
`

// --- command line and environment ---------------------------------------------------------

function parseCommandLine (argv, env) {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
        threads: { type: 'string' },
        routes: { type: 'string' },
        targets: { type: 'string' },
        pin: { type: 'boolean' },
        'no-pin': { type: 'boolean' },
        'cpu-prof': { type: 'boolean' },
        'profile-top': { type: 'string' },
        rounds: { type: 'string' },
        baseline: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }))
  } catch (error) {
    usageError(error.message)
  }
  if (values.help) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  // An option, else its environment variable, else the default; `source` names it in errors.
  const pick = (flag, variable, fallback) => {
    if (values[flag] !== undefined) return { text: values[flag], source: `--${flag}` }
    if (env[variable] !== undefined && env[variable] !== '') return { text: env[variable], source: variable }
    return { text: fallback, source: `--${flag}` }
  }
  const integer = (flag, variable, fallback, min) => {
    const { text, source } = pick(flag, variable, fallback)
    const match = /^([0-9]+)s?$/.exec(text)
    const value = match === null ? NaN : Number(match[1])
    if (!Number.isSafeInteger(value) || value < min) usageError(`${source} must be an integer >= ${min}, got '${text}'`)
    return value
  }
  const list = (flag, variable, known) => {
    const { text, source } = pick(flag, variable, known.join(','))
    const names = text.split(',').map((name) => name.trim()).filter((name) => name !== '')
    for (const name of names) {
      if (!known.includes(name)) usageError(`${source}: unknown name '${name}' (known: ${known.join(', ')})`)
    }
    if (names.length === 0) usageError(`${source} is empty`)
    // In the canonical order, whatever order they were given in.
    return known.filter((name) => names.includes(name))
  }
  const flag = (variable) => {
    const text = env[variable]
    if (text === undefined || text === '') return undefined
    if (text === '1' || text === 'true') return true
    if (text === '0' || text === 'false') return false
    usageError(`${variable} must be 1 or 0, got '${text}'`)
  }
  if (values.pin === true && values['no-pin'] === true) usageError('--pin and --no-pin contradict each other')
  const settings = {
    durationSeconds: integer('duration', 'BENCH_DURATION', '10', 1),
    warmupSeconds: integer('warmup', 'BENCH_WARMUP', '2', 0),
    connections: integer('connections', 'BENCH_CONNECTIONS', '50', 1),
    threads: integer('threads', 'BENCH_THREADS', '1', 1),
    routes: list('routes', 'BENCH_ROUTES', ROUTE_NAMES),
    targets: list('targets', 'BENCH_TARGETS', TARGET_NAMES),
    // null: decided by what the machine has (see cpuPlan).
    pin: values.pin === true ? true : values['no-pin'] === true ? false : flag('BENCH_PIN') ?? null,
    cpuProf: values['cpu-prof'] ?? flag('BENCH_CPU_PROF') ?? false,
    profileTop: integer('profile-top', 'BENCH_PROFILE_TOP', '12', 1),
    rounds: integer('rounds', 'BENCH_ROUNDS', '1', 1)
  }
  if (settings.threads > settings.connections) usageError('--threads must not exceed --connections (wrk needs a connection per thread)')
  const baseline = pick('baseline', 'BENCH_BASELINE', '')
  if (baseline.text !== '') {
    const cli = path.resolve(baseline.text, 'dist', 'bin', 'clb-proxy.js')
    if (!fs.existsSync(cli)) usageError(`${baseline.source}: ${cli} is missing (run npm run build in '${baseline.text}' first)`)
    settings.baselineCli = cli
    settings.targets = [...settings.targets, BASELINE]
  } else {
    settings.baselineCli = null
  }
  return Object.freeze(settings)
}

function usageError (message) {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`)
  process.exit(2)
}

// --- CPUs: who runs where ---------------------------------------------------------------

/** CPUs this process may run on (Cpus_allowed_list of /proc/self/status), e.g. [0, 1]. */
function allowedCpus () {
  const match = /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))
  if (match === null) return []
  const cpus = []
  for (const part of match[1].split(',')) {
    const [from, to] = part.split('-').map(Number)
    for (let cpu = from; cpu <= (to ?? from); cpu++) cpus.push(cpu)
  }
  return cpus
}

function hasTaskset () {
  return spawnSync('taskset', ['--version'], { encoding: 'utf8' }).error === undefined
}

/**
 * The target under load on the last allowed CPU, alone; wrk and the backend on the others. No
 * pinning (everything where the scheduler puts it) without taskset, with one CPU, or when asked.
 */
function cpuPlan (settings) {
  const cpus = allowedCpus()
  const available = hasTaskset() && cpus.length >= 2
  if (settings.pin === true && !available) {
    throw new Error(`--pin needs taskset and at least 2 allowed CPUs (taskset ${hasTaskset() ? 'found' : 'missing'}, CPUs ${cpus.join(',') || '?'})`)
  }
  if (settings.pin === false || !available) {
    const why = settings.pin === false ? 'pinning switched off' : !hasTaskset() ? 'taskset not found' : 'fewer than 2 CPUs allowed'
    return { pinned: false, why, targetCpus: cpus, loadCpus: cpus }
  }
  return { pinned: true, why: null, targetCpus: cpus.slice(-1), loadCpus: cpus.slice(0, -1) }
}

/** `command args` wrapped in `taskset -c CPUS` when pinning (taskset execs: the pid stays the same). */
function pinned (plan, role, command, args) {
  if (!plan.pinned) return { command, args }
  const cpus = role === 'target' ? plan.targetCpus : plan.loadCpus
  return { command: 'taskset', args: ['-c', cpus.join(','), command, ...args] }
}

/** Per-CPU tick counters from /proc/stat (proc(5)): busy = all but idle and iowait; steal separately. */
function cpuCounters () {
  const counters = new Map()
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = /^cpu(\d+) (.*)$/.exec(line)
    if (match === null) continue
    const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = match[2].trim().split(/\s+/).map(Number)
    counters.set(Number(match[1]), { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal })
  }
  return counters
}

/** Busy and steal percentages of a set of CPUs between two cpuCounters() readings. */
function cpuShare (before, after, cpus) {
  let busy = 0
  let all = 0
  let steal = 0
  for (const cpu of cpus) {
    const a = before.get(cpu)
    const b = after.get(cpu)
    if (a === undefined || b === undefined) continue
    busy += b.busy - a.busy
    steal += b.steal - a.steal
    all += (b.busy - a.busy) + (b.idle - a.idle) + (b.steal - a.steal)
  }
  return all > 0 ? { busyPercent: (busy / all) * 100, stealPercent: (steal / all) * 100 } : { busyPercent: null, stealPercent: null }
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
  children.delete(child)
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

/** The backend the proxies forward to (role 'load': beside wrk), or the baseline target (role 'target'). */
async function startBackendProcess (plan, logDir, role, name) {
  const { command, args } = pinned(plan, role, process.execPath, [path.join(BENCH_DIR, 'backend.mjs'), '--port', '0'])
  const started = await startProcess({ name, command, args, logDir, ready: /^listening (\d+)$/m })
  return { ...started, port: Number(started.match[1]) }
}

/** The Node flags of the executable's shebang (`#!/usr/bin/env -S node FLAGS`): clb-proxy runs as users run it. */
function shebangNodeFlags (cli = CLB_CLI) {
  const first = fs.readFileSync(cli, 'latin1').split('\n')[0] ?? ''
  const match = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first)
  return match === null ? [] : match[1].trim().split(/\s+/).filter((flag) => flag.length > 0)
}

function nodeArgs (settings, profileDir, cli = CLB_CLI) {
  return [...shebangNodeFlags(cli), ...(settings.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])]
}

async function startBackendTarget (plan, logDir, route) {
  const started = await startBackendProcess(plan, logDir, 'target', `backend-target-${route.name}`)
  return {
    name: 'backend',
    port: started.port,
    processes: [started.child],
    pids: () => [started.pid],
    stop: () => stopProcess(started.child)
  }
}

/** This checkout's clb-proxy, or (`target` BASELINE) the build of --baseline, run as users run it. */
async function startClbProxyTarget (settings, plan, logDir, route, backendPort, target = 'clb-proxy') {
  const cli = target === BASELINE ? settings.baselineCli : CLB_CLI
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run npm run build (npm run bench does)`)
  const name = `${target}-${route.name}`
  const accessLog = path.join(logDir, `${name}-access.log`)
  const profileDir = path.join(logDir, `${name}-profile`)
  const { command, args } = pinned(plan, 'target', process.execPath, [...nodeArgs(settings, profileDir, cli), cli,
    '--listen', '127.0.0.1:0', '--backend', `http://127.0.0.1:${backendPort}`, '--access-log', accessLog])
  const started = await startProcess({
    name,
    command,
    args,
    logDir,
    // The CLI's banner on stderr: "clb-proxy: listening on http://127.0.0.1:PORT, forwarding to ..."
    ready: /listening on http:\/\/127\.0\.0\.1:(\d+)/
  })
  return {
    name: target,
    port: Number(started.match[1]),
    processes: [started.child],
    pids: () => [started.pid],
    // The line count printed is this build's; the baseline's access log is written all the same.
    ...(target === BASELINE ? {} : { accessLog }),
    profileDir,
    stop: () => stopProcess(started.child)
  }
}

/** A Node proxy in bench/: http-proxy (the issue's peer) or node-pipe (the floor). */
async function startNodeScriptTarget (target, script, settings, plan, logDir, route, backendPort) {
  const name = `${target}-${route.name}`
  const profileDir = path.join(logDir, `${name}-profile`)
  const { command, args } = pinned(plan, 'target', process.execPath, [...nodeArgs(settings, profileDir),
    path.join(BENCH_DIR, script), '--target', `http://127.0.0.1:${backendPort}`])
  const started = await startProcess({ name, command, args, logDir, ready: /^listening (\d+)$/m })
  return {
    name: target,
    port: Number(started.match[1]),
    processes: [started.child],
    pids: () => [started.pid],
    profileDir,
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
    keepalive 64;
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
      # A response larger than the memory buffers is streamed, not spooled to a temp file (the
      # default for a 1 MiB body when the client reads slower than the backend writes): the Node
      # proxies do no disk I/O either.
      proxy_max_temp_file_size 0;
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

async function startNginxTarget (plan, logDir, route, backendPort) {
  const dir = path.join(logDir, `nginx-${route.name}`)
  fs.mkdirSync(dir, { recursive: true })
  // Workers run as "nobody" when we are root; they must be able to reach their temp paths.
  fs.chmodSync(logDir, 0o755)
  fs.chmodSync(dir, 0o755)
  let lastError = null
  for (let attempt = 1; attempt <= NGINX_START_ATTEMPTS; attempt++) {
    const port = await freePort()
    const configFile = path.join(dir, 'nginx.conf')
    fs.writeFileSync(configFile, nginxConfig(dir, port, backendPort))
    const { command, args } = pinned(plan, 'target', 'nginx', ['-p', dir, '-e', path.join(dir, 'nginx-error.log'), '-c', configFile])
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'ignore'] })
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

function startTarget (name, settings, plan, logDir, route, backendPort) {
  switch (name) {
    case 'backend': return startBackendTarget(plan, logDir, route)
    case 'clb-proxy': return startClbProxyTarget(settings, plan, logDir, route, backendPort)
    case BASELINE: return startClbProxyTarget(settings, plan, logDir, route, backendPort, BASELINE)
    case 'http-proxy': return startNodeScriptTarget('http-proxy', 'http-proxy-server.mjs', settings, plan, logDir, route, backendPort)
    case 'node-pipe': return startNodeScriptTarget('node-pipe', 'node-pipe-server.mjs', settings, plan, logDir, route, backendPort)
    case 'nginx': return startNginxTarget(plan, logDir, route, backendPort)
  }
  throw new Error(`unknown target ${name}`)
}

// --- the check request: one exchange per route and target, before any load --------------

/** A request body distinct from anything the backend sends, so an echo proves itself. */
function requestBodyOf (length) {
  return Buffer.alloc(length, '0123456789ABCDEF', 'latin1')
}

/** One request on the route; throws unless the answer is 200 with exactly the expected body. */
async function checkRoute (port, route, targetName) {
  const body = route.requestBodyBytes > 0 ? requestBodyOf(route.requestBodyBytes) : null
  const { status, received } = await new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port,
      method: route.method,
      path: route.path,
      agent: false,
      headers: body === null ? {} : { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
      timeout: CHECK_TIMEOUT_MS
    }, (response) => {
      const parts = []
      response.on('data', (part) => parts.push(part))
      response.on('end', () => resolve({ status: response.statusCode, received: Buffer.concat(parts) }))
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)))
    request.on('error', reject)
    request.end(body ?? undefined)
  }).catch((error) => { throw new Error(`${targetName} ${route.label}: check request failed: ${error.message}`) })
  if (status !== 200) throw new Error(`${targetName} ${route.label}: check request got status ${status}`)
  if (received.length !== route.responseBodyBytes) {
    throw new Error(`${targetName} ${route.label}: check request got ${received.length} body bytes, expected ${route.responseBodyBytes}`)
  }
  if (body !== null && !received.equals(body)) throw new Error(`${targetName} ${route.label}: the echoed body differs from the one sent`)
}

// --- wrk --------------------------------------------------------------------------------

/** A wrk script: the route's method and body, and a done() hook that prints wrk's summary as JSON. */
function wrkScript (route) {
  const request = route.requestBodyBytes === 0
    ? ''
    : `wrk.method = "${route.method}"
wrk.body = string.rep("0123456789ABCDEF", ${route.requestBodyBytes / 16})
wrk.headers["Content-Type"] = "application/octet-stream"
`
  return `-- Written by bench/run.mjs for ${route.label}.
${request}done = function(summary, latency, requests)
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
}

function wrkVersion () {
  const result = spawnSync('wrk', ['-v'], { encoding: 'utf8' })
  if (result.error !== undefined) return null
  return (result.stdout.split('\n')[0] ?? '').replace(/\s+Copyright.*$/, '').trim()
}

/** Runs wrk for `seconds` against url; resolves with the parsed summary and wrk's text output. */
async function runWrk (url, seconds, settings, plan, scriptFile) {
  const wrkArgs = ['-t', String(settings.threads), '-c', String(settings.connections), '-d', `${seconds}s`,
    '--latency', '-s', scriptFile, url]
  const { command, args } = pinned(plan, 'load', 'wrk', wrkArgs)
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text) => { stdout += text })
  child.stderr.setEncoding('utf8').on('data', (text) => { stderr += text })
  const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + WRK_GRACE_MS)
  const [code, signal] = await once(child, 'close')
  clearTimeout(timer)
  children.delete(child)
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${stdout}${stderr}`)
  const line = stdout.split('\n').find((text) => text.startsWith('WRK_JSON '))
  if (line === undefined) throw new Error(`wrk printed no summary:\n${stdout}${stderr}`)
  const summary = JSON.parse(line.slice('WRK_JSON '.length))
  return { summary, text: stdout.replace(/^WRK_JSON .*\n?/m, '') }
}

// --- measuring --------------------------------------------------------------------------

async function measureTarget (target, route, backend, settings, plan, scriptFile) {
  const url = `http://127.0.0.1:${target.port}${route.path}`
  process.stderr.write(`bench: ${route.label} ${target.name}: warm-up ${settings.warmupSeconds} s, then ${settings.durationSeconds} s measured (${url})\n`)
  await checkRoute(target.port, route, target.name)
  if (settings.warmupSeconds > 0) await runWrk(url, settings.warmupSeconds, settings, plan, scriptFile)
  const pids = target.pids()
  const ticksBefore = sumCpuTicks(pids)
  const backendTicksBefore = cpuTicks(backend.pid)
  const countersBefore = cpuCounters()
  const startedAt = process.hrtime.bigint()
  const { summary, text } = await runWrk(url, settings.durationSeconds, settings, plan, scriptFile)
  const endedAt = process.hrtime.bigint()
  const wallSeconds = Number(endedAt - startedAt) / 1e9
  const ticksAfter = sumCpuTicks(pids)
  const backendTicksAfter = cpuTicks(backend.pid)
  const countersAfter = cpuCounters()
  const userSeconds = (ticksAfter.user - ticksBefore.user) / CLOCK_TICKS_PER_SECOND
  const systemSeconds = (ticksAfter.system - ticksBefore.system) / CLOCK_TICKS_PER_SECOND
  const cpuSeconds = userSeconds + systemSeconds
  const backendCpuSeconds = (backendTicksAfter.user + backendTicksAfter.system - backendTicksBefore.user - backendTicksBefore.system) /
    CLOCK_TICKS_PER_SECOND
  for (const processHandle of target.processes) {
    if (!isRunning(processHandle)) throw new Error(`${target.name} died during its ${route.label} run`)
  }
  const requests = summary.requests
  const socketErrors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  const targetCores = cpuShare(countersBefore, countersAfter, plan.targetCpus)
  const loadCores = cpuShare(countersBefore, countersAfter, plan.loadCpus)
  const bytesPerResponse = requests > 0 ? summary.bytes / requests : null
  return {
    route: route.name,
    routeLabel: route.label,
    name: target.name,
    url,
    pids,
    requests,
    wrkDurationSeconds: summary.duration_us / 1e6,
    // The measured run on the monotonic clock (what --cpu-prof timestamps use), for the profile window.
    windowMicros: { from: Number(startedAt / 1000n), to: Number(endedAt / 1000n) },
    requestsPerSecond: requests / (summary.duration_us / 1e6),
    latencyMs: Object.fromEntries(Object.entries(summary.latency_us).map(([key, micros]) => [key, micros / 1000])),
    bytesRead: summary.bytes,
    bytesPerResponse,
    // wrk counts a status >= 400 as a "Non-2xx or 3xx response"; the backend answers 200 on these routes.
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
    // The baseline row has no backend behind it: the target is a backend of its own.
    backendCpuMicrosPerRequest: requests > 0 && target.name !== 'backend' ? (backendCpuSeconds / requests) * 1e6 : null,
    targetCpuBusyPercent: targetCores.busyPercent,
    loadCpuBusyPercent: loadCores.busyPercent,
    stealPercent: cpuShare(countersBefore, countersAfter, [...new Set([...plan.targetCpus, ...plan.loadCpus])]).stealPercent,
    wrkOutput: text
  }
}

/** The responses wrk read must be about the route's size: a proxy that truncates or pads shows here. */
function sizeProblem (result, route) {
  if (result.bytesPerResponse === null) return null
  // Each response is its head (< 1 KiB) plus the body; responses still in flight at the end add a little.
  const low = route.responseBodyBytes
  const high = route.responseBodyBytes * 1.05 + 1024
  if (result.bytesPerResponse >= low && result.bytesPerResponse <= high) return null
  return `${result.name} ${route.label}: wrk read ${result.bytesPerResponse.toFixed(0)} bytes per response, expected ${low} to ${high.toFixed(0)}`
}

// --- reporting --------------------------------------------------------------------------

function fixed (value, digits) {
  return value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
}

function markdownTable (header, rows, leftColumns = 1) {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)))
  const line = (cells) => '| ' + cells.map((cell, column) => column < leftColumns ? cell.padEnd(widths[column]) : cell.padStart(widths[column])).join(' | ') + ' |'
  const rule = '|' + widths.map((width, column) => column < leftColumns ? '-'.repeat(width + 2) : '-'.repeat(width + 1) + ':').join('|') + '|'
  return [line(header), rule, ...rows.map(line)].join('\n')
}

/** `list` turned left by `by` places: [a, b, c] by 1 is [b, c, a]. */
function rotated (list, by) {
  const at = by % list.length
  return [...list.slice(at), ...list.slice(0, at)]
}

function median (values) {
  const known = values.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b)
  if (known.length === 0) return null
  const middle = Math.floor(known.length / 2)
  return known.length % 2 === 1 ? known[middle] : (known[middle - 1] + known[middle]) / 2
}

/**
 * One result per route and target: with one round, that round's; with several, each number the
 * median of the rounds' (so a row's numbers may come from different rounds). Error counts are
 * summed: a round that failed is never hidden by a median.
 */
function medianResults (roundResults, routes, targets) {
  const results = []
  for (const route of routes) {
    for (const name of targets) {
      const runs = roundResults.filter((r) => r.route === route && r.name === name)
      if (runs.length === 0) continue
      if (runs.length === 1) {
        const { round, ...only } = runs[0]
        results.push(only)
        continue
      }
      const of = (pick) => median(runs.map(pick))
      results.push({
        route,
        routeLabel: runs[0].routeLabel,
        name,
        rounds: runs.length,
        requests: of((r) => r.requests),
        requestsPerSecond: of((r) => r.requestsPerSecond),
        latencyMs: Object.fromEntries(Object.keys(runs[0].latencyMs).map((key) => [key, of((r) => r.latencyMs[key])])),
        bytesPerResponse: of((r) => r.bytesPerResponse),
        non2xxResponses: runs.reduce((sum, r) => sum + r.non2xxResponses, 0),
        socketErrorCount: runs.reduce((sum, r) => sum + r.socketErrorCount, 0),
        cpuMicrosPerRequest: of((r) => r.cpuMicrosPerRequest),
        cpuSystemMicrosPerRequest: of((r) => r.cpuSystemMicrosPerRequest),
        cpuPercentOfOneCore: of((r) => r.cpuPercentOfOneCore),
        peakRssKiB: of((r) => r.peakRssKiB),
        backendCpuMicrosPerRequest: of((r) => r.backendCpuMicrosPerRequest),
        targetCpuBusyPercent: of((r) => r.targetCpuBusyPercent),
        loadCpuBusyPercent: of((r) => r.loadCpuBusyPercent),
        stealPercent: Math.max(...runs.map((r) => r.stealPercent ?? 0))
      })
    }
  }
  return results
}

/** clb-proxy / peer within each round: how much the ratio itself moves from round to round. */
function ratiosPerRound (roundResults, settings) {
  const rows = []
  for (const route of settings.routes) {
    for (const peer of PEERS) {
      const cpu = []
      const p99 = []
      for (let round = 1; round <= settings.rounds; round++) {
        const clb = roundResults.find((r) => r.route === route && r.round === round && r.name === 'clb-proxy')
        const reference = roundResults.find((r) => r.route === route && r.round === round && r.name === peer)
        if (clb === undefined || reference === undefined) continue
        cpu.push(reference.cpuMicrosPerRequest ? clb.cpuMicrosPerRequest / reference.cpuMicrosPerRequest : null)
        p99.push(reference.latencyMs.p99 ? clb.latencyMs.p99 / reference.latencyMs.p99 : null)
      }
      if (cpu.length > 0) rows.push({ route, routeLabel: ROUTES[route].label, relativeTo: peer, cpu, p99 })
    }
  }
  return rows
}

function formatRoundRatios (rows) {
  const list = (values) => values.map((v) => v === null ? '-' : `${fixed(v, 2)}x`).join(' ')
  return markdownTable(['route', 'clb-proxy / peer', 'CPU/req by round', 'p99 by round'],
    rows.map((r) => [r.routeLabel, r.relativeTo, list(r.cpu), list(r.p99)]), 2)
}

function formatTable (results) {
  const header = ['route', 'target', 'req/s', 'p50 ms', 'p99 ms', 'CPU us/req', 'of it sys', 'CPU %core', 'peak RSS MiB',
    'backend us/req', 'load CPU %', 'non-2xx', 'sock err']
  const rows = results.map((r) => [
    r.routeLabel,
    r.name,
    fixed(r.requestsPerSecond, 0),
    fixed(r.latencyMs.p50, 2),
    fixed(r.latencyMs.p99, 2),
    fixed(r.cpuMicrosPerRequest, 1),
    fixed(r.cpuSystemMicrosPerRequest, 1),
    fixed(r.cpuPercentOfOneCore, 0),
    fixed(r.peakRssKiB / 1024, 1),
    fixed(r.backendCpuMicrosPerRequest, 1),
    fixed(r.loadCpuBusyPercent, 0),
    String(r.non2xxResponses),
    String(r.socketErrorCount)
  ])
  return markdownTable(header, rows, 2)
}

const METRICS = {
  cpu: { label: 'CPU/req', of: (r) => r.cpuMicrosPerRequest },
  rps: { label: 'req/s', of: (r) => r.requestsPerSecond },
  p99: { label: 'p99', of: (r) => r.latencyMs.p99 },
  rss: { label: 'peak RSS', of: (r) => r.peakRssKiB }
}

/** clb-proxy / peer for every route, metric and peer measured. */
function computeRatios (results, routes) {
  const ratios = []
  for (const route of routes) {
    const clb = results.find((r) => r.route === route && r.name === 'clb-proxy')
    if (clb === undefined) continue
    for (const peer of PEERS) {
      const reference = results.find((r) => r.route === route && r.name === peer)
      if (reference === undefined) continue
      const entry = { route, routeLabel: ROUTES[route].label, target: 'clb-proxy', relativeTo: peer }
      for (const [key, metric] of Object.entries(METRICS)) {
        const a = metric.of(clb)
        const b = metric.of(reference)
        entry[key] = a === null || b === null || b === 0 ? null : a / b
      }
      ratios.push(entry)
    }
  }
  return ratios
}

function formatRatios (ratios) {
  const header = ['route', 'clb-proxy / peer', 'CPU/req', 'req/s', 'p99', 'peak RSS']
  const rows = ratios.map((r) => [r.routeLabel, r.relativeTo, `${fixed(r.cpu, 2)}x`, `${fixed(r.rps, 2)}x`, `${fixed(r.p99, 2)}x`, `${fixed(r.rss, 2)}x`])
  return markdownTable(header, rows, 2)
}

/** Each of the issue's targets for each route it applies to and that was measured with its peer. */
function evaluateTargets (ratios, results, routes) {
  const checks = []
  for (const target of TARGETS) {
    for (const route of target.routes ?? routes) {
      if (!routes.includes(route)) continue
      const ratio = ratios.find((r) => r.route === route && r.relativeTo === target.peer)?.[target.metric] ?? null
      checks.push({
        route,
        routeLabel: ROUTES[route].label,
        target: target.text,
        metric: target.metric,
        peer: target.peer,
        limit: target.limit,
        ratio,
        floor: floorRatio(results, route, target),
        met: ratio === null ? null : ratio <= target.limit
      })
    }
  }
  return checks
}

/**
 * node-pipe / peer on the target's metric in the same run: what a Node proxy that does nothing but
 * pipe the bytes reaches (see "The floor"). A limit below it cannot be met by any Node proxy on
 * this machine in this run; null when node-pipe or the peer was not run.
 */
function floorRatio (results, route, target) {
  const pipe = results.find((r) => r.route === route && r.name === 'node-pipe')
  const peer = results.find((r) => r.route === route && r.name === target.peer)
  if (pipe === undefined || peer === undefined) return null
  const a = METRICS[target.metric].of(pipe)
  const b = METRICS[target.metric].of(peer)
  return a === null || b === null || b === 0 ? null : a / b
}

function formatTargets (checks) {
  const header = ['route', 'target', 'ratio', 'node-pipe / peer', 'result']
  const rows = checks.map((c) => [c.routeLabel, c.target, c.ratio === null ? '-' : `${fixed(c.ratio, 2)}x`,
    c.floor === null ? '-' : `${fixed(c.floor, 2)}x`,
    c.met === null ? 'not measured' : c.met ? 'met' : 'MISSED'])
  return markdownTable(header, rows, 2)
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

/** Copies a stopped target's profile into `destination` and prints its top functions over the measured window. */
function reportProfile (target, result, destination, limit, suffix) {
  if (target.profileDir === undefined || !fs.existsSync(target.profileDir)) return null
  const files = fs.readdirSync(target.profileDir).filter((file) => file.endsWith('.cpuprofile'))
  if (files.length === 0) return null
  fs.mkdirSync(destination, { recursive: true })
  const copy = path.join(destination, `${target.name}-${result.route}${suffix}.cpuprofile`)
  fs.copyFileSync(path.join(target.profileDir, files[0]), copy)
  const window = { fromMicros: result.windowMicros.from, toMicros: result.windowMicros.to }
  const summary = topFunctions(readProfile(copy), { window })
  const relative = path.relative(REPO_ROOT, copy)
  process.stdout.write(`\nTop functions of ${target.name} on ${result.routeLabel} (self time, share of ${summary.busySeconds.toFixed(1)} s on CPU ` +
    `in the measured run; ${relative}; node bench/profile-top.mjs --window ${window.fromMicros}:${window.toMicros} ${relative}):\n` +
    `${formatTop(summary, limit)}\n`)
  return {
    profile: relative,
    window,
    busySeconds: summary.busySeconds,
    top: summary.rows.slice(0, limit).map((row) => ({ function: row.key, selfPercent: row.selfPercent, totalPercent: row.totalPercent }))
  }
}

// --- main -------------------------------------------------------------------------------

async function main () {
  const settings = parseCommandLine(process.argv.slice(2), process.env)
  const wrk = wrkVersion()
  if (wrk === null) throw new Error('wrk is not installed (Debian: apt-get install -y wrk)')
  const nginx = nginxVersion()
  const plan = cpuPlan(settings)
  const startedAt = new Date()
  const timestamp = startedAt.toISOString().replace(/[:.]/g, '-')
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clb-bench-'))
  runDir = logDir
  const notes = []
  const wanted = settings.targets.filter((name) => name !== 'nginx' || nginx !== null)
  if (wanted.length < settings.targets.length) {
    notes.push('nginx is not installed: skipped (Debian: apt-get install -y nginx)')
    process.stderr.write(`bench: NOTE: ${notes.at(-1)}\n`)
  }
  const placement = plan.pinned
    ? `target alone on CPU ${plan.targetCpus.join(',')}, wrk and backend on CPU ${plan.loadCpus.join(',')} (taskset)`
    : `not pinned (${plan.why})`
  const estimate = settings.routes.length * wanted.length * settings.rounds * (settings.warmupSeconds + settings.durationSeconds + OVERHEAD_SECONDS_PER_RUN)
  const roundsText = settings.rounds > 1 ? ` x ${settings.rounds} rounds` : ''
  process.stderr.write(`bench: ${settings.routes.length} routes x ${wanted.length} targets${roundsText}, about ${Math.ceil(estimate / 10) * 10} s; ${placement}\n`)

  const uptimeBefore = os.loadavg()
  const backend = await startBackendProcess(plan, logDir, 'load', 'backend')
  const roundResults = []
  const profiles = []
  const problems = []
  const accessLogLines = {}
  const profileDestination = path.join(RESULTS_DIR, `${timestamp}-profiles`)
  let failure = null
  try {
    for (const routeName of settings.routes) {
      const route = ROUTES[routeName]
      const scriptFile = path.join(logDir, `wrk-${route.name}.lua`)
      fs.writeFileSync(scriptFile, wrkScript(route))
      for (let round = 1; round <= settings.rounds; round++) {
        // With rounds, each round's processes get their own directory: logs, access log and profile
        // files are the round's, not appended to or mixed with another round's.
        let runDirectory = logDir
        if (settings.rounds > 1) {
          process.stderr.write(`bench: ${route.label}, round ${round} of ${settings.rounds}\n`)
          runDirectory = path.join(logDir, `round-${round}`)
          fs.mkdirSync(runDirectory, { recursive: true })
        }
        // Each round starts one target further on, so that a slow spell of the machine does not
        // always fall on the same target's turn.
        for (const name of rotated(wanted, round - 1)) {
          // Fresh per route and round: peak RSS is the route's, and one run's heap does not carry into the next.
          const target = await startTarget(name, settings, plan, runDirectory, route, backend.port)
          let result
          try {
            result = await measureTarget(target, route, backend, settings, plan, scriptFile)
          } finally {
            await target.stop()
          }
          roundResults.push({ ...result, round })
          const problem = sizeProblem(result, route)
          if (problem !== null) problems.push(problem)
          if (target.accessLog !== undefined) accessLogLines[route.name] = (accessLogLines[route.name] ?? 0) + countLines(target.accessLog)
          if (settings.cpuProf && NODE_TARGETS.includes(name)) {
            const report = reportProfile(target, result, profileDestination, settings.profileTop, settings.rounds > 1 ? `-round-${round}` : '')
            if (report !== null) profiles.push({ target: name, route: route.name, round, ...report })
          }
        }
      }
    }
  } catch (error) {
    failure = error
  } finally {
    await stopProcess(backend.child)
  }
  if (failure !== null) {
    process.stderr.write(`bench: logs kept in ${logDir}\n`)
    throw failure
  }

  const results = medianResults(roundResults, settings.routes, wanted)
  const ratios = computeRatios(results, settings.routes)
  const roundRatios = settings.rounds > 1 ? ratiosPerRound(roundResults, settings) : []
  const checks = wanted.includes('clb-proxy') ? evaluateTargets(ratios, results, settings.routes) : []
  const command = `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim()
  const environmentSettings = Object.entries(process.env).filter(([key]) => key.startsWith('BENCH_')).map(([key, value]) => `${key}=${value}`)
  process.stdout.write(`\nclb-proxy benchmark, ${startedAt.toISOString()}: ${[...environmentSettings, command].join(' ')}\n`)
  process.stdout.write(`wrk -t${settings.threads} -c${settings.connections} -d${settings.durationSeconds}s --latency (warm-up ${settings.warmupSeconds} s each), ` +
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ${wrk}, nginx ${nginx ?? 'not installed'}\n`)
  process.stdout.write(`CPU placement: ${placement}; load average at start ${uptimeBefore.map((n) => n.toFixed(2)).join(' ')}\n\n`)
  if (settings.rounds > 1) process.stdout.write(`Every number below is the median of ${settings.rounds} rounds (each round measures every target once).\n\n`)
  process.stdout.write(`${formatTable(results)}\n\n`)
  if (ratios.length > 0) process.stdout.write(`${formatRatios(ratios)}\n\n`)
  if (roundRatios.length > 0) process.stdout.write(`CPU/req and p99 ratios of each round (clb-proxy / peer, same round):\n${formatRoundRatios(roundRatios)}\n\n`)
  if (checks.length > 0) {
    const met = checks.filter((c) => c.met === true).length
    const measured = checks.filter((c) => c.met !== null).length
    const unmeasured = checks.length - measured
    process.stdout.write(`Targets (issue 7, item 8), clb-proxy / peer in this run: ${met} of ${measured} met` +
      `${unmeasured > 0 ? ` (${unmeasured} not measured: peer not in --targets)` : ''}\n${formatTargets(checks)}\n\n`)
  }
  for (const [route, lines] of Object.entries(accessLogLines)) {
    const over = settings.rounds > 1 ? `, all ${settings.rounds} rounds` : ''
    process.stdout.write(`clb-proxy access log, ${ROUTES[route].label}: ${lines} lines (check request, warm-up and measured requests${over})\n`)
  }
  const maxSteal = Math.max(0, ...results.map((r) => r.stealPercent ?? 0))
  if (maxSteal >= 5) notes.push(`up to ${maxSteal.toFixed(0)}% of CPU time was stolen by the hypervisor during a run: numbers are noisier than usual`)
  for (const note of notes) process.stdout.write(`Note: ${note}\n`)
  if (settings.cpuProf) process.stdout.write('\n(--cpu-prof run: profiling overhead is included in the Node proxies\' CPU numbers above)\n')

  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  const resultFile = path.join(RESULTS_DIR, `${timestamp}.json`)
  fs.writeFileSync(resultFile, JSON.stringify({
    date: startedAt.toISOString(),
    command,
    environmentSettings,
    settings,
    cpuPlacement: { ...plan, description: placement },
    loadAverageAtStart: uptimeBefore,
    environment: {
      node: process.version,
      wrk,
      nginx,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? null,
      clockTicksPerSecond: CLOCK_TICKS_PER_SECOND,
      platform: `${os.type()} ${os.release()}`
    },
    routes: settings.routes.map((name) => ROUTES[name]),
    results,
    roundResults: settings.rounds > 1 ? roundResults : null,
    ratios,
    roundRatios: settings.rounds > 1 ? roundRatios : null,
    targets: checks,
    clbAccessLogLines: accessLogLines,
    profiles: settings.cpuProf ? profiles : null,
    problems,
    notes
  }, null, 2) + '\n')
  process.stdout.write(`\nResults: ${path.relative(process.cwd(), resultFile)}\n`)

  // A peer's wrk timeouts (a request answered after wrk's 2 s, or never) are the peer's slowness,
  // not a fault of this run: they are reported, and the run still stands. Anything else fails it:
  // any error response, any connect/read/write error, and any socket error of clb-proxy's own.
  const peerTimeoutsOnly = (r) => r.name !== 'clb-proxy' && r.non2xxResponses === 0 &&
    r.socketErrorCount > 0 && r.socketErrorCount === r.socketErrors.timeout
  for (const r of roundResults.filter(peerTimeoutsOnly)) {
    process.stderr.write(`\nbench: warning: ${r.name} ${r.routeLabel}${settings.rounds > 1 ? ` (round ${r.round})` : ''} had ${r.socketErrors.timeout} wrk ` +
      `timeouts (requests not answered within 2 s): its latency numbers include them, the run stands\n`)
  }
  const failed = roundResults.filter((r) => (r.non2xxResponses > 0 || r.socketErrorCount > 0) && !peerTimeoutsOnly(r))
  for (const r of failed) {
    process.stderr.write(`\nbench: ERROR: ${r.name} ${r.routeLabel}${settings.rounds > 1 ? ` (round ${r.round})` : ''} returned ${r.non2xxResponses} non-2xx responses and ` +
      `${r.socketErrorCount} socket errors ${JSON.stringify(r.socketErrors)}; logs kept in ${logDir}\n${r.wrkOutput}\n`)
  }
  for (const problem of problems) process.stderr.write(`\nbench: ERROR: ${problem}; logs kept in ${logDir}\n`)
  if (failed.length > 0 || problems.length > 0) return 1
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
