/**
 * Fills CLB_DEFAULTS into the user's options, validates every field and deep-freezes the
 * result. Runs before any socket opens (startClbProxy calls it first; the CLI calls it
 * before starting anything), so a bad option never leaves a half-started proxy behind.
 *
 * Every rule, its range and where the range comes from is tabled in docs/options.md.
 */
import { isIP } from 'node:net'
import { inspect } from 'node:util'
import {
  CLB_DEFAULTS,
  SECURITY_POLICY_NAMES,
  listenerPairsWith,
  instanceProtocolOf,
  isLayer7,
  type BackendAddress,
  type ClbProxyOptions,
  type InstanceProtocol,
  type ListenerAddress,
  type ListenerProtocol,
  type SecurityPolicyName,
  type EmitIntervalMinutes,
  type KeepaliveRaceMode,
  type ListenAddress,
  type Profile,
  type ResolvedOptions
} from './options.js'
import { parseHealthCheckTarget, type HealthCheckTarget } from './health-check-target.js'
import type { DesyncMode } from '../../validators/desync-classifier.js'

export type OptionField = keyof ClbProxyOptions

const KIB = 1024
const MIB = 1024 * KIB
const GIB = 1024 * MIB

/** Limits that are ours to pick (CLB documents none of them); docs/options.md gives the reasons. */
export const OPTION_LIMITS = Object.freeze({
  // CLB-IDLE / BOTO ConnectionSettings.IdleTimeout: "1-4000" seconds.
  idleTimeoutSeconds: Object.freeze({ min: 1, max: 4000 }),
  // Our choice: 0 commits every response as soon as its head is judged; 1 GiB caps memory per exchange.
  responseBufferBytes: Object.freeze({ min: 0, max: GIB }),
  // Our choice: 0 commits at the end of the read that completes the head; 10 s is longer than any hold
  // worth having before a stream flows.
  responseHoldMs: Object.freeze({ min: 0, max: 10000 }),
  // Our choice: 0 closes at once (the client may then see a reset); 60 s bounds a lingering connection.
  lingerSeconds: Object.freeze({ min: 0, max: 60 }),
  // Our choice: below 1 KiB ordinary heads fail; above 1 MiB is no longer a "head" limit.
  maxHeadBytes: Object.freeze({ min: KIB, max: MIB }),
  // CLB-DRAIN: connection-draining Timeout is 1-3,600 s; we also allow 0 (cut in-flight exchanges at once).
  drainTimeoutSeconds: Object.freeze({ min: 0, max: 3600 }),
  // Our choice: enough to keep a session's failures, small enough to list at a glance.
  maxCaptures: Object.freeze({ min: 1, max: 100000 }),
  // Our choice: a head plus the start of a body; HAProxy's capture buffer is of the same order.
  captureBytes: Object.freeze({ min: KIB, max: 16 * MIB }),
  // BOTO CreateAccessPointInput.LoadBalancerName: "a maximum of 32 characters".
  nameLength: Object.freeze({ min: 1, max: 32 }),
  // CLB-HC / API-HC HealthCheck: Interval 5-300 s, Timeout 2-60 s, thresholds 2-10.
  healthIntervalSeconds: Object.freeze({ min: 5, max: 300 }),
  healthTimeoutSeconds: Object.freeze({ min: 2, max: 60 }),
  healthyThreshold: Object.freeze({ min: 2, max: 10 }),
  unhealthyThreshold: Object.freeze({ min: 2, max: 10 }),
  // Our choice: at least one request at a time; 100000 is beyond any laptop's sockets.
  maxInstanceConnections: Object.freeze({ min: 1, max: 100000 }),
  // CLB-CW: "The maximum size of the queue is 1,024"; 0 spills over as soon as every instance is busy.
  surgeQueueSize: Object.freeze({ min: 0, max: 1024 }),
  // Our choice: below 256 bytes ordinary requests fail; at most the head limit's own maximum.
  maxRequestLineBytes: Object.freeze({ min: 256, max: MIB }),
  maxHeaderLineBytes: Object.freeze({ min: 256, max: MIB }),
  // Our choice: browsers send about 20 fields; 10000 is beyond any real request.
  maxHeaderCount: Object.freeze({ min: 1, max: 10000 }),
  // CLB-DRAIN: Timeout 1-3,600 s; 0 is how we say "disabled" (ConnectionDraining.Enabled false).
  drainingTimeoutSeconds: Object.freeze({ min: 0, max: 3600 }),
  // BOTO LBCookieStickinessPolicy CookieExpirationPeriod: a Long, 0 or unset = browser session;
  // we cap it at 2^31-1 seconds (68 years), far past any cookie's life.
  stickyDurationSeconds: Object.freeze({ min: 0, max: 2147483647 })
})

/**
 * What each field must be, phrased to follow the field's name in a message. Shared with the
 * CLI so a flag whose text does not even parse gets the same sentence as a value out of range.
 */
export const OPTION_RULES: Readonly<Record<OptionField, string>> = Object.freeze({
  listen:
    'must be HOST:PORT with a port from 0 to 65535 (IPv6 as [::1]:8080; port 0 picks a free port)',
  listeners:
    'must be PROTOCOL://HOST:PORT with PROTOCOL http, https, tcp or ssl and a port from 0 to 65535 (IPv6 as [::1])',
  backends: 'must be an http://, https://, tcp:// or ssl:// HOST:PORT URL (port 1 to 65535; http and https default to 80 and 443; no path or query)',
  accessLog: "must be a file path, '-' for stdout, or null for no access log",
  accessLogDir: 'must be a directory path, or null for no access-log files laid out as in S3',
  emitIntervalMinutes: "must be 5 or 60 minutes (CLB's EmitInterval values)",
  name:
    'must be 1 to 32 characters, only ASCII letters, digits or hyphens, not starting or ending with a hyphen (CLB load balancer name rules)',
  idleTimeoutSeconds: "must be an integer from 1 to 4000 (CLB's range)",
  responseBufferBytes: 'must be an integer from 0 to 1073741824 bytes (1 GiB)',
  responseHoldMs: 'must be an integer number of milliseconds from 0 to 10000',
  lingerSeconds: 'must be a number of seconds from 0 to 60',
  maxHeadBytes: 'must be an integer from 1024 to 1048576 bytes (1 KiB to 1 MiB)',
  profile: "must be 'clb' or 'strict'",
  drainTimeoutSeconds: 'must be a number of seconds from 0 to 3600',
  captureDir: 'must be a directory path, or null for no captures',
  maxCaptures: 'must be an integer from 1 to 100000',
  captureBytes: 'must be an integer from 1024 to 16777216 bytes (1 KiB to 16 MiB)',
  keepaliveRace: "must be 'detect' or 'emulate'",
  admin: 'must be HOST:PORT with a port from 0 to 65535, or null for no admin listener',
  healthCheck:
    'must be a CLB health-check target: HTTP:PORT/PATH, HTTPS:PORT/PATH, TCP:PORT or SSL:PORT (without PORT: each instance\'s own port, e.g. HTTP:/health or TCP), or null for none',
  healthIntervalSeconds: "must be an integer number of seconds from 5 to 300 (CLB's range)",
  healthTimeoutSeconds: "must be an integer number of seconds from 2 to 60 (CLB's range), less than the health-check interval",
  healthyThreshold: "must be an integer from 2 to 10 (CLB's range)",
  unhealthyThreshold: "must be an integer from 2 to 10 (CLB's range)",
  maxInstanceConnections: 'must be an integer from 1 to 100000',
  surgeQueueSize: "must be an integer from 0 to 1024 (CLB's maximum queue size)",
  drainingTimeoutSeconds: "must be an integer number of seconds from 1 to 3600 (CLB's range), or 0 to disable connection draining",
  stickyDurationSeconds: 'must be an integer number of seconds from 0 (a browser session) to 2147483647, or null for no duration-based stickiness',
  stickyAppCookie: 'must be a cookie name (RFC 6265 token characters, not AWSELB or AWSELBCORS), or null for no application-controlled stickiness',
  desyncMode: "must be 'monitor', 'defensive' or 'strictest' (CLB's desync mitigation modes)",
  tlsCert: 'must be the path of a PEM certificate file (given together with tlsKey), or null for a self-signed certificate generated at start',
  tlsKey: 'must be the path of a PEM private-key file (given together with tlsCert), or null for a self-signed certificate generated at start',
  securityPolicy: `must be one of CLB's predefined security policies: ${SECURITY_POLICY_NAMES.join(', ')}`,
  proxyProtocol: 'must be true or false',
  backendCa: 'must be the path of a PEM CA certificate file, or null to accept any instance certificate, as CLB does without back-end authentication',
  maxRequestLineBytes: 'must be an integer from 256 to 1048576 bytes (1 MiB)',
  maxHeaderLineBytes: 'must be an integer from 256 to 1048576 bytes (1 MiB)',
  maxHeaderCount: 'must be an integer from 1 to 10000'
})

const KNOWN_FIELDS = Object.freeze(Object.keys(OPTION_RULES) as OptionField[])

/** How an offending value is shown after "got": strings and numbers in double quotes. */
export function quoteValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') return `"${String(value)}"`
  if (typeof value === 'bigint') return `"${String(value)}n"`
  return inspect(value, { depth: 2, breakLength: Infinity })
}

export interface OptionErrorInit {
  /** The options-object field at fault; the CLI maps it to its flag or environment variable. */
  readonly field: string
  /** The offending value exactly as given. */
  readonly value: unknown
  /** What the field must be, e.g. "must be an integer from 1 to 4000 (CLB's range)". */
  readonly rule: string
  /** The name to print; defaults to `field` (e.g. `backends[1]` or `listen.port` for a part of a field). */
  readonly label?: string
  /** Replaces the computed `got "..."` part (used when the value's type itself is wrong). */
  readonly got?: string
  /** Replaces the whole computed message. */
  readonly message?: string
}

/** A user's option is invalid. Thrown by resolveOptions, and by the CLI for flag text that does not parse. */
export class OptionError extends Error {
  readonly code = 'CLB_INVALID_OPTION'
  readonly field: string
  readonly value: unknown
  readonly rule: string
  readonly label: string
  readonly got: string

  constructor(init: OptionErrorInit) {
    const label = init.label ?? init.field
    const got = init.got ?? `got ${quoteValue(init.value)}`
    super(init.message ?? `${label} ${init.rule}, ${got}`)
    this.name = 'OptionError'
    this.field = init.field
    this.value = init.value
    this.rule = init.rule
    this.label = label
    this.got = got
  }

  /** The same sentence with another name for the field (a CLI flag or an environment variable). */
  describeAs(name: string): string {
    return `${name} ${this.rule}, ${this.got}`
  }
}

export interface ResolveOptionsSettings {
  /**
   * The library needs at least one backend (options.ts). The CLI validates before it starts its
   * demo backend, so it passes false for that one check.
   */
  readonly requireBackends?: boolean
}

export function resolveOptions(input: ClbProxyOptions, settings: ResolveOptionsSettings = {}): ResolvedOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new OptionError({ field: 'options', value: input, rule: 'must be an object' })
  }
  rejectUnknownKeys(input as Record<string, unknown>, KNOWN_FIELDS, '')

  let resolved: ResolvedOptions = {
    listen: resolveListen(valueOrDefault(input.listen, CLB_DEFAULTS.listen)),
    listeners: [],
    backends: resolveBackends(valueOrDefault(input.backends, CLB_DEFAULTS.backends), settings.requireBackends ?? true),
    accessLog: resolveAccessLog(input.accessLog === undefined ? CLB_DEFAULTS.accessLog : input.accessLog),
    accessLogDir: resolveDirectory('accessLogDir', input.accessLogDir === undefined ? CLB_DEFAULTS.accessLogDir : input.accessLogDir),
    emitIntervalMinutes: resolveEmitInterval(valueOrDefault(input.emitIntervalMinutes, CLB_DEFAULTS.emitIntervalMinutes)),
    name: resolveName(valueOrDefault(input.name, CLB_DEFAULTS.name)),
    idleTimeoutSeconds: resolveInteger(
      'idleTimeoutSeconds',
      valueOrDefault(input.idleTimeoutSeconds, CLB_DEFAULTS.idleTimeoutSeconds),
      OPTION_LIMITS.idleTimeoutSeconds
    ),
    responseBufferBytes: resolveInteger(
      'responseBufferBytes',
      valueOrDefault(input.responseBufferBytes, CLB_DEFAULTS.responseBufferBytes),
      OPTION_LIMITS.responseBufferBytes
    ),
    responseHoldMs: resolveInteger(
      'responseHoldMs',
      valueOrDefault(input.responseHoldMs, CLB_DEFAULTS.responseHoldMs),
      OPTION_LIMITS.responseHoldMs
    ),
    lingerSeconds: resolveNumber(
      'lingerSeconds',
      valueOrDefault(input.lingerSeconds, CLB_DEFAULTS.lingerSeconds),
      OPTION_LIMITS.lingerSeconds
    ),
    maxHeadBytes: resolveInteger(
      'maxHeadBytes',
      valueOrDefault(input.maxHeadBytes, CLB_DEFAULTS.maxHeadBytes),
      OPTION_LIMITS.maxHeadBytes
    ),
    profile: resolveChoice<Profile>('profile', valueOrDefault(input.profile, CLB_DEFAULTS.profile), ['clb', 'strict']),
    drainTimeoutSeconds: resolveNumber(
      'drainTimeoutSeconds',
      valueOrDefault(input.drainTimeoutSeconds, CLB_DEFAULTS.drainTimeoutSeconds),
      OPTION_LIMITS.drainTimeoutSeconds
    ),
    captureDir: resolveDirectory('captureDir', input.captureDir === undefined ? CLB_DEFAULTS.captureDir : input.captureDir),
    maxCaptures: resolveInteger('maxCaptures', valueOrDefault(input.maxCaptures, CLB_DEFAULTS.maxCaptures), OPTION_LIMITS.maxCaptures),
    captureBytes: resolveInteger('captureBytes', valueOrDefault(input.captureBytes, CLB_DEFAULTS.captureBytes), OPTION_LIMITS.captureBytes),
    keepaliveRace: resolveChoice<KeepaliveRaceMode>('keepaliveRace', valueOrDefault(input.keepaliveRace, CLB_DEFAULTS.keepaliveRace), ['detect', 'emulate']),
    admin: input.admin === undefined || input.admin === null ? null : resolveListenField('admin', input.admin),
    healthCheck: resolveHealthCheck(input.healthCheck === undefined ? CLB_DEFAULTS.healthCheck : input.healthCheck),
    healthIntervalSeconds: resolveInteger(
      'healthIntervalSeconds',
      valueOrDefault(input.healthIntervalSeconds, CLB_DEFAULTS.healthIntervalSeconds),
      OPTION_LIMITS.healthIntervalSeconds
    ),
    healthTimeoutSeconds: resolveInteger(
      'healthTimeoutSeconds',
      valueOrDefault(input.healthTimeoutSeconds, CLB_DEFAULTS.healthTimeoutSeconds),
      OPTION_LIMITS.healthTimeoutSeconds
    ),
    healthyThreshold: resolveInteger('healthyThreshold', valueOrDefault(input.healthyThreshold, CLB_DEFAULTS.healthyThreshold), OPTION_LIMITS.healthyThreshold),
    unhealthyThreshold: resolveInteger('unhealthyThreshold', valueOrDefault(input.unhealthyThreshold, CLB_DEFAULTS.unhealthyThreshold), OPTION_LIMITS.unhealthyThreshold),
    maxInstanceConnections: resolveInteger(
      'maxInstanceConnections',
      valueOrDefault(input.maxInstanceConnections, CLB_DEFAULTS.maxInstanceConnections),
      OPTION_LIMITS.maxInstanceConnections
    ),
    surgeQueueSize: resolveInteger('surgeQueueSize', valueOrDefault(input.surgeQueueSize, CLB_DEFAULTS.surgeQueueSize), OPTION_LIMITS.surgeQueueSize),
    drainingTimeoutSeconds: resolveInteger(
      'drainingTimeoutSeconds',
      valueOrDefault(input.drainingTimeoutSeconds, CLB_DEFAULTS.drainingTimeoutSeconds),
      OPTION_LIMITS.drainingTimeoutSeconds
    ),
    stickyDurationSeconds: input.stickyDurationSeconds === undefined || input.stickyDurationSeconds === null
      ? CLB_DEFAULTS.stickyDurationSeconds
      : resolveInteger('stickyDurationSeconds', input.stickyDurationSeconds, OPTION_LIMITS.stickyDurationSeconds),
    stickyAppCookie: resolveStickyAppCookie(input.stickyAppCookie === undefined ? CLB_DEFAULTS.stickyAppCookie : input.stickyAppCookie),
    desyncMode: resolveChoice<DesyncMode>('desyncMode', valueOrDefault(input.desyncMode, CLB_DEFAULTS.desyncMode), ['monitor', 'defensive', 'strictest']),
    tlsCert: resolveFile('tlsCert', input.tlsCert === undefined ? CLB_DEFAULTS.tlsCert : input.tlsCert),
    tlsKey: resolveFile('tlsKey', input.tlsKey === undefined ? CLB_DEFAULTS.tlsKey : input.tlsKey),
    securityPolicy: resolveChoice<SecurityPolicyName>('securityPolicy', valueOrDefault(input.securityPolicy, CLB_DEFAULTS.securityPolicy), SECURITY_POLICY_NAMES),
    proxyProtocol: resolveBoolean('proxyProtocol', valueOrDefault(input.proxyProtocol, CLB_DEFAULTS.proxyProtocol)),
    backendCa: resolveFile('backendCa', input.backendCa === undefined ? CLB_DEFAULTS.backendCa : input.backendCa),
    maxRequestLineBytes: resolveInteger('maxRequestLineBytes', valueOrDefault(input.maxRequestLineBytes, CLB_DEFAULTS.maxRequestLineBytes), OPTION_LIMITS.maxRequestLineBytes),
    maxHeaderLineBytes: resolveInteger('maxHeaderLineBytes', valueOrDefault(input.maxHeaderLineBytes, CLB_DEFAULTS.maxHeaderLineBytes), OPTION_LIMITS.maxHeaderLineBytes),
    maxHeaderCount: resolveInteger('maxHeaderCount', valueOrDefault(input.maxHeaderCount, CLB_DEFAULTS.maxHeaderCount), OPTION_LIMITS.maxHeaderCount)
  }
  const listeners = resolveListeners(input, resolved.listen)
  resolved = { ...resolved, listeners, listen: { host: listeners[0]?.host ?? resolved.listen.host, port: listeners[0]?.port ?? resolved.listen.port } }
  if ((resolved.tlsCert === null) !== (resolved.tlsKey === null)) {
    const field = resolved.tlsCert === null ? 'tlsKey' : 'tlsCert'
    throw new OptionError({ field, value: resolved[field], rule: `must be given together with ${field === 'tlsCert' ? 'tlsKey' : 'tlsCert'} (a certificate and its private key)` })
  }
  // CLB-LISTEN: "HTTP/HTTPS front ↔ HTTP/HTTPS back; TCP/SSL front ↔ TCP/SSL back". With no
  // backends at all (the CLI's demo), the caller registers instances for every listener.
  if (resolved.backends.length > 0) {
    for (const [index, listener] of listeners.entries()) {
      if (resolved.backends.some((backend) => listenerPairsWith(listener.protocol, instanceProtocolOf(backend)))) continue
      const wanted = listener.protocol === 'http' || listener.protocol === 'https' ? 'an http:// or https://' : 'a tcp:// or ssl://'
      throw new OptionError({
        field: input.listeners === undefined ? 'listen' : 'listeners',
        label: input.listeners === undefined ? 'listen' : `listeners[${index}]`,
        value: formatListener(listener),
        rule: `has no instance it may route to: ${listener.protocol === 'tcp' ? 'a' : 'an'} ${listener.protocol.toUpperCase()} listener routes to ${listener.protocol === 'http' || listener.protocol === 'https' ? 'HTTP or HTTPS' : 'TCP or SSL'} instances only (CLB's listener pairing), so give ${wanted} --backend`
      })
    }
    // The mirror case: an instance no listener routes to would be health-checked and counted in
    // HealthyHostCount while no request or connection could ever reach it.
    for (const [index, backend] of resolved.backends.entries()) {
      const unpaired = instanceWithoutListener(backend, listeners.map((listener) => listener.protocol))
      if (unpaired !== null) throw new OptionError({ field: 'backends', label: `backends[${index}]`, value: input.backends?.[index] ?? backend, rule: unpaired })
    }
  }
  // API-HC HealthCheck.Timeout: "This value must be less than the Interval value." Checked when a
  // health check runs: without one neither value is used (the CLI says so), and an interval of 5 s,
  // CLB's minimum, is not refused for a default timeout that plays no part. The value the caller
  // gave is the one named: the interval when the timeout is the default.
  if (resolved.healthCheck !== null && resolved.healthTimeoutSeconds >= resolved.healthIntervalSeconds) {
    throw input.healthTimeoutSeconds === undefined
      ? new OptionError({
        field: 'healthIntervalSeconds',
        value: resolved.healthIntervalSeconds,
        rule: `must be more than the health-check timeout (${resolved.healthTimeoutSeconds} s, healthTimeoutSeconds's default, to be lowered too for a shorter interval; API-HC: "This value must be less than the Interval value")`
      })
      : new OptionError({
        field: 'healthTimeoutSeconds',
        value: resolved.healthTimeoutSeconds,
        rule: `must be less than the health-check interval (${resolved.healthIntervalSeconds} s; API-HC: "This value must be less than the Interval value")`
      })
  }
  // A listener has one stickiness policy or none (CLB-STICKY: SetLoadBalancerPoliciesOfListener takes one).
  if (resolved.stickyDurationSeconds !== null && resolved.stickyAppCookie !== null) {
    throw new OptionError({
      field: 'stickyAppCookie',
      value: resolved.stickyAppCookie,
      rule: 'cannot be combined with duration-based stickiness (stickyDurationSeconds): a CLB listener has one stickiness policy'
    })
  }
  return Object.freeze({
    ...resolved,
    listen: Object.freeze({ ...resolved.listen }),
    listeners: Object.freeze(resolved.listeners.map((listener) => Object.freeze({ ...listener }))),
    admin: resolved.admin === null ? null : Object.freeze({ ...resolved.admin }),
    backends: Object.freeze(resolved.backends.map((backend) => Object.freeze({ ...backend })))
  })
}

/** A field set to `undefined` counts as absent, as with any JavaScript options bag. */
function valueOrDefault<T>(value: T | undefined, fallback: T): T {
  return value === undefined ? fallback : value
}

function rejectUnknownKeys(
  object: Record<string, unknown>,
  known: readonly string[],
  prefix: string,
  field?: OptionField
): void {
  const unknown = Object.keys(object).filter((key) => !known.includes(key))
  const first = unknown[0]
  if (first === undefined) return
  const names = unknown.map((key) => JSON.stringify(prefix + key)).join(', ')
  const expected = known.map((key) => prefix + key).join(', ')
  throw new OptionError({
    field: field ?? first,
    value: object[first],
    rule: 'is not an option',
    label: prefix + first,
    message: `unknown option${unknown.length > 1 ? 's' : ''} ${names} (expected one of: ${expected})`
  })
}

// --- listen -----------------------------------------------------------------------------

function resolveListen(value: ListenAddress | string): ListenAddress {
  return resolveListenField('listen', value)
}

function resolveListenField(field: 'listen' | 'admin', value: ListenAddress | string): ListenAddress {
  const rule = OPTION_RULES[field]
  if (typeof value === 'string') {
    const parsed = splitHostPort(value)
    if (parsed === undefined) {
      const hint = value.includes('://')
        ? ' (without a scheme, e.g. 127.0.0.1:8080)'
        : looksLikeBareIpv6(value)
          ? ' (write IPv6 addresses in brackets, e.g. [::1]:8080)'
          : ''
      throw new OptionError({ field, value, rule: rule + hint })
    }
    if (!isValidHost(parsed.host) || !isPortText(parsed.portText) || Number(parsed.portText) > 65535) {
      throw new OptionError({ field, value, rule })
    }
    return { host: parsed.host, port: Number(parsed.portText) }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OptionError({ field, value, rule: 'must be a "HOST:PORT" string or a { host, port } object' })
  }
  rejectUnknownKeys(value as unknown as Record<string, unknown>, ['host', 'port'], `${field}.`, field)
  return {
    host: resolveObjectHost(field, `${field}.host`, value.host),
    port: resolvePortNumber(field, `${field}.port`, value.port, 0)
  }
}

const LISTENER_PROTOCOLS: readonly ListenerProtocol[] = ['http', 'https', 'tcp', 'ssl']

/** `listeners` as given, or one HTTP listener at `listen`; both given is an error (which one would win?). */
function resolveListeners(input: ClbProxyOptions, listen: ListenAddress): ListenerAddress[] {
  if (input.listeners === undefined) return [{ protocol: 'http', host: listen.host, port: listen.port }]
  const value: unknown = input.listeners
  if (!Array.isArray(value) || value.length === 0) {
    throw new OptionError({ field: 'listeners', value, rule: 'must be a non-empty array of PROTOCOL://HOST:PORT strings or { protocol, host, port } objects' })
  }
  if (input.listen !== undefined) {
    throw new OptionError({ field: 'listen', value: input.listen, rule: 'cannot be combined with listeners: give one HTTP listener with listen, or every listener with listeners' })
  }
  const listeners = value.map((entry: unknown, index) => resolveListener(entry, `listeners[${index}]`))
  for (const [index, listener] of listeners.entries()) {
    const earlier = listeners.findIndex((other) => other.port !== 0 && other.port === listener.port && other.host === listener.host)
    if (earlier !== -1 && earlier !== index) {
      throw new OptionError({ field: 'listeners', label: `listeners[${index}]`, value: formatListener(listener), rule: `uses the same address as listeners[${earlier}]: each listener needs its own port` })
    }
  }
  return listeners
}

function resolveListener(value: unknown, label: string): ListenerAddress {
  const rule = OPTION_RULES.listeners
  if (typeof value === 'string') {
    const match = /^([A-Za-z]+):\/\/(.*)$/s.exec(value)
    const protocol = match?.[1]?.toLowerCase() as ListenerProtocol | undefined
    if (match === null || protocol === undefined || !LISTENER_PROTOCOLS.includes(protocol)) {
      const hint = match === null && splitHostPort(value) !== undefined ? ` (did you mean "http://${value}"?)` : ''
      throw new OptionError({ field: 'listeners', label, value, rule: rule + hint })
    }
    const parsed = splitHostPort(match[2] ?? '')
    if (parsed === undefined || !isValidHost(parsed.host) || !isPortText(parsed.portText) || Number(parsed.portText) > 65535) {
      throw new OptionError({ field: 'listeners', label, value, rule })
    }
    return { protocol, host: parsed.host, port: Number(parsed.portText) }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OptionError({ field: 'listeners', label, value, rule })
  }
  rejectUnknownKeys(value as Record<string, unknown>, ['protocol', 'host', 'port'], `${label}.`, 'listeners')
  const { protocol, host, port } = value as { protocol?: unknown; host?: unknown; port?: unknown }
  if (typeof protocol !== 'string' || !LISTENER_PROTOCOLS.includes(protocol as ListenerProtocol)) {
    throw new OptionError({ field: 'listeners', label: `${label}.protocol`, value: protocol, rule: "must be 'http', 'https', 'tcp' or 'ssl'" })
  }
  return {
    protocol: protocol as ListenerProtocol,
    host: resolveObjectHost('listeners', `${label}.host`, host),
    port: resolvePortNumber('listeners', `${label}.port`, port, 0)
  }
}

/** `protocol://host:port`, IPv6 in brackets. */
export function formatListener(listener: ListenerAddress): string {
  const host = listener.host.includes(':') ? `[${listener.host}]` : listener.host
  return `${listener.protocol}://${host}:${listener.port}`
}

function resolveObjectHost(field: OptionField, label: string, host: unknown): string {
  if (typeof host !== 'string' || !isValidHost(host)) {
    throw new OptionError({
      field,
      label,
      value: host,
      rule: 'must be a host name or an IP address (IPv6 without brackets)'
    })
  }
  return host
}

function resolvePortNumber(field: OptionField, label: string, port: unknown, min: 0 | 1): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    throw new OptionError({
      field,
      label,
      value: port,
      rule: `must be an integer port from ${min} to 65535`,
      got: gotWithType(port, 'number')
    })
  }
  return port
}

// --- backends ---------------------------------------------------------------------------

const INSTANCE_PROTOCOLS: readonly InstanceProtocol[] = ['http', 'https', 'tcp', 'ssl']

/** An http instance is `{ host, port }` as it always was; other protocols name themselves. */
function withProtocol(protocol: InstanceProtocol | undefined): { protocol?: InstanceProtocol } {
  return protocol === undefined || protocol === 'http' ? {} : { protocol }
}

// An origin and nothing else: scheme, host (IPv6 in brackets), optional port, optional "/".
const BACKEND_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(\[[^\]]*\]|[^/:?#@[\]]*)(?::([^/?#]*))?(\/?)(.*)$/s

function resolveBackends(value: ReadonlyArray<BackendAddress | string>, requireBackends: boolean): BackendAddress[] {
  if (!Array.isArray(value)) {
    throw new OptionError({
      field: 'backends',
      value,
      rule: 'must be an array of http://HOST:PORT URLs or { host, port } objects'
    })
  }
  if (requireBackends && value.length === 0) {
    throw new OptionError({
      field: 'backends',
      value,
      rule: 'must list at least one backend (http://HOST:PORT)'
    })
  }
  return value.map((backend: unknown, index) => resolveBackend(backend, `backends[${index}]`))
}

/**
 * Why no listener of these protocols routes to `instance` (CLB-LISTEN: "HTTP/HTTPS front ↔
 * HTTP/HTTPS back; TCP/SSL front ↔ TCP/SSL back"), as an OptionError rule; null when one does.
 */
export function instanceWithoutListener(instance: BackendAddress, listenerProtocols: readonly ListenerProtocol[]): string | null {
  const protocol = instanceProtocolOf(instance)
  if (listenerProtocols.some((listener) => listenerPairsWith(listener, protocol))) return null
  const layer7 = isLayer7(protocol)
  return `is ${protocol === 'tcp' ? 'a' : 'an'} ${protocol}:// instance, which only ${layer7 ? 'HTTP or HTTPS' : 'TCP or SSL'} listeners route to (CLB's listener pairing), and no listener is one: add ${layer7 ? 'an HTTP or HTTPS' : 'a TCP or SSL'} listener, or leave the instance out`
}

/** One instance address, as `backends` takes it (`http://HOST:PORT` or `{ host, port }`); throws OptionError. */
export function resolveBackendAddress(value: unknown, label = 'url'): BackendAddress {
  return Object.freeze(resolveBackend(value, label))
}

function resolveBackend(value: unknown, label: string): BackendAddress {
  if (typeof value === 'string') return parseBackendUrl(value, label)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OptionError({
      field: 'backends',
      label,
      value,
      rule: 'must be an http://HOST:PORT URL or a { host, port } object'
    })
  }
  rejectUnknownKeys(value as Record<string, unknown>, ['host', 'port', 'protocol'], `${label}.`, 'backends')
  const { host, port, protocol } = value as { host?: unknown; port?: unknown; protocol?: unknown }
  if (protocol !== undefined && (typeof protocol !== 'string' || !INSTANCE_PROTOCOLS.includes(protocol as InstanceProtocol))) {
    throw new OptionError({ field: 'backends', label: `${label}.protocol`, value: protocol, rule: "must be 'http', 'https', 'tcp' or 'ssl'" })
  }
  return {
    host: resolveObjectHost('backends', `${label}.host`, host),
    port: resolvePortNumber('backends', `${label}.port`, port, 1),
    ...withProtocol(protocol as InstanceProtocol | undefined)
  }
}

function parseBackendUrl(text: string, label: string): BackendAddress {
  const rule = OPTION_RULES.backends
  const match = BACKEND_URL.exec(text)
  if (match === null) {
    const hint = splitHostPort(text) === undefined ? '' : ` (did you mean "http://${text}"?)`
    throw new OptionError({ field: 'backends', label, value: text, rule: rule + hint })
  }
  const [, scheme = '', bracketedOrHost = '', portText, , rest = ''] = match
  const protocol = scheme.toLowerCase() as InstanceProtocol
  if (!INSTANCE_PROTOCOLS.includes(protocol)) {
    throw new OptionError({ field: 'backends', label, value: text, rule })
  }
  if (/^[^/?#]*@/.test(text.slice(scheme.length + 3))) {
    throw new OptionError({
      field: 'backends',
      label,
      value: text,
      rule: `must be ${protocol}://HOST:PORT without a user name or password`
    })
  }
  if (rest !== '') {
    throw new OptionError({
      field: 'backends',
      label,
      value: text,
      rule: `must be ${protocol}://HOST:PORT without a path, query or fragment (the request path is forwarded as the client sent it)`
    })
  }
  const host = bracketedOrHost.startsWith('[') ? bracketedOrHost.slice(1, -1) : bracketedOrHost
  const hostIsValid = bracketedOrHost.startsWith('[') ? isIP(host) === 6 : isValidHost(host) && isIP(host) !== 6
  if (!hostIsValid) throw new OptionError({ field: 'backends', label, value: text, rule })
  // RFC 3986 §3.2.3: an empty port (or none) means the scheme's default, 80 for http, 443 for
  // https; tcp:// and ssl:// have none.
  if (portText === undefined || portText === '') {
    if (protocol === 'http') return { host, port: 80 }
    if (protocol === 'https') return { host, port: 443, protocol }
    throw new OptionError({ field: 'backends', label, value: text, rule: `must name a port: ${protocol}:// has no default port` })
  }
  if (!isPortText(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new OptionError({ field: 'backends', label, value: text, rule })
  }
  return { host, port: Number(portText), ...withProtocol(protocol) }
}

// --- scalar fields ----------------------------------------------------------------------

/** A directory path, or null for "none" (captureDir, accessLogDir). */
function resolveDirectory(field: 'captureDir' | 'accessLogDir', value: string | null): string | null {
  if (value === null) return null
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw new OptionError({ field, value, rule: OPTION_RULES[field], got: gotWithType(value, 'string') })
  }
  return value
}

/** One of a field's fixed choices (profile, keepaliveRace, desyncMode). */
/** A file path, or null for "none" (tlsCert, tlsKey, backendCa); read when the proxy starts. */
function resolveFile(field: 'tlsCert' | 'tlsKey' | 'backendCa', value: string | null): string | null {
  if (value === null) return null
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw new OptionError({ field, value, rule: OPTION_RULES[field], got: gotWithType(value, 'string') })
  }
  return value
}

function resolveBoolean(field: 'proxyProtocol', value: boolean): boolean {
  if (typeof value !== 'boolean') throw new OptionError({ field, value, rule: OPTION_RULES[field] })
  return value
}

function resolveChoice<T extends string>(field: OptionField, value: T, choices: readonly T[]): T {
  if (!choices.includes(value)) throw new OptionError({ field, value, rule: OPTION_RULES[field] })
  return value
}

function resolveAccessLog(value: string | null): string | null {
  if (value === null) return null
  if (typeof value !== 'string' || value === '' || value.includes('\0')) {
    throw new OptionError({ field: 'accessLog', value, rule: OPTION_RULES.accessLog })
  }
  return value
}


// CLB-LOGS EmitInterval: 5 or 60 minutes, default 60 ("If the interval is set for 5 minutes, the
// logs are published at 1:05, 1:10, 1:15, and so on", spec §3.1).
function resolveEmitInterval(value: EmitIntervalMinutes): EmitIntervalMinutes {
  if (value !== 5 && value !== 60) {
    throw new OptionError({ field: 'emitIntervalMinutes', value, rule: OPTION_RULES.emitIntervalMinutes, got: gotWithType(value, 'number') })
  }
  return value
}

// BOTO CreateAccessPointInput.LoadBalancerName: "This name must be unique within your set of load
// balancers for the region, must have a maximum of 32 characters, must contain only alphanumeric
// characters or hyphens, and cannot begin or end with a hyphen." (spec §3.1)
const LOAD_BALANCER_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$/

function resolveName(value: string): string {
  if (typeof value !== 'string' || !LOAD_BALANCER_NAME.test(value)) {
    throw new OptionError({ field: 'name', value, rule: OPTION_RULES.name, got: gotWithType(value, 'string') })
  }
  return value
}





interface Range {
  readonly min: number
  readonly max: number
}

function resolveInteger(field: OptionField, value: number, range: Range): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new OptionError({ field, value, rule: OPTION_RULES[field], got: gotWithType(value, 'number') })
  }
  return value
}

function resolveNumber(field: OptionField, value: number, range: Range): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < range.min || value > range.max) {
    throw new OptionError({ field, value, rule: OPTION_RULES[field], got: gotWithType(value, 'number') })
  }
  return value
}

/** `got "60"` for a value of the expected type, `got the string "60"` when the type itself is wrong. */
function gotWithType(value: unknown, expected: 'number' | 'string'): string {
  if (typeof value === expected || value === null || value === undefined) return `got ${quoteValue(value)}`
  return `got the ${typeof value} ${quoteValue(value)}`
}

function resolveHealthCheck(value: HealthCheckTarget | string | null): HealthCheckTarget | null {
  if (value === null) return null
  if (typeof value === 'string') {
    const parsed = parseHealthCheckTarget(value)
    if ('error' in parsed) throw new OptionError({ field: 'healthCheck', value, rule: `${OPTION_RULES.healthCheck} (${parsed.error})` })
    return Object.freeze(parsed)
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new OptionError({ field: 'healthCheck', value, rule: OPTION_RULES.healthCheck })
  }
  rejectUnknownKeys(value as unknown as Record<string, unknown>, ['protocol', 'port', 'path'], 'healthCheck.', 'healthCheck')
  // An object goes through the same parser as the text, so both forms obey one rule.
  const { protocol, port, path } = value as { protocol?: unknown, port?: unknown, path?: unknown }
  const text = `${String(protocol)}${port === null || port === undefined ? '' : `:${String(port)}`}${path === null || path === undefined ? '' : String(path)}`
  const parsed = parseHealthCheckTarget(text.replace(/^(HTTPS?)\//i, '$1:/'))
  if ('error' in parsed) throw new OptionError({ field: 'healthCheck', value, rule: OPTION_RULES.healthCheck })
  return Object.freeze(parsed)
}

// RFC 6265 section 4.1.1: cookie-name = token (RFC 2616 section 2.2).
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function resolveStickyAppCookie(value: string | null): string | null {
  if (value === null) return null
  if (typeof value !== 'string' || !COOKIE_NAME.test(value) || value === 'AWSELB' || value === 'AWSELBCORS') {
    throw new OptionError({ field: 'stickyAppCookie', value, rule: OPTION_RULES.stickyAppCookie, got: gotWithType(value, 'string') })
  }
  return value
}

// --- hosts and ports --------------------------------------------------------------------

interface HostPortText {
  readonly host: string
  readonly portText: string
}

/** "host:port" or "[v6]:port" split at the last colon; undefined when the shape is wrong. */
function splitHostPort(text: string): HostPortText | undefined {
  const bracketed = /^\[([^\]]+)\]:([^:]*)$/.exec(text)
  if (bracketed !== null) {
    const [, host = '', portText = ''] = bracketed
    return isIP(host) === 6 ? { host, portText } : undefined
  }
  const plain = /^([^:[\]]+):([^:]*)$/.exec(text)
  if (plain === null) return undefined
  const [, host = '', portText = ''] = plain
  return { host, portText }
}

function looksLikeBareIpv6(text: string): boolean {
  return isIP(text) === 6 || isIP(text.replace(/:[0-9]*$/, '')) === 6
}

function isPortText(text: string): boolean {
  return /^[0-9]{1,5}$/.test(text)
}

// RFC 1123 §2.1 host names: labels of letters, digits and hyphens, at most 63 characters, not
// starting or ending with a hyphen, 253 characters in all; the last label is not all-numeric (so
// "999.1.1.1" is a bad IPv4 address, not a name). Underscores are accepted because container DNS
// (e.g. Docker Compose service names) resolves them.
const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/

function isValidHost(host: string): boolean {
  if (isIP(host) !== 0) return true
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  if (name.length === 0 || name.length > 253) return false
  const labels = name.split('.')
  const last = labels[labels.length - 1] ?? ''
  return labels.every((label) => HOST_LABEL.test(label)) && !/^[0-9]+$/.test(last)
}

// --- sizes for the CLI ------------------------------------------------------------------

const SIZE_UNITS: Readonly<Record<string, number>> = Object.freeze({
  '': 1,
  b: 1,
  k: KIB,
  kib: KIB,
  m: MIB,
  mib: MIB,
  g: GIB,
  gib: GIB
})

/**
 * A byte count as a person types it: `1048576`, `64k`, `64KiB`, `1m`, `1MiB`, `1g`. Every unit is
 * binary (k = 1024, like nginx's size suffixes); `KB`/`MB` are refused because they are ambiguous
 * between 1000 and 1024. Returns undefined for anything else, including fractions.
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^([0-9]+)\s*([A-Za-z]*)$/.exec(text)
  if (match === null) return undefined
  const [, digits = '', unit = ''] = match
  const multiplier = SIZE_UNITS[unit.toLowerCase()]
  if (multiplier === undefined) return undefined
  const bytes = Number(digits) * multiplier
  return Number.isSafeInteger(bytes) ? bytes : undefined
}
