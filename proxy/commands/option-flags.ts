/**
 * The proxy's flag table: one row per option (its flag, its environment variable, how its text
 * becomes a value, its help), the text helpers the rows use, and `helpText()`, which is made from
 * the table alone. `check` reuses the rows of the flags it shares with the proxy, so a flag reads
 * the same text the same way in both commands.
 */
import { CLB_DEFAULTS } from '../core/options.js'
import {
  OPTION_RULES,
  OptionError,
  parseByteSize,
  type OptionField
} from '../core/resolve-options.js'

/** One row per option: its flag, its environment variable, how its text becomes a value, and its help. */
export interface OptionFlag {
  readonly field: OptionField
  /** Without the leading `--`. */
  readonly flag: string
  readonly env: string
  readonly valueName: string
  readonly multiple: boolean
  readonly summary: string
  readonly defaultText: string
  /** Turns the text of one flag value or env entry into the option value; throws OptionError. */
  readonly fromText: (text: string) => unknown
}

const KIB = 1024
const MIB = 1024 * KIB

function formatBytes(bytes: number): string {
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes} bytes (${bytes / MIB} MiB)`
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes} bytes (${bytes / KIB} KiB)`
  return `${bytes} bytes`
}

function asIs(text: string): string {
  return text
}

/** Decimal seconds such as `60` or `2.5`; anything else gets the field's own rule in the message. */
function secondsFromText(field: OptionField): (text: string) => number {
  return (text) => {
    if (!/^[0-9]+(?:\.[0-9]+)?$/.test(text)) throw new OptionError({ field, value: text, rule: OPTION_RULES[field] })
    return Number(text)
  }
}

/** A whole number such as `100`; anything else gets the field's own rule in the message. */
function countFromText(field: OptionField): (text: string) => number {
  return (text) => {
    if (!/^[0-9]+$/.test(text)) throw new OptionError({ field, value: text, rule: OPTION_RULES[field] })
    return Number(text)
  }
}

/** `on`/`off` (also `true`/`false`, `1`/`0`), for a flag that switches a feature. */
function switchFromText(field: OptionField): (text: string) => boolean {
  return (text) => {
    const lower = text.toLowerCase()
    if (['on', 'true', '1'].includes(lower)) return true
    if (['off', 'false', '0'].includes(lower)) return false
    throw new OptionError({ field, value: text, rule: 'must be on or off' })
  }
}

function bytesFromText(field: OptionField): (text: string) => number {
  return (text) => {
    const bytes = parseByteSize(text)
    if (bytes === undefined) {
      throw new OptionError({
        field,
        value: text,
        rule: `${OPTION_RULES[field]}; sizes may be written 65536, 64k, 64KiB, 1m or 1MiB`
      })
    }
    return bytes
  }
}

export const OPTION_FLAGS: readonly OptionFlag[] = Object.freeze([
  {
    field: 'listen',
    flag: 'listen',
    env: 'CLB_LISTEN',
    valueName: 'HOST:PORT',
    multiple: false,
    summary: 'Address the proxy listens on. IPv6 as [::1]:8080; port 0 picks a free port.',
    defaultText: `${CLB_DEFAULTS.listen.host}:${CLB_DEFAULTS.listen.port}`,
    fromText: asIs
  },
  {
    field: 'listeners',
    flag: 'listener',
    env: 'CLB_LISTENERS',
    valueName: 'PROTO://HOST:PORT',
    multiple: true,
    summary: 'A listener, http|https|tcp|ssl://HOST:PORT; instead of --listen. Repeatable.',
    defaultText: 'one http listener at --listen',
    fromText: asIs
  },
  {
    field: 'backends',
    flag: 'backend',
    env: 'CLB_BACKENDS',
    valueName: 'URL',
    multiple: true,
    summary: 'An instance, http|https|tcp|ssl://HOST:PORT (http: port 80 if omitted). Repeatable.',
    defaultText: 'none: start the built-in demo backend',
    fromText: asIs
  },
  {
    field: 'accessLog',
    flag: 'access-log',
    env: 'CLB_ACCESS_LOG',
    valueName: 'PATH|-',
    multiple: false,
    summary: "Where CLB-format access-log lines go: a file (appended to) or '-' for stdout.",
    defaultText: CLB_DEFAULTS.accessLog === '-' ? '- (stdout)' : String(CLB_DEFAULTS.accessLog),
    fromText: asIs
  },
  {
    field: 'accessLogDir',
    flag: 'access-log-dir',
    env: 'CLB_ACCESS_LOG_DIR',
    valueName: 'DIR',
    multiple: false,
    summary: 'Also write log files named and laid out as CLB delivers them to S3 (AWSLogs/...).',
    defaultText: 'none',
    fromText: asIs
  },
  {
    field: 'emitIntervalMinutes',
    flag: 'emit-interval',
    env: 'CLB_EMIT_INTERVAL',
    valueName: '5|60',
    multiple: false,
    summary: "Minutes each --access-log-dir file covers: 5 or 60 (CLB's EmitInterval).",
    defaultText: `${CLB_DEFAULTS.emitIntervalMinutes} min`,
    fromText: countFromText('emitIntervalMinutes')
  },
  {
    field: 'name',
    flag: 'name',
    env: 'CLB_NAME',
    valueName: 'NAME',
    multiple: false,
    summary: 'The elb field of access-log lines: 1-32 letters, digits or hyphens, no hyphen at either end.',
    defaultText: CLB_DEFAULTS.name,
    fromText: asIs
  },
  {
    field: 'idleTimeoutSeconds',
    flag: 'idle-timeout',
    env: 'CLB_IDLE_TIMEOUT',
    valueName: 'SECONDS',
    multiple: false,
    summary: "Idle timeout of client and backend connections, 1-4000 (CLB's range); a silent backend: 504.",
    defaultText: `${CLB_DEFAULTS.idleTimeoutSeconds} s`,
    fromText: secondsFromText('idleTimeoutSeconds')
  },
  {
    field: 'responseBufferBytes',
    flag: 'response-buffer',
    env: 'CLB_RESPONSE_BUFFER',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Response bytes held back and judged before the client sees any, 0 to 1 GiB (64k, 1MiB...).',
    defaultText: formatBytes(CLB_DEFAULTS.responseBufferBytes),
    fromText: bytesFromText('responseBufferBytes')
  },
  {
    field: 'responseHoldMs',
    flag: 'response-hold',
    env: 'CLB_RESPONSE_HOLD',
    valueName: 'MS',
    multiple: false,
    summary: 'How long an incomplete response is held and judged after its head, then it streams (0-10000).',
    defaultText: `${CLB_DEFAULTS.responseHoldMs} ms`,
    fromText: countFromText('responseHoldMs')
  },
  {
    field: 'lingerSeconds',
    flag: 'linger',
    env: 'CLB_LINGER',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'After a decision to close, how long the client\'s further bytes are discarded (0-60).',
    defaultText: `${CLB_DEFAULTS.lingerSeconds} s`,
    fromText: secondsFromText('lingerSeconds')
  },
  {
    field: 'maxHeadBytes',
    flag: 'max-head',
    env: 'CLB_MAX_HEAD',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Largest request or response head (start line + headers) accepted, 1 KiB to 1 MiB.',
    defaultText: formatBytes(CLB_DEFAULTS.maxHeadBytes),
    fromText: bytesFromText('maxHeadBytes')
  },
  {
    field: 'profile',
    flag: 'profile',
    env: 'CLB_PROFILE',
    valueName: 'clb|strict',
    multiple: false,
    summary: "How defects CLB's documentation is silent on are judged: as CLB is believed to, or strictly.",
    defaultText: CLB_DEFAULTS.profile,
    fromText: asIs
  },
  {
    field: 'drainTimeoutSeconds',
    flag: 'drain-timeout',
    env: 'CLB_DRAIN_TIMEOUT',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'On SIGINT/SIGTERM, how long in-flight requests may finish before they are cut (0-3600).',
    defaultText: `${CLB_DEFAULTS.drainTimeoutSeconds} s`,
    fromText: secondsFromText('drainTimeoutSeconds')
  },
  {
    field: 'captureDir',
    flag: 'capture-dir',
    env: 'CLB_CAPTURE_DIR',
    valueName: 'PATH',
    multiple: false,
    summary: 'Directory where each rejected response is captured, one file each (see clb-proxy replay).',
    defaultText: '<os temp dir>/clb-proxy-captures-<uid>',
    fromText: asIs
  },
  {
    field: 'maxCaptures',
    flag: 'max-captures',
    env: 'CLB_MAX_CAPTURES',
    valueName: 'COUNT',
    multiple: false,
    summary: 'Most capture files kept; the oldest are removed first (1-100000).',
    defaultText: String(CLB_DEFAULTS.maxCaptures),
    fromText: countFromText('maxCaptures')
  },
  {
    field: 'captureBytes',
    flag: 'capture-bytes',
    env: 'CLB_CAPTURE_BYTES',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Bytes of a rejected response kept in its capture, 1 KiB to 16 MiB.',
    defaultText: formatBytes(CLB_DEFAULTS.captureBytes),
    fromText: bytesFromText('captureBytes')
  },
  {
    field: 'keepaliveRace',
    flag: 'keepalive-race',
    env: 'CLB_KEEPALIVE_RACE',
    valueName: 'detect|emulate',
    multiple: false,
    summary: 'An instance closing a kept-alive connection early: warn (detect), or also send 504 (emulate).',
    defaultText: CLB_DEFAULTS.keepaliveRace,
    fromText: asIs
  },
  {
    field: 'admin',
    flag: 'admin',
    env: 'CLB_ADMIN',
    valueName: 'HOST:PORT',
    multiple: false,
    summary: 'Admin listener: /metrics (Prometheus), /metrics.json (CloudWatch), /captures, /instances.',
    defaultText: 'none',
    fromText: asIs
  },
  {
    field: 'healthCheck',
    flag: 'health-check',
    env: 'CLB_HEALTH_CHECK',
    valueName: 'TARGET',
    multiple: false,
    summary: "Health check: HTTP:PORT/PATH, HTTPS:PORT/PATH, TCP:PORT, SSL:PORT (no PORT: the instance's).",
    defaultText: 'none: every instance is in service',
    fromText: asIs
  },
  {
    field: 'healthIntervalSeconds',
    flag: 'health-interval',
    env: 'CLB_HEALTH_INTERVAL',
    valueName: 'SECONDS',
    multiple: false,
    summary: "Seconds between health checks of each instance, 5-300 (CLB's range).",
    defaultText: `${CLB_DEFAULTS.healthIntervalSeconds} s`,
    fromText: countFromText('healthIntervalSeconds')
  },
  {
    field: 'healthTimeoutSeconds',
    flag: 'health-timeout',
    env: 'CLB_HEALTH_TIMEOUT',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'A health check not answered 200 within this many seconds fails, 2-60, less than the interval.',
    defaultText: `${CLB_DEFAULTS.healthTimeoutSeconds} s`,
    fromText: countFromText('healthTimeoutSeconds')
  },
  {
    field: 'healthyThreshold',
    flag: 'healthy-threshold',
    env: 'CLB_HEALTHY_THRESHOLD',
    valueName: 'COUNT',
    multiple: false,
    summary: 'Consecutive passing checks that put an OutOfService instance back in service, 2-10.',
    defaultText: String(CLB_DEFAULTS.healthyThreshold),
    fromText: countFromText('healthyThreshold')
  },
  {
    field: 'unhealthyThreshold',
    flag: 'unhealthy-threshold',
    env: 'CLB_UNHEALTHY_THRESHOLD',
    valueName: 'COUNT',
    multiple: false,
    summary: 'Consecutive failing checks that take an instance out of service, 2-10.',
    defaultText: String(CLB_DEFAULTS.unhealthyThreshold),
    fromText: countFromText('unhealthyThreshold')
  },
  {
    field: 'maxInstanceConnections',
    flag: 'max-instance-connections',
    env: 'CLB_MAX_INSTANCE_CONNECTIONS',
    valueName: 'COUNT',
    multiple: false,
    summary: 'Requests one instance serves at once; beyond it requests wait in the surge queue (1-100000).',
    defaultText: String(CLB_DEFAULTS.maxInstanceConnections),
    fromText: countFromText('maxInstanceConnections')
  },
  {
    field: 'surgeQueueSize',
    flag: 'surge-queue',
    env: 'CLB_SURGE_QUEUE',
    valueName: 'COUNT',
    multiple: false,
    summary: "Requests that may wait for a busy instance, 0-1024 (CLB's maximum); beyond: 503 (spillover).",
    defaultText: String(CLB_DEFAULTS.surgeQueueSize),
    fromText: countFromText('surgeQueueSize')
  },
  {
    field: 'drainingTimeoutSeconds',
    flag: 'draining-timeout',
    env: 'CLB_DRAINING_TIMEOUT',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'Connection draining of a deregistered instance, 1-3600; 0 (or --no-draining) disables it.',
    defaultText: `${CLB_DEFAULTS.drainingTimeoutSeconds} s`,
    fromText: countFromText('drainingTimeoutSeconds')
  },
  {
    field: 'stickyDurationSeconds',
    flag: 'sticky-duration',
    env: 'CLB_STICKY_DURATION',
    valueName: 'SECONDS',
    multiple: false,
    summary: 'Duration-based stickiness: the AWSELB cookie\'s lifetime; 0 = a browser session.',
    defaultText: 'none: no stickiness',
    fromText: countFromText('stickyDurationSeconds')
  },
  {
    field: 'stickyAppCookie',
    flag: 'sticky-app-cookie',
    env: 'CLB_STICKY_APP_COOKIE',
    valueName: 'NAME',
    multiple: false,
    summary: "Application-controlled stickiness: follow the app's cookie NAME.",
    defaultText: 'none: no stickiness',
    fromText: asIs
  },
  {
    field: 'desyncMode',
    flag: 'desync-mode',
    env: 'CLB_DESYNC_MODE',
    valueName: 'MODE',
    multiple: false,
    summary: 'Desync mitigation: monitor, defensive (400 for Severe) or strictest (400 unless Compliant).',
    defaultText: CLB_DEFAULTS.desyncMode,
    fromText: asIs
  },
  {
    field: 'maxRequestLineBytes',
    flag: 'max-request-line',
    env: 'CLB_MAX_REQUEST_LINE',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Longest request line; a longer one gets 400.',
    defaultText: formatBytes(CLB_DEFAULTS.maxRequestLineBytes),
    fromText: bytesFromText('maxRequestLineBytes')
  },
  {
    field: 'maxHeaderLineBytes',
    flag: 'max-header-line',
    env: 'CLB_MAX_HEADER_LINE',
    valueName: 'BYTES',
    multiple: false,
    summary: 'Longest request header line; a longer one gets 400.',
    defaultText: formatBytes(CLB_DEFAULTS.maxHeaderLineBytes),
    fromText: bytesFromText('maxHeaderLineBytes')
  },
  {
    field: 'maxHeaderCount',
    flag: 'max-headers',
    env: 'CLB_MAX_HEADERS',
    valueName: 'COUNT',
    multiple: false,
    summary: 'Most header fields in a request; more get 400.',
    defaultText: String(CLB_DEFAULTS.maxHeaderCount),
    fromText: countFromText('maxHeaderCount')
  },
  {
    field: 'tlsCert',
    flag: 'tls-cert',
    env: 'CLB_TLS_CERT',
    valueName: 'PEM-FILE',
    multiple: false,
    summary: 'Certificate of https and ssl listeners (with --tls-key).',
    defaultText: 'a self-signed certificate for localhost and 127.0.0.1, made at start',
    fromText: asIs
  },
  {
    field: 'tlsKey',
    flag: 'tls-key',
    env: 'CLB_TLS_KEY',
    valueName: 'PEM-FILE',
    multiple: false,
    summary: 'Private key of --tls-cert.',
    defaultText: 'the self-signed certificate\'s',
    fromText: asIs
  },
  {
    field: 'securityPolicy',
    flag: 'security-policy',
    env: 'CLB_SECURITY_POLICY',
    valueName: 'NAME',
    multiple: false,
    summary: 'TLS protocols and ciphers of https and ssl listeners, as CLB\'s predefined policy NAME.',
    defaultText: CLB_DEFAULTS.securityPolicy,
    fromText: asIs
  },
  {
    field: 'backendCa',
    flag: 'backend-ca',
    env: 'CLB_BACKEND_CA',
    valueName: 'PEM-FILE',
    multiple: false,
    summary: 'Verify https and ssl instances against this CA.',
    defaultText: 'any instance certificate is accepted, as on CLB',
    fromText: asIs
  }
] satisfies OptionFlag[])

/** A flag without a value that sets one option field, e.g. `--no-draining`; it wins over the field's own flag and variable. */
export interface SwitchFlag {
  readonly field: OptionField
  readonly flag: string
  readonly value: unknown
  readonly summary: string
  /** An environment variable that sets the same field with `on` or `off` (the flag wins). */
  readonly env?: string
  readonly envFromText?: (text: string) => unknown
}

export const SWITCH_FLAGS: readonly SwitchFlag[] = Object.freeze([
  {
    field: 'drainingTimeoutSeconds',
    flag: 'no-draining',
    value: 0,
    summary: 'No connection draining: a deregistered instance\'s requests get 504 (= --draining-timeout 0).'
  },
  {
    field: 'proxyProtocol',
    flag: 'proxy-protocol',
    value: true,
    summary: 'Proxy protocol v1 on tcp and ssl listeners: a PROXY line before the client\'s bytes.',
    env: 'CLB_PROXY_PROTOCOL',
    envFromText: switchFromText('proxyProtocol')
  }
] satisfies SwitchFlag[])

export function helpText(): string {
  const lines = [
    'Usage: clb-proxy [options]',
    '       clb-proxy check URL [options]         (clb-proxy check --help)',
    '       clb-proxy replay FILE [options]       (clb-proxy replay --help)',
    '       clb-proxy analyze PATH... [options]   (clb-proxy analyze --help)',
    '',
    'A local reverse proxy that behaves like an AWS Classic Load Balancer: it judges backend',
    "responses from their raw bytes, answers with CLB's own 502/503/504 responses and writes",
    'CLB-format access-log lines. With no --backend it starts a demo backend and prints curl',
    'commands to try against it.',
    '',
    'Options (a flag overrides its environment variable; an empty variable counts as unset):'
  ]
  for (const option of OPTION_FLAGS) {
    lines.push(`  --${option.flag} ${option.valueName}`)
    lines.push(`      ${option.summary}`)
    lines.push(`      env ${option.env}${option.multiple ? ' (comma-separated)' : ''}; default ${option.defaultText}`)
  }
  for (const option of SWITCH_FLAGS) {
    lines.push(`  --${option.flag}`, `      ${option.summary}`)
    if (option.env !== undefined) lines.push(`      env ${option.env} (on or off); default off`)
  }
  lines.push(
    '  -h, --help',
    '      Print this help and exit.',
    '  --version',
    '      Print the version and exit.',
    '',
    'Stops on SIGINT (Ctrl-C) or SIGTERM after in-flight requests finish; a second Ctrl-C quits at once.',
    'SIGUSR2 reopens the access-log file by its path, for log rotation (kill -USR2 <pid>).',
    'Exit status: 0 after a clean stop, 1 if the proxy could not start or stop cleanly,',
    '2 for a bad option (nothing is started then).',
    'Every option, its range and where the range comes from: docs/options.md',
    ''
  )
  return lines.join('\n')
}

/**
 * A rule that names another option (tlsKey, listeners, listeners[1]) names it as the command line
 * knows it: `--tls-key`, `--listener`, `the 2nd --listener`.
 */
export function namesAsFlags (text: string): string {
  return namesAs(text, false)
}

/** namesAsFlags for a value set by an environment variable: the other options named by their variables (CLB_TLS_KEY). */
export function namesAsVariables (text: string): string {
  return namesAs(text, true)
}

function namesAs (text: string, asVariables: boolean): string {
  const nameOf = (option: OptionFlag): string => asVariables ? option.env : `--${option.flag}`
  const listener = OPTION_FLAGS.find((option) => option.field === 'listeners') as OptionFlag
  const listen = OPTION_FLAGS.find((option) => option.field === 'listen') as OptionFlag
  let named = text
    .replace(/\blisteners\[(\d+)\]/g, (_match, index: string) => asVariables ? `${listener.env} entry ${Number(index) + 1}` : `--listener number ${Number(index) + 1}`)
    .replace(/ with listeners\b/g, ` with ${nameOf(listener)}`)
    .replace(/ with listen\b/g, ` with ${nameOf(listen)}`)
  for (const option of OPTION_FLAGS) {
    if (!/[A-Z]/.test(option.field)) continue
    named = named.replace(new RegExp(`\\b${option.field}\\b`, 'g'), nameOf(option))
  }
  return named
}
