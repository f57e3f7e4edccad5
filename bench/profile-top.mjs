#!/usr/bin/env node
/**
 * The top N functions of a V8 CPU profile (.cpuprofile, as written by `node --cpu-prof`) by self
 * time, with dist/*.js locations mapped back to the TypeScript source through the .js.map files
 * tsc writes next to dist/.
 *
 *   node bench/profile-top.mjs [--top N] [--by function|file] [--window FROM_US:TO_US] FILE.cpuprofile...
 *
 * Shares are of the samples that were not "(idle)". A native frame (a socket write, a
 * Buffer.concat) is labelled with its nearest JavaScript caller outside node: internals, e.g.
 * `writev (native) <- write proxy/data-path/client-connection.ts:53`. Locations are where a function starts
 * (V8 profiles record no call sites). `total %` is inclusive time: the share of samples with the
 * function anywhere on the stack. --window keeps only samples whose timestamp (microseconds of
 * the monotonic clock, the one process.hrtime() reads) falls in [FROM_US, TO_US]: bench/run.mjs
 * uses it to summarise the measured run only, without start-up and warm-up.
 *
 * Also a module: run.mjs imports `topFunctions` and `formatTop`.
 */
import fs from 'node:fs'
import { SourceMap } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

/** dist/*.js line -> TypeScript source line; other files relative to the repository. */
const sourceMaps = new Map()
export function sourceLocation (url, lineNumber, columnNumber) {
  if (url === '') return ''
  if (!url.startsWith('file://')) return `${url}:${lineNumber + 1}`
  const file = fileURLToPath(url)
  const relative = path.relative(REPO_ROOT, file)
  const shown = relative.startsWith('..') ? file : relative
  if (!relative.startsWith(`dist${path.sep}`)) return `${shown}:${lineNumber + 1}`
  if (!sourceMaps.has(file)) {
    let map = null
    try { map = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8'))) } catch {}
    sourceMaps.set(file, map)
  }
  const entry = sourceMaps.get(file)?.findEntry(lineNumber, columnNumber)
  if (entry === undefined || entry.originalSource === undefined) return `${shown}:${lineNumber + 1}`
  const source = path.relative(REPO_ROOT, path.resolve(path.dirname(file), entry.originalSource.replace(/^file:\/\//, '')))
  return `${source}:${entry.originalLine + 1}`
}

/** node_modules/pino/lib/x.js -> pino; anything else unchanged. */
function shortFile (location) {
  const file = location.replace(/:\d+$/, '')
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)
  return match === null ? file : `${match[1]} (dependency)`
}

/**
 * Aggregates a profile. Returns { sampledSeconds, busySeconds, idleSeconds, rows: [{ key, selfMicros,
 * totalMicros, selfPercent, totalPercent }] } with rows sorted by self time, all of them (slice as
 * needed). `by`: 'function' (function name and location) or 'file'.
 */
export function topFunctions (profile, { by = 'function', window = null } = {}) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)

  const keyCache = new Map()
  const describe = (node) => {
    const { functionName, url, lineNumber, columnNumber } = node.callFrame
    const location = sourceLocation(url, lineNumber, columnNumber)
    if (by === 'file') return shortFile(location)
    return `${functionName || '(anonymous)'} ${location}`
  }
  // A native frame's nearest caller in our code or a dependency; failing that, the nearest node: internal.
  const nearestCaller = (id) => {
    let internal = null
    for (let current = parentOf.get(id); current !== undefined; current = parentOf.get(current)) {
      const node = byId.get(current)
      const url = node.callFrame.url
      if (url === '') continue
      if (!url.startsWith('node:')) return describe(node)
      internal ??= describe(node)
    }
    return internal
  }
  /** The row a node's self time goes to; null for (root) and (idle). */
  const keyOf = (id) => {
    if (keyCache.has(id)) return keyCache.get(id)
    const node = byId.get(id)
    const name = node.callFrame.functionName
    let key
    if (name === '(idle)' || name === '(root)') key = null
    else if (node.callFrame.url !== '') key = describe(node)
    else if (name.startsWith('(')) key = name // (program), (garbage collector)
    else key = by === 'file' ? `native <- ${(nearestCaller(id) ?? '?').replace(/ \(dependency\)$/, '')}` : `${name} (native) <- ${nearestCaller(id) ?? '?'}`
    keyCache.set(id, key)
    return key
  }

  // Sample i lasts until sample i + 1 (timeDeltas[i] is the time since the previous sample).
  const samples = profile.samples
  const deltas = profile.timeDeltas
  const timestamps = new Array(samples.length)
  let time = profile.startTime
  for (let i = 0; i < samples.length; i++) {
    time += deltas[i] ?? 0
    timestamps[i] = time
  }
  const self = new Map()
  const total = new Map()
  let busyMicros = 0
  let idleMicros = 0
  let sampledMicros = 0
  for (let i = 0; i < samples.length; i++) {
    const at = timestamps[i]
    if (window !== null && (at < window.fromMicros || at > window.toMicros)) continue
    const duration = i + 1 < samples.length ? timestamps[i + 1] - at : (profile.endTime ?? at) - at
    if (duration <= 0) continue
    sampledMicros += duration
    const id = samples[i]
    const key = keyOf(id)
    if (key === null) {
      if (byId.get(id).callFrame.functionName === '(idle)') idleMicros += duration
      continue
    }
    busyMicros += duration
    self.set(key, (self.get(key) ?? 0) + duration)
    const seen = new Set([key])
    for (let current = parentOf.get(id); current !== undefined; current = parentOf.get(current)) {
      const parentKey = keyOf(current)
      if (parentKey !== null && !parentKey.startsWith('(')) seen.add(parentKey)
    }
    for (const k of seen) total.set(k, (total.get(k) ?? 0) + duration)
  }
  const rows = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([key, selfMicros]) => ({
      key,
      selfMicros,
      totalMicros: total.get(key) ?? selfMicros,
      selfPercent: busyMicros > 0 ? (selfMicros / busyMicros) * 100 : 0,
      totalPercent: busyMicros > 0 ? ((total.get(key) ?? selfMicros) / busyMicros) * 100 : 0
    }))
  return { sampledSeconds: sampledMicros / 1e6, busySeconds: busyMicros / 1e6, idleSeconds: idleMicros / 1e6, rows }
}

/** The first `limit` rows as text lines: self %, self ms, total %, function and location. */
export function formatTop (summary, limit, by = 'function') {
  const lines = [` self %  self ms  total %  ${by === 'file' ? 'file' : 'function (location)'}`]
  for (const row of summary.rows.slice(0, limit)) {
    lines.push(`${row.selfPercent.toFixed(1).padStart(6)}%  ${(row.selfMicros / 1000).toFixed(0).padStart(7)}  ${row.totalPercent.toFixed(1).padStart(6)}%  ${row.key}`)
  }
  return lines.join('\n')
}

export function readProfile (file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const usage = 'usage: node bench/profile-top.mjs [--top N] [--by function|file] [--window FROM_US:TO_US] FILE.cpuprofile...\n'
  let parsed
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        top: { type: 'string', default: '20' },
        by: { type: 'string', default: 'function' },
        window: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (error) {
    process.stderr.write(`profile-top: ${error.message}\n${usage}`)
    process.exit(2)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(usage)
    process.exit(0)
  }
  const top = Number(values.top)
  let window = null
  if (values.window !== undefined) {
    const match = /^(\d+):(\d+)$/.exec(values.window)
    if (match === null) {
      process.stderr.write(`profile-top: --window must be FROM_US:TO_US, got '${values.window}'\n${usage}`)
      process.exit(2)
    }
    window = { fromMicros: Number(match[1]), toMicros: Number(match[2]) }
  }
  if (!Number.isSafeInteger(top) || top < 1 || !['function', 'file'].includes(values.by) || positionals.length === 0) {
    process.stderr.write(usage)
    process.exit(2)
  }
  for (const file of positionals) {
    const profile = readProfile(file)
    const summary = topFunctions(profile, { by: values.by, window })
    if (window !== null && summary.sampledSeconds === 0) {
      process.stderr.write(`profile-top: ${file}: no samples in the window; the profile spans ${profile.startTime}:${profile.endTime}\n`)
    }
    process.stdout.write(`${file}: ${summary.busySeconds.toFixed(2)} s on CPU of ${summary.sampledSeconds.toFixed(2)} s sampled` +
      `${window === null ? '' : ' (window)'}; shares are of the on-CPU time\n${formatTop(summary, top, values.by)}\n\n`)
  }
}
