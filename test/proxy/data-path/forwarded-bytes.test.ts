/**
 * A request the desync classifier lets through reaches the instance byte for byte as the client
 * sent it, apart from the changes CLB documents for the head it forwards
 * (proxy/data-path/forwarded-head.ts; ELB-HOW, CLB-XFF; docs/clb-choices.md, "Requests"):
 *
 * 1. X-Forwarded-For: the client address is appended to the client's values ("the load balancer
 *    appends the client IP address to the existing header"), in one field after the others;
 * 2. X-Forwarded-Proto and X-Forwarded-Port: the client's are removed and the listener's written after it;
 * 3. hop-by-hop fields are removed: Connection and the fields it names, Keep-Alive,
 *    Proxy-Connection, TE, Upgrade (RFC 9110 §7.6.1);
 * 4. Expect is answered by the load balancer (100 Continue) and removed;
 * 5. Host with the listener address is added when the request has none (HTTP/1.0);
 * 6. obs-fold is unfolded to a single space (RFC 9112 §5.2);
 * 7. an HTTP/1.0 request whose Connection lists keep-alive gets the load balancer's own
 *    `Connection: keep-alive`, after the X-Forwarded fields (RFC 9112 §9.3).
 *
 * The expected bytes are computed here from the bytes sent, by those rules alone (no function of
 * the proxy is asked). Every other line, the request line and the body must arrive unchanged. A
 * real `net` backend (test/helpers/raw-backend.ts) records the raw bytes it received.
 */
import t from 'tap'
import { sendLive } from '../../helpers/desync-live.js'
import { startProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'

/** The addresses the forwarded head names: the fixture's client and listener are on 127.0.0.1. */
interface Addresses {
  readonly client: string
  readonly listener: string
  readonly listenerPort: number
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade']

/** RFC 9110 §5.6.3: OWS is SP and HTAB. */
function trimOws (text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '')
}

interface FieldLine {
  /** The line as sent (an obs-fold continuation already joined to it with one SP, rule 6). */
  readonly line: string
  readonly name: string
  readonly value: string
}

/**
 * The forwarded request, computed from the sent bytes by rules 1-6. `reserialize`: every field
 * line kept is written `name: value`, its value without the whitespace around it (not one of the
 * rules 1-6: docs/clb-choices.md, Requests; see FIELD_LINE_REWRITES).
 */
function expectedForwarded (sent: string, at: Addresses, reserialize: boolean): string {
  const headEnd = sent.indexOf('\r\n\r\n')
  const lines = sent.slice(0, headEnd).split('\r\n')
  const body = sent.slice(headEnd + 4)
  const requestLine = lines[0] as string
  const fields: FieldLine[] = []
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // Rule 6: the continuation joins the line before it with a single SP.
      const previous = fields.pop() as FieldLine
      fields.push({ line: `${previous.line} ${trimOws(line)}`, name: previous.name, value: `${trimOws(previous.value)} ${trimOws(line)}` })
      continue
    }
    const colon = line.indexOf(':')
    fields.push({ line, name: line.slice(0, colon), value: line.slice(colon + 1) })
  }
  const named = new Set(fields.filter((f) => f.name.toLowerCase() === 'connection')
    .flatMap((f) => f.value.split(',').map((item) => trimOws(item).toLowerCase())))
  const forwardedFor: string[] = []
  const kept: string[] = []
  for (const f of fields) {
    const name = f.name.toLowerCase()
    if (HOP_BY_HOP.includes(name) || named.has(name)) continue // rule 3
    if (name === 'expect') continue // rule 4
    if (name === 'x-forwarded-proto' || name === 'x-forwarded-port') continue // rule 2
    if (name === 'x-forwarded-for') { // rule 1
      if (trimOws(f.value) !== '') forwardedFor.push(trimOws(f.value))
      continue
    }
    kept.push(reserialize ? `${f.name}: ${trimOws(f.value)}` : f.line)
  }
  if (!fields.some((f) => f.name.toLowerCase() === 'host')) kept.push(`Host: ${at.listener}`) // rule 5
  kept.push(`X-Forwarded-For: ${[...forwardedFor, at.client].join(', ')}`, 'X-Forwarded-Proto: http', `X-Forwarded-Port: ${at.listenerPort}`)
  if (requestLine.endsWith(' HTTP/1.0') && named.has('keep-alive')) kept.push('Connection: keep-alive') // rule 7
  return `${requestLine}\r\n${kept.map((line) => `${line}\r\n`).join('')}\r\n${body}`
}

interface ForwardCase {
  readonly name: string
  /** The request, head and body, as latin1 text. */
  readonly sent: string
  /** What the client receives: the backend's answer relayed (after the load balancer's 100 Continue for Expect). */
  readonly client: string
  /** The proxy closes the client connection after the response (HTTP/1.0 without keep-alive). */
  readonly closes: boolean
}

const BINARY_BODY = Buffer.concat([Buffer.from('GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]).toString('latin1')

const CASES: readonly ForwardCase[] = [
  {
    name: 'GET with a query string',
    sent: 'GET /search?q=caf%C3%A9&tags=a,b&empty=&flag;x=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'POST with a Content-Length body: every byte value, and bytes that look like a request',
    sent: `POST /orders HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BINARY_BODY.length}\r\n\r\n${BINARY_BODY}`,
    client: OK,
    closes: false
  },
  {
    name: 'chunked body with chunk extensions and trailer fields',
    sent: 'POST /upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' +
      '5;name=value\r\nhello\r\n7;ext;q="a b"\r\n, world\r\nA\r\n0123456789\r\n0;last=1\r\nX-Checksum: 12ab\r\nX-Other: t\r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'header names in any case, values with inner tabs and spaces',
    sent: 'GET /case HTTP/1.1\r\nhOsT: shop.example\r\nx-lower: a\r\nX-UPPER: B\r\nX-Tab: a\tb  c\r\nACCEPT-language: en\r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'odd but valid whitespace around values (RFC 9110 §5.6.3 OWS)',
    sent: 'GET /spacing HTTP/1.1\r\nHost:shop.example\r\nX-No-Space:value\r\nX-Many:    spaced   \r\nX-Tabs:\t\ttabbed\t\r\nX-Empty:\r\nX-Only-Spaces:   \r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'several fields of the same name, X-Forwarded-For among them',
    sent: 'GET /same HTTP/1.1\r\nHost: shop.example\r\nAccept: text/html\r\nX-Forwarded-For: 203.0.113.7\r\nCookie: a=1\r\n' +
      'Accept: application/json\r\nX-Forwarded-For: 198.51.100.1, 198.51.100.2\r\nCookie: b=2\r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'absolute-form target (RFC 9112 §3.2.2)',
    sent: 'GET http://shop.example/absolute?x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'HTTP/1.0 without Host: the listener address is added, and the client connection closes after',
    sent: 'GET /legacy HTTP/1.0\r\nUser-Agent: old/1.0\r\nAccept: */*\r\n\r\n',
    client: OK,
    closes: true
  },
  {
    name: 'HTTP/1.0 with Host and Connection: keep-alive: the client\'s Connection is replaced by the load balancer\'s keep-alive, the client connection stays',
    sent: 'GET /kept HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive\r\n\r\n',
    client: OK,
    closes: false
  },
  {
    name: 'hop-by-hop fields, Expect, and the client\'s X-Forwarded-Proto and -Port',
    sent: 'POST /hop HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Hop-A, x-hop-b\r\nKeep-Alive: timeout=5\r\nX-Hop-A: 1\r\n' +
      'X-HOP-B: 2\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n' +
      'Expect: 100-continue\r\nContent-Length: 3\r\nX-Kept: yes\r\n\r\nabc',
    client: CONTINUE + OK,
    closes: false
  },
  {
    name: 'obs-fold in Content-Type (the one field where HDG rates it Compliant): unfolded',
    sent: 'POST /form HTTP/1.1\r\nHost: shop.example\r\nContent-Type: multipart/form-data;\r\n boundary=xyz\r\nContent-Length: 4\r\n\r\nbody',
    client: OK,
    closes: false
  }
]

/**
 * The cases where the field-line rewrite (docs/clb-choices.md, Requests: "rewritten as `name: value`")
 * changes bytes beyond rules 1-6, with what changes. Compared both ways: a listed case must differ
 * from the expectation of rules 1-6, an unlisted one must not.
 */
const FIELD_LINE_REWRITES: Readonly<Record<string, string>> = {
  'odd but valid whitespace around values (RFC 9110 §5.6.3 OWS)': 'every forwarded field line is rewritten "name: value": the whitespace around the value is dropped and one SP is written after the colon, even before an empty value ("X-Empty:" arrives as "X-Empty: "). The same field values (RFC 9110 §5.5: OWS is not part of the value), other bytes; docs/clb-choices.md lists it'
}

t.test('a request the classifier lets through reaches the instance byte for byte, apart from the documented changes', async (t) => {
  const f = await startProxyFixture(t, { respond: () => reply([OK]) })
  const at: Addresses = { client: '127.0.0.1', listener: '127.0.0.1', listenerPort: f.port }
  const rewritten: string[] = []
  for (const c of CASES) {
    const sent = Buffer.from(c.sent, 'latin1')
    const live = await sendLive(f, [sent])
    const documented = expectedForwarded(c.sent, at, false)
    const normalized = expectedForwarded(c.sent, at, true)
    const received = live.backendRequests.map((r) => r.bytes.toString('latin1'))
    if (received[0] !== documented && received[0] === normalized) rewritten.push(c.name)
    t.strictSame({
      tier: live.record.desync?.tier,
      outcome: live.record.outcome,
      client: live.bytes.toString('latin1'),
      closedByProxy: live.closedByProxy,
      received,
      strayBackendBytes: live.backendBytes - received.reduce((sum, r) => sum + r.length, 0)
    }, {
      tier: 'Compliant',
      outcome: 'relayed',
      client: c.client,
      closedByProxy: c.closes,
      received: [c.name in FIELD_LINE_REWRITES ? normalized : documented],
      strayBackendBytes: 0
    }, c.name)
  }
  t.strictSame(rewritten, Object.keys(FIELD_LINE_REWRITES), 'the field-line rewrite shows exactly in the listed cases')
  for (const name of Object.keys(FIELD_LINE_REWRITES)) {
    const c = CASES.find((candidate) => candidate.name === name)
    t.not(c === undefined ? '' : expectedForwarded(c.sent, at, true), c === undefined ? '' : expectedForwarded(c.sent, at, false), `${name}: the rewrite changes bytes`)
  }
  t.equal(f.backend.requests.length, CASES.length, 'one request at the instance per case')
  await f.close(t)
})

t.test('the expectation itself: the documented changes, worked by hand on one request', async (t) => {
  // A check of expectedForwarded() against bytes written out, so the rules above are not only tested against themselves.
  const sent = 'POST /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-A\r\nX-A: 1\r\nX-Forwarded-For: 10.0.0.1\r\nExpect: 100-continue\r\n' +
    'X-Forwarded-Port: 1\r\nContent-Type: a;\r\n\tb\r\nContent-Length: 2\r\n\r\nhi'
  t.equal(expectedForwarded(sent, { client: '127.0.0.1', listener: '127.0.0.1', listenerPort: 8080 }, false),
    'POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: a; b\r\nContent-Length: 2\r\n' +
    'X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 8080\r\n\r\nhi')
  t.equal(expectedForwarded('GET / HTTP/1.0\r\nX-B:  b \r\n\r\n', { client: '127.0.0.1', listener: '127.0.0.1', listenerPort: 80 }, true),
    'GET / HTTP/1.0\r\nX-B: b\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n\r\n')
  t.equal(expectedForwarded('GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive, X-A\r\nX-A: 1\r\n\r\n', { client: '127.0.0.1', listener: '127.0.0.1', listenerPort: 80 }, false),
    'GET / HTTP/1.0\r\nHost: h\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\nConnection: keep-alive\r\n\r\n')
})
