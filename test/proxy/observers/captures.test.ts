/**
 * Captures (proxy/observers/captures.ts, docs/captures.md): the dump format round-trips any bytes, a
 * rejected response through a running proxy becomes one file with the header fields and the
 * exact bytes, the directory stays bounded by maxCaptures (files found at startup included),
 * and nothing is captured for a valid response.
 */
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import fc from 'fast-check'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { rawExchange } from '../../helpers/raw-client.js'
import { CL_NOT_INTEGER_RESPONSE, FROZEN_MICROS, recordingLogger, rejectedRecord, writerOptions } from '../../helpers/capture-records.js'
import {
  CaptureFormatError,
  captureFileName,
  formatCapture,
  formatDump,
  parseCapture
} from '../../../proxy/observers/capture-format.js'
import { subscribeCaptures } from '../../../proxy/observers/captures.js'
import { formatAccessLogLine } from '../../../proxy/observers/access-log-format.js'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { ClbProxyEvents, type ExchangeRecord } from '../../../proxy/core/events.js'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'

const VALID_RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
const REQUEST = 'GET /cap?x=1 HTTP/1.1\r\nHost: capture.test\r\nUser-Agent: capture-test\r\n\r\n'
const frozenClock = { nowMicros: () => FROZEN_MICROS }
const silent = pino({ level: 'silent' })

/**
 * A raw backend that answers each request head with `response(n)` (n = 1, 2, ... per request) and
 * then FIN. Closing it waits for its connections to end.
 */
async function startRawBackend (t: Test, response: (request: number) => Buffer): Promise<{ port: number, server: net.Server }> {
  let requests = 0
  const server = net.createServer((socket) => {
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      head = ''
      socket.end(response(++requests))
    })
    socket.on('error', () => undefined) // the proxy destroys a connection it has judged
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.address() as net.AddressInfo).port, server }
}


async function connectionCount (server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))))
}

// --- the dump format --------------------------------------------------------------------------

t.test("the dump of HAProxy's example is HAProxy's dump, with a marker under the defect", async (t) => {
  // peers-validation.md §1.2: HAProxy 2.6.12 `show errors` on these bytes, error at position 33.
  t.strictSame(formatDump(CL_NOT_INTEGER_RESPONSE, [{ offset: 33, label: 'CL_NOT_INTEGER' }]), [
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '  00017  Content-Length: abc\\r\\n',
    `${' '.repeat(9 + 'Content-Length: '.length)}^ CL_NOT_INTEGER`,
    '  00038  \\r\\n',
    '  00040  hello'
  ])
})

t.test('long lines wrap as NNNNN+ continuations; a trailing space is \\x20; offsets widen past 99999', async (t) => {
  t.strictSame(formatDump(Buffer.from(`${'a'.repeat(150)}\n`)), [
    `  00000  ${'a'.repeat(70)}`,
    `  00070+ ${'a'.repeat(70)}`,
    `  00140+ ${'a'.repeat(10)}\\n`
  ])
  // An escape is never split across lines: 23 `\x00` (4 columns each) fill 92 columns, so 17 fit on a line.
  t.strictSame(formatDump(Buffer.alloc(23)), [`  00000  ${'\\x00'.repeat(17)}`, `  00017+ ${'\\x00'.repeat(6)}`])
  t.strictSame(formatDump(Buffer.from('ab \nc ')), ['  00000  ab \\n', '  00004  c\\x20'])
  const big = Buffer.alloc(100001, 0x61)
  const lines = formatDump(big)
  t.equal(lines[0], `  000000  ${'a'.repeat(70)}`)
  t.equal(lines.at(-1), `  099960+ ${'a'.repeat(100001 - 99960)}`)
  t.strictSame(parseCapture(`[response]\n${lines.join('\n')}\n`).responseBytes, big)
})

t.test('markers: several at one offset share a line, one at the end of the data points past the last byte', async (t) => {
  t.strictSame(formatDump(Buffer.from('ab\r\ncd'), [
    { offset: 6, label: 'HEADERS_TRUNCATED' },
    { offset: 1, label: 'X' },
    { offset: 1, label: 'Y' },
    { offset: 99, label: 'BEYOND' }
  ]), [
    '  00000  ab\\r\\n',
    `${' '.repeat(10)}^ X Y`,
    '  00004  cd',
    `${' '.repeat(11)}^ HEADERS_TRUNCATED`
  ])
})

t.test('any bytes survive capture -> text -> parseCapture, markers and request head included', async (t) => {
  // Bytes biased towards what matters to the dump: CR, LF, space, backslash, TAB, NUL, high bytes.
  const interesting = fc.constantFrom(0x0d, 0x0a, 0x20, 0x5c, 0x09, 0x00, 0x7f, 0xff, 0x78, 0x30)
  const bytes = fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), interesting), { maxLength: 600 }).map((list) => Buffer.from(list))
  fc.assert(fc.property(bytes, bytes, fc.array(fc.nat({ max: 700 }), { maxLength: 4 }), (response, head, offsets) => {
    const record = rejectedRecord({ response })
    const defects = offsets.map((offset) => ({ code: 'BODY_EXCEEDS_CL' as const, offset, message: 'm' }))
    const text = formatCapture({ ...record, defects, requestHead: head }, writerOptions(null, 1))
    const parsed = parseCapture(text)
    // An editor that trims trailing blanks and saves CRLF changes nothing either.
    const edited = parseCapture(text.split('\n').map((line) => line.trimEnd()).join('\r\n'))
    return parsed.responseBytes.equals(response) && (parsed.requestHead as Buffer).equals(head) &&
      edited.responseBytes.equals(response) && (edited.requestHead as Buffer).equals(head)
  }), { seed: 0xca97, numRuns: 500 })
  t.pass('500 random captures round-tripped')
})

t.test('a hand-edited capture still reads: CRLF file, trimmed blanks, comments, renumbered or unnumbered offsets, HAProxy \\e', async (t) => {
  const text = [
    '# written by hand',
    'after-response: hold',
    '',
    '[response] anything may follow the section name',
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '# a comment inside the dump',
    '  00999  X-Esc: \\e\\x41\\\\\\r\\n',
    '      ^ a marker line is ignored',
    '  00000  \\r\\n',
    '  00001+ caf\u00e9',
    '  00042  ',
    '  00043'
  ].join('\r\n')
  const parsed = parseCapture(text)
  t.strictSame(parsed.responseBytes, Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nX-Esc: \x1bA\\\r\n\r\ncaf', 'latin1'),
    Buffer.from('\u00e9', 'utf8')
  ]))
  t.equal(parsed.afterResponse, 'hold')
  t.equal(parsed.requestHead, null)
  t.strictSame([...parsed.fields], [['after-response', ['hold']]])
})

t.test('a file that is not a capture says which line and why', async (t) => {
  const cases: ReadonlyArray<readonly [string, number, string]> = [
    ['time: x\n', 1, 'no [response] section: the bytes to replay go under a line [response]'],
    ['time: x\nnot a header\n[response]\n', 2, "expected a header line 'name: value', a '#' comment or a section line '[response]'"],
    ['[response]\n  00000  ok\\q\n', 2, 'unknown escape \\q (known: \\r \\n \\t \\e \\\\ \\xHH)'],
    ['[response]\n  00000  \\x4\n', 2, '\\x must be followed by two hex digits, got "\\x4"'],
    ['[response]\n  00000  end\\\n', 2, 'a lone backslash ends the line (write \\\\ for a backslash byte)'],
    ['[response]\nHTTP/1.1 200 OK\n', 2, "expected a dump line '  00000  escaped bytes', a marker line '^ ...', a '#' comment or a blank line"],
    ['[response]\n[response]\n', 2, 'a second [response] section'],
    ['after-response: later\n[response]\n', 1, "after-response must be 'close' or 'hold', got \"later\""]
  ]
  for (const [text, line, reason] of cases) {
    const error = t.throws(() => parseCapture(text)) as CaptureFormatError
    t.ok(error instanceof CaptureFormatError, JSON.stringify(text))
    t.strictSame({ code: error.code, line: error.line, reason: error.reason, message: error.message },
      { code: 'CAPTURE_FORMAT', line, reason, message: `line ${line}: ${reason}` }, JSON.stringify(text))
  }
})

// --- through a running proxy ----------------------------------------------------------------

t.test('a rejected response becomes one capture file with its header, its defect and its exact bytes', async (t) => {
  const backend = await startRawBackend(t, () => CL_NOT_INTEGER_RESPONSE)
  const captureDir = t.testdir()
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backend.port}`], accessLog: null, captureDir, name: 'capture-test' },
    { logger: silent, clock: frozenClock }
  )
  t.teardown(() => proxy.close())
  const records: ExchangeRecord[] = []
  proxy.on('exchange', (record) => records.push(record))

  const { received, localPort } = await rawExchange(proxy.address.port, REQUEST, SYNTHETIC_RESPONSES[502].length)
  t.strictSame(received, SYNTHETIC_RESPONSES[502])
  // close() resolves after every queued capture is written.
  await proxy.close()

  const name = '2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-1.capture'
  t.strictSame(await readdir(captureDir), [name])
  const text = await readFile(join(captureDir, name), 'utf8')
  const [record] = records
  t.equal(records.length, 1)
  const header = text.slice(0, text.indexOf('\n\n')).split('\n')
  t.strictSame(header, [
    '# clb-proxy capture (docs/captures.md). Replay it: clb-proxy replay FILE',
    'format: clb-proxy-capture 1',
    'time: 2026-11-25T08:30:40.212590Z',
    'proxy: capture-test',
    `client: 127.0.0.1:${localPort}`,
    `backend: 127.0.0.1:${backend.port}`,
    'request: GET /cap?x=1 HTTP/1.1',
    'outcome: rejected',
    'elb-status: 502',
    `defect: CL_NOT_INTEGER @33: ${(record as ExchangeRecord).defects[0]?.message}`,
    'primary-defect: CL_NOT_INTEGER @33',
    `access-log: ${formatAccessLogLine((record as ExchangeRecord).log)}`,
    'proxy-options:',
    'response-bytes: 45',
    'after-response: close'
  ])
  t.match(header[9], /^defect: CL_NOT_INTEGER @33: \S/, 'the defect line names code, offset and a message')
  t.ok(text.endsWith([
    '[response] 45 bytes, error at position 33',
    '  00000  HTTP/1.1 200 OK\\r\\n',
    '  00017  Content-Length: abc\\r\\n',
    `${' '.repeat(25)}^ CL_NOT_INTEGER`,
    '  00038  \\r\\n',
    '  00040  hello',
    ''
  ].join('\n')), 'the response is dumped as HAProxy does, with the marker under the offending byte')
  const parsed = parseCapture(text)
  t.strictSame(parsed.responseBytes, CL_NOT_INTEGER_RESPONSE, 'parseCapture gives back the exact bytes')
  t.strictSame(parsed.requestHead, Buffer.from(REQUEST, 'latin1'), 'and the request head as the client sent it')
  t.equal(parsed.afterResponse, 'close')
  t.strictSame(proxy.captures(), [{
    file: join(captureDir, name),
    time: '2026-11-25T08:30:40.212590Z',
    outcome: 'rejected',
    elbStatus: 502,
    request: 'GET /cap?x=1 HTTP/1.1',
    backend: `127.0.0.1:${backend.port}`,
    defects: [{ code: 'CL_NOT_INTEGER', offset: 33, message: (record as ExchangeRecord).defects[0]?.message }],
    primaryDefect: 'CL_NOT_INTEGER',
    responseBytes: 45,
    earlierRun: false
  }], 'the handle lists the capture')
  t.strictSame(proxy.openSockets(), { clients: 0, backends: 0 })
  t.equal(await connectionCount(backend.server), 0)
})

t.test('with maxCaptures N, N+2 rejected responses leave exactly the newest N files', async (t) => {
  const maxCaptures = 3
  // Each response differs in its invalid Content-Length, so each file can be matched to its request.
  const backend = await startRawBackend(t, (n) => Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: bad${n}\r\n\r\n`, 'latin1'))
  const captureDir = t.testdir()
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backend.port}`], accessLog: null, captureDir, maxCaptures },
    { logger: silent, clock: frozenClock }
  )
  t.teardown(() => proxy.close())
  for (let n = 1; n <= maxCaptures + 2; n++) {
    const { received } = await rawExchange(proxy.address.port, REQUEST, SYNTHETIC_RESPONSES[502].length)
    t.strictSame(received, SYNTHETIC_RESPONSES[502], `request ${n}`)
  }
  await proxy.close()
  const files = (await readdir(captureDir)).sort()
  t.strictSame(files, [3, 4, 5].map((n) => `2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-${n}.capture`))
  for (const [index, file] of files.entries()) {
    const bytes = parseCapture(await readFile(join(captureDir, file), 'utf8')).responseBytes
    t.equal(bytes.toString('latin1'), `HTTP/1.1 200 OK\r\nContent-Length: bad${index + 3}\r\n\r\n`, file)
  }
  t.equal(await connectionCount(backend.server), 0)
})

t.test('a valid response makes no capture', async (t) => {
  const backend = await startRawBackend(t, () => VALID_RESPONSE)
  const captureDir = t.testdir()
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${backend.port}`], accessLog: null, captureDir },
    { logger: silent, clock: frozenClock }
  )
  t.teardown(() => proxy.close())
  const { received } = await rawExchange(proxy.address.port, REQUEST, VALID_RESPONSE.length)
  t.strictSame(received, VALID_RESPONSE)
  await proxy.close()
  t.strictSame(await readdir(captureDir), [])
  t.equal(await connectionCount(backend.server), 0)
})

t.test('a response that stops mid-body until the idle timeout is captured to be held open on replay', async (t) => {
  const partial = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel', 'latin1')
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.write(partial)) // then silence: the proxy's idle timeout ends it
    socket.on('error', () => undefined)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const captureDir = t.testdir()
  const proxy = await startClbProxy(
    { listen: '127.0.0.1:0', backends: [`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`], accessLog: null, captureDir, idleTimeoutSeconds: 1, responseHoldMs: 10000 },
    { logger: silent, clock: frozenClock }
  )
  t.teardown(() => proxy.close())
  const { received } = await rawExchange(proxy.address.port, REQUEST, SYNTHETIC_RESPONSES[504].length)
  t.strictSame(received, SYNTHETIC_RESPONSES[504])
  await proxy.close()
  const name = '2026-11-25T08-30-40.212590Z-504-backend-timeout-1.capture'
  t.strictSame(await readdir(captureDir), [name])
  const text = await readFile(join(captureDir, name), 'utf8')
  const parsed = parseCapture(text)
  t.strictSame(parsed.responseBytes, partial)
  t.equal(parsed.afterResponse, 'hold')
  t.strictSame(parsed.fields.get('outcome'), ['backend-timeout'])
  t.strictSame(parsed.fields.get('primary-defect'), ['-'])
  t.strictSame(parsed.fields.get('proxy-options'), ['--idle-timeout 1 --response-hold 10000'], 'the non-default flags that decided the 504')
  t.equal(await connectionCount(server), 0)
})

// --- the writer on its own ------------------------------------------------------------------

t.test('capture files found at startup count as the oldest; other files are never touched', async (t) => {
  const captureDir = t.testdir({ 'notes.txt': 'mine', 'old.capture.bak': 'mine too' })
  const events = new ClbProxyEvents()
  // A previous run left three captures (counters 7, 8, 9 at earlier times).
  const earlier = [FROZEN_MICROS - 3_000_000, FROZEN_MICROS - 2_000_000, FROZEN_MICROS - 1_000_000]
  for (const [index, micros] of earlier.entries()) {
    const record = rejectedRecord({ micros })
    await writeFile(join(captureDir, captureFileName(record, 7 + index)), formatCapture(record, writerOptions(null, 1)))
  }
  const captures = subscribeCaptures(events, writerOptions(captureDir, 3), silent)
  events.emit('exchange', rejectedRecord())
  events.emit('exchange', { ...rejectedRecord(), outcome: 'relayed', cutReason: null, primaryDefect: null })
  await captures.close()
  t.strictSame((await readdir(captureDir)).sort(), [
    '2026-11-25T08-30-38.212590Z-502-CL_NOT_INTEGER-8.capture',
    '2026-11-25T08-30-39.212590Z-502-CL_NOT_INTEGER-9.capture',
    '2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-10.capture',
    'notes.txt',
    'old.capture.bak'
  ], 'the oldest found file was removed; the new one continues the counter')
  const listed = captures.list()
  t.strictSame(listed.map((summary) => summary.file), [10, 9, 8].map((n, i) =>
    join(captureDir, `2026-11-25T08-30-${40 - i}.212590Z-502-CL_NOT_INTEGER-${n}.capture`)), 'newest first')
  t.strictSame(listed[0], {
    file: join(captureDir, '2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-10.capture'),
    time: '2026-11-25T08:30:40.212590Z',
    outcome: 'rejected',
    elbStatus: 502,
    request: 'GET /cap HTTP/1.1',
    backend: '127.0.0.1:8081',
    defects: [{ code: 'CL_NOT_INTEGER', offset: 33, message: 'Content-Length "abc" is not an integer' }],
    primaryDefect: 'CL_NOT_INTEGER',
    responseBytes: 45,
    earlierRun: false
  })
  t.strictSame(listed[2]?.time, '2026-11-25T08:30:38.212590Z', 'a file found at startup is summarized from its header')
  t.strictSame(listed.map((summary) => summary.earlierRun), [false, true, true], 'the files found at startup are an earlier run\'s')
  t.equal(events.listenerCount('exchange'), 0, 'close() unsubscribed')
})

t.test('bytes past captureBytes are not kept, and the header says the limit was reached', async (t) => {
  const captureDir = t.testdir()
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, { ...writerOptions(captureDir, 5), captureBytes: 1024 }, silent)
  const long = Buffer.concat([CL_NOT_INTEGER_RESPONSE, Buffer.alloc(2000, 0x62)])
  events.emit('exchange', rejectedRecord({ response: long }))
  await captures.close()
  const [file] = await readdir(captureDir)
  const parsed = parseCapture(await readFile(join(captureDir, file as string), 'utf8'))
  t.strictSame(parsed.responseBytes, long.subarray(0, 1024))
  t.strictSame(parsed.fields.get('response-bytes'), ['1024 (the capture limit, 1024 bytes: later bytes, if any, were not kept)'])
  t.equal(captures.list()[0]?.responseBytes, 1024)
})

t.test('a directory that cannot be created is reported once, not per capture; nothing throws into the emitter', async (t) => {
  const parent = t.testdir({ 'a-file': 'not a directory' })
  const captureDir = join(parent, 'a-file', 'captures')
  const { logger, lines } = recordingLogger()
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(captureDir, 5), logger)
  events.emit('exchange', rejectedRecord({ micros: FROZEN_MICROS }))
  events.emit('exchange', rejectedRecord({ micros: FROZEN_MICROS + 1 }))
  events.emit('exchange', rejectedRecord({ micros: FROZEN_MICROS + 2 }))
  await captures.close()
  t.strictSame(lines.map((line) => [line.level, line.msg, (line.err as { code?: string } | undefined)?.code]), [
    [50, `capture directory not readable: ${captureDir} (ENOTDIR); the proxy keeps serving, and this is reported once per kind of error until a capture is written again`, 'ENOTDIR'],
    [40, `3 capture(s) were not written to ${captureDir}`, undefined]
  ])
  t.strictSame(captures.list(), [])
})

t.test('a directory mkdir cannot make although its parent exists (/proc) is reported, and close() still resolves', { skip: !existsSync('/proc/self/stat') && 'no /proc here' }, async (t) => {
  // Node's recursive mkdir never returned here: the capture worker, and shutdown with it, waited forever.
  const captureDir = '/proc/clb-proxy-capture-test'
  const { logger, lines } = recordingLogger()
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(captureDir, 5), logger)
  events.emit('exchange', rejectedRecord())
  await captures.close()
  t.strictSame(lines.map((line) => [line.level, line.msg]), [
    [50, `capture not written: ${captureDir} (ENOENT); the proxy keeps serving, and this is reported once per kind of error until a capture is written again`],
    [40, `1 capture(s) were not written to ${captureDir}`]
  ])
})

t.test('when more rejections wait than maxCaptures, the older waiting ones are skipped, not written then deleted', async (t) => {
  const captureDir = t.testdir()
  const { logger, lines } = recordingLogger()
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(captureDir, 2), logger)
  // Five in one synchronous burst: none can be written before the last is queued.
  for (let n = 0; n < 5; n++) events.emit('exchange', rejectedRecord({ micros: FROZEN_MICROS + n }))
  await captures.close()
  t.strictSame((await readdir(captureDir)).sort(), [
    '2026-11-25T08-30-40.212593Z-502-CL_NOT_INTEGER-4.capture',
    '2026-11-25T08-30-40.212594Z-502-CL_NOT_INTEGER-5.capture'
  ])
  t.strictSame(lines.map((line) => [line.level, line.skipped]), [[40, 3]])
})

t.test('captureDir null subscribes nothing', async (t) => {
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(null, 5), silent)
  t.equal(events.listenerCount('exchange'), 0)
  await captures.close()
  t.strictSame(captures.list(), [])
})

t.test('the capture directory is created with its parents, owner-only', async (t) => {
  const parent = t.testdir()
  const captureDir = join(parent, 'a', 'b')
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(captureDir, 5), silent)
  events.emit('exchange', rejectedRecord())
  await captures.close()
  const [file] = await readdir(captureDir)
  t.equal((await stat(captureDir)).mode & 0o777, 0o700 & ~process.umask())
  t.equal((await stat(join(captureDir, file as string))).mode & 0o777, 0o600 & ~process.umask())
})
