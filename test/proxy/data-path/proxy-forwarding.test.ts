/**
 * What the instance receives, byte for byte, and what the load balancer answers by itself to
 * requests it will not forward (clb-behavior.md §5.1, §5.2, §5.4, §2.5). Real client sockets, the
 * proxy, a raw `net` backend recording the exact request bytes.
 */
import http from 'node:http'
import type net from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { OPTION_LIMITS } from '../../../proxy/core/resolve-options.js'
import { REQUEST_CASES, caseBytes, type RequestCase, type RequestClient } from '../../helpers/corpus-cases.js'
import { ELB_NAME, FIXED_TIMESTAMP, startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

const BAD_REQUEST = 'HTTP/1.1 400 BAD_REQUEST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
const METHOD_NOT_ALLOWED = 'HTTP/1.1 405 METHOD_NOT_ALLOWED\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

/** The three headers CLB adds, as the last lines of the forwarded head (CLB-XFF). */
function xForwarded (f: ProxyFixture, forwardedFor = '127.0.0.1'): string {
  return `X-Forwarded-For: ${forwardedFor}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ${f.port}\r\n`
}

/** The access-log line, written out; `middle` is backend:port through sent_bytes. */
function logLine (clientPort: number, middle: string, request: string, userAgent: string): string {
  return `${FIXED_TIMESTAMP} ${ELB_NAME} 127.0.0.1:${clientPort} ${middle} ${request} ${userAgent} - -`
}

t.test('X-Forwarded-For is appended to, X-Forwarded-Proto and -Port are replaced (CLB-XFF, ELB-HOW)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]), reply([OK]))
  const withHeaders = await f.request('GET /xff HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n' +
    'X-Forwarded-Proto: https\r\nAccept: */*\r\nX-Forwarded-Port: 443\r\n\r\n')
  const without = await f.request('GET /plain HTTP/1.1\r\nHost: example.test\r\n\r\n')
  t.strictSame([withHeaders.bytes.toString('latin1'), without.bytes.toString('latin1')], [OK, OK])
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')), [
    // "the load balancer appends the client IP address to the existing header"; ", " as in the 2018 doc example.
    `GET /xff HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n${xForwarded(f, '10.0.0.1, 10.0.0.2, 127.0.0.1')}\r\n`,
    // "If the X-Forwarded-For request header is not included in the request, the load balancer creates one".
    `GET /plain HTTP/1.1\r\nHost: example.test\r\n${xForwarded(f)}\r\n`
  ])
  t.strictSame(f.logLines, [
    logLine(withHeaders.clientPort, `${f.backendField} 0 0 0 200 200 0 2`, `"GET http://example.test:${f.port}/xff HTTP/1.1"`, '"-"'),
    logLine(without.clientPort, `${f.backendField} 0 0 0 200 200 0 2`, `"GET http://example.test:${f.port}/plain HTTP/1.1"`, '"-"')
  ])
  await f.close(t)
})

t.test('hop-by-hop fields are not forwarded: Connection, the fields it names, Keep-Alive, Upgrade (RFC 9110 section 7.6.1)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]))
  const response = await f.request('GET /hop HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n' +
    'X-Hop: secret\r\nUpgrade: websocket\r\nX-Kept: yes\r\n\r\n')
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], [OK, false])
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')),
    [`GET /hop HTTP/1.1\r\nHost: example.test\r\nX-Kept: yes\r\n${xForwarded(f)}\r\n`])
  await f.close(t)
})

t.test('an HTTP/1.0 keep-alive client (ab -k) keeps its connection through the proxy, as it does with a node:http instance directly', async (t) => {
  // node:http answers an HTTP/1.0 request with keep-alive only when the request asks for it.
  const seen: Array<string | undefined> = []
  const instance = http.createServer((request, response) => {
    seen.push(request.headers.connection)
    response.sendDate = false
    response.writeHead(200, { 'Content-Length': '2' })
    response.end('ok')
  })
  instance.keepAliveTimeout = 120_000
  instance.listen(0, '127.0.0.1')
  await once(instance, 'listening')
  t.teardown(() => {
    instance.closeAllConnections()
    instance.close()
  })
  const port = (instance.address() as net.AddressInfo).port
  const f = await startProxyFixture(t, { backend: false, proxy: { backends: [`http://127.0.0.1:${port}`] } })
  const KEPT = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=120\r\n\r\nok'
  const client = await f.connect()
  const answers: string[] = []
  for (const path of ['/one', '/two', '/three']) {
    client.write(`GET ${path} HTTP/1.0\r\nHost: example.test\r\nConnection: Keep-Alive\r\n\r\n`)
    const response = await client.response()
    answers.push(`${response.bytes.toString('latin1')}|closed=${String(response.closedByProxy)}`)
    if (response.closedByProxy) break
  }
  t.strictSame(answers, [KEPT, KEPT, KEPT].map((bytes) => `${bytes}|closed=false`), 'three answers on one connection, none closing it')
  t.strictSame(seen, ['keep-alive', 'keep-alive', 'keep-alive'], 'the instance was asked to keep its connection')
  t.equal(f.proxyBackendSockets.length, 1, 'and did: one instance connection served the three')
  // Without keep-alive, an HTTP/1.0 client's connection ends after its answer (RFC 9112 section 9.3), and the instance is not asked.
  const plain = await f.request('GET /plain HTTP/1.0\r\nHost: example.test\r\n\r\n')
  t.strictSame([plain.bytes.toString('latin1'), plain.closedByProxy], ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok', true])
  t.equal(seen[3], undefined)
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('Expect: 100-continue is answered by the load balancer and removed (ELB-HOW)', async (t) => {
  // One Expect field, and two (one 100 Continue all the same, and neither is forwarded).
  for (const expect of ['Expect: 100-continue\r\n', 'Expect: 100-continue\r\nexpect: 100-Continue\r\n']) {
    const f = await startProxyFixture(t)
    f.replies.push(reply([OK]))
    const client = await f.connect()
    client.write(`POST /upload HTTP/1.1\r\nHost: example.test\r\n${expect}Content-Length: 5\r\n\r\n`)
    // "they respond to the client immediately with an HTTP 100 Continue": the body is sent only after it.
    await f.until(() => client.received.length >= CONTINUE.length)
    t.equal(client.received.toString('latin1'), CONTINUE, 'the 100 Continue, before any body byte was sent')
    client.write('hello')
    const response = await client.response()
    t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], [CONTINUE + OK, false], 'one 100 Continue, then the response')
    t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')),
      [`POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n${xForwarded(f)}\r\nhello`])
    // CLB-LOGS received_bytes: "includes the request body but not the headers".
    t.strictSame(f.logLines, [logLine(client.port, `${f.backendField} 0 0 0 200 200 5 2`, `"POST http://example.test:${f.port}/upload HTTP/1.1"`, '"-"')])
    client.end()
    await client.whenClosed()
    await f.close(t)
  }
})

t.test('an HTTP/1.0 request with Expect: 100-continue gets no 100 Continue (RFC 9110 sections 10.1.1 and 15.2)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]))
  const client = await f.connect()
  client.write('POST /upload HTTP/1.0\r\nHost: example.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n')
  // The head reaches the instance first: a 100 Continue, had one been sent, was sent with it and
  // comes before the response in the client's bytes.
  await f.backend.until(() => (f.backend.connections[0]?.received.length ?? 0) > 0)
  client.write('hello')
  const response = await client.response()
  t.strictSame([response.bytes.toString('latin1'), response.closedByProxy], [OK, true], 'the response alone, then the close an HTTP/1.0 request without keep-alive asks for')
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')),
    [`POST /upload HTTP/1.0\r\nHost: example.test\r\nContent-Length: 5\r\n${xForwarded(f)}\r\nhello`], 'Expect is removed all the same')
  t.strictSame(f.logLines, [logLine(client.port, `${f.backendField} 0 0 0 200 200 5 2`, `"POST http://example.test:${f.port}/upload HTTP/1.0"`, '"-"')])
  await client.whenClosed()
  await f.close(t)
})

t.test('request bodies are forwarded intact and counted in received_bytes', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]), reply([OK]))
  const chunkedBody = '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'
  const client = await f.connect()
  client.write('POST /cl HTTP/1.1\r\nHost: example.test\r\nContent-Length: 11\r\n\r\nhello')
  await f.backend.until(() => (f.backend.connections[0]?.received.length ?? 0) > 0)
  client.write(' world')
  const first = await client.response()
  client.write('POST /chunked HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n')
  client.write(' world\r\n0\r\n\r\n')
  const second = await client.response()
  t.strictSame([first.bytes.toString('latin1'), second.bytes.toString('latin1')], [OK, OK])
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')), [
    `POST /cl HTTP/1.1\r\nHost: example.test\r\nContent-Length: 11\r\n${xForwarded(f)}\r\nhello world`,
    `POST /chunked HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n${xForwarded(f)}\r\n${chunkedBody}`
  ])
  t.strictSame(f.logLines, [
    logLine(client.port, `${f.backendField} 0 0 0 200 200 11 2`, `"POST http://example.test:${f.port}/cl HTTP/1.1"`, '"-"'),
    // A chunked body is counted as framed on the wire: 26 bytes.
    logLine(client.port, `${f.backendField} 0 0 0 200 200 ${chunkedBody.length} 2`, `"POST http://example.test:${f.port}/chunked HTTP/1.1"`, '"-"')
  ])
  t.equal(f.backend.accepted, 1)
  client.end()
  await client.whenClosed()
  await f.close(t)
})

t.test('malformed requests get the exact 400 bytes and the connection closes; nothing reaches the instance (CLB-HTTPERR 400)', async (t) => {
  const f = await startProxyFixture(t)
  const cases: Array<[string, string, string]> = [
    // [what, request, the log's request field]. A request line that did not parse is logged "- - - " (docs/access-log.md choice 7).
    ['a space in the URL', 'GET /a b HTTP/1.1\r\nHost: example.test\r\n\r\n', '"- - - "'],
    ['a header line without a colon', 'GET /nc HTTP/1.1\r\nHost: example.test\r\nNoColonHere\r\n\r\n', `"GET http://127.0.0.1:${f.port}/nc HTTP/1.1"`],
    ['Content-Length that is not an integer', 'POST /cl HTTP/1.1\r\nHost: example.test\r\nContent-Length: abc\r\n\r\n', `"POST http://127.0.0.1:${f.port}/cl HTTP/1.1"`],
    ['Transfer-Encoding that does not end in chunked', 'POST /te HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: gzip\r\n\r\n', `"POST http://127.0.0.1:${f.port}/te HTTP/1.1"`],
    ['a bare CR in a header', 'GET /cr HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r2\r\n\r\n', `"GET http://127.0.0.1:${f.port}/cr HTTP/1.1"`],
    // CLB-HTTPERR: "The client used the HTTP CONNECT method, which is not supported by Elastic Load Balancing."
    ['CONNECT', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n', '"- - - "']
  ]
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const [what, raw, requestField] of cases) {
    const response = await f.request(raw)
    observed.push([what, response.bytes.toString('latin1'), response.closedByProxy, response.records[0]?.outcome, f.logLines.at(-1)])
    expected.push([what, BAD_REQUEST, true, 'bad-request', logLine(response.clientPort, '- -1 -1 -1 400 0 0 0', requestField, '"-"')])
  }
  t.strictSame(observed, expected)
  t.equal(f.logLines.length, cases.length, 'one line per request')
  t.equal(f.backend.accepted, 0, 'no backend connection')
  await f.close(t)
})

t.test('a method longer than 127 characters gets 405; 127 characters are forwarded (CLB-HTTPERR 405)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]))
  const longest = 'M'.repeat(127)
  const accepted = await f.request(`${longest} /m HTTP/1.1\r\nHost: example.test\r\n\r\n`)
  const tooLong = await f.request(`${'M'.repeat(128)} /m HTTP/1.1\r\nHost: example.test\r\n\r\n`)
  t.strictSame([accepted.bytes.toString('latin1'), accepted.closedByProxy], [OK, false])
  t.strictSame([tooLong.bytes.toString('latin1'), tooLong.closedByProxy, tooLong.records[0]?.outcome], [METHOD_NOT_ALLOWED, true, 'bad-request'])
  t.strictSame(f.backend.requests.map((r) => r.bytes.toString('latin1')), [`${longest} /m HTTP/1.1\r\nHost: example.test\r\n${xForwarded(f)}\r\n`])
  t.strictSame(f.logLines, [
    logLine(accepted.clientPort, `${f.backendField} 0 0 0 200 200 0 2`, `"${longest} http://example.test:${f.port}/m HTTP/1.1"`, '"-"'),
    logLine(tooLong.clientPort, '- -1 -1 -1 405 0 0 0', '"- - - "', '"-"')
  ])
  await f.close(t)
})

t.test('quotes and CR in client data cannot forge an access-log line (docs/access-log.md choice 4)', async (t) => {
  const f = await startProxyFixture(t)
  f.replies.push(reply([OK]))
  // A User-Agent and a target that try to close the quoted fields and start a line of their own.
  const forged = await f.request('GET /a"b HTTP/1.1\r\nHost: example.test\r\nUser-Agent: evil" 200 "x\\\r\n\r\n')
  // A CR inside the User-Agent: the request is refused (desync mitigation rates CR in a header Severe), its value never logged.
  const withCr = await f.request('GET /cr HTTP/1.1\r\nHost: example.test\r\nUser-Agent: a\rFORGED 2023-11-14T00:00:00.000000Z\r\n\r\n')
  t.strictSame([forged.bytes.toString('latin1'), withCr.bytes.toString('latin1')], [OK, BAD_REQUEST])
  t.strictSame(f.logLines, [
    logLine(forged.clientPort, `${f.backendField} 0 0 0 200 200 0 2`, `"GET http://example.test:${f.port}/a%22b HTTP/1.1"`, '"evil%22 200 %22x%5C"'),
    logLine(withCr.clientPort, '- -1 -1 -1 400 0 0 0', `"GET http://127.0.0.1:${f.port}/cr HTTP/1.1"`, '"-"')
  ], 'two requests, two lines, every quote, backslash and CR encoded or absent')
  await f.close(t)
})

/** What the client receives for one request of a corpus case (test/fixtures/README.md, `client`). */
const CLIENT_BYTES: Readonly<Record<RequestClient, string>> = {
  'elb-400': BAD_REQUEST,
  'elb-405': METHOD_NOT_ALLOWED,
  // The backend's answer to every forwarded request in this test.
  forwarded: OK
}

/** The `elb_status_code backend_status_code` pair of an access-log line (fields 8 and 9, CLB-LOGS). */
function statusPair (line: string): string {
  return line.split(' ').slice(7, 9).join(' ')
}

/** The limits a request case may set, each a proxy option of the same name (proxy/core/options.ts). */
const LIMIT_KEYS = ['maxHeadBytes', 'maxRequestLineBytes', 'maxHeaderLineBytes', 'maxHeaderCount'] as const
type CaseLimits = { -readonly [K in typeof LIMIT_KEYS[number]]?: number }

/** The limits a case sets, and only those (an absent one is the proxy's default, CLB_DEFAULTS). */
function limitsOf (c: RequestCase): CaseLimits {
  const limits: CaseLimits = {}
  for (const key of LIMIT_KEYS) {
    const value = c[key]
    if (value !== undefined) limits[key] = value
  }
  return limits
}

t.test('every case of the request table (test/fixtures/request-cases.yaml), whole, through real sockets: the client bytes and log pairs its data names', async (t) => {
  // A limit outside the proxy option's range (OPTION_LIMITS) cannot be reproduced end to end.
  const runnable = REQUEST_CASES.filter((c) => LIMIT_KEYS.every((key) => {
    const value = c[key]
    return value === undefined || (value >= OPTION_LIMITS[key].min && value <= OPTION_LIMITS[key].max)
  }))
  // One proxy per set of limits; a limit the case does not set is left to the proxy's default (CLB_DEFAULTS).
  const groups = new Map<string, { readonly limits: CaseLimits; readonly cases: RequestCase[] }>()
  for (const c of runnable) {
    const limits = limitsOf(c)
    const key = JSON.stringify(LIMIT_KEYS.map((k) => limits[k] ?? null))
    const group = groups.get(key) ?? { limits, cases: [] }
    group.cases.push(c)
    groups.set(key, group)
  }
  const observed: unknown[] = []
  const expected: unknown[] = []
  for (const { limits, cases } of groups.values()) {
    const f = await startProxyFixture(t, { proxy: { ...limits } })
    for (const c of cases) {
      const forwardedCount = c.client.filter((outcome) => outcome === 'forwarded').length
      for (let i = 0; i < forwardedCount; i++) f.replies.push(reply([OK]))
      const requestsBefore = f.backend.requests.length
      const linesBefore = f.logLines.length
      const client = await f.connect()
      client.write(caseBytes(c))
      // One exchange per request the proxy answers; the bytes after a refused request are never read.
      const response = await client.response(c.client.length)
      if (!response.closedByProxy) {
        client.end()
        await client.whenClosed()
      }
      const refused = c.client.at(-1) !== 'forwarded'
      observed.push({
        name: c.name,
        client: response.bytes.toString('latin1'),
        logPairs: f.logLines.slice(linesBefore).map(statusPair),
        requestsForwarded: f.backend.requests.length - requestsBefore,
        closedByProxy: refused ? response.closedByProxy : 'not asserted'
      })
      expected.push({
        name: c.name,
        client: c.client.map((outcome) => CLIENT_BYTES[outcome]).join(''),
        logPairs: c.log,
        requestsForwarded: forwardedCount,
        // CLB's 400 and 405 say "Connection: close" (proxy/data-path/synthetic-responses.ts).
        closedByProxy: refused ? true : 'not asserted'
      })
    }
    await f.close(t)
  }
  t.strictSame(observed, expected, `${runnable.length} of ${REQUEST_CASES.length} cases`)
})
