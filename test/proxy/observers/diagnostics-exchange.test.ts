/**
 * The diagnostic of each ELB-generated answer (proxy/observers/diagnostics.ts) and its terminal rendering
 * (proxy/observers/diagnostics-text.ts): it names the capture file and the replay command, the instance and
 * the system error of a 503, the instance of a 504; it stays under 4 KiB whatever the backend
 * sent; and on a terminal no control byte or 8-bit byte from a client or a backend is printed raw.
 */
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { Defect, DefectCode } from '../../../validators/defects.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { MAX_CODES_LISTED, subscribeDiagnostics, subscribeExchangeDiagnostics } from '../../../proxy/observers/diagnostics.js'
import { formatDiagnosticText, textLogger } from '../../../proxy/observers/diagnostics-text.js'
import { ClbProxyEvents, type ExchangeRecord } from '../../../proxy/core/events.js'
import { sampleExchangeRecord } from '../../helpers/records.js'

// 2026-11-25T08:30:40.212590Z, the frozen time of every request here.
const FROZEN_MICROS = Date.UTC(2026, 10, 25, 8, 30, 40) * 1000 + 212590
const frozenClock = { nowMicros: () => FROZEN_MICROS }
const OPTIONS = { idleTimeoutSeconds: 60, keepaliveRace: 'detect', profile: 'clb' } as const

/** A pino logger whose lines are kept, raw and parsed. `plain` leaves out pid, hostname and time. */
function memoryLogger (plain = true): { logger: pino.Logger; lines: string[]; records: Array<Record<string, unknown>> } {
  const lines: string[] = []
  const records: Array<Record<string, unknown>> = []
  const write = (line: string): void => {
    lines.push(line)
    records.push(JSON.parse(line) as Record<string, unknown>)
  }
  const logger = plain ? pino({ level: 'info', base: undefined, timestamp: false }, { write }) : pino({ level: 'info', name: 'clb-proxy' }, { write })
  return { logger, lines, records }
}

/** The sample record with the target these tests print. */
function exchangeRecord (overrides: Parameters<typeof sampleExchangeRecord>[0] = {}): ExchangeRecord {
  return sampleExchangeRecord({ ...overrides, log: { target: '/orders', ...overrides.log } })
}

async function listeningServer (t: Test, onConnection: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined)
    onConnection(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as net.AddressInfo).port
}

t.test('a rejected response: the diagnostic names the capture file and its replay command, and that file is written', async (t) => {
  const port = await listeningServer(t, (socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello'))
  })
  const captureDir = t.testdir()
  const { logger, records } = memoryLogger()
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${port}`], accessLog: null, captureDir },
    { logger, clock: frozenClock })
  const response = await fetch(`${proxy.url}/orders?id=7`)
  t.equal(response.status, 502)
  await proxy.close()
  const file = join(captureDir, '2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-1.capture')
  t.strictSame(records, [{
    level: 40,
    outcome: 'rejected',
    elbStatus: 502,
    request: 'GET /orders?id=7',
    backend: `127.0.0.1:${port}`,
    instance: `127.0.0.1:${port}`,
    backendError: null,
    capture: file,
    replay: `clb-proxy replay ${file}`,
    defect: 'CL_NOT_INTEGER',
    offset: 33,
    source: 'aws-documented',
    excerpt: 'HTTP/1.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\nhello',
    excerptOffset: 0,
    otherDefects: [],
    msg: '502 from the load balancer: Content-Length value "abc" is not an integer'
  }])
  t.strictSame(await readdir(captureDir), ['2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-1.capture'], 'the file the diagnostic named')
})

t.test('a second CRLF after the headers: the 502 on too many body bytes says the body starts with an empty line, whole or split', async (t) => {
  // KC-502 "more than one CRLF between each header": the head ends at the first blank line, so the
  // body read is "\r\nhel" and "lo" overruns Content-Length 5 (BODY_EXCEEDS_CL at byte 69).
  const head = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n'
  for (const [name, pieces] of [
    ['whole', [`${head}\r\nhello`]],
    ['split before the extra CRLF and inside it', [head, '\r', '\nhello']],
    ['without the extra CRLF (no note)', [`${head}hello world`]]
  ] as const) {
    await t.test(name, async (t) => {
      const port = await listeningServer(t, (socket) => {
        socket.once('data', () => {
          // Each piece in its own write, flushed before the next (setImmediate: no timing, only ordering).
          const next = (index: number): void => {
            if (index === pieces.length) return
            socket.write(pieces[index] as string, () => setImmediate(() => next(index + 1)))
          }
          next(0)
        })
      })
      const { logger, records } = memoryLogger()
      const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${port}`], accessLog: null }, { logger, clock: frozenClock })
      const response = await fetch(`${proxy.url}/orders`)
      t.equal(response.status, 502)
      await proxy.close()
      const messages = records.map((record) => record.msg)
      if (name.startsWith('without')) {
        t.strictSame(messages, ['502 from the load balancer: 6 more byte(s) arrived after the 5 bytes of Content-Length'])
        return
      }
      t.strictSame(messages, ['502 from the load balancer: 2 more byte(s) arrived after the 5 bytes of Content-Length; the body starts with an ' +
        'empty line (CRLF at byte 64, right after the blank line that ended the head): more than one CRLF after the headers (KC-502) ' +
        'shifts the body past its Content-Length'])
      t.equal(records[0]?.offset, 69)
    })
  }
})

t.test('a capture path with spaces or control characters is quoted for the shell, and escaped on a terminal', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const files = ['/tmp/my captures/x.capture', '/tmp/caps\x1b[31m/x.capture']
  let next = 0
  const unsubscribe = subscribeExchangeDiagnostics(events, logger, { ...OPTIONS, captureFileFor: () => files[next++] ?? null })
  events.emit('exchange', exchangeRecord())
  events.emit('exchange', exchangeRecord())
  events.emit('exchange', exchangeRecord())
  unsubscribe()
  t.strictSame(records.map((record) => [record.capture, record.replay]), [
    ['/tmp/my captures/x.capture', "clb-proxy replay '/tmp/my captures/x.capture'"],
    ['/tmp/caps\x1b[31m/x.capture', "clb-proxy replay $'/tmp/caps\\x1b[31m/x.capture'"],
    [undefined, undefined]
  ], 'no capture, no capture field')
  t.equal(formatDiagnosticText({ ...records[1], time: Date.UTC(2026, 10, 25, 9, 30, 40) }),
    '09:30:40 502 GET /orders from 127.0.0.1:8081: CL_NOT_INTEGER at byte 33 (aws-documented)\n' +
    '         Content-Length value "abc" is not an integer\n' +
    '         bytes 0-: HTTP/1.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\nhello\n' +
    '         capture: /tmp/caps\\x1b[31m/x.capture\n' +
    "         replay: clb-proxy replay $'/tmp/caps\\x1b[31m/x.capture'\n")
})

t.test('503: a refused connection names the instance and ECONNREFUSED (a real proxy, a port nothing listens on)', async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
  const { logger, records } = memoryLogger()
  const proxy = await startClbProxy({ listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${closedPort}`], accessLog: null, captureDir: null },
    { logger, clock: frozenClock })
  const response = await fetch(`${proxy.url}/health`)
  t.equal(response.status, 503)
  await proxy.close()
  const [instanceId] = proxy.instances().map((instance) => instance.InstanceId)
  t.strictSame(records, [{
    // Said once per instance (diagnostics-connections.ts), before the 503 of the request that met it.
    level: 40,
    notice: 'backend-connection-error',
    instanceId,
    instance: `127.0.0.1:${closedPort}`,
    error: 'ECONNREFUSED',
    count: 1,
    msg: `connection to 127.0.0.1:${closedPort} refused (ECONNREFUSED): nothing listens on that address. A request whose connection is refused or ` +
      'unreachable is retried on another instance in service when there is one; any other failure the load balancer answers itself, ' +
      'and its own line says how (CLB-CW BackendConnectionErrors counts each failed connection). Without a health ' +
      'check it stays in service and every request routed to it is tried there first: --health-check (healthCheck) takes it out of service while it fails'
  }, {
    level: 40,
    outcome: 'backend-unreachable',
    elbStatus: 503,
    request: 'GET /health',
    backend: null,
    instance: `127.0.0.1:${closedPort}`,
    backendError: 'ECONNREFUSED',
    msg: `503 from the load balancer: connection to 127.0.0.1:${closedPort} refused (ECONNREFUSED): nothing listens on that address`
  }])
})

t.test('503 for a host name that does not resolve, for no instance; 504s name the instance', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeExchangeDiagnostics(events, logger, OPTIONS)
  const unreachable = { outcome: 'backend-unreachable', primaryDefect: null, defects: [], defectCounts: {}, responseBytes: null, log: { backend: null, elbStatusCode: 503, backendStatusCode: 'no-response' } } as const
  events.emit('exchange', exchangeRecord({ ...unreachable, instance: 'orders.invalid:3000', backendError: 'ENOTFOUND' }))
  events.emit('exchange', exchangeRecord({ ...unreachable, instance: 'orders:3000', backendError: 'EAI_AGAIN' }))
  events.emit('exchange', exchangeRecord({ ...unreachable, instance: '10.0.0.9:3000', backendError: 'EHOSTUNREACH' }))
  events.emit('exchange', exchangeRecord({ ...unreachable, instance: null }))
  const timeout = { outcome: 'backend-timeout', primaryDefect: null, defects: [], defectCounts: {}, log: { backend: null, elbStatusCode: 504, backendStatusCode: 'no-response' } } as const
  events.emit('exchange', exchangeRecord({ ...timeout, responseBytes: null }))
  events.emit('exchange', exchangeRecord({ ...timeout, responseBytes: Buffer.from('HTTP/1.1 200 OK\r\n') }))
  const empty: Defect = { code: 'EMPTY_RESPONSE', offset: 0, message: 'the connection closed before any response byte' }
  events.emit('exchange', exchangeRecord({
    outcome: 'backend-closed', primaryDefect: empty, defects: [empty], defectCounts: { EMPTY_RESPONSE: 1 }, responseBytes: null,
    backendError: 'ECONNRESET', log: { backend: null, elbStatusCode: 504, backendStatusCode: 'no-response' }
  }))
  unsubscribe()
  t.strictSame(records.map((record) => record.msg), [
    '503 from the load balancer: the host name of orders.invalid:3000 was not found (ENOTFOUND)',
    '503 from the load balancer: the host name of orders:3000 could not be resolved right now (EAI_AGAIN)',
    '503 from the load balancer: 10.0.0.9:3000 is unreachable (EHOSTUNREACH): no route to the host',
    '503 from the load balancer: no instance is registered',
    '504 from the load balancer: the instance 127.0.0.1:8081 did not answer within the 60 s idle timeout',
    '504 from the load balancer: the instance 127.0.0.1:8081 did not answer within the 60 s idle timeout (it sent 17 byte(s) of a response, then nothing)',
    '504 from the load balancer: the connection closed before any response byte (instance 127.0.0.1:8081, ECONNRESET)'
  ])
  // CLB-HTTPERR 504 cause 1, an application slower than the idle timeout: the fix is said; the other answers name no fix.
  const timeoutFix = 'have the instance answer (or start its response) within the 60 s idle timeout, or raise the idle timeout above the ' +
    'slowest request (--idle-timeout here; ConnectionSettings.IdleTimeout on the load balancer, up to 4000 s)'
  t.strictSame(records.map((record) => record.fix), [undefined, undefined, undefined, undefined, timeoutFix, timeoutFix, undefined])
  t.equal(formatDiagnosticText({ ...records[4], time: Date.UTC(2026, 10, 25, 9, 30, 40) }),
    '09:30:40 504 GET /orders (instance 127.0.0.1:8081)\n' +
    '         the instance 127.0.0.1:8081 did not answer within the 60 s idle timeout\n' +
    `         fix: ${timeoutFix}\n`)
  t.equal(formatDiagnosticText({ ...records[0], time: Date.UTC(2026, 10, 25, 9, 30, 40) }),
    '09:30:40 503 GET /orders (instance orders.invalid:3000)\n' +
    '         the host name of orders.invalid:3000 was not found (ENOTFOUND)\n')
})

t.test('a record stays under 4 KiB: 100000 occurrences of a code, every code, 1 MiB messages and target', async (t) => {
  const { logger, lines, records } = memoryLogger(false)
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeExchangeDiagnostics(events, logger, { ...OPTIONS, captureFileFor: () => `/tmp/clb-proxy-captures/${'c'.repeat(100)}.capture` })
  const huge = 'x'.repeat(1024 * 1024)
  const primary: Defect = { code: 'CL_NOT_INTEGER', offset: 100, message: `Content-Length value "${huge}" is not an integer` }
  const bareLf: Defect[] = Array.from({ length: 100000 }, (_, n) => ({ code: 'LINE_BARE_LF', offset: 51 + 12 * n, message: `line ends in LF without CR ${huge}` }))
  const otherCodes: DefectCode[] = ['HDR_OBS_FOLD', 'HDR_NAME_INVALID', 'HDR_VALUE_CTL', 'CL_DUP_SAME', 'STATUS_REASON_CTL',
    'TE_AND_CL', 'VERSION_UNSUPPORTED', 'STATUS_LINE_EXTRA_SPACES', 'HDR_NAME_WHITESPACE', 'BODY_EXCEEDS_CL']
  const others: Defect[] = otherCodes.map((code, n) => ({ code, offset: 2000 + n, message: huge }))
  events.emit('exchange', exchangeRecord({
    log: { target: `/${huge}`, method: 'GET' },
    primaryDefect: primary,
    defects: [...bareLf, primary, ...others],
    defectCounts: { LINE_BARE_LF: 100000, CL_NOT_INTEGER: 1, ...Object.fromEntries(otherCodes.map((code) => [code, 2])) },
    responseBytes: Buffer.alloc(2 * 1024 * 1024, 0x1b)
  }))
  // The same for a relayed response: every code a warning, with its message.
  events.emit('exchange', exchangeRecord({
    outcome: 'relayed', elbGenerated: false, primaryDefect: null,
    log: { target: `/${huge}`, elbStatusCode: 200, backendStatusCode: 200 },
    defects: [...bareLf, ...others],
    defectCounts: { LINE_BARE_LF: 100000, ...Object.fromEntries(otherCodes.map((code) => [code, 2])) }
  }))
  unsubscribe()
  t.equal(lines.length, 2)
  for (const line of lines) t.ok(Buffer.byteLength(line) < 4096, `${Buffer.byteLength(line)} bytes`)
  const [rejected, relayed] = records as [Record<string, unknown>, Record<string, unknown>]
  t.equal(MAX_CODES_LISTED, 8)
  t.strictSame(rejected.otherDefects, [
    { code: 'LINE_BARE_LF', count: 100000, firstOffsets: [51, 63, 75] },
    ...otherCodes.slice(0, 7).map((code, n) => ({ code, count: 2, firstOffsets: [2000 + n] }))
  ])
  t.equal(rejected.moreDefectCodes, 3)
  t.equal(rejected.request, `GET /${'x'.repeat(195)}...(1048381 more characters)`)
  t.equal(rejected.msg, `502 from the load balancer: Content-Length value "${'x'.repeat(218)}...(1048377 more characters)`)
  t.equal((rejected.excerpt as string).length, 80 * 4, '40 bytes each side of the offset, escaped')
  t.equal(relayed.msg, '200 relayed with 100020 warning(s)')
  t.strictSame((relayed.warnings as Array<Record<string, unknown>>)[0], {
    code: 'LINE_BARE_LF', count: 100000, firstOffsets: [51, 63, 75], message: `line ends in LF without CR ${'x'.repeat(93)}...(1048483 more characters)`
  })
  t.equal(formatDiagnosticText(rejected).split('\n')[3], `${' '.repeat(9)}also LINE_BARE_LF x 100000, first at offsets 51, 63, 75`)
})

t.test('on a terminal, bytes from a client or a backend never reach it raw: ESC, OSC, a bare CR, 8-bit bytes', async (t) => {
  const hostile = {
    time: Date.UTC(2026, 10, 25, 9, 30, 40),
    outcome: 'rejected',
    elbStatus: 502,
    // As a record from elsewhere could carry it: raw, not escaped at its source.
    request: 'GET /\x1b]0;pwned\x07\rFAKE 200 OK\x9b2J\xff',
    backend: '127.0.0.1:3000',
    defect: 'HDR_VALUE_CTL',
    offset: 20,
    source: 'peer\x1b[31m',
    excerpt: 'X-Evil: \x1b[2J\r\n',
    otherDefects: [{ code: 'LINE_BARE_LF\r', count: 2, firstOffsets: [1, 2] }],
    warnings: [{ code: 'X', offset: 1, message: 'bad \x1b[5m value' }],
    err: { message: 'open \x1b[8m failed' },
    msg: '502 from the load balancer: header value "\x1b]8;;http://evil\x07click\x1b]8;;\x07" has a control byte'
  }
  const text = formatDiagnosticText(hostile)
  t.equal(text,
    '09:30:40 502 GET /\\x1b]0;pwned\\x07\\rFAKE 200 OK\\x9b2J\\xff from 127.0.0.1:3000: HDR_VALUE_CTL at byte 20 (peer\\x1b[31m)\n' +
    '         header value "\\x1b]8;;http://evil\\x07click\\x1b]8;;\\x07" has a control byte\n' +
    '         bytes 0-: X-Evil: \\x1b[2J\\r\\n\n' +
    '         also LINE_BARE_LF\\r x 2, first at offsets 1, 2\n' +
    '         warning X at byte 1: bad \\x1b[5m value\n' +
    '         error: open \\x1b[8m failed\n')
  t.notOk(/[\x00-\x09\x0b-\x1f\x7f-\uffff]/.test(text), 'nothing but printable ASCII and line ends')
  t.equal(formatDiagnosticText({ time: hostile.time, msg: 'instance \r\x1b[1A up' }), '09:30:40 instance \\r\\x1b[1A up\n')

  // The whole path: a record from the data path, through the subscriber and the text logger.
  let written = ''
  let upgradeWritten: () => void = () => undefined
  const upgradeLine = new Promise<void>((resolve) => { upgradeWritten = resolve })
  const out = new Writable({
    write (chunk, _encoding, done) {
      written += String(chunk)
      if (written.includes('asked to upgrade')) upgradeWritten()
      done()
    }
  })
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeDiagnostics(events, textLogger(out), OPTIONS)
  const headerDefect: Defect = { code: 'HDR_VALUE_CTL', offset: 17, message: 'header value "\x1b]0;x\x07\xe9" has a control byte' }
  events.emit('exchange', exchangeRecord({
    log: { method: 'GET', target: '/a\x1b[2J\rb' },
    primaryDefect: headerDefect,
    defects: [headerDefect],
    defectCounts: { HDR_VALUE_CTL: 1 },
    responseBytes: Buffer.from('HTTP/1.1 200 OK\r\nX: \x1b]0;x\x07\xe9\r\n\r\n', 'latin1')
  }))
  events.emit('upgrade-dropped', { method: 'GET', target: '/ws\x1b[1m', protocol: 'websocket\r' })
  unsubscribe()
  // The text stream hands each record on after the previous one was written.
  await upgradeLine
  t.match(written, /^\d\d:\d\d:\d\d 502 GET \/a\\x1b\[2J\\rb from 127\.0\.0\.1:8081: HDR_VALUE_CTL at byte 17 \(/)
  t.ok(written.includes('\n         header value "\\x1b]0;x\\x07\\xe9" has a control byte\n'), written)
  t.ok(written.includes(' GET /ws\\x1b[1m asked to upgrade to websocket\\r: '), written)
  t.notOk(/[\x00-\x09\x0b-\x1f\x7f-\uffff]/.test(written), 'nothing but printable ASCII and line ends')
})

t.test('a relayed response with warnings, and a response cut after it started, list their defects per code', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeExchangeDiagnostics(events, logger, OPTIONS)
  const bareLf = (offset: number): Defect => ({ code: 'LINE_BARE_LF', offset, message: 'line ends in LF without CR' })
  events.emit('exchange', exchangeRecord({
    outcome: 'relayed', elbGenerated: false, primaryDefect: null, log: { elbStatusCode: 200, backendStatusCode: 200 },
    defects: [bareLf(15), bareLf(30), bareLf(45)], defectCounts: { LINE_BARE_LF: 7 }
  }))
  const exceeds: Defect = { code: 'BODY_EXCEEDS_CL', offset: 2000000, message: '1 more byte(s) arrived after the 1999950 bytes of Content-Length' }
  events.emit('exchange', exchangeRecord({
    outcome: 'cut', elbGenerated: false, primaryDefect: null, log: { elbStatusCode: 200, backendStatusCode: 200 },
    defects: [bareLf(15), exceeds], defectCounts: { LINE_BARE_LF: 1, BODY_EXCEEDS_CL: 1 }, responseBytes: null
  }))
  // Streamed, then the instance went silent until the idle timeout: no defect, still a diagnostic.
  events.emit('exchange', exchangeRecord({
    outcome: 'cut', elbGenerated: false, primaryDefect: null, log: { elbStatusCode: 200, backendStatusCode: 200 },
    defects: [], defectCounts: {}, responseBytes: null
  }))
  unsubscribe()
  t.strictSame(records.map(({ warnings, msg, defect }) => ({ warnings, msg, defect })), [
    {
      warnings: [{ code: 'LINE_BARE_LF', count: 7, firstOffsets: [15, 30, 45], message: 'line ends in LF without CR' }],
      msg: '200 relayed with 7 warning(s)',
      defect: undefined
    },
    {
      warnings: [{ code: 'LINE_BARE_LF', count: 1, firstOffsets: [15], message: 'line ends in LF without CR' }],
      msg: '200 relayed, then the client connection was aborted: a defect arrived after the response had started: 1 more byte(s) arrived after the 1999950 bytes of Content-Length',
      defect: 'BODY_EXCEEDS_CL'
    },
    {
      warnings: [],
      msg: '200 relayed, then the client connection was aborted: the instance 127.0.0.1:8081 stopped before the response was complete',
      defect: undefined
    }
  ])
  t.equal(formatDiagnosticText({ ...records[0], time: Date.UTC(2026, 10, 25, 9, 30, 40) }),
    '09:30:40 200 GET /orders from 127.0.0.1:8081\n' +
    '         200 relayed with 7 warning(s)\n' +
    '         warning LINE_BARE_LF x 7, first at offsets 15, 30, 45: line ends in LF without CR\n')
})

t.test('a cut response says what cut it: the client, the idle timeout, the shutdown, the instance', async (t) => {
  const { logger, records } = memoryLogger()
  const events = new ClbProxyEvents()
  const unsubscribe = subscribeExchangeDiagnostics(events, logger, OPTIONS)
  for (const cutReason of ['client-gone', 'idle-timeout', 'shutdown', 'request-abandoned', 'instance-closed'] as const) {
    events.emit('exchange', exchangeRecord({
      outcome: 'cut', cutReason, elbGenerated: false, primaryDefect: null, log: { elbStatusCode: 200, backendStatusCode: 200 },
      defects: [], defectCounts: {}, responseBytes: null
    }))
  }
  unsubscribe()
  t.strictSame(records.map(({ cutReason, msg }) => ({ cutReason, msg })), [
    { cutReason: 'client-gone', msg: '200 relayed, then the client connection was aborted: the client closed its connection while the response was being sent' },
    { cutReason: 'idle-timeout', msg: `200 relayed, then the client connection was aborted: nothing was sent or received for the ${OPTIONS.idleTimeoutSeconds} s idle timeout (CLB-IDLE: the load balancer closes the connection)` },
    { cutReason: 'shutdown', msg: '200 relayed, then the client connection was aborted: the proxy was stopping and the drain timeout passed while the response was being sent' },
    { cutReason: 'request-abandoned', msg: '200 relayed, then the client connection was aborted: the client stopped sending its request body while the response was being sent' },
    { cutReason: 'instance-closed', msg: '200 relayed, then the client connection was aborted: the instance 127.0.0.1:8081 stopped before the response was complete' }
  ])
})
