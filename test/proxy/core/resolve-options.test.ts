import t, { type Test } from 'tap'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLB_DEFAULTS, type ClbProxyOptions } from '../../../proxy/core/options.js'
import { OptionError, parseByteSize, resolveOptions } from '../../../proxy/core/resolve-options.js'

const BACKEND = 'http://127.0.0.1:3000'
const KNOWN = 'listen, listeners, backends, accessLog, accessLogDir, emitIntervalMinutes, name, idleTimeoutSeconds, responseBufferBytes, responseHoldMs, lingerSeconds, maxHeadBytes, profile, drainTimeoutSeconds, captureDir, maxCaptures, captureBytes, keepaliveRace, admin, healthCheck, healthIntervalSeconds, healthTimeoutSeconds, healthyThreshold, unhealthyThreshold, maxInstanceConnections, surgeQueueSize, drainingTimeoutSeconds, stickyDurationSeconds, stickyAppCookie, desyncMode, tlsCert, tlsKey, securityPolicy, proxyProtocol, backendCa, maxRequestLineBytes, maxHeaderLineBytes, maxHeaderCount'

interface Rejection {
  readonly input: unknown
  readonly field: string
  readonly message: string
  /** The text the message must quote; omitted when the message itself is the check (unknown keys). */
  readonly quoted?: string
}

/** resolveOptions must throw an OptionError with this code, field and exact message. */
function assertRejected(t: Test, options: unknown, expected: Rejection, requireBackends = true): void {
  let thrown: unknown
  try {
    resolveOptions(options as ClbProxyOptions, { requireBackends })
  } catch (error) {
    thrown = error
  }
  if (!(thrown instanceof OptionError)) {
    t.fail(`expected an OptionError for ${JSON.stringify(expected.input)}, got ${String(thrown)}`)
    return
  }
  t.equal(thrown.code, 'CLB_INVALID_OPTION', 'code')
  t.equal(thrown.field, expected.field, 'field')
  t.equal(thrown.message, expected.message, 'message')
  if (expected.quoted !== undefined) t.ok(thrown.message.includes(expected.quoted), `message quotes ${expected.quoted}`)
}

/** One field set on top of a valid base, so exactly that field is under test. */
function withField(field: string, value: unknown): Record<string, unknown> {
  return { backends: [BACKEND], [field]: value }
}

function rejectsField(t: Test, field: string, cases: ReadonlyArray<readonly [unknown, string, string?]>): void {
  for (const [value, message, quoted] of cases) {
    t.test(`${field} = ${String(typeof value === 'string' ? JSON.stringify(value) : value)}`, async (t) => {
      assertRejected(t, withField(field, value), { input: value, field, message, quoted: quoted ?? String(value) })
    })
  }
}

function acceptsField(t: Test, field: string, cases: ReadonlyArray<readonly [unknown, unknown]>): void {
  for (const [value, resolved] of cases) {
    t.strictSame(
      (resolveOptions(withField(field, value) as ClbProxyOptions) as unknown as Record<string, unknown>)[field],
      resolved,
      `${field} accepts ${JSON.stringify(value)}`
    )
  }
}

t.test('defaults fill every field', async (t) => {
  t.strictSame(resolveOptions({ backends: [BACKEND] }), {
    listen: { host: '127.0.0.1', port: 8080 },
    listeners: [{ protocol: 'http', host: '127.0.0.1', port: 8080 }],
    backends: [{ host: '127.0.0.1', port: 3000 }],
    accessLog: '-',
    accessLogDir: null,
    emitIntervalMinutes: 60,
    name: 'clb-proxy',
    idleTimeoutSeconds: 60,
    responseBufferBytes: 1048576,
    responseHoldMs: 50,
    lingerSeconds: 5,
    maxHeadBytes: 65536,
    profile: 'clb',
    drainTimeoutSeconds: 5,
    captureDir: join(tmpdir(), `clb-proxy-captures-${process.getuid?.() ?? ''}`.replace(/-$/, '')),
    maxCaptures: 100,
    captureBytes: 65536,
    keepaliveRace: 'detect',
    admin: null,
    healthCheck: null,
    healthIntervalSeconds: 30,
    healthTimeoutSeconds: 5,
    healthyThreshold: 10,
    unhealthyThreshold: 2,
    maxInstanceConnections: 128,
    surgeQueueSize: 1024,
    drainingTimeoutSeconds: 300,
    stickyDurationSeconds: null,
    stickyAppCookie: null,
    desyncMode: 'defensive',
    tlsCert: null,
    tlsKey: null,
    securityPolicy: 'ELBSecurityPolicy-2016-08',
    proxyProtocol: false,
    backendCa: null,
    maxRequestLineBytes: 16384,
    maxHeaderLineBytes: 16384,
    maxHeaderCount: 100
  })
  const explicitUndefined = resolveOptions({
    backends: [BACKEND],
    listen: undefined,
    accessLog: undefined,
    name: undefined,
    idleTimeoutSeconds: undefined,
    responseBufferBytes: undefined,
    responseHoldMs: undefined,
    lingerSeconds: undefined,
    maxHeadBytes: undefined,
    profile: undefined,
    drainTimeoutSeconds: undefined,
    captureDir: undefined,
    maxCaptures: undefined,
    captureBytes: undefined,
    keepaliveRace: undefined,
    admin: undefined
  })
  t.strictSame(explicitUndefined, resolveOptions({ backends: [BACKEND] }), 'a field set to undefined counts as absent')
  t.equal(explicitUndefined.idleTimeoutSeconds, CLB_DEFAULTS.idleTimeoutSeconds)
})

t.test('the library requires a backend; the CLI may defer that check', async (t) => {
  assertRejected(t, {}, {
    input: [],
    field: 'backends',
    message: 'backends must list at least one backend (http://HOST:PORT), got []'
  })
  t.strictSame(resolveOptions({}, { requireBackends: false }).backends, [])
})

t.test('the result is deeply frozen and shares nothing with the input', async (t) => {
  const listen = { host: '127.0.0.1', port: 9000 }
  const backend = { host: '10.0.0.1', port: 80 }
  const input = { listen, backends: [backend] }
  const resolved = resolveOptions(input)
  t.ok(Object.isFrozen(resolved), 'options')
  t.ok(Object.isFrozen(resolved.listen), 'listen')
  t.ok(Object.isFrozen(resolved.backends), 'backends')
  t.ok(Object.isFrozen(resolved.backends[0]), 'each backend')
  t.throws(() => {
    ;(resolved as { name: string }).name = 'changed'
  }, TypeError)
  t.throws(() => {
    ;(resolved.backends as Array<unknown>).push({ host: 'x', port: 1 })
  }, TypeError)
  listen.port = 1
  backend.port = 2
  t.equal(resolved.listen.port, 9000, 'later changes to the input do not reach the result')
  t.equal(resolved.backends[0]?.port, 80)
  t.not(resolved.listen, listen)
  t.notOk(Object.isFrozen(listen), 'the input is left unfrozen')
})

t.test('unknown keys are rejected by name', async (t) => {
  assertRejected(t, { backends: [BACKEND], listenn: '127.0.0.1:80' }, {
    input: 'listenn',
    field: 'listenn',
    message: `unknown option "listenn" (expected one of: ${KNOWN})`
  })
  assertRejected(t, { backends: [BACKEND], idleTimeout: 5, port: 1 }, {
    input: 'idleTimeout',
    field: 'idleTimeout',
    message: `unknown options "idleTimeout", "port" (expected one of: ${KNOWN})`
  })
  assertRejected(t, { backends: [BACKEND], listen: { host: 'a', port: 1, tls: true } }, {
    input: 'tls',
    field: 'listen',
    message: 'unknown option "listen.tls" (expected one of: listen.host, listen.port)'
  })
  assertRejected(t, { backends: [BACKEND, { host: 'a', port: 1, weight: 2 }] }, {
    input: 'weight',
    field: 'backends',
    message: 'unknown option "backends[1].weight" (expected one of: backends[1].host, backends[1].port, backends[1].protocol)'
  })
})

t.test('the options themselves must be an object', async (t) => {
  assertRejected(t, null, { input: null, field: 'options', message: 'options must be an object, got null' })
  assertRejected(t, [BACKEND], {
    input: [BACKEND],
    field: 'options',
    message: "options must be an object, got [ 'http://127.0.0.1:3000' ]"
  })
})

const LISTEN_RULE =
  'listen must be HOST:PORT with a port from 0 to 65535 (IPv6 as [::1]:8080; port 0 picks a free port)'

t.test('listen', async (t) => {
  acceptsField(t, 'listen', [
    ['0.0.0.0:80', { host: '0.0.0.0', port: 80 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['127.0.0.1:65535', { host: '127.0.0.1', port: 65535 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[::]:8080', { host: '::', port: 8080 }],
    ['proxy_1.internal.:9000', { host: 'proxy_1.internal.', port: 9000 }],
    [{ host: '::1', port: 0 }, { host: '::1', port: 0 }],
    [{ host: 'localhost', port: 8080 }, { host: 'localhost', port: 8080 }]
  ])
  rejectsField(t, 'listen', [
    ['8080', `${LISTEN_RULE}, got "8080"`],
    [':8080', `${LISTEN_RULE}, got ":8080"`],
    ['127.0.0.1:', `${LISTEN_RULE}, got "127.0.0.1:"`],
    ['127.0.0.1:65536', `${LISTEN_RULE}, got "127.0.0.1:65536"`],
    ['127.0.0.1:-1', `${LISTEN_RULE}, got "127.0.0.1:-1"`],
    ['127.0.0.1:80x', `${LISTEN_RULE}, got "127.0.0.1:80x"`],
    ['127.0.0.1:123456', `${LISTEN_RULE}, got "127.0.0.1:123456"`],
    ['::1:8080', `${LISTEN_RULE} (write IPv6 addresses in brackets, e.g. [::1]:8080), got "::1:8080"`],
    ['[127.0.0.1]:80', `${LISTEN_RULE}, got "[127.0.0.1]:80"`],
    ['[::1]8080', `${LISTEN_RULE}, got "[::1]8080"`],
    ['bad host:80', `${LISTEN_RULE}, got "bad host:80"`],
    ['-a.example:80', `${LISTEN_RULE}, got "-a.example:80"`],
    ['999.1.1.1:80', `${LISTEN_RULE}, got "999.1.1.1:80"`],
    ['http://127.0.0.1:80', `${LISTEN_RULE} (without a scheme, e.g. 127.0.0.1:8080), got "http://127.0.0.1:80"`],
    ['::1', `${LISTEN_RULE} (write IPv6 addresses in brackets, e.g. [::1]:8080), got "::1"`],
    [42, 'listen must be a "HOST:PORT" string or a { host, port } object, got "42"', '42']
  ])
  t.test('as an object', async (t) => {
    assertRejected(t, withField('listen', { host: '[::1]', port: 80 }), {
      input: '[::1]',
      field: 'listen',
      message: 'listen.host must be a host name or an IP address (IPv6 without brackets), got "[::1]"',
      quoted: '[::1]'
    })
    assertRejected(t, withField('listen', { host: 'a', port: 1.5 }), {
      input: 1.5,
      field: 'listen',
      message: 'listen.port must be an integer port from 0 to 65535, got "1.5"',
      quoted: '1.5'
    })
    assertRejected(t, withField('listen', { host: 'a', port: '80' }), {
      input: '80',
      field: 'listen',
      message: 'listen.port must be an integer port from 0 to 65535, got the string "80"',
      quoted: '80'
    })
    assertRejected(t, withField('listen', { host: 'a' }), {
      input: undefined,
      field: 'listen',
      message: 'listen.port must be an integer port from 0 to 65535, got undefined'
    })
  })
})

const BACKEND_RULE = 'must be an http://, https://, tcp:// or ssl:// HOST:PORT URL (port 1 to 65535; http and https default to 80 and 443; no path or query)'

t.test('backends', async (t) => {
  acceptsField(t, 'backends', [
    [[BACKEND], [{ host: '127.0.0.1', port: 3000 }]],
    [['http://example.com'], [{ host: 'example.com', port: 80 }]],
    [['http://example.com:'], [{ host: 'example.com', port: 80 }]],
    [['HTTP://app:8080/'], [{ host: 'app', port: 8080 }]],
    [['http://[::1]:9000'], [{ host: '::1', port: 9000 }]],
    [['http://web_1:65535'], [{ host: 'web_1', port: 65535 }]],
    [['https://a'], [{ host: 'a', port: 443, protocol: 'https' }]],
    [['HTTPS://a:8443'], [{ host: 'a', port: 8443, protocol: 'https' }]],
    [[{ host: 'a', port: 1, protocol: 'http' }, { host: 'a', port: 2, protocol: 'https' }], [{ host: 'a', port: 1 }, { host: 'a', port: 2, protocol: 'https' }]],
    [
      [{ host: '10.0.0.1', port: 8080 }, 'http://10.0.0.2:8080'],
      [
        { host: '10.0.0.1', port: 8080 },
        { host: '10.0.0.2', port: 8080 }
      ]
    ]
  ])
  // tcp and ssl instances, with a listener that routes to them (CLB-LISTEN pairing).
  const layer4 = { listeners: ['http://127.0.0.1:0', 'tcp://127.0.0.1:0'] }
  t.strictSame(resolveOptions({ ...layer4, backends: ['http://a:1', 'tcp://a:5000', 'ssl://a:5001'] }).backends,
    [{ host: 'a', port: 1 }, { host: 'a', port: 5000, protocol: 'tcp' }, { host: 'a', port: 5001, protocol: 'ssl' }])
  t.strictSame(resolveOptions({ ...layer4, backends: [{ host: 'a', port: 1, protocol: 'http' }, { host: 'a', port: 2, protocol: 'tcp' }] }).backends,
    [{ host: 'a', port: 1 }, { host: 'a', port: 2, protocol: 'tcp' }])
  // An instance no listener routes to is refused, as a listener with no instance is.
  assertRejected(t, { backends: ['http://a:1', 'tcp://a:5000'] }, {
    input: 'tcp://a:5000',
    field: 'backends',
    message: 'backends[1] is a tcp:// instance, which only TCP or SSL listeners route to (CLB\'s listener pairing), and no listener is one: add a TCP or SSL listener, or leave the instance out, got "tcp://a:5000"'
  })
  const entryCases: ReadonlyArray<readonly [unknown, string]> = [
    ['tcp://a', 'backends[1] must name a port: tcp:// has no default port, got "tcp://a"'],
    ['ssl://a:1/x', 'backends[1] must be ssl://HOST:PORT without a path, query or fragment (the request path is forwarded as the client sent it), got "ssl://a:1/x"'],
    [{ host: 'a', port: 1, protocol: 'udp' }, 'backends[1].protocol must be \'http\', \'https\', \'tcp\' or \'ssl\', got "udp"'],
    ['ftp://a:21', `backends[1] ${BACKEND_RULE}, got "ftp://a:21"`],
    ['127.0.0.1:3000', `backends[1] ${BACKEND_RULE} (did you mean "http://127.0.0.1:3000"?), got "127.0.0.1:3000"`],
    ['localhost', `backends[1] ${BACKEND_RULE}, got "localhost"`],
    ['', `backends[1] ${BACKEND_RULE}, got ""`],
    ['http://a:3000/api', 'backends[1] must be http://HOST:PORT without a path, query or fragment (the request path is forwarded as the client sent it), got "http://a:3000/api"'],
    ['http://a:3000?x=1', 'backends[1] must be http://HOST:PORT without a path, query or fragment (the request path is forwarded as the client sent it), got "http://a:3000?x=1"'],
    ['http://a#top', 'backends[1] must be http://HOST:PORT without a path, query or fragment (the request path is forwarded as the client sent it), got "http://a#top"'],
    ['http://user@a:1', 'backends[1] must be http://HOST:PORT without a user name or password, got "http://user@a:1"'],
    ['http://u:p@a:1', 'backends[1] must be http://HOST:PORT without a user name or password, got "http://u:p@a:1"'],
    ['http://a:0', `backends[1] ${BACKEND_RULE}, got "http://a:0"`],
    ['http://a:65536', `backends[1] ${BACKEND_RULE}, got "http://a:65536"`],
    ['http://a:http', `backends[1] ${BACKEND_RULE}, got "http://a:http"`],
    ['http://', `backends[1] ${BACKEND_RULE}, got "http://"`],
    ['http://[zz]:1', `backends[1] ${BACKEND_RULE}, got "http://[zz]:1"`],
    ['http://[127.0.0.1]:1', `backends[1] ${BACKEND_RULE}, got "http://[127.0.0.1]:1"`],
    [42, 'backends[1] must be an http://HOST:PORT URL or a { host, port } object, got "42"'],
    [{ host: 'a', port: 0 }, 'backends[1].port must be an integer port from 1 to 65535, got "0"'],
    [{ host: '', port: 80 }, 'backends[1].host must be a host name or an IP address (IPv6 without brackets), got ""']
  ]
  for (const [entry, message] of entryCases) {
    t.test(`entry ${JSON.stringify(entry)}`, async (t) => {
      assertRejected(t, { backends: [BACKEND, entry] }, {
        input: entry,
        field: 'backends',
        message,
        quoted: typeof entry === 'string' ? entry : undefined
      })
    })
  }
  assertRejected(t, { backends: BACKEND }, {
    input: BACKEND,
    field: 'backends',
    message: `backends must be an array of http://HOST:PORT URLs or { host, port } objects, got "${BACKEND}"`,
    quoted: BACKEND
  })
})

const NAME_RULE =
  'name must be 1 to 32 characters, only ASCII letters, digits or hyphens, not starting or ending with a hyphen (CLB load balancer name rules)'

t.test('name (BOTO CreateAccessPointInput.LoadBalancerName)', async (t) => {
  acceptsField(t, 'name', [
    ['a', 'a'],
    ['my-elb', 'my-elb'],
    ['A1-b2', 'A1-b2'],
    ['x'.repeat(32), 'x'.repeat(32)]
  ])
  rejectsField(t, 'name', [
    ['', `${NAME_RULE}, got ""`, '""'],
    ['-elb', `${NAME_RULE}, got "-elb"`],
    ['elb-', `${NAME_RULE}, got "elb-"`],
    ['x'.repeat(33), `${NAME_RULE}, got "${'x'.repeat(33)}"`],
    ['my_elb', `${NAME_RULE}, got "my_elb"`],
    ['my.elb', `${NAME_RULE}, got "my.elb"`],
    ['élb', `${NAME_RULE}, got "élb"`],
    [42, `${NAME_RULE}, got the number "42"`]
  ])
})

t.test('idleTimeoutSeconds (CLB-IDLE: 1-4000)', async (t) => {
  const rule = "idleTimeoutSeconds must be an integer from 1 to 4000 (CLB's range)"
  acceptsField(t, 'idleTimeoutSeconds', [
    [1, 1],
    [60, 60],
    [4000, 4000]
  ])
  rejectsField(t, 'idleTimeoutSeconds', [
    [0, `${rule}, got "0"`],
    [4001, `${rule}, got "4001"`],
    [1.5, `${rule}, got "1.5"`],
    [-1, `${rule}, got "-1"`],
    [Number.NaN, `${rule}, got "NaN"`],
    [Number.POSITIVE_INFINITY, `${rule}, got "Infinity"`],
    ['60', `${rule}, got the string "60"`],
    [null, `${rule}, got null`]
  ])
})

t.test('responseBufferBytes', async (t) => {
  const rule = 'responseBufferBytes must be an integer from 0 to 1073741824 bytes (1 GiB)'
  acceptsField(t, 'responseBufferBytes', [
    [0, 0],
    [1073741824, 1073741824]
  ])
  rejectsField(t, 'responseBufferBytes', [
    [-1, `${rule}, got "-1"`],
    [1073741825, `${rule}, got "1073741825"`],
    [0.5, `${rule}, got "0.5"`]
  ])
})

t.test('responseHoldMs', async (t) => {
  const rule = 'responseHoldMs must be an integer number of milliseconds from 0 to 10000'
  acceptsField(t, 'responseHoldMs', [
    [0, 0],
    [10000, 10000]
  ])
  rejectsField(t, 'responseHoldMs', [
    [-1, `${rule}, got "-1"`],
    [10001, `${rule}, got "10001"`],
    [2.5, `${rule}, got "2.5"`]
  ])
})

t.test('lingerSeconds', async (t) => {
  const rule = 'lingerSeconds must be a number of seconds from 0 to 60'
  acceptsField(t, 'lingerSeconds', [
    [0, 0],
    [0.25, 0.25],
    [60, 60]
  ])
  rejectsField(t, 'lingerSeconds', [
    [-1, `${rule}, got "-1"`],
    [61, `${rule}, got "61"`]
  ])
})

t.test('maxHeadBytes', async (t) => {
  const rule = 'maxHeadBytes must be an integer from 1024 to 1048576 bytes (1 KiB to 1 MiB)'
  acceptsField(t, 'maxHeadBytes', [
    [1024, 1024],
    [1048576, 1048576]
  ])
  rejectsField(t, 'maxHeadBytes', [
    [1023, `${rule}, got "1023"`],
    [1048577, `${rule}, got "1048577"`],
    [2048.5, `${rule}, got "2048.5"`]
  ])
})

t.test('profile', async (t) => {
  const rule = "profile must be 'clb' or 'strict'"
  acceptsField(t, 'profile', [
    ['clb', 'clb'],
    ['strict', 'strict']
  ])
  rejectsField(t, 'profile', [
    ['CLB', `${rule}, got "CLB"`],
    ['', `${rule}, got ""`, '""'],
    [null, `${rule}, got null`]
  ])
})

t.test('drainTimeoutSeconds (CLB-DRAIN: up to 3600)', async (t) => {
  const rule = 'drainTimeoutSeconds must be a number of seconds from 0 to 3600'
  acceptsField(t, 'drainTimeoutSeconds', [
    [0, 0],
    [0.5, 0.5],
    [3600, 3600]
  ])
  rejectsField(t, 'drainTimeoutSeconds', [
    [-0.1, `${rule}, got "-0.1"`],
    [3600.5, `${rule}, got "3600.5"`],
    [Number.NaN, `${rule}, got "NaN"`],
    [Number.POSITIVE_INFINITY, `${rule}, got "Infinity"`]
  ])
})

t.test('accessLog', async (t) => {
  const rule = "accessLog must be a file path, '-' for stdout, or null for no access log"
  acceptsField(t, 'accessLog', [
    ['-', '-'],
    ['/var/log/clb.log', '/var/log/clb.log'],
    ['relative/access.log', 'relative/access.log'],
    [null, null]
  ])
  rejectsField(t, 'accessLog', [
    ['', `${rule}, got ""`, '""'],
    ['a\0b', `${rule}, got "a\\u0000b"`, 'a\\u0000b'],
    [42, `${rule}, got "42"`]
  ])
})

t.test('parseByteSize', async (t) => {
  const sizes: ReadonlyArray<readonly [string, number]> = [
    ['0', 0],
    ['1048576', 1048576],
    ['12b', 12],
    ['64k', 65536],
    ['64K', 65536],
    ['64KiB', 65536],
    ['64 KiB', 65536],
    ['1m', 1048576],
    ['1MiB', 1048576],
    ['1g', 1073741824],
    ['1GiB', 1073741824]
  ]
  for (const [text, bytes] of sizes) t.equal(parseByteSize(text), bytes, text)
  for (const text of ['', '1.5m', '64KB', '1MB', '-1', 'k', '1 t', '0x10', '99999999999999999999g']) {
    t.equal(parseByteSize(text), undefined, `refuses ${JSON.stringify(text)}`)
  }
})

t.test('captureDir', async (t) => {
  const rule = 'captureDir must be a directory path, or null for no captures'
  acceptsField(t, 'captureDir', [
    ['/tmp/captures', '/tmp/captures'],
    [null, null]
  ])
  rejectsField(t, 'captureDir', [
    ['', `${rule}, got ""`, '""'],
    [42, `${rule}, got the number "42"`, "42"]
  ])
})

t.test('maxCaptures and captureBytes', async (t) => {
  acceptsField(t, 'maxCaptures', [[1, 1], [100000, 100000]])
  rejectsField(t, 'maxCaptures', [
    [0, 'maxCaptures must be an integer from 1 to 100000, got "0"'],
    [1.5, 'maxCaptures must be an integer from 1 to 100000, got "1.5"']
  ])
  acceptsField(t, 'captureBytes', [[1024, 1024], [16777216, 16777216]])
  rejectsField(t, 'captureBytes', [
    [1023, 'captureBytes must be an integer from 1024 to 16777216 bytes (1 KiB to 16 MiB), got "1023"']
  ])
})

t.test('keepaliveRace', async (t) => {
  acceptsField(t, 'keepaliveRace', [['detect', 'detect'], ['emulate', 'emulate']])
  rejectsField(t, 'keepaliveRace', [['always', "keepaliveRace must be 'detect' or 'emulate', got \"always\""]])
})

t.test('admin', async (t) => {
  acceptsField(t, 'admin', [
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    [null, null]
  ])
  rejectsField(t, 'admin', [
    ['127.0.0.1', 'admin must be HOST:PORT with a port from 0 to 65535, or null for no admin listener, got "127.0.0.1"']
  ])
})

t.test('the balancer options: health check target, CLB ranges, timeout below interval, one stickiness policy', async (t) => {
  const resolved = resolveOptions({
    backends: [BACKEND],
    healthCheck: 'http:8080/health',
    healthIntervalSeconds: 5,
    healthTimeoutSeconds: 2,
    healthyThreshold: 2,
    unhealthyThreshold: 10,
    maxInstanceConnections: 1,
    surgeQueueSize: 0,
    drainingTimeoutSeconds: 0,
    stickyDurationSeconds: 0
  })
  t.strictSame(resolved.healthCheck, { protocol: 'HTTP', port: 8080, path: '/health' })
  t.ok(Object.isFrozen(resolved.healthCheck), 'the target is frozen')
  t.strictSame(resolveOptions({ backends: [BACKEND], healthCheck: 'TCP' }).healthCheck, { protocol: 'TCP', port: null, path: null })
  t.strictSame(resolveOptions({ backends: [BACKEND], healthCheck: { protocol: 'HTTP', port: null, path: '/up' } }).healthCheck,
    { protocol: 'HTTP', port: null, path: '/up' }, 'the object form goes through the same parser')
  t.equal(resolveOptions({ backends: [BACKEND], stickyAppCookie: 'JSESSIONID' }).stickyAppCookie, 'JSESSIONID')

  const rejected: Array<[Record<string, unknown>, string, string]> = [
    [{ healthCheck: 'HTTP:80' }, 'healthCheck', 'healthCheck must be a CLB health-check target'],
    [{ healthCheck: 'UDP:53' }, 'healthCheck', 'healthCheck must be a CLB health-check target'],
    [{ healthCheck: { protocol: 'TCP', port: 0 } }, 'healthCheck', 'healthCheck must be a CLB health-check target'],
    [{ healthIntervalSeconds: 4 }, 'healthIntervalSeconds', "healthIntervalSeconds must be an integer number of seconds from 5 to 300 (CLB's range), got \"4\""],
    [{ healthIntervalSeconds: 301 }, 'healthIntervalSeconds', 'from 5 to 300'],
    [{ healthTimeoutSeconds: 1 }, 'healthTimeoutSeconds', 'from 2 to 60'],
    [{ healthCheck: 'TCP', healthTimeoutSeconds: 30 }, 'healthTimeoutSeconds', 'healthTimeoutSeconds must be less than the health-check interval (30 s; API-HC: "This value must be less than the Interval value"), got "30"'],
    [{ healthCheck: 'TCP', healthIntervalSeconds: 5 }, 'healthIntervalSeconds', 'healthIntervalSeconds must be more than the health-check timeout (5 s, healthTimeoutSeconds\'s default, to be lowered too for a shorter interval; API-HC: "This value must be less than the Interval value"), got "5"'],
    [{ healthyThreshold: 1 }, 'healthyThreshold', 'from 2 to 10'],
    [{ unhealthyThreshold: 11 }, 'unhealthyThreshold', 'from 2 to 10'],
    [{ maxInstanceConnections: 0 }, 'maxInstanceConnections', 'from 1 to 100000'],
    [{ surgeQueueSize: 1025 }, 'surgeQueueSize', "from 0 to 1024 (CLB's maximum queue size)"],
    [{ drainingTimeoutSeconds: 3601 }, 'drainingTimeoutSeconds', 'or 0 to disable connection draining'],
    [{ drainingTimeoutSeconds: 1.5 }, 'drainingTimeoutSeconds', 'from 1 to 3600'],
    [{ stickyDurationSeconds: -1 }, 'stickyDurationSeconds', 'from 0 (a browser session)'],
    [{ stickyAppCookie: 'has space' }, 'stickyAppCookie', 'must be a cookie name'],
    [{ stickyAppCookie: 'AWSELB' }, 'stickyAppCookie', 'not AWSELB or AWSELBCORS'],
    [{ stickyAppCookie: 'SESSION', stickyDurationSeconds: 60 }, 'stickyAppCookie', 'a CLB listener has one stickiness policy']
  ]
  // Without a health check neither value is used: CLB's minimum interval is not refused for the default timeout.
  t.equal(resolveOptions({ backends: [BACKEND], healthIntervalSeconds: 5 }).healthIntervalSeconds, 5)
  for (const [input, field, text] of rejected) {
    const thrown = (() => {
      try {
        resolveOptions({ backends: [BACKEND], ...input })
      } catch (error) {
        return error as OptionError
      }
      return null
    })()
    t.equal(thrown?.field, field, `${JSON.stringify(input)}: field`)
    t.ok(thrown?.message.includes(text), `${JSON.stringify(input)}: ${thrown?.message ?? 'accepted'}`)
  }
})

t.test('desyncMode: CLB\'s three modes, defensive by default', async (t) => {
  t.equal(resolveOptions({ backends: [BACKEND] }).desyncMode, 'defensive')
  t.equal(resolveOptions({ backends: [BACKEND], desyncMode: 'strictest' }).desyncMode, 'strictest')
  t.throws(() => resolveOptions({ backends: [BACKEND], desyncMode: 'paranoid' as never }), { field: 'desyncMode', message: "desyncMode must be 'monitor', 'defensive' or 'strictest' (CLB's desync mitigation modes), got \"paranoid\"" })
})

const LISTENERS_RULE = 'must be PROTOCOL://HOST:PORT with PROTOCOL http, https, tcp or ssl and a port from 0 to 65535 (IPv6 as [::1])'

t.test('listeners', async (t) => {
  const both = resolveOptions({ backends: [BACKEND, 'tcp://127.0.0.1:4000'], listeners: ['http://127.0.0.1:0', 'HTTPS://localhost:8443', { protocol: 'tcp', host: '::1', port: 0 }, 'ssl://[::1]:8444'] })
  t.strictSame(both.listeners, [
    { protocol: 'http', host: '127.0.0.1', port: 0 },
    { protocol: 'https', host: 'localhost', port: 8443 },
    { protocol: 'tcp', host: '::1', port: 0 },
    { protocol: 'ssl', host: '::1', port: 8444 }
  ])
  t.strictSame(both.listen, { host: '127.0.0.1', port: 0 }, 'listen is the first listener')
  t.ok(Object.isFrozen(both.listeners[1]), 'frozen')
  const cases: ReadonlyArray<readonly [unknown, string]> = [
    ['udp://127.0.0.1:1', `listeners[0] ${LISTENERS_RULE}, got "udp://127.0.0.1:1"`],
    ['127.0.0.1:1', `listeners[0] ${LISTENERS_RULE} (did you mean "http://127.0.0.1:1"?), got "127.0.0.1:1"`],
    ['http://127.0.0.1:65536', `listeners[0] ${LISTENERS_RULE}, got "http://127.0.0.1:65536"`],
    [{ protocol: 'ftp', host: 'a', port: 1 }, 'listeners[0].protocol must be \'http\', \'https\', \'tcp\' or \'ssl\', got "ftp"'],
    [{ protocol: 'tcp', host: 'a', port: -1 }, 'listeners[0].port must be an integer port from 0 to 65535, got "-1"'],
    [7, `listeners[0] ${LISTENERS_RULE}, got "7"`]
  ]
  for (const [entry, message] of cases) {
    assertRejected(t, { backends: [BACKEND, 'tcp://a:1'], listeners: [entry] }, { input: entry, field: 'listeners', message })
  }
  assertRejected(t, { backends: [BACKEND], listeners: [] }, {
    input: [],
    field: 'listeners',
    message: 'listeners must be a non-empty array of PROTOCOL://HOST:PORT strings or { protocol, host, port } objects, got []'
  })
  assertRejected(t, { backends: [BACKEND], listen: '127.0.0.1:1', listeners: ['http://127.0.0.1:2'] }, {
    input: '127.0.0.1:1',
    field: 'listen',
    message: 'listen cannot be combined with listeners: give one HTTP listener with listen, or every listener with listeners, got "127.0.0.1:1"'
  })
  assertRejected(t, { backends: [BACKEND], listeners: ['http://127.0.0.1:9000', 'https://127.0.0.1:9000'] }, {
    input: 'https://127.0.0.1:9000',
    field: 'listeners',
    message: 'listeners[1] uses the same address as listeners[0]: each listener needs its own port, got "https://127.0.0.1:9000"'
  })
  // CLB-LISTEN pairing: HTTP/HTTPS listeners to http/https instances, TCP/SSL listeners to tcp/ssl instances.
  assertRejected(t, { backends: [BACKEND], listeners: ['http://127.0.0.1:0', 'tcp://127.0.0.1:0'] }, {
    input: 'tcp://127.0.0.1:0',
    field: 'listeners',
    message: 'listeners[1] has no instance it may route to: a TCP listener routes to TCP or SSL instances only (CLB\'s listener pairing), so give a tcp:// or ssl:// --backend, got "tcp://127.0.0.1:0"'
  })
  assertRejected(t, { backends: ['tcp://a:1'] }, {
    input: 'http://127.0.0.1:8080',
    field: 'listen',
    message: 'listen has no instance it may route to: an HTTP listener routes to HTTP or HTTPS instances only (CLB\'s listener pairing), so give an http:// or https:// --backend, got "http://127.0.0.1:8080"'
  })
  t.strictSame(resolveOptions({ listeners: ['tcp://127.0.0.1:0'] }, { requireBackends: false }).listeners, [{ protocol: 'tcp', host: '127.0.0.1', port: 0 }], 'without backends (the demo) no pairing is checked')
})

t.test('TLS, proxy protocol and request limits', async (t) => {
  const resolved = resolveOptions({ backends: [BACKEND], tlsCert: 'c.pem', tlsKey: 'k.pem', securityPolicy: 'ELBSecurityPolicy-TLS-1-2-2017-01', proxyProtocol: true, backendCa: 'ca.pem', maxRequestLineBytes: 256, maxHeaderLineBytes: 1048576, maxHeaderCount: 1 })
  t.strictSame([resolved.tlsCert, resolved.tlsKey, resolved.securityPolicy, resolved.proxyProtocol, resolved.backendCa, resolved.maxRequestLineBytes, resolved.maxHeaderLineBytes, resolved.maxHeaderCount], ['c.pem', 'k.pem', 'ELBSecurityPolicy-TLS-1-2-2017-01', true, 'ca.pem', 256, 1048576, 1])
  assertRejected(t, { backends: [BACKEND], tlsCert: 'c.pem' }, { input: 'c.pem', field: 'tlsCert', message: 'tlsCert must be given together with tlsKey (a certificate and its private key), got "c.pem"' })
  assertRejected(t, { backends: [BACKEND], tlsKey: 'k.pem' }, { input: 'k.pem', field: 'tlsKey', message: 'tlsKey must be given together with tlsCert (a certificate and its private key), got "k.pem"' })
  assertRejected(t, { backends: [BACKEND], tlsCert: '' }, { input: '', field: 'tlsCert', message: 'tlsCert must be the path of a PEM certificate file (given together with tlsKey), or null for a self-signed certificate generated at start, got ""' })
  assertRejected(t, { backends: [BACKEND], securityPolicy: 'ELBSecurityPolicy-2015-05' as never }, { input: 'ELBSecurityPolicy-2015-05', field: 'securityPolicy', message: 'securityPolicy must be one of CLB\'s predefined security policies: ELBSecurityPolicy-2016-08, ELBSecurityPolicy-TLS-1-2-2017-01, got "ELBSecurityPolicy-2015-05"' })
  assertRejected(t, { backends: [BACKEND], proxyProtocol: 'yes' as never }, { input: 'yes', field: 'proxyProtocol', message: 'proxyProtocol must be true or false, got "yes"' })
  assertRejected(t, { backends: [BACKEND], maxRequestLineBytes: 255 }, { input: 255, field: 'maxRequestLineBytes', message: 'maxRequestLineBytes must be an integer from 256 to 1048576 bytes (1 MiB), got "255"' })
  assertRejected(t, { backends: [BACKEND], maxHeaderCount: 0 }, { input: 0, field: 'maxHeaderCount', message: 'maxHeaderCount must be an integer from 1 to 10000, got "0"' })
})
