import { execFileSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { closeSync, createWriteStream, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { Sink } from '../../helpers/sink.js'
import { SAMPLE_RECORD } from '../../helpers/records.js'
import { run } from '../../../proxy/commands/cli.js'
import { analyzeFiles } from '../../../proxy/commands/analyze-command.js'
import { emptyFields, parseClbLine, parseClbLineText } from '../../../proxy/commands/analyze-parse.js'
import { listInputs, MAX_LINE_BYTES, Progress, readFailure } from '../../../proxy/commands/analyze-read.js'
import { buildReport, type AnalyzeReport } from '../../../proxy/commands/analyze-report.js'
import { AnalyzeStats, BoundedTop, LatencyHistogram, MAX_ANSWERED_PATHS, MAX_TIME_BUCKETS, MAX_UNPARSEABLE_LISTED, TOP_CAPACITY } from '../../../proxy/commands/analyze-stats.js'
import { MAX_TEXT_TIME_ROWS, renderHtml, renderText } from '../../../proxy/commands/analyze-output.js'
import { unicodeTerminalSafe as visible } from '../../../proxy/observers/diagnostics-escape.js'
import { formatAccessLogLine } from '../../../proxy/observers/access-log-format.js'
import { REPO_ROOT } from '../../helpers/repo.js'

const SPEC_LINES_FILE = join(REPO_ROOT, 'test', 'fixtures', 'analyze', 'spec-lines.log')
const SPEC_LINES = readFileSync(SPEC_LINES_FILE, 'utf8').split('\n').filter((line) => line !== '')

interface Outcome { readonly code: number, readonly stdout: string, readonly stderr: string }

async function analyze (argv: string[], stderr: Sink = new Sink(), stdin: NodeJS.ReadableStream = Readable.from([])): Promise<Outcome> {
  const stdout = new Sink()
  const code = await run(['analyze', ...argv], {}, { stdout, stderr, stdin, signals: new EventEmitter() })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

async function analyzeJson (argv: string[]): Promise<AnalyzeReport> {
  const outcome = await analyze(['--json', ...argv])
  if (outcome.code !== 0) throw new Error(`analyze failed: ${outcome.stderr}`)
  return JSON.parse(outcome.stdout) as AnalyzeReport
}

/** A deterministic mix of CLB lines: 200s, backend 404/500/502, ELB 400/408/502/503/504. */
function generatedLine (i: number, distinctPaths = false): string {
  const minute = Math.floor(i / 50)
  const ts = new Date(Date.UTC(2024, 0, 1) + minute * 60000 + (i % 60) * 1000).toISOString().replace('Z', '123Z')
  const instance = `10.0.${i % 3}.${i % 7}:80`
  const path = distinctPaths ? `/p/${i}` : `/api/${i % 5}`
  const request = `"GET http://lb.example.com:80${path}?q=${i} HTTP/1.1" "curl/8.0" - -`
  const kind = i % 20
  const timed = (s: string, elb: string, backend: string): string => `${ts} my-lb 192.0.2.1:${1024 + (i % 1000)} ${instance} 0.00004 ${s} 0.00002 ${elb} ${backend} 0 29 ${request}`
  const none = (elb: string): string => `${ts} my-lb 192.0.2.1:${1024 + (i % 1000)} - -1 -1 -1 ${elb} 0 0 0 ${request}`
  switch (kind) {
    case 0: return none('504')
    case 1: return none('503')
    case 2: return timed('0.0021', '502', '-')
    case 3: return timed('0.3', '502', '502')
    case 4: return timed('0.01', '404', '404')
    case 5: return timed('1.5', '500', '500')
    case 6: return none('408')
    case 7: return `${ts} my-lb 192.0.2.1:1 - -1 -1 -1 400 0 0 0 "- - - " "-" - -`
    default: return timed(`0.00${kind}`, '200', '200')
  }
}

function writeLines (file: string, count: number, distinctPaths = false): void {
  const fd = openSync(file, 'w')
  let batch: string[] = []
  for (let i = 0; i < count; i++) {
    batch.push(generatedLine(i, distinctPaths))
    if (batch.length === 10000) { writeSync(fd, `${batch.join('\n')}\n`); batch = [] }
  }
  if (batch.length > 0) writeSync(fd, `${batch.join('\n')}\n`)
  closeSync(fd)
}

t.test('every real and documented line of the spec is read (fixtures/analyze/README.md)', async (t) => {
  const parsed = SPEC_LINES.map((line) => parseClbLineText(line))
  t.equal(parsed.length, 13)
  // Line 4 (O-HH) lost its client:port field in the blog: not a CLB line as printed.
  t.equal(parsed[3], null, 'the redacted O-HH line is refused')
  parsed.forEach((fields, index) => { if (index !== 3) t.not(fields, null, `line ${index + 1} parses`) })
  const [pre2015, web503, , , truncated, post504, backend503, tcp443, https503, docHttp, docHttps, docTcp, docSsl] = parsed
  t.match(pre2015, { elbStatus: 408, backendStatus: 0, hasBackend: false, requestMicros: -1, backendMicros: -1, responseMicros: -1, url: 'https://media.xxxyyyzzz.com:443/videos/F4_M-T4X0MM6Hvy1PFHesw', minute: Date.UTC(2015, 3, 10, 8, 11) / 60000 })
  t.match(web503, { elbStatus: 503, backendStatus: 0, hasBackend: false, backend: '-' })
  t.match(truncated, { elbStatus: 504, url: 'https://xxxx:443/xxxx' })
  t.match(post504, { elbStatus: 504, url: 'https://app.club-os.com:443/action/FollowUp/save' })
  t.match(backend503, { elbStatus: 503, backendStatus: 503, backend: '172.27.19.217:80', requestMicros: 80, backendMicros: 626, responseMicros: 57 })
  t.match(tcp443, { elbStatus: -1, backendStatus: -1, isTcp: true, backendMicros: 9, url: '' })
  t.match(https503, { elbStatus: 503, hasBackend: false })
  t.match(docHttp, { elbStatus: 200, backendStatus: 200, backend: '10.0.0.1:80', backendMicros: 1048, url: 'http://www.example.com:80/', isTcp: false })
  t.match(docHttps, { elbStatus: 200, responseMicros: 1337 })
  t.match(docTcp, { isTcp: true, elbStatus: -1 })
  t.match(docSsl, { isTcp: true, backendMicros: 15 })
})

t.test('the report of the spec lines', async (t) => {
  const report = await analyzeJson([SPEC_LINES_FILE])
  t.equal(report.lines, 13)
  t.equal(report.requests, 9, 'the 12 CLB lines less the 3 TCP/SSL connections')
  t.equal(report.unparseable.count, 1)
  t.strictSame(report.unparseable.listed.map((u) => `${u.file}:${u.line}`), [`${SPEC_LINES_FILE}:4`])
  t.equal(report.totals.tcp, 3)
  t.equal(report.totals.elb4xx, 1, 'the 408')
  t.equal(report.totals.elb5xx, 5, 'three 503s and two 504s without a backend')
  t.equal(report.totals.backend5xx, 1, 'the 503 503')
  const signature = (elb: string, backend: string): unknown => report.signatures.find((s) => s.elbStatus === elb && s.backendStatus === backend)
  t.match(signature('504', '0'), { count: 2, backend: 'none', timings: 'all -1', generatedBy: 'elb', cause: /closed a kept-alive connection .* idle timeout/ })
  t.match(signature('503', '0'), { count: 3, cause: '"There are no registered instances", or no healthy instance ("There are no healthy instances", per Availability Zone unless cross-zone load balancing is on), or "The surge queue is full" (spillover), or "Insufficient capacity in the load balancer to handle the request"' })
  t.match(signature('503', '503'), { count: 1, generatedBy: 'backend' })
  t.match(signature('408', '0'), { cause: 'the client stopped sending its request (head or body) for the idle timeout ("A network interruption or a bad request construction"), or "Connection to the client is closed (load balancer could not send a response)"', source: 'CLB-HTTPERR 408, spec §2.4' })
  t.match(report.keepAlive, { count: 2, advice: /at least 60 seconds/ })
  t.match(report.topInstances.rows, [{ instance: '172.27.19.217:80', errors: 1 }])
  t.equal(report.backendProcessingTime?.count, 3, 'every request with a measured backend_processing_time (a TCP line\'s is the backend connection time)')
  t.equal(report.backendProcessingTime?.max, 0.001048)
})

t.test("clb-proxy's own lines: a rejected 502 (`502 -`), nothing sent (`-`), a 504 without backend", async (t) => {
  const lines = [
    formatAccessLogLine({ ...SAMPLE_RECORD, elbStatusCode: 502, backendStatusCode: 'rejected' }),
    formatAccessLogLine({ ...SAMPLE_RECORD, elbStatusCode: null, backendStatusCode: 'no-response', backend: null }),
    formatAccessLogLine({ ...SAMPLE_RECORD, elbStatusCode: 504, backendStatusCode: 'no-response', backend: null, requestProcessingSeconds: null, backendProcessingSeconds: null, responseProcessingSeconds: null }),
    formatAccessLogLine({ ...SAMPLE_RECORD, method: null, target: null, httpVersion: null, elbStatusCode: 400, backendStatusCode: 'no-response', backend: null })
  ]
  const dir = t.testdir({ 'own.log': `${lines.join('\n')}\n` })
  const report = await analyzeJson([join(dir, 'own.log')])
  t.equal(report.unparseable.count, 0)
  t.equal(report.totals.noStatus, 1)
  t.match(report.signatures.find((s) => s.elbStatus === '502'), { backendStatus: '-', backend: 'instance', cause: /malformed response/ })
  t.ok(report.keepAlive)
  t.equal(report.totals.tcp, 0, '"- - - " of an unparseable request with a 400 is a request, not a TCP/SSL connection')
  t.equal(report.totals.elb4xx, 1)
})

t.test('an S3 tree of .log and .gz files gives the report of the concatenated plain file', async (t) => {
  const lines = Array.from({ length: 3000 }, (_, i) => generatedLine(i))
  const part = (from: number, to: number): string => `${lines.slice(from, to).join('\n')}\n`
  const day = (d: string): string => join('bucket', 'prefix', 'AWSLogs', '123456789012', 'elasticloadbalancing', 'us-east-1', '2024', '01', d)
  const dir = t.testdir({ 'all.log': part(0, 3000) })
  const name = (end: string): string => `123456789012_elasticloadbalancing_us-east-1_my-lb_${end}_10.0.0.9_abcd1234.log`
  mkdirSync(join(dir, day('01')), { recursive: true })
  mkdirSync(join(dir, day('02')), { recursive: true })
  writeFileSync(join(dir, day('01'), name('20240101T0010Z')), part(0, 1000))
  writeFileSync(join(dir, day('01'), `${name('20240101T0020Z')}.gz`), gzipSync(part(1000, 2000)))
  writeFileSync(join(dir, day('02'), name('20240102T0010Z')).replace(/\.log$/, '.log.gz'), gzipSync(part(2000, 3000)))
  writeFileSync(join(dir, 'bucket', 'prefix', 'AWSLogs', '123456789012', 'ELBAccessLogTestFile'), 'Enable AccessLog for ELB: my-lb at 2024-01-01T00:00:00.000Z')
  const tree = await analyzeJson([join(dir, 'bucket')])
  const plain = await analyzeJson([join(dir, 'all.log')])
  t.equal(tree.files, 3, 'the test file is not a log')
  t.strictSame({ ...tree, files: 0 }, { ...plain, files: 0 })
  t.equal(plain.requests, 3000)
  t.equal(plain.unparseable.count, 0)
  t.equal(plain.totals.both502, 150)
  t.equal(plain.perMinute.length, 60)
  t.match(plain.perMinute[0], { minute: '2024-01-01T00:00Z', requests: 50 })
})

t.test('unparseable lines are counted with file:line, the first 20 listed; blank lines and CRLF', async (t) => {
  const good = generatedLine(8)
  const body = [good, 'garbage 1', '', `${good}\r`, ...Array.from({ length: 30 }, (_, i) => `not a line ${i}`), good.replace('2024-01-01T', '2024/01/01T')].join('\n')
  const dir = t.testdir({ 'bad.log': body })
  const file = join(dir, 'bad.log')
  const report = await analyzeJson([file])
  t.equal(report.requests, 2)
  t.equal(report.blankLines, 1)
  t.equal(report.unparseable.count, 32)
  t.equal(report.unparseable.listed.length, MAX_UNPARSEABLE_LISTED)
  t.strictSame(report.unparseable.listed.slice(0, 3).map((u) => `${u.file}:${u.line}: ${u.text}`), [`${file}:2: garbage 1`, `${file}:5: not a line 0`, `${file}:6: not a line 1`])
  const text = await analyze([file])
  t.match(text.stdout, `Unparseable lines: 32 (the first 20 listed)\n  ${file}:\n    2 (fewer than 12 fields): garbage 1\n    5 (fewer than 12 fields): not a line 0\n`)
  // The file name once as a heading: an S3 name of 120 characters leaves the line's text in view.
  const s3Name = join(dir, '123456789012_elasticloadbalancing_us-east-1_my-loadbalancer-with-a-long-name_20240101T0010Z_10.0.0.9_abcd1234.log')
  writeFileSync(s3Name, 'garbage 2\n')
  t.match((await analyze([file, s3Name])).stdout, `  ${file}:\n    2 (fewer than 12 fields): garbage 1\n    5 (fewer than 12 fields): not a line 0\n`)
  t.match((await analyze([s3Name, file])).stdout, `Unparseable lines: 33 (the first 20 listed)\n  ${s3Name}:\n    1 (fewer than 12 fields): garbage 2\n  ${file}:\n    2 (fewer than 12 fields): garbage 1\n`)
})

t.test('field checks: each malformed field makes the line unparseable', async (t) => {
  const good = generatedLine(9)
  t.ok(parseClbLineText(good))
  const replacing = (index: number, value: string): string => good.split(' ').map((field, i) => (i === index ? value : field)).join(' ')
  for (const [index, value] of [[0, '2024-13-01T00:00:00.1Z'], [0, 'short'], [4, '0.0.1'], [4, 'x'], [5, '1.x'], [7, '2000'], [7, '2x0'], [9, 'x'], [10, '']] as const) {
    t.equal(parseClbLineText(replacing(index, value)), null, `field ${index} = '${value}'`)
  }
  t.equal(parseClbLineText(good.replace('"GET', 'GET')), null, 'request not quoted')
  t.equal(parseClbLineText(good.replace(/" "curl.*$/, ' HTTP/1.1')), null, 'request never closed')
  t.match(parseClbLineText(good.replace('/api/', '/a"b/')), { url: /a"b/ }, 'a raw quote inside the URL')
  t.match(parseClbLineText(good.replace(' 200 200 0 29 ', ' 200 200 - - ')), { elbStatus: 200 }, 'byte counts may be -')
  t.match(parseClbLineText(good.replace(' 200 200 ', '  200 ')), null, 'an empty field between single spaces is refused')
  t.match(parseClbLineText(`${good.split('"')[0]}"GET"`), { url: '', isTcp: false }, 'a request of one word')
  const buf = Buffer.from(`xx${good}yy`)
  t.equal(parseClbLine(buf, 2, buf.length - 2, emptyFields()), null, 'offsets inside a larger buffer')
})

t.test('--json shape', async (t) => {
  const dir = t.testdir({ 'a.log': `${Array.from({ length: 400 }, (_, i) => generatedLine(i)).join('\n')}\n` })
  const report = await analyzeJson([join(dir, 'a.log')])
  t.strictSame(Object.keys(report).sort(), ['backendProcessingTime', 'blankLines', 'bucketMinutes', 'files', 'firstMinute', 'keepAlive', 'lastMinute', 'lines', 'loadBalancers', 'otherSignatures', 'perMinute', 'requests', 'signatures', 'topInstances', 'topPaths', 'totals', 'unparseable'])
  t.match(report.perMinute[0], { minute: '2024-01-01T00:00Z', requests: 50, errors: Number, errorRate: Number, elb4xx: Number, elb5xx: Number, backend4xx: Number, backend5xx: Number })
  t.match(report.backendProcessingTime, { count: Number, p50: Number, p90: Number, p99: Number, max: 1.5 })
  t.ok((report.backendProcessingTime?.p50 ?? 0) <= (report.backendProcessingTime?.p90 ?? 0))
  t.equal(report.topPaths.rows.length, 5)
  t.match(report.topPaths.rows[0], { path: /^\/api\/\d$/, errors: Number })
  t.equal(report.topInstances.approximate, false)
})

t.test('text report names the sections and the keep-alive fix', async (t) => {
  const dir = t.testdir({ 'a.log': `${Array.from({ length: 200 }, (_, i) => generatedLine(i)).join('\n')}\n` })
  const { code, stdout, stderr } = await analyze([join(dir, 'a.log')])
  t.equal(code, 0)
  t.equal(stderr, '', 'no progress line when stderr is not a terminal')
  for (const heading of ['Errors, by who generated them', 'Error signatures', 'Keep-alive signature: 10 504s', 'at least 60 seconds', 'backend_processing_time over', 'Instances with the most errors', 'Paths with the most errors', 'Per minute (UTC)', '502 502             10']) {
    t.match(stdout, heading)
  }
})

t.test('--html writes a self-contained page', async (t) => {
  const dir = t.testdir({ 'a.log': `${Array.from({ length: 300 }, (_, i) => generatedLine(i)).join('\n')}\nbad <script>\n` })
  const out = join(dir, 'report.html')
  const { code, stdout } = await analyze([join(dir, 'a.log'), '--html', out])
  t.equal(code, 0)
  t.match(stdout, `HTML report written to ${out}`)
  const page = readFileSync(out, 'utf8')
  t.match(page, /^<!doctype html>/)
  t.match(page, '<style>')
  t.match(page, /<svg viewBox="[^"]+"[^>]*>(<g><title>[^<]+<\/title><rect[^>]+\/><rect[^>]+\/><\/g>){6}/)
  t.notMatch(page, /(src|href)\s*=/i, 'no src or href at all')
  t.notMatch(page, /https?:\/\//, 'no URL of any kind')
  t.notMatch(page, '<script>', 'log text is escaped')
  t.match(page, 'bad &#60;script&#62;')
  t.match(renderHtml({ ...JSON.parse((await analyze(['--json', join(dir, 'a.log')])).stdout), perMinute: [], backendProcessingTime: null, keepAlive: null }), 'No requests.')
  t.equal((await analyze([join(dir, 'a.log'), '--html', join(dir, 'missing-dir', 'r.html')])).code, 1, 'an unwritable FILE')
})

t.test('--html: each bar stands where its minute falls, so minutes without lines leave a gap', async (t) => {
  const report = JSON.parse((await analyze(['--json', join(t.testdir({ 'a.log': `${generatedLine(0)}\n` }), 'a.log')])).stdout)
  const minute = (iso: string): typeof report.perMinute[0] => ({ ...report.perMinute[0], minute: iso })
  // Minutes 0, 1 and 9 of a 10-minute span: 90 units per minute of the 900-unit chart.
  const page = renderHtml({ ...report, bucketMinutes: 1, perMinute: [minute('2015-05-13T23:00:00Z'), minute('2015-05-13T23:01:00Z'), minute('2015-05-13T23:09:00Z')] })
  t.strictSame([...page.matchAll(/<rect x="([\d.]+)"[^>]* width="([\d.]+)"[^>]*class="req"/g)].map((m) => [m[1], m[2]]),
    [['0.00', '89.00'], ['90.00', '89.00'], ['810.00', '89.00']])
})

t.test('bad arguments exit 2 and name the argument', async (t) => {
  const dir = t.testdir({ 'a.log': `${generatedLine(0)}\n` })
  const cases: Array<[string[], RegExp]> = [
    [[], /missing PATH/],
    [['--frobnicate', join(dir, 'a.log')], /unknown option '--frobnicate'/],
    [[join(dir, 'nope.log')], new RegExp(`cannot read '${join(dir, 'nope.log').replace(/[/\\.]/g, '\\$&')}': no such file or directory`)],
    [['--html'], /option '--html' needs a value/],
    [['--html=', join(dir, 'a.log')], /option '--html' needs a value/],
    [['--json', '--html', 'x.html', join(dir, 'a.log')], /one of --json and --html/],
    [['--athena', join(dir, 'a.log')], /--athena takes no PATH/],
    [['--athena', '--json'], /--athena takes no PATH .*--json/],
    [['--json=yes', join(dir, 'a.log')], /does not take a value/]
  ]
  for (const [argv, message] of cases) {
    const outcome = await analyze(argv)
    t.equal(outcome.code, 2, argv.join(' '))
    t.match(outcome.stderr, message)
    t.match(outcome.stderr, "Try 'clb-proxy analyze --help'")
  }
  const help = await analyze(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, 'Usage: clb-proxy analyze PATH...')
})

t.test('a directory with no access-log file under it (a mistyped S3 prefix) exits 2 and names it', async (t) => {
  const dir = t.testdir({
    'a.log': `${generatedLine(8)}\n`,
    empty: {},
    // Only the file ELB writes when logging is enabled, a note, and an empty day folder.
    prefix: { AWSLogs: { '123456789012': { ELBAccessLogTestFile: 'Enable AccessLog for ELB: my-lb', 'notes.txt': 'x', elasticloadbalancing: { 'us-east-1': {} } } } }
  })
  for (const name of ['empty', 'prefix']) {
    const path = join(dir, name)
    const expected = { code: 2, stdout: '', stderr: `clb-proxy analyze: no access-log files (.log or .gz) under '${path}'\nTry 'clb-proxy analyze --help'\n` }
    t.strictSame(await analyze([path]), expected, name)
    t.strictSame(await analyze([join(dir, 'a.log'), path]), expected, `${name}, after a good file: as a PATH that does not exist`)
  }
})

t.test('a corrupt .gz is named on stderr with what went wrong; the other files are still reported; exit 1', async (t) => {
  const lines = (from: number, to: number): string => `${Array.from({ length: to - from }, (_, i) => generatedLine(from + i)).join('\n')}\n`
  const dir = t.testdir({
    'a.log': lines(0, 100),
    // Cut before its 8-byte trailer (CRC-32, size): every line inflates, then the end is missing.
    'b.log.gz': gzipSync(lines(100, 200)).subarray(0, -8),
    // The gzip magic bytes, then a compression method that is not deflate (RFC 1952 section 2.3.1).
    'c.log.gz': Buffer.from('\x1f\x8bgarbage', 'latin1'),
    'd.log': lines(200, 300),
    'all.log': lines(0, 300)
  })
  const [a, b, c, d] = ['a.log', 'b.log.gz', 'c.log.gz', 'd.log'].map((name) => join(dir, name))
  const outcome = await analyze(['--json', a as string, b as string, c as string, d as string])
  t.equal(outcome.code, 1)
  t.equal(outcome.stderr, [
    `clb-proxy analyze: cannot read '${b}' to its end: corrupt gzip (unexpected end of file)`,
    `clb-proxy analyze: cannot read '${c}' to its end: corrupt gzip (unknown compression method)`,
    'clb-proxy analyze: 2 of 4 files could not be read to their end; the report counts the lines read before each error',
    ''
  ].join('\n'))
  const report = JSON.parse(outcome.stdout) as AnalyzeReport
  t.strictSame({ ...report, files: 0 }, { ...(await analyzeJson([join(dir, 'all.log')])), files: 0 }, 'the lines of a, b (all read before its end was missed) and d')
  t.equal(report.files, 4)
  const text = await analyze([a as string, c as string])
  t.equal(text.code, 1)
  t.match(text.stdout, /^clb-proxy analyze: 100 requests in 2 files \(100 lines, 0 unparseable\)\n/)
  t.equal(text.stderr, `clb-proxy analyze: cannot read '${c}' to its end: corrupt gzip (unknown compression method)\nclb-proxy analyze: 1 of 2 files could not be read to their end; the report counts the lines read before each error\n`)
})

t.test('a file that cannot be opened is a failure with nothing read: not "to its end"', async (t) => {
  const missing = join(t.testdir(), 'gone.log')
  const result = await analyzeFiles([{ path: missing, size: 1 }], new Sink())
  t.strictSame(result.failures, [{ path: missing, reason: 'no such file or directory', partly: false }])
})

t.test('readFailure: what went wrong with an input, in words; null for what is not an input failure (a bug)', async (t) => {
  const systemError = Object.assign(new Error("EACCES: permission denied, open 'x.log'"), { code: 'EACCES', syscall: 'open' })
  t.equal(readFailure(systemError), 'permission denied')
  t.equal(readFailure(Object.assign(new Error('unexpected end of file'), { code: 'Z_BUF_ERROR' })), 'corrupt gzip (unexpected end of file)')
  t.equal(readFailure(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })), 'Premature close')
  t.equal(readFailure(new TypeError('x is not a function')), null)
  // Node's own codes for a wrong argument or a misused stream are bugs, not inputs that failed.
  t.equal(readFailure(Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' })), null)
  t.equal(readFailure(Object.assign(new Error('stream.push() after EOF'), { code: 'ERR_STREAM_PUSH_AFTER_EOF' })), null)
  t.equal(readFailure('thrown text'), null)
})

t.test('a FIFO (a pipe, a process substitution) is read as a stream, plain or gzip (sniffed from its first bytes)', { timeout: 20000 }, async (t) => {
  const body = `${Array.from({ length: 3000 }, (_, i) => generatedLine(i)).join('\n')}\n`
  const dir = t.testdir({ 'all.log': body })
  const expected = await analyze([join(dir, 'all.log')])
  for (const [name, bytes] of [['plain', Buffer.from(body)], ['gzip', gzipSync(body)]] as const) {
    const fifo = join(dir, `${name}.fifo`)
    execFileSync('mkfifo', [fifo])
    // The writer's open waits for the reader's: a reader that never opens fails the test by timeout.
    const written = new Promise<string>((resolve) => {
      const writer = createWriteStream(fifo)
      writer.on('error', () => {})
      writer.end(bytes, (error?: NodeJS.ErrnoException | null) => resolve(error == null ? 'written' : `writer: ${error.code ?? error.message}`))
    })
    const outcome = await analyze([fifo])
    t.equal(await written, 'written', `${name}: the reader took every byte`)
    t.equal(outcome.stderr, '', name)
    t.equal(outcome.code, 0, name)
    t.equal(outcome.stdout, expected.stdout, `${name}: the report of the same lines in a file`)
  }
})

t.test('- reads standard input, plain or gzip; it can be named once', async (t) => {
  const body = `${Array.from({ length: 300 }, (_, i) => generatedLine(i)).join('\n')}\n`
  const dir = t.testdir({ 'all.log': body, 'bad.log': `not a line\n${generatedLine(8)}\n` })
  const expected = await analyzeJson([join(dir, 'all.log')])
  for (const [name, bytes] of [['plain', Buffer.from(body)], ['gzip', gzipSync(body)]] as const) {
    // Two chunks, the first of one byte: the gzip magic bytes are sniffed across chunks.
    const outcome = await analyze(['--json', '-'], new Sink(), Readable.from([bytes.subarray(0, 1), bytes.subarray(1)]))
    t.equal(outcome.code, 0, name)
    t.equal(outcome.stderr, '', name)
    t.strictSame(JSON.parse(outcome.stdout), expected, name)
  }
  const named = await analyze(['--json', join(dir, 'bad.log'), '-'], new Sink(), Readable.from([Buffer.from('not a line either\n')]))
  t.strictSame((JSON.parse(named.stdout) as AnalyzeReport).unparseable.listed, [{ file: join(dir, 'bad.log'), line: 1, text: 'not a line', truncated: false, reason: 'fewer than 12 fields' }, { file: '-', line: 1, text: 'not a line either', truncated: false, reason: 'fewer than 12 fields' }], 'standard input is named - in the report')
  t.strictSame(await analyze(['-', '-']), { code: 2, stdout: '', stderr: "clb-proxy analyze: '-' (standard input) can be named only once\nTry 'clb-proxy analyze --help'\n" })
  const stderr = new Sink()
  t.equal(await run(['analyze', '-'], {}, { stdout: new Sink(), stderr }), 2, 'a caller of run() that gives no stdin')
  t.equal(stderr.text, "clb-proxy analyze: '-' names standard input, and there is none here\nTry 'clb-proxy analyze --help'\n")
  t.match((await analyze(['--help'])).stdout, "A PATH of '-' reads standard input")
})

t.test('lines split across chunks, an unterminated last line, an overlong line', async (t) => {
  const line = generatedLine(8)
  const long = 'x'.repeat(MAX_LINE_BYTES + 10)
  const dir = t.testdir({ 'a.log': `${line}\n${line}\n${long}\n${line}\n${'y'.repeat(MAX_LINE_BYTES * 2)}\n${line}\n${line}` })
  const report = await analyzeJson([join(dir, 'a.log')])
  t.equal(report.requests, 5)
  t.equal(report.unparseable.count, 2)
  t.strictSame(report.unparseable.listed.map((u) => u.line), [3, 5])
  // Line 3's newline comes in the file's second 1 MiB chunk, after the line has passed the limit; line 5 passes it inside one chunk.
  t.strictSame(report.unparseable.listed[0], { file: join(dir, 'a.log'), line: 3, text: 'x'.repeat(200), truncated: true, reason: 'longer than 1048576 bytes' })
  t.strictSame(report.unparseable.listed[1], { file: join(dir, 'a.log'), line: 5, text: 'y'.repeat(200), truncated: true, reason: 'longer than 1048576 bytes' })
  t.match((await analyze([join(dir, 'a.log')])).stdout, `    3 (longer than 1048576 bytes): ${'x'.repeat(200)}…\n    5 (longer than 1048576 bytes): ${'y'.repeat(200)}…\n`)
  const tail = t.testdir({ 'b.log': `${line}\n${'z'.repeat(MAX_LINE_BYTES + 5)}` })
  const tailReport = await analyzeJson([join(tail, 'b.log')])
  t.equal(tailReport.lines, 2)
  t.equal(tailReport.unparseable.count, 1)
})

t.test('memory stays bounded: 200k lines, distinct paths, more minutes than buckets', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'big.log')
  writeLines(file, 200_000, true)
  const { stats } = await analyzeFiles((await listInputs([file])).files, new Sink())
  t.equal(stats.requests, 200_000)
  const sizes = stats.sizes()
  t.ok(sizes.paths < 2 * TOP_CAPACITY, `paths kept: ${sizes.paths}`)
  t.ok(sizes.buckets <= MAX_TIME_BUCKETS, `time buckets kept: ${sizes.buckets}`)
  t.equal(stats.bucketMinutes, 1, '4000 minutes fit')
  t.ok(sizes.signatures < 20)
  const report = buildReport(stats, 1)
  t.equal(report.topPaths.approximate, true, 'said when counts are approximate')
  t.equal(report.perMinute.reduce((sum, m) => sum + m.requests, 0), 200_000)
})

t.test('time buckets double in width past MAX_TIME_BUCKETS, keeping every count', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'long.log')
  // One line every 2 minutes over 3 x MAX_TIME_BUCKETS minutes.
  const lines = Array.from({ length: Math.ceil(MAX_TIME_BUCKETS * 1.5) }, (_, i) => generatedLine(i * 100))
  writeFileSync(file, `${lines.join('\n')}\n`)
  const { stats } = await analyzeFiles((await listInputs([file])).files, new Sink())
  t.ok(stats.bucketMinutes > 1)
  t.ok(stats.buckets.size <= MAX_TIME_BUCKETS)
  const report = buildReport(stats, 1)
  t.equal(report.perMinute.reduce((sum, m) => sum + m.requests, 0), lines.length)
  t.equal(report.perMinute.reduce((sum, m) => sum + m.elb5xx + m.backend5xx, 0), report.totals.elb5xx + report.totals.backend5xx)
})

t.test('bounded structures', async (t) => {
  const top = new BoundedTop(2)
  for (const key of ['a', 'a', 'a', 'b', 'b', 'c', 'd']) top.add(key)
  t.ok(top.counts.size < 4)
  t.strictSame(top.top(1), [['a', 3]])
  t.equal(top.prunedMax, 1)
  const histogram = new LatencyHistogram()
  t.equal(histogram.quantile(0.5), 0, 'empty')
  for (let i = 1; i <= 1000; i++) histogram.add(i * 1000)
  histogram.add(0)
  const p50 = histogram.quantile(0.5)
  t.ok(Math.abs(p50 - 500_000) / 500_000 < 0.03, `p50 ${p50}`)
  t.equal(histogram.quantile(1), 1_000_000)
  const other = new LatencyHistogram()
  other.add(5_000_000)
  histogram.merge(other)
  t.equal(histogram.max, 5_000_000)
  t.equal(histogram.count, 1002)
  const zeros = new LatencyHistogram()
  zeros.add(0)
  t.equal(zeros.quantile(0.99), 0)
})

t.test('the progress bar (cli-progress): only on a terminal, erased at the end, no timer left', async (t) => {
  const plain = new Sink()
  const quiet = new Progress(plain, 100)
  quiet.add(50, 10)
  quiet.end()
  t.equal(plain.text, '', 'nothing when the stream is not a terminal')
  const tty = Object.assign(new Sink(), { isTTY: true, columns: 120 })
  const progress = new Progress(tty, 2 << 20)
  progress.add(1 << 20, 5000)
  t.match(tty.text, /analyze \[[^\]]*\] 0% of 2\.0 MiB \| 5000 lines/, 'the first frame, drawn at once when the read starts')
  progress.add(1 << 20, 9000)
  progress.end()
  t.match(tty.text, /analyze \[[^\]]*\] 100% of 2\.0 MiB \| 9000 lines/, 'the last frame')
  t.ok(tty.text.endsWith('\x1b[1G\x1b[2K'), 'erased at the end (cursor to column 1, line cleared)')
  // A pipe or standard input among the inputs: their size is not known, so no bar, no percentage, the bytes read.
  const piped = Object.assign(new Sink(), { isTTY: true, columns: 120 })
  const unknown = new Progress(piped, null)
  unknown.add(1 << 20, 5000)
  t.match(piped.text, /analyze 1\.0 MiB read \| 5000 lines/, 'the first frame')
  unknown.add(1 << 20, 9000)
  unknown.end()
  t.match(piped.text, /analyze 2\.0 MiB read \| 9000 lines/, 'the last frame')
  t.notMatch(piped.text, /%/)
  const big = Object.assign(new Sink(), { isTTY: true, columns: 120 })
  const large = new Progress(big, 3 * 2 ** 30)
  large.add(0, 0)
  large.end()
  t.match(big.text, '3.0 GiB')
  const stderr = Object.assign(new Sink(), { isTTY: true, columns: 120 })
  const dir = t.testdir({ 'a.log': `${generatedLine(8)}\n` })
  t.equal((await analyze([join(dir, 'a.log')], stderr)).code, 0)
  t.match(stderr.text, /analyze \[/, 'a real run draws the bar on a terminal')
})

t.test('--idle-timeout: the keep-alive verdict and its fix are for the idle timeout given; a bad value is refused', async (t) => {
  // A 504 without backend and -1 timings, and an answered request of 1.004363 s: against CLB's
  // default 60 s, the keep-alive race; against a 2 s idle timeout, a slow application as likely.
  const ts = '2026-12-04T07:00:01.000001Z'
  const req = '"GET http://h:80/x HTTP/1.1" "ua" - -'
  const dir = t.testdir({
    'a.log': `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.000012 1.004363 0.00002 200 200 0 5 ${req}\n${ts} lb 1.2.3.4:5 - -1 -1 -1 504 0 0 0 ${req}\n`
  })
  const log = join(dir, 'a.log')
  const byDefault = await analyze([log])
  t.equal(byDefault.code, 0)
  t.match(byDefault.stdout, 'took 1.004363 s (backend_processing_time), against an idle timeout of 60 s (--idle-timeout);\n' +
    '  far below it, so these 504s are most likely instances closing kept-alive connections early.\n' +
    '  Fix: Set the backend keep-alive timeout greater than the load balancer idle timeout (60 s, the default)')
  const short = await analyze([log, '--idle-timeout', '2'])
  t.equal(short.code, 0)
  t.match(short.stdout, 'against an idle timeout of 2 s (--idle-timeout);\n  close to it: requests slower than the idle timeout may cause some or all of these 504s')
  t.match(short.stdout, '  Fix of the keep-alive race: Set the backend keep-alive timeout greater than the load balancer idle timeout (2 s), ')
  const json = await analyzeJson([log, '--idle-timeout=2'])
  t.match(json.keepAlive, { count: 1, slowestAnsweredSeconds: 1.004363, idleTimeoutSeconds: 2, likelyKeepAliveRace: false })
  t.match((await analyzeJson([log])).keepAlive, { idleTimeoutSeconds: 60, likelyKeepAliveRace: true })
  for (const bad of ['0', '4001', 'abc', '1.5', '', '-1']) {
    const refused = await analyze([log, `--idle-timeout=${bad}`])
    t.equal(refused.code, 2, `--idle-timeout=${bad}`)
    t.equal(refused.stderr.split('\n')[0], `clb-proxy analyze: --idle-timeout must be an integer from 1 to 4000 (CLB's range), got "${bad}"`)
  }
  const missing = await analyze([log, '--idle-timeout'])
  t.equal(missing.code, 2)
  t.match(missing.stderr, '--idle-timeout SECONDS')
  const athena = await analyze(['--athena', '--idle-timeout', '5'])
  t.equal(athena.code, 2)
  t.match(athena.stderr, '--athena takes no PATH and no other option (got "--idle-timeout")')
})

t.test('every cause, and the text and HTML of rarer cases', async (t) => {
  const ts = '2024-01-01T00:00:01.000001Z'
  const req = '"GET http://h:80/x HTTP/1.1" "ua" - -'
  const lines = [
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 45.5 0.1 200 200 0 1 ${req}`,
    `${ts} lb 1.2.3.4:5 - -1 -1 -1 504 0 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 60 -1 504 - 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 503 - 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 502 200 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 - -1 -1 -1 405 0 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 - -1 -1 -1 400 0 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 418 - 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 460 200 0 0 ${req}`,
    `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 - - 0 0 "GET http://h:80 HTTP/1.1"`
  ]
  const dir = t.testdir({ 'a.log': lines.join('\n') })
  const report = await analyzeJson([join(dir, 'a.log')])
  const causeOf = (elb: string, backend: string): string => report.signatures.find((s) => s.elbStatus === elb && s.backendStatus === backend)?.cause ?? ''
  t.match(causeOf('504', '-'), /did not answer within the idle timeout/)
  t.equal(causeOf('503', '-'), 'the load balancer answered 503 itself: "There are no registered instances", no healthy instance, spillover ("The surge queue is full") or capacity')
  t.match(causeOf('502', '200'), /could not parse/)
  t.match(causeOf('405', '0'), /127 characters/)
  t.match(causeOf('400', '0'), /malformed request/)
  t.match(causeOf('418', '-'), /answered 418 and the instance did not/)
  t.match(causeOf('460', '200'), /answered 460 and the instance answered 200/)
  t.equal(report.keepAlive?.slowestAnsweredSeconds, 45.5)
  t.strictSame(report.topPaths.rows.map((r) => r.path), ['/x'])
  const { stdout } = await analyze([join(dir, 'a.log')])
  t.match(stdout, 'in 1 file (10 lines')
  t.match(stdout, 'against an idle timeout of 60 s (--idle-timeout);\n  close to it: requests slower than the idle timeout may cause some or all of these 504s')
  t.match(stdout, '  Fix of the keep-alive race: Set the backend keep-alive timeout greater than the load balancer idle timeout (60 s, the default)')
  t.match(stdout, 'no status sent (elb_status_code -): 1')
  const wide = renderText({ ...report, bucketMinutes: 4, otherSignatures: 3, files: 2, requests: 0, firstMinute: null, blankLines: 2, topInstances: { ...report.topInstances, approximate: true }, topPaths: { ...report.topPaths, approximate: true }, unparseable: { count: 1, listed: [{ file: 'f', line: 1, text: 'x', truncated: false, reason: 'r' }] } })
  for (const text of ['Per 4 minutes (UTC)', '3 more error lines', 'in 2 files', '2 blank', '(approximate: many distinct instances)', '(approximate: many distinct paths)', 'Unparseable lines: 1\n', '0%']) t.match(wide, text)
  t.notMatch(renderText({ ...report, signatures: [], keepAlive: null, backendProcessingTime: null, perMinute: [], topInstances: { rows: [], approximate: false }, topPaths: { rows: [], approximate: false } }), /Error signatures|Keep-alive|backend_processing_time over|Per minute/)
  const page = renderHtml({ ...report, firstMinute: null, bucketMinutes: 2, topInstances: { ...report.topInstances, approximate: true }, topPaths: { ...report.topPaths, approximate: true } })
  t.match(page, 'per 2 minutes')
  t.match(page, 'Instances with the most errors (approximate)')
  t.match(page, 'Paths with the most errors (approximate)')
  t.match(renderHtml({ ...report, perMinute: [{ minute: 'm', requests: 0, connections: 0, errors: 0, errorRate: 0, elb4xx: 0, elb5xx: 0, backend4xx: 0, backend5xx: 0 }], lastMinute: null }), '<svg')
})

t.test('bounded by bytes: a path key is cut to MAX_PATH_CHARS; a timing too long to be finite makes the line unparseable', async (t) => {
  const { pathOfUrl, MAX_PATH_CHARS } = await import('../../../proxy/commands/analyze-stats.js')
  const long = pathOfUrl(`http://h:80/${'a'.repeat(5000)}?q=1`)
  t.equal(long.length, MAX_PATH_CHARS + 3)
  t.ok(long.endsWith('...'))
  t.equal(pathOfUrl('http://h:80/short?q'), '/short')
  const dir = t.testdir({ 'a.log': `2024-01-01T00:00:01.000001Z lb 1.2.3.4:5 10.0.0.1:80 0.1 ${'9'.repeat(400)} 0.1 200 200 0 1 "GET http://h:80/x HTTP/1.1" "ua" - -\n${generatedLine(8)}\n` })
  const stdout = new Sink()
  const stderr = new Sink()
  t.equal(await run(['analyze', join(dir, 'a.log'), '--json'], {}, { stdout, stderr }), 0)
  t.equal(JSON.parse(stdout.text).unparseable.count, 1)
})

t.test('standard input is not touched unless - is named (reading process.stdin opens it)', async (t) => {
  let touched = 0
  const io = { stdout: new Sink(), stderr: new Sink(), signals: new EventEmitter(), get stdin () { touched++; return Readable.from([]) } }
  const dir = t.testdir({ 'a.log': `${generatedLine(0)}\n` })
  t.equal(await run(['analyze', join(dir, 'a.log')], {}, io), 0)
  t.equal(touched, 0)
})

t.test('504s with no answered request at all: no keep-alive verdict, the log cannot tell (KC-504)', async (t) => {
  const ts = '2026-12-04T07:00:01.000001Z'
  const req = '"GET http://h:80/x HTTP/1.1" "ua" - -'
  const dir = t.testdir({ 'a.log': `${ts} lb 1.2.3.4:5 - -1 -1 -1 504 0 0 0 ${req}\n${ts} lb 1.2.3.4:6 - -1 -1 -1 504 0 0 0 ${req}\n` })
  const log = join(dir, 'a.log')
  const { code, stdout } = await analyze([log])
  t.equal(code, 0)
  t.match(stdout, 'Keep-alive signature: 2 504s with no backend and -1 timings.\n' +
    '  No request was answered by an instance in these lines, so the log cannot tell the idle-timeout cause\n' +
    '  (KC-504: "The most common reason for an HTTP 504 error is that a corresponding instance didn\'t respond to the request within the configured idle timeout")\n' +
    '  from instances closing kept-alive connections early. The CloudWatch Latency metric (data points at the idle\n' +
    '  timeout) or the instance\'s own logs (a request it never logged) tell which.\n' +
    '  Fix of the keep-alive race: Set the backend keep-alive timeout')
  t.notMatch(stdout, 'far below')
  t.match((await analyzeJson([log])).keepAlive, { count: 2, answeredRequests: 0, slowestAnsweredSeconds: 0, likelyKeepAliveRace: null })
  const out = join(dir, 'r.html')
  t.equal((await analyze([log, '--html', out])).code, 0)
  t.match(readFileSync(out, 'utf8'), '<p>2 504s with no backend and -1 timings. No request was answered by an instance in these lines, so the log cannot tell the idle-timeout cause (KC-504: &#34;The most common')
})

t.test('504s on paths never answered are the likely idle-timeout cause, not the keep-alive race; "far below" only under a tenth', async (t) => {
  const ts = '2026-12-04T07:00:01.000001Z'
  const answered = (path: string, seconds: string): string => `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.000012 ${seconds} 0.00002 200 200 0 5 "GET http://h:80${path}?q=1 HTTP/1.1" "ua" - -`
  const timedOut = (path: string): string => `${ts} lb 1.2.3.4:5 - -1 -1 -1 504 0 0 0 "GET http://h:80${path} HTTP/1.1" "ua" - -`
  // A request that timed out is logged -1 (CLB-LOGS): /api/report is slow, but no answered line shows it.
  const dir = t.testdir({
    'never.log': [answered('/x', '0.001'), timedOut('/api/report'), timedOut('/api/report'), timedOut('/api/report'), timedOut('/x')].join('\n'),
    'half.log': [answered('/x', '0.499'), timedOut('/x')].join('\n'),
    'many.log': [answered('/x', '0.001'), ...['/a', '/b', '/c', '/d', '/e', '/f', '/g'].map(timedOut)].join('\n')
  })
  const never = await analyze([join(dir, 'never.log')])
  t.match(never.stdout, 'Keep-alive signature: 4 504s with no backend and -1 timings.\n' +
    '  3 of these 4 504s are on paths no instance answered in these lines: /api/report (3).\n' +
    '  A request that timed out is logged with backend:port - and -1 timings (CLB-LOGS), so no answered line shows how slow\n' +
    '  these paths are: they are the likely idle-timeout cause (KC-504: "The most common reason for an HTTP 504 error is that a corresponding instance didn\'t respond to the request within the configured idle timeout"),\n' +
    '  not the keep-alive race: make them answer within the idle timeout of 60 s (--idle-timeout) or raise it.\n' +
    '  The other 1 may still be the keep-alive race, whose fix follows.\n' +
    '  Fix of the keep-alive race: ')
  t.notMatch(never.stdout, 'far below')
  t.match((await analyzeJson([join(dir, 'never.log')])).keepAlive, { count: 4, likelyKeepAliveRace: false, verdict: 'paths never answered', neverAnsweredPaths: { count: 3, paths: 1, rows: [{ path: '/api/report', errors: 3 }] } })
  const many = (await analyze([join(dir, 'many.log')])).stdout
  t.match(many, 'on paths no instance answered in these lines: /a (1), /b (1), /c (1), /d (1), /e (1) and 2 more.\n')
  t.notMatch(many, 'The other', 'every 504 is on a path never answered: no other is left')
  const half = await analyze([join(dir, 'half.log'), '--idle-timeout', '1'])
  t.match(half.stdout, '  The slowest request an instance answered took 0.499 s (backend_processing_time), against an idle timeout of 1 s (--idle-timeout);\n' +
    '  under half of it, so these 504s are more likely instances closing kept-alive connections early, but requests slower than the idle timeout may cause some.\n' +
    '  Fix: ')
  t.match((await analyzeJson([join(dir, 'half.log'), '--idle-timeout', '1'])).keepAlive, { likelyKeepAliveRace: true, verdict: 'keep-alive race', neverAnsweredPaths: { count: 0, paths: 0, rows: [] } })
  t.match((await analyze([join(dir, 'half.log'), '--idle-timeout', '5'])).stdout, '  far below it, so these 504s')
})

t.test('past MAX_ANSWERED_PATHS answered paths, no path is called never answered', async (t) => {
  const stats = new AnalyzeStats()
  const add = (line: string): void => {
    const fields = parseClbLineText(line)
    if (fields === null) throw new Error(line)
    stats.add(fields, (start, end) => Buffer.from(line).toString('utf8', start, end), 'lb')
  }
  const ts = '2026-12-04T07:00:01.000001Z'
  for (let i = 0; i <= MAX_ANSWERED_PATHS; i++) add(`${ts} lb 1.2.3.4:5 10.0.0.1:80 0.000012 0.001 0.00002 200 200 0 5 "GET http://h:80/p${i} HTTP/1.1" "ua" - -`)
  add(`${ts} lb 1.2.3.4:5 - -1 -1 -1 504 0 0 0 "GET http://h:80/new HTTP/1.1" "ua" - -`)
  t.equal(stats.answeredPaths.size, MAX_ANSWERED_PATHS)
  t.match(buildReport(stats, 1).keepAlive, { verdict: 'keep-alive race', neverAnsweredPaths: { count: 0, rows: [] } })
})

t.test('an input with no CLB line (an ALB log, nginx, a binary file) is refused: named, exit 2, no report', async (t) => {
  const alb = [
    'http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"',
    'h2 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 10.0.1.252:48160 10.0.0.66:9000 0.000 0.002 0.000 200 200 5 257 "GET https://10.0.2.105:773/ HTTP/2.0" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2'
  ]
  const dir = t.testdir({
    'alb.log': `${alb.join('\n')}\n`,
    'nginx.log': '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "-" "Mozilla/4.08"\n',
    'blob.log': Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 0x89, 0x50, 0x4e, 0x47]),
    'empty.log': ''
  })
  const [albLog, nginx, blob, empty] = ['alb.log', 'nginx.log', 'blob.log', 'empty.log'].map((name) => join(dir, name)) as [string, string, string, string]
  t.strictSame(await analyze([albLog]), {
    code: 2,
    stdout: '',
    stderr: `clb-proxy analyze: no line of '${albLog}' is a CLB access-log line (2 lines read); nothing to report\n` +
      'clb-proxy analyze: this looks like an Application Load Balancer log (its lines start with a type: http, https, h2, grpcs, ws, wss); analyze reads Classic Load Balancer logs, whose lines start with the timestamp\n'
  })
  t.strictSame(await analyze(['--json', nginx, blob]), { code: 2, stdout: '', stderr: `clb-proxy analyze: no line of '${nginx}', '${blob}' is a CLB access-log line (3 lines read); nothing to report\n` })
  const copies = Array.from({ length: 7 }, (_, i) => join(dir, `nginx-${i}.log`))
  for (const copy of copies) writeFileSync(copy, readFileSync(nginx))
  t.equal((await analyze(copies)).stderr.split('\n')[0], `clb-proxy analyze: no line of ${copies.slice(0, 5).map((copy) => `'${copy}'`).join(', ')} and 2 more files is a CLB access-log line (7 lines read); nothing to report`)
  t.equal((await analyze([nginx, join(dir, 'a.log.gz')])).code, 2, 'a file that could not be read does not hide it')
  t.equal((await analyze([empty])).code, 0, 'an empty file is not a wrong format: a report of 0 requests')
  writeFileSync(join(dir, 'b.log'), `${generatedLine(8)}\n`)
  t.equal((await analyze([nginx, join(dir, 'b.log')])).code, 0, 'one CLB line is enough for a report')
})

t.test('a file named twice, or under two PATHs (a directory and its subdirectory), is read once, and that is said', async (t) => {
  const dir = t.testdir({ 'a.log': `${generatedLine(8)}\n`, sub: { 'b.log': `${generatedLine(9)}\n`, 'c.log': `${generatedLine(10)}\n` } })
  const [a, sub, b] = [join(dir, 'a.log'), join(dir, 'sub'), join(dir, 'sub', 'b.log')]
  const twice = await analyze([a, a])
  t.equal(twice.code, 0)
  t.match(twice.stdout, /^clb-proxy analyze: 1 request in 1 file \(1 line,/)
  t.equal(twice.stderr, `clb-proxy analyze: read once, skipped as already read: '${a}'\n`)
  const nested = await analyze([b, dir, sub])
  t.match(nested.stdout, /^clb-proxy analyze: 3 requests in 3 files \(3 lines/)
  t.equal(nested.stderr, `clb-proxy analyze: read once, skipped as already read: '${b}', '${join(sub, 'b.log')}', '${join(sub, 'c.log')}'\n`)
  t.match((await analyze([a, a, a, a, a, a, a])).stderr, `'${a}', '${a}', '${a}', '${a}', '${a}' and 1 more files\n`)
})

t.test('the load balancers of the lines (the elb field) are named with their line counts; several are warned of', async (t) => {
  const of = (name: string, i: number): string => generatedLine(i).replace(' my-lb ', ` ${name} `)
  const dir = t.testdir({
    'one.log': `${[8, 9, 10].map((i) => of('my-lb', i)).join('\n')}\n`,
    'two.log': `${[of('web-lb', 8), of('api-lb', 9), of('web-lb', 10)].join('\n')}\n`
  })
  const one = await analyze([join(dir, 'one.log')])
  t.match(one.stdout, /^clb-proxy analyze: 3 requests in 1 file \(3 lines, 0 unparseable\)\nfrom 2024-01-01T00:00Z to 2024-01-01T00:00Z\nload balancer: my-lb \(3 lines\)\n\n/)
  t.notMatch(one.stdout, 'warning')
  const two = await analyze([join(dir, 'two.log'), join(dir, 'one.log')])
  t.match(two.stdout, 'load balancers: my-lb (3 lines), web-lb (2 lines), api-lb (1 line)\n' +
    'warning: the lines of 3 load balancers (the elb field) are counted together; analyze the logs of one load balancer at a time to tell them apart\n')
  t.strictSame((await analyzeJson([join(dir, 'two.log')])).loadBalancers, { rows: [{ name: 'web-lb', lines: 2 }, { name: 'api-lb', lines: 1 }], count: 2, approximate: false })
  const out = join(dir, 'r.html')
  await analyze([join(dir, 'two.log'), '--html', out])
  t.match(readFileSync(out, 'utf8'), '<p>load balancers: web-lb (2 lines), api-lb (1 line)</p>\n<p>warning: the lines of 2 load balancers')
  const report = await analyzeJson([join(dir, 'two.log')])
  t.match(renderText({ ...report, loadBalancers: { rows: report.loadBalancers.rows, count: 12, approximate: true } }), 'load balancers: web-lb (2 lines), api-lb (1 line) and 10 more (approximate counts)\n')
  t.notMatch(renderText({ ...report, loadBalancers: { rows: [], count: 0, approximate: false } }), 'load balancer')
})

t.test('TCP/SSL listener lines are connections, apart from requests: rates are over HTTP/HTTPS requests only', async (t) => {
  const ts = '2024-01-01T00:00:01.000001Z'
  const req = '"GET http://h:80/x HTTP/1.1" "ua" - -'
  const tcp = `${ts} lb 1.2.3.4:5 10.0.0.1:443 0.000744 0.000009 0.000012 - - 710 31845 "- - - " "-" - -`
  const dir = t.testdir({ 'a.log': [`${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.25 0.1 200 200 0 1 ${req}`, `${ts} lb 1.2.3.4:5 - -1 -1 -1 504 0 0 0 ${req}`, ...Array(8).fill(tcp)].join('\n') })
  const report = await analyzeJson([join(dir, 'a.log')])
  t.equal(report.requests, 2)
  t.match(report.totals, { tcp: 8, noStatus: 0, elb5xx: 1 })
  t.strictSame(report.perMinute, [{ minute: '2024-01-01T00:00Z', errors: 1, errorRate: 0.5, requests: 2, connections: 8, elb4xx: 0, elb5xx: 1, backend4xx: 0, backend5xx: 0 }])
  t.match(report.backendProcessingTime, { count: 1, max: 0.25 })
  const { stdout } = await analyze([join(dir, 'a.log')])
  t.match(stdout, /^clb-proxy analyze: 2 requests and 8 TCP\/SSL connections in 1 file \(10 lines, 0 unparseable\)\n/)
  t.match(stdout, '  ELB 5XX              1  50.00%\n')
  t.match(stdout, '  (over HTTP/HTTPS requests; the 8 TCP/SSL listener connections, "- - - " with elb_status_code -, have no status)\n')
  t.notMatch(stdout, 'no status sent')
  t.match(stdout, 'Per minute (UTC): requests, TCP/SSL connections, errors, error rate; ELB 4XX/5XX, backend 4XX/5XX\n  2024-01-01T00:00Z         2         8        1   50.00%   0/1  0/0\n')
  const onlyTcpLog = join(t.testdir({ 'b.log': `${tcp}\n` }), 'b.log')
  const onlyTcp = await analyzeJson([onlyTcpLog])
  t.match(onlyTcp, { requests: 0, firstMinute: '2024-01-01T00:00Z', totals: { tcp: 1 }, backendProcessingTime: null })
  const onlyTcpText = (await analyze([onlyTcpLog])).stdout
  t.match(onlyTcpText, /^clb-proxy analyze: 0 requests and 1 TCP\/SSL connection in 1 file \(1 line, 0 unparseable\)\n/, 'counts of one are singular')
  t.match(onlyTcpText, '  (over HTTP/HTTPS requests; the TCP/SSL listener connection, "- - - " with elb_status_code -, has no status)\n')
  t.match(onlyTcpText, '  2024-01-01T00:00Z         0         1        0       0%   0/0  0/0\n', 'a TCP-only log shows its connections per minute')
  const onlyTcpPage = renderHtml(onlyTcp)
  t.match(onlyTcpPage, '<p>0 requests and 1 TCP/SSL connection in 1 file, 1 line, 0 unparseable')
  t.match(onlyTcpPage, '<h2>TCP/SSL connections per minute</h2>\n<svg viewBox="0 0 900 220" width="100%" role="img" aria-label="TCP/SSL connections per minute"><g><title>2024-01-01T00:00Z: 0 requests, 0 errors, 1 TCP/SSL connection</title><rect x="0.00" y="0.00" width="899.00" height="200.00" class="req"/>', 'its connections are drawn')
  t.match(renderHtml(report), '<h2>Requests and errors per minute</h2>', 'with requests, the chart draws them')
})

t.test('--html writes control bytes of log fields visibly, as the text report does, and still HTML-escapes', async (t) => {
  const ts = '2024-01-01T00:00:01.000001Z'
  const dir = t.testdir({ 'a.log': `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 500 500 0 1 "GET http://h:80/a\x1b[31m<b>&"\x07 HTTP/1.1" "ua" - -\nbell \x07 here\n` })
  const out = join(dir, 'r.html')
  t.equal((await analyze([join(dir, 'a.log'), '--html', out])).code, 0)
  const page = readFileSync(out, 'utf8')
  t.notMatch(page, /[\x00-\x08\x0b-\x1f\x7f]/, 'no raw control byte')
  t.match(page, '<td>/a\\x1b[31m&#60;b&#62;&#38;&#34;\\x07</td>')
  t.match(page, '<td>bell \\x07 here</td>')
})

t.test('printable Unicode is shown as is; control characters (C0, C1, bidi) and invalid UTF-8 bytes are escaped; the cut mark prints as …', async (t) => {
  const ts = '2024-01-01T00:00:01.000001Z'
  const line = (path: string): string => `${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.1 0.1 500 500 0 1 "GET http://h:80${path} HTTP/1.1" "ua" - -`
  const dir = t.testdir({
    'a.log': Buffer.concat([
      Buffer.from(`${line('/café/日本/😀')}\n${line('/c1\u009b31m/bidi\u202eevil\u2066/ls\u2028')}\n`),
      Buffer.from(line('/bad-'), 'utf8').subarray(0, -20), Buffer.from([0xff, 0xc3, 0x28, 0xef, 0xbf, 0xbd, 0xe2, 0x82]), Buffer.from(' HTTP/1.1" "ua" - -\n'),
      Buffer.from(`naïve ${'é'.repeat(250)}\n`)
    ])
  })
  const { stdout } = await analyze([join(dir, 'a.log')])
  t.match(stdout, '  /café/日本/😀\n')
  t.match(stdout, '  /c1\\x9b31m/bidi\\u{202e}evil\\u{2066}/ls\\u{2028}\n')
  t.match(stdout, '  /bad\\xff\\xc3(\ufffd\\xe2\\x82\n', 'each invalid byte as \\xHH; a U+FFFD of the log kept')
  t.match(stdout, `    4 (fewer than 12 fields): naïve ${'é'.repeat(194)}…\n`)
  t.notMatch(stdout, '\\u{2026}')
  t.equal(visible('a\r\n\tb\x1b\x7f\u061c\u200e\u200f\ud800é😀'), 'a\\r\\n\\tb\\x1b\\x7f\\u{61c}\\u{200e}\\u{200f}\\u{d800}é😀')
  t.notMatch(stdout, '\\xe9')
  const { stats } = await analyzeFiles((await listInputs([join(dir, 'a.log')])).files, new Sink())
  stats.addUnparseable('f', 1, `${'a'.repeat(199)}😀${'b'.repeat(10)}`, 'r')
  t.strictSame(stats.unparseableListed[1], { file: 'f', line: 1, text: 'a'.repeat(199), truncated: true, reason: 'r' }, 'not cut between the halves of a surrogate pair')
  t.equal(renderText(buildReport(stats, 1)).includes(`\n    1 (r): ${'a'.repeat(199)}…\n`), true)
})

t.test('--html FILE that cannot be written is refused before anything is read, naming it; a write that fails is exit 1 too', async (t) => {
  const dir = t.testdir({ 'a.log': `${generatedLine(8)}\n`, 'alb.log': 'http 2018-07-02T22:23:00.186641Z app/x 1.2.3.4:5 - 0 0 0 200 200 0 0 "GET / HTTP/1.1"\n' })
  const unwritable = join(dir, 'missing-dir', 'r.html')
  // Standard input named, never read: the refusal comes before the input.
  let read = false
  const stdin = new Readable({ read () { read = true; this.push(null) } })
  t.strictSame(await analyze(['-', '--html', unwritable], new Sink(), stdin), { code: 1, stdout: '', stderr: `clb-proxy analyze: cannot write "${unwritable}": no such file or directory\n` })
  t.equal(read, false, 'nothing was read')
  // /dev/full: opened, then every write fails with ENOSPC.
  const full = await analyze([join(dir, 'a.log'), '--html', '/dev/full'])
  t.equal(full.code, 1)
  t.equal(full.stderr, 'clb-proxy analyze: cannot write "/dev/full": no space left on device\n')
  const refused = join(dir, 'refused.html')
  t.equal((await analyze([join(dir, 'alb.log'), '--html', refused])).code, 2)
  t.throws(() => readFileSync(refused), { code: 'ENOENT' }, 'no report, no file')
  // A FILE that was there before: left as it was when there is no report, never emptied first.
  const kept = join(dir, 'kept.html')
  writeFileSync(kept, 'an earlier report')
  t.equal((await analyze([join(dir, 'alb.log'), '--html', kept])).code, 2)
  t.equal(readFileSync(kept, 'utf8'), 'an earlier report', 'a file that was there before is left as it was')
  // An input named as FILE: refused before anything is written, the log unchanged.
  const log = join(dir, 'a.log')
  const before = readFileSync(log, 'utf8')
  t.strictSame(await analyze([log, '--html', log]), { code: 2, stdout: '', stderr: `clb-proxy analyze: --html "${log}" is one of the inputs: the report would overwrite the log it reads\n${"Try 'clb-proxy analyze --help'"}\n` })
  t.equal(readFileSync(log, 'utf8'), before, 'the log is intact')
})

t.test('each unparseable line says why: the first field that failed; blank lines of spaces and tabs; a UTF-8 BOM', async (t) => {
  const good = generatedLine(9)
  const replacing = (index: number, value: string): string => good.split(' ').map((field, i) => (i === index ? value : field)).join(' ')
  const why = (line: string): string | null => {
    const buf = Buffer.from(line)
    return parseClbLine(buf, 0, buf.length, emptyFields())
  }
  t.equal(why(good), null)
  const cases: Array<[string, string]> = [
    ['garbage', 'fewer than 12 fields'],
    [replacing(1, ''), 'elb is empty (two spaces)'],
    [replacing(0, 'short'), 'timestamp is not YYYY-MM-DDTHH:MM...'],
    [replacing(4, 'x'), 'request_processing_time is not seconds or -1'],
    [replacing(5, '1.x'), 'backend_processing_time is not seconds or -1'],
    [replacing(6, '1..'), 'response_processing_time is not seconds or -1'],
    [replacing(7, '2000'), 'elb_status_code is not a 3-digit code'],
    [replacing(8, 'x'), 'backend_status_code is not a 3-digit code'],
    [replacing(9, 'x'), 'received_bytes is not a count'],
    [replacing(10, 'x'), 'sent_bytes is not a count'],
    [good.replace('"GET', 'GET'), 'request is not quoted'],
    [good.replace(/" "curl.*$/, ' HTTP/1.1'), 'request has no closing quote']
  ]
  for (const [line, reason] of cases) t.equal(why(line), reason, reason)
  const dir = t.testdir({ 'a.log': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${good}\n  \t \n\t\n${replacing(7, '2x0')}\n`)]) })
  const report = await analyzeJson([join(dir, 'a.log')])
  t.match(report, { requests: 1, blankLines: 2, unparseable: { count: 1 } })
  t.match((await analyze([join(dir, 'a.log')])).stdout, `  ${join(dir, 'a.log')}:\n    4 (elb_status_code is not a 3-digit code): ${replacing(7, '2x0')}\n`)
  const out = join(dir, 'r.html')
  await analyze([join(dir, 'a.log'), '--html', out])
  t.match(readFileSync(out, 'utf8'), '<th>why</th>')
  t.match(readFileSync(out, 'utf8'), '<td>elb_status_code is not a 3-digit code</td>')
})

t.test('percentiles stay within the smallest and largest value: every time 0.2 s gives p50 0.2 s', async (t) => {
  const ts = '2024-01-01T00:00:01.000001Z'
  const dir = t.testdir({ 'a.log': `${Array(5).fill(`${ts} lb 1.2.3.4:5 10.0.0.1:80 0.1 0.2 0.1 200 200 0 1 "GET http://h:80/x HTTP/1.1" "ua" - -`).join('\n')}\n` })
  t.strictSame((await analyzeJson([join(dir, 'a.log')])).backendProcessingTime, { count: 5, p50: 0.2, p90: 0.2, p99: 0.2, max: 0.2 })
  const histogram = new LatencyHistogram()
  histogram.add(200_000)
  const other = new LatencyHistogram()
  other.add(100_000)
  other.add(100_000)
  histogram.merge(other)
  t.equal(histogram.quantile(0.5), 100_000, 'the smallest value of a merged histogram')
})

t.test('the text per-minute table stops at MAX_TEXT_TIME_ROWS rows and says how many were left out; JSON has them all', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'long.log')
  // One line a minute (generatedLine makes a minute of 50 lines) over a day and a half.
  writeFileSync(file, `${Array.from({ length: MAX_TEXT_TIME_ROWS * 1.5 }, (_, i) => generatedLine(i * 50 + 8)).join('\n')}\n`)
  const { stdout } = await analyze([file])
  const rows = stdout.split('\n').filter((line) => /^ {2}2024-/.test(line))
  t.equal(rows.length, MAX_TEXT_TIME_ROWS)
  t.match(stdout, `\n  (720 more rows, to 2024-01-02T11:59Z, left out here: --json and --html have them all)\n`)
  t.equal((await analyzeJson([file])).perMinute.length, MAX_TEXT_TIME_ROWS * 1.5)
})
