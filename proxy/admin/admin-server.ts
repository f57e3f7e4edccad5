/**
 * The admin HTTP listener (options.admin): metrics with CloudWatch names, recent access-log
 * entries, captures and a health check, as JSON. fastify serves it because this is the control
 * plane: ordinary, well-formed HTTP between a developer's tools and the proxy. It never sits on the
 * data path, which reads raw bytes (docs/architecture.md).
 *
 *   GET /healthz          200 {"status":"ok"}
 *   GET /metrics          the same metrics in Prometheus's text format (prometheus.ts, prom-client)
 *   GET /metrics.json     the MetricsSnapshot (proxy/observers/metrics.ts); with ?metric=NAME&period=60,
 *                         that metric's datapoints like `aws cloudwatch get-metric-statistics`
 *   GET /entries?limit=N  the last N access-log entries (default 100), oldest first
 *   GET /captures         the capture files kept now, newest first
 *   GET /captures/:name   one capture file's text; only names /captures lists (no paths)
 *   GET /instances        the registered instances: { InstanceStates: [...] } (DescribeInstanceHealth's shape)
 *   POST /instances       register { "url": "http://HOST:PORT" }: 201 with the instance (200 if already registered)
 *   DELETE /instances/:id deregister (connection draining): 202 with the instance's state, 404 if not registered, 400 if not an instance id
 *   GET /                 the dashboard (dashboard-assets.ts), live through GET /events (server-sent events)
 *   GET /captures/:name/bytes  a capture's response bytes (base64), its defects and replay command, for the dashboard
 *
 * Every route answers only requests whose Host is the listener's own (an IP literal or localhost
 * and its port): a page on another origin cannot read captures through DNS rebinding. Captures
 * shown here have their Authorization and Cookie values redacted unless `?redact=false`.
 */
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import type net from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { CaptureSummary } from '../observers/capture-format.js'
import { DATAPOINT_METRICS, type DatapointMetric, type MetricStatistics, type MetricsSnapshot, type StatisticsQuery } from '../observers/metrics.js'
import { prometheusRegistry } from './prometheus.js'
import type { BackendAddress, ListenAddress } from '../core/options.js'
import type { InstanceDescription } from '../core/instance-description.js'
import { OptionError } from '../core/resolve-options.js'
import { isIP } from 'node:net'
import type { ServerResponse } from 'node:http'
import { formatDump, parseCapture, type ParsedCapture } from '../observers/capture-format.js'
import { shellQuote } from '../observers/diagnostics-escape.js'
import type { InstanceStateChange } from '../core/events.js'
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from './dashboard-assets.js'
import { DEFAULT_MAX_RECORDED_ENTRIES, type AccessLogEntry } from '../observers/recorder.js'

/** What the admin routes read; the running proxy provides each. */
export interface AdminSources {
  readonly metrics: () => MetricsSnapshot
  readonly metricStatistics: (metric: DatapointMetric, query: StatisticsQuery) => MetricStatistics
  readonly entries: () => readonly AccessLogEntry[]
  readonly captures: () => readonly CaptureSummary[]
  /** Resolves once the captures queued so far are written, so /captures lists the capture of a 502 just answered. */
  readonly capturesSettled?: () => Promise<void>
  readonly instances: () => readonly InstanceDescription[]
  /** Throws an OptionError for a bad address. */
  readonly register: (url: string | BackendAddress) => InstanceDescription
  readonly deregister: (id: string) => boolean
  /** Live updates for the dashboard; each returns its unsubscribe function. */
  readonly onEntry?: (listener: (entry: AccessLogEntry) => void) => () => void
  readonly onInstanceState?: (listener: (change: InstanceStateChange) => void) => () => void
}

/** Our choice: what may wait in memory for one dashboard that stops reading its events. */
const SSE_MAX_BUFFERED_BYTES = 1024 * 1024

/** Header fields whose values a capture shown by the admin listener hides (credentials). */
const REDACTED_FIELDS = /^(authorization|proxy-authorization|cookie|set-cookie)$/i
const STAR = 0x2a

/**
 * A copy of `bytes` (a request or response head and what follows) with the value of every
 * credential field replaced by `*` of the same length, up to the end of its line: the offsets of
 * everything else (the defects the dashboard highlights) stay where they were. Only the head is
 * searched (up to the first empty line).
 */
function maskCredentials (bytes: Buffer): { masked: Buffer, count: number } {
  const masked = Buffer.from(bytes)
  let count = 0
  let lineStart = 0
  while (lineStart < masked.length) {
    let lineEnd = masked.indexOf(0x0a, lineStart)
    if (lineEnd === -1) lineEnd = masked.length
    const contentEnd = lineEnd > lineStart && masked[lineEnd - 1] === 0x0d ? lineEnd - 1 : lineEnd
    if (contentEnd === lineStart) break
    const colon = masked.indexOf(0x3a, lineStart)
    if (colon !== -1 && colon < contentEnd && REDACTED_FIELDS.test(masked.toString('latin1', lineStart, colon).trim())) {
      let from = colon + 1
      while (from < contentEnd && (masked[from] === 0x20 || masked[from] === 0x09)) from++
      if (from < contentEnd) {
        masked.fill(STAR, from, contentEnd)
        count++
      }
    }
    lineStart = lineEnd + 1
  }
  return { masked, count }
}

/**
 * The capture's text with both dumps written again from masked bytes, when anything was masked:
 * a value is never searched for in the dump, where long lines are wrapped and bytes escaped.
 */
function redactCaptureText (text: string, parsed: ParsedCapture): string {
  const head = parsed.requestHead === null ? null : maskCredentials(parsed.requestHead)
  const response = maskCredentials(parsed.responseBytes)
  if ((head?.count ?? 0) + response.count === 0) return text
  const lines = text.replace(/\n$/, '').split('\n')
  const out: string[] = []
  let skipping = false
  for (const line of lines) {
    if (line.startsWith('[request head]') && head !== null) {
      out.push(line, ...formatDump(head.masked))
      skipping = true
      continue
    }
    if (line.startsWith('[response]')) {
      const markers = parsed.defects.filter((d) => !d.code.startsWith('REQUEST_')).map((d) => ({ offset: d.offset, label: d.code }))
      out.push(...(skipping ? [''] : []), line, ...formatDump(response.masked, markers))
      break
    }
    if (skipping) continue
    out.push(line)
  }
  return `${out.join('\n')}\n`
}

/**
 * The Host header names this listener: an IP literal or `localhost`, with its port. A name that
 * resolves here through someone's DNS (rebinding) is refused, so a page on another origin cannot
 * read the admin API from the browser of the developer running it.
 */
function isOwnHost (host: string | undefined, port: number): boolean {
  if (host === undefined) return false
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host.trim().toLowerCase())
  if (match === null) return false
  const name = (match[1] as string).replace(/^\[|\]$/g, '')
  const hostPort = match[2] === undefined ? 80 : Number(match[2])
  return hostPort === port && (name === 'localhost' || isIP(name) !== 0)
}

// DescribeInstanceHealth's InstanceState, plus the address, requests in flight and last checks.
const HEALTH_CHECK_SCHEMA = {
  type: 'object',
  properties: {
    passed: { type: 'boolean' },
    startedAtMicros: { type: 'number' },
    durationMs: { type: 'number' },
    status: { type: ['integer', 'null'] },
    defect: {
      anyOf: [
        { type: 'null' },
        { type: 'object', properties: { code: { type: 'string' }, offset: { type: 'integer' }, message: { type: 'string' } } }
      ]
    },
    error: { type: ['string', 'null'] },
    summary: { type: 'string' }
  }
} as const

const INSTANCE_SCHEMA = {
  type: 'object',
  properties: {
    InstanceId: { type: 'string' },
    State: { type: 'string', enum: ['InService', 'OutOfService', 'Unknown'] },
    ReasonCode: { type: 'string', enum: ['ELB', 'Instance', 'N/A'] },
    Description: { type: 'string' },
    Address: { type: 'string' },
    Url: { type: 'string' },
    OutstandingRequests: { type: 'integer' },
    Routable: { type: 'boolean' },
    LastChecks: { type: 'array', items: HEALTH_CHECK_SCHEMA }
  }
} as const

// `message` carries fastify's own reason for a 400 (e.g. "body must have required property 'url'").
const ERROR_SCHEMA = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const

const INSTANCE_ID_PARAMS = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^i-[0-9a-f]{17}$' } },
  required: ['id']
} as const

/** /entries without ?limit= (our choice: a page a person can read). */
export const ADMIN_ENTRIES_DEFAULT_LIMIT = 100

/**
 * A capture as /captures lists it: the summary (with `earlierRun`, a file found at startup, listed
 * so that it can still be read: docs/captures.md) plus the name and path to fetch its text.
 */
export interface AdminCaptureSummary extends CaptureSummary {
  /** The file name: the `:name` of GET /captures/:name. */
  readonly name: string
  /** e.g. '/captures/2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-7.capture' */
  readonly path: string
}

export interface AdminServer {
  /** e.g. http://127.0.0.1:9901, with the port actually bound. */
  readonly url: string
  /** The fastify instance (its `inject()` runs a request without a socket). */
  readonly app: FastifyInstance
  /** Stops listening and closes the admin connections. Idempotent. */
  close (): Promise<void>
}

/** The admin routes on a fastify instance that is not listening yet (tests call `inject()` on it). */
export function buildAdminApp (sources: AdminSources): FastifyInstance {
  const app = Fastify({ logger: false })
  // Fastify's own 4xx answers (schema validation, an unsupported media type) say why in one field.
  app.setErrorHandler(async (error: { statusCode?: number, message: string }, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
    return await reply.code(status).send({ error: status === 500 ? 'internal error' : error.message })
  })

  app.addHook('onRequest', async (request, reply) => {
    // inject() (tests, no socket) has no bound port to compare with.
    const address = app.server.address()
    if (address === null || typeof address === 'string') return
    if (isOwnHost(request.headers.host, address.port)) return
    return await reply.code(421).send({
      error: `Misdirected Request: this admin listener answers only its own address (Host ${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}, localhost:${address.port} or another IP literal with that port), not ${JSON.stringify(request.headers.host ?? '')}: a page on another origin must not read it (DNS rebinding)`
    })
  })

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(DASHBOARD_HTML))
  app.get('/dashboard.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(DASHBOARD_JS))
  app.get('/dashboard.css', async (_request, reply) => await reply.type('text/css; charset=utf-8').send(DASHBOARD_CSS))

  // Server-sent events: each access-log entry and each instance state change, as they happen.
  const streams = new Set<ServerResponse>()
  app.addHook('preClose', async () => { for (const stream of streams) stream.end() })
  app.get('/events', async (request, reply) => {
    reply.hijack()
    const stream = reply.raw
    stream.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' })
    stream.write('retry: 2000\n\n')
    streams.add(stream)
    const send = (event: string, data: unknown): void => {
      // A client that stops reading is dropped once 1 MiB waits for it (its EventSource reconnects
      // and the page reloads its state): memory never grows with a reader that does not read.
      if (stream.writableLength > SSE_MAX_BUFFERED_BYTES) {
        stream.destroy()
        return
      }
      stream.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
    }
    const unsubscribers = [
      sources.onEntry?.((entry) => send('entry', entryAsJson(entry))),
      sources.onInstanceState?.((change) => send('instance', change))
    ]
    request.raw.on('close', () => {
      streams.delete(stream)
      for (const unsubscribe of unsubscribers) unsubscribe?.()
    })
  })

  const registry = prometheusRegistry(sources.metrics)
  app.get('/metrics', async (_request, reply) => {
    return await reply.type(registry.contentType).send(await registry.metrics())
  })

  app.get<{ Querystring: { metric?: DatapointMetric, period: number, start?: string, end?: string } }>('/metrics.json', {
    schema: {
      querystring: {
        type: 'object',
        properties: {
          metric: { type: 'string', enum: [...DATAPOINT_METRICS] },
          // CLB-CW: "measures and sends its metrics in 60-second intervals": a period is whole minutes.
          period: { type: 'integer', minimum: 60, multipleOf: 60, default: 60 },
          start: { type: 'string', format: 'date-time' },
          end: { type: 'string', format: 'date-time' }
        },
        additionalProperties: false
      }
    }
  }, async (request) => {
    const { metric, period, start, end } = request.query
    if (metric === undefined) return sources.metrics()
    return sources.metricStatistics(metric, {
      period,
      ...(start === undefined ? {} : { startMicros: Date.parse(start) * 1000 }),
      ...(end === undefined ? {} : { endMicros: Date.parse(end) * 1000 })
    })
  })

  app.get<{ Querystring: { limit: number } }>('/entries', {
    schema: {
      querystring: {
        type: 'object',
        properties: { limit: { type: 'integer', minimum: 1, maximum: DEFAULT_MAX_RECORDED_ENTRIES, default: ADMIN_ENTRIES_DEFAULT_LIMIT } },
        additionalProperties: false
      }
    }
  }, async (request) => {
    const all = sources.entries()
    const recent = all.slice(Math.max(0, all.length - request.query.limit))
    return { count: recent.length, entries: recent.map(entryAsJson) }
  })

  app.get('/captures', async () => {
    await sources.capturesSettled?.()
    return { captures: sources.captures().map(captureAsJson) }
  })

  /** A capture listed now, by file name, and its text; a 404 answer when there is none. */
  const readListedCapture = async (name: string, reply: FastifyReply): Promise<{ file: string, text: string } | null> => {
    // Only a name /captures lists is served, and it is looked up, never joined to a path:
    // `..`, `/` or an encoded separator cannot reach another file.
    const capture = sources.captures().find((summary) => basename(summary.file) === name)
    if (capture === undefined) {
      await reply.code(404).send({ error: `no capture named ${JSON.stringify(name)}; GET /captures lists them` })
      return null
    }
    try {
      return { file: capture.file, text: await readFile(capture.file, 'utf8') }
    } catch (error) {
      // Removed since it was listed (max-captures rotation, or by hand).
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        await reply.code(404).send({ error: `capture ${JSON.stringify(name)} was removed` })
        return null
      }
      throw error
    }
  }
  const REDACT_QUERY = { type: 'object', properties: { redact: { type: 'boolean', default: true } }, additionalProperties: false } as const

  app.get<{ Params: { name: string }, Querystring: { redact: boolean } }>('/captures/:name', { schema: { querystring: REDACT_QUERY } }, async (request, reply) => {
    const capture = await readListedCapture(request.params.name, reply)
    if (capture === null) return reply
    const text = request.query.redact ? redactCaptureText(capture.text, parseCapture(capture.text)) : capture.text
    return await reply.type('text/plain; charset=utf-8').send(text)
  })

  app.get<{ Params: { name: string }, Querystring: { redact: boolean } }>('/captures/:name/bytes', { schema: { querystring: REDACT_QUERY } }, async (request, reply) => {
    const capture = await readListedCapture(request.params.name, reply)
    if (capture === null) return reply
    const parsed = parseCapture(capture.text)
    const redact = request.query.redact
    const response = redact ? maskCredentials(parsed.responseBytes).masked : parsed.responseBytes
    const requestHead = parsed.requestHead === null ? null : redact ? maskCredentials(parsed.requestHead).masked : parsed.requestHead
    return {
      name: request.params.name,
      responseBase64: response.toString('base64'),
      requestHead: requestHead === null ? null : requestHead.toString('latin1'),
      defects: parsed.defects,
      replay: `clb-proxy replay ${shellQuote(capture.file)}`
    }
  })

  app.get('/instances', {
    schema: { response: { 200: { type: 'object', properties: { InstanceStates: { type: 'array', items: INSTANCE_SCHEMA } } } } }
  }, async () => ({ InstanceStates: sources.instances() }))

  app.post<{ Body: { url: string } }>('/instances', {
    schema: {
      body: { type: 'object', properties: { url: { type: 'string', minLength: 1 } }, required: ['url'], additionalProperties: false },
      response: { 200: INSTANCE_SCHEMA, 201: INSTANCE_SCHEMA, 400: ERROR_SCHEMA }
    }
  }, async (request, reply) => {
    try {
      const known = new Set(sources.instances().map((instance) => instance.InstanceId))
      const registered = sources.register(request.body.url)
      // RFC 9110 section 15.3.2: 201 Created when "one or more new resources" were created; an
      // instance already registered is answered 200 with its description, nothing new.
      return await reply.code(known.has(registered.InstanceId) ? 200 : 201).send(registered)
    } catch (error) {
      if (error instanceof OptionError) return await reply.code(400).send({ error: error.describeAs('url') })
      throw error
    }
  })

  app.delete<{ Params: { id: string } }>('/instances/:id', {
    schema: { params: INSTANCE_ID_PARAMS, response: { 202: INSTANCE_SCHEMA, 404: ERROR_SCHEMA } }
  }, async (request, reply) => {
    const { id } = request.params
    const before = sources.instances().find((instance) => instance.InstanceId === id)
    if (before === undefined || !sources.deregister(id)) {
      return await reply.code(404).send({ error: `no registered instance ${id}; GET /instances lists them` })
    }
    // Still listed while it drains ("Instance deregistration currently in progress"); gone once removed.
    const after = sources.instances().find((instance) => instance.InstanceId === id)
    return await reply.code(202).send(after ?? {
      ...before,
      State: 'OutOfService',
      ReasonCode: 'ELB',
      Description: 'Instance is not currently registered with the LoadBalancer.',
      OutstandingRequests: 0,
      Routable: false
    })
  })

  return app
}

/** Builds the routes and listens on `address` (port 0: any free port). */
export async function startAdminServer (address: ListenAddress, sources: AdminSources): Promise<AdminServer> {
  const app = buildAdminApp(sources)
  try {
    await app.listen({ host: address.host, port: address.port })
  } catch (error) {
    await app.close()
    throw error
  }
  const bound = app.server.address() as net.AddressInfo
  const url = `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${bound.port}`
  let closing: Promise<void> | null = null
  return { url, app, close: () => (closing ??= app.close()) }
}

function entryAsJson (entry: AccessLogEntry): Record<string, unknown> {
  return {
    line: entry.line,
    outcome: entry.outcome,
    elbGenerated: entry.elbGenerated,
    primaryDefect: entry.primaryDefect,
    defects: entry.defects,
    record: entry.record
  }
}

function captureAsJson (summary: CaptureSummary): AdminCaptureSummary {
  const name = basename(summary.file)
  return { ...summary, name, path: `/captures/${encodeURIComponent(name)}` }
}
