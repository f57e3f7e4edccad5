/**
 * CLB's health-check Target string (API-HC HealthCheck.Target): every accepted form, every
 * rejection with its exact message, and format() as the inverse of parse().
 */
import t from 'tap'
import {
  MAX_HTTP_TARGET_LENGTH,
  formatHealthCheckTarget,
  parseHealthCheckTarget,
  type HealthCheckTarget
} from '../../../proxy/core/health-check-target.js'

const EXPECTED = 'expected PROTOCOL:PORT/PATH (HTTP, HTTPS) or PROTOCOL:PORT (TCP, SSL), e.g. HTTP:80/health or TCP:5000'

interface Accepted {
  readonly text: string
  readonly target: HealthCheckTarget
  /** What format() gives back: the text itself unless the protocol was not in upper case. */
  readonly formatted?: string
}

const ACCEPTED: readonly Accepted[] = [
  // The three examples of API-HC, verbatim.
  { text: 'TCP:5000', target: { protocol: 'TCP', port: 5000, path: null } },
  { text: 'SSL:5000', target: { protocol: 'SSL', port: 5000, path: null } },
  { text: 'HTTP:80/weather/us/wa/seattle', target: { protocol: 'HTTP', port: 80, path: '/weather/us/wa/seattle' } },
  { text: 'HTTPS:443/health', target: { protocol: 'HTTPS', port: 443, path: '/health' } },
  { text: 'HTTP:1/', target: { protocol: 'HTTP', port: 1, path: '/' } },
  { text: 'TCP:65535', target: { protocol: 'TCP', port: 65535, path: null } },
  { text: 'HTTP:8080/status?full=1&x=%20', target: { protocol: 'HTTP', port: 8080, path: '/status?full=1&x=%20' } },
  // The local shorthand: no port, each instance's own port.
  { text: 'HTTP:/health', target: { protocol: 'HTTP', port: null, path: '/health' } },
  { text: 'HTTPS:/health', target: { protocol: 'HTTPS', port: null, path: '/health' } },
  { text: 'TCP', target: { protocol: 'TCP', port: null, path: null } },
  { text: 'SSL', target: { protocol: 'SSL', port: null, path: null } },
  // The protocol in any case, normalised to upper case.
  { text: 'http:80/index.html', target: { protocol: 'HTTP', port: 80, path: '/index.html' }, formatted: 'HTTP:80/index.html' },
  { text: 'Https:/x', target: { protocol: 'HTTPS', port: null, path: '/x' }, formatted: 'HTTPS:/x' },
  { text: 'tcp', target: { protocol: 'TCP', port: null, path: null }, formatted: 'TCP' },
  { text: 'sSl:993', target: { protocol: 'SSL', port: 993, path: null }, formatted: 'SSL:993' }
]

t.test('every accepted form parses to its target, and format() gives the text back', async (t) => {
  t.plan(ACCEPTED.length * 2)
  for (const { text, target, formatted } of ACCEPTED) {
    const parsed = parseHealthCheckTarget(text)
    t.strictSame(parsed, target, text)
    t.equal('error' in parsed ? parsed.error : formatHealthCheckTarget(parsed), formatted ?? text, `format(parse(${text}))`)
  }
})

t.test('the longest HTTP ping target (API-HC: 1024 characters or less) is accepted, one more is not', async (t) => {
  const prefix = 'HTTP:80/'
  const longest = prefix + 'a'.repeat(MAX_HTTP_TARGET_LENGTH - prefix.length)
  t.equal(longest.length, 1024)
  t.strictSame(parseHealthCheckTarget(longest), { protocol: 'HTTP', port: 80, path: longest.slice('HTTP:80'.length) })
  const tooLong = longest + 'a'
  t.strictSame(parseHealthCheckTarget(tooLong), { error: 'an HTTP ping target is at most 1024 characters (this one has 1025)' })
  // A 1025-character path, as the brief for this parser puts it.
  t.strictSame(parseHealthCheckTarget(`HTTPS:/${'p'.repeat(1024)}`), { error: 'an HTTP ping target is at most 1024 characters (this one has 1031)' })
})

interface Rejected {
  readonly text: string
  readonly error: string
}

const REJECTED: readonly Rejected[] = [
  { text: '', error: EXPECTED },
  { text: 'FTP:21', error: `unknown protocol "FTP": ${EXPECTED}` },
  { text: 'UDP', error: `unknown protocol "UDP": ${EXPECTED}` },
  { text: ':80/health', error: `unknown protocol "": ${EXPECTED}` },
  { text: 'HTTP/health', error: EXPECTED },
  { text: ' HTTP:80/health', error: `unknown protocol " HTTP": ${EXPECTED}` },
  // API-HC: "The range of valid ports is one (1) through 65535."
  { text: 'TCP:0', error: `port "0" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'TCP:65536', error: `port "65536" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'TCP:abc', error: `port "abc" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'TCP:', error: `port "" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'TCP:-1', error: `port "-1" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'TCP:123456', error: `port "123456" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'HTTP:0/health', error: `port "0" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'HTTP:65536/health', error: `port "65536" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'HTTP:abc/health', error: `port "abc" is not a number from 1 to 65535: ${EXPECTED}` },
  { text: 'HTTPS: 443/health', error: `port " 443" is not a number from 1 to 65535: ${EXPECTED}` },
  // API-HC: "For HTTP/HTTPS, you must include a ping path in the string."
  { text: 'HTTP:80', error: 'HTTP needs a path starting with "/": expected HTTP:PORT/PATH, e.g. HTTP:80/health' },
  { text: 'HTTP', error: 'HTTP needs a path starting with "/": expected HTTP:PORT/PATH, e.g. HTTP:80/health' },
  { text: 'https:', error: 'HTTPS needs a path starting with "/": expected HTTPS:PORT/PATH, e.g. HTTPS:80/health' },
  // TCP and SSL take a port only.
  { text: 'TCP:5000/health', error: 'TCP takes no path: expected TCP:PORT, e.g. TCP:5000' },
  { text: 'SSL:/health', error: 'SSL takes no path: expected SSL:PORT, e.g. SSL:5000' },
  // The path goes on a request line: printable ASCII, no space.
  { text: 'HTTP:80/my health', error: 'the path must be printable ASCII without spaces: character 4 of "/my health" is not' },
  { text: 'HTTP:80/a\tb', error: 'the path must be printable ASCII without spaces: character 3 of "/a\\u0009b" is not' },
  { text: 'HTTP:80/x\r\nHost: evil', error: 'the path must be printable ASCII without spaces: character 3 of "/x\\u000d\\u000aHost: evil" is not' },
  { text: 'HTTP:/caf\u00e9', error: 'the path must be printable ASCII without spaces: character 5 of "/caf\\u00e9" is not' }
]

t.test('every rejection says what is expected', async (t) => {
  t.plan(REJECTED.length)
  for (const { text, error } of REJECTED) t.strictSame(parseHealthCheckTarget(text), { error }, JSON.stringify(text))
})

t.test('a long bad path is cut in the message', async (t) => {
  const path = `/${'a'.repeat(70)} b`
  t.strictSame(parseHealthCheckTarget(`HTTP:80${path}`), {
    error: `the path must be printable ASCII without spaces: character 72 of "${path.slice(0, 60)}..." is not`
  })
})

t.test('format() of a built target', async (t) => {
  t.equal(formatHealthCheckTarget({ protocol: 'HTTPS', port: 8443, path: '/ping' }), 'HTTPS:8443/ping')
  t.equal(formatHealthCheckTarget({ protocol: 'SSL', port: null, path: null }), 'SSL')
  t.equal(formatHealthCheckTarget({ protocol: 'TCP', port: 22, path: null }), 'TCP:22')
  t.equal(formatHealthCheckTarget({ protocol: 'HTTP', port: null, path: null }), 'HTTP:/', 'an HTTP target without a path pings /')
})
