/**
 * The CLI without --backend: two demo instances (demo-a, demo-b) behind the demo's health check,
 * and the banner's health-check block, whole: the settings, the instances with their ids and
 * URLs, how to make one fail, what follows, and how to make it pass again. The user's own
 * health options (flags or environment variables) win over the demo's, each on its own. Real
 * sockets on port 0; every run is stopped with a signal and leaves no port open. (The walk-through
 * itself, through a real proxy, is in test/proxy/byte-servers/demo-health.test.ts.)
 */
import { EventEmitter, once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import { Sink } from '../../helpers/sink.js'
import { run } from '../../../proxy/commands/cli.js'

interface DemoRun {
  readonly stdout: Sink
  readonly stderr: Sink
  readonly signals: EventEmitter
  readonly exited: Promise<number>
  /** Everything from the 'listening on' line to the end of the banner. */
  readonly banner: string
  readonly proxyUrl: string
  readonly proxyPort: number
  readonly instances: ReadonlyArray<{ readonly name: string, readonly id: string, readonly port: number }>
}

/** Starts the CLI with `argv` (and --listen 127.0.0.1:0), stderr a terminal, and waits for its banner. */
async function startDemo (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<DemoRun> {
  const stdout = new Sink()
  const stderr = Object.assign(new Sink(), { isTTY: true })
  const signals = new EventEmitter()
  const exited = run(['--listen', '127.0.0.1:0', ...argv], env, { stdout, stderr, signals })
  await stderr.waitFor(/Press Ctrl-C to stop\.\n/)
  const banner = stderr.text.slice(stderr.text.indexOf('clb-proxy: listening on '))
  const [, proxyUrl = '', proxyPort = ''] = /^clb-proxy: listening on (http:\/\/127\.0\.0\.1:(\d+)) /.exec(banner) ?? []
  const instances = [...banner.matchAll(/^ {2}(demo-[ab]) {2}(i-[0-9a-f]{17}) {2}http:\/\/127\.0\.0\.1:(\d+) /gm)]
    .map(([, name = '', id = '', port = '']) => ({ name, id, port: Number(port) }))
  return { stdout, stderr, signals, exited, banner, proxyUrl, proxyPort: Number(proxyPort), instances }
}

async function stopDemo (demo: DemoRun): Promise<number> {
  demo.signals.emit('SIGINT')
  return await demo.exited
}

/** Whether something accepts TCP connections on 127.0.0.1:port (ECONNREFUSED means nothing listens). */
async function isListening (port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1')
  try {
    await once(socket, 'connect')
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return false
    throw error
  } finally {
    socket.destroy()
  }
}

/** The banner's health-check block for the demo's own settings, as a user reads it. */
function demoHealthBlock (a: DemoRun['instances'][number], b: DemoRun['instances'][number]): string {
  return [
    "Health checks (the demo's settings: CLB's minimums, so that a change shows within seconds):",
    '  target HTTP:/health, every 5 s, timeout 2 s, healthy threshold 2, unhealthy threshold 2',
    "  (CLB's defaults: every 30 s, timeout 5 s, healthy threshold 10, unhealthy threshold 2)",
    '',
    `  demo-a  ${a.id}  http://127.0.0.1:${a.port}  InService`,
    `  demo-b  ${b.id}  http://127.0.0.1:${b.port}  InService`,
    '',
    '  Requests go to both (least outstanding requests, ties take turns); curl -i shows which one',
    '  answered in its x-demo-instance header, and the access log names its port.',
    '',
    '  Make demo-a fail its health check. Ask demo-a directly: through the proxy the request',
    '  would reach whichever instance the load balancer picks.',
    `    curl http://127.0.0.1:${a.port}/demo/health/fail`,
    '  After 2 failed checks (within about 10 s) stderr shows',
    `    instance ${a.id} (127.0.0.1:${a.port}): InService -> OutOfService (Instance: ...)`,
    '  and every request goes to demo-b. Make demo-b fail too',
    `    curl http://127.0.0.1:${b.port}/demo/health/fail`,
    '  and with no instance in service the proxy answers every request itself, as CLB does:',
    '    HTTP/1.1 503 Service Unavailable: Back-end server is at capacity',
    '  Make demo-a pass again (InService after 2 passed checks, within about 10 s):',
    `    curl http://127.0.0.1:${a.port}/demo/health/pass`,
    ''
  ].join('\n')
}

t.test('no --backend: two demo instances behind the demo health check, and the banner says how to fail one', async (t) => {
  const { formatTryTable } = await import('../../../proxy/byte-servers/demo-backend.js')
  const demo = await startDemo([])
  const [a, b] = demo.instances
  if (a === undefined || b === undefined) throw new Error(`bug: the banner lists ${demo.instances.length} instances:\n${demo.banner}`)
  t.strictSame(demo.instances.map((instance) => instance.name), ['demo-a', 'demo-b'])
  t.not(a.port, b.port)
  t.not(a.id, b.id)

  t.equal(demo.banner, [
    `clb-proxy: listening on ${demo.proxyUrl} (access log: stdout)`,
    'clb-proxy: no --backend given, so requests go to the built-in demo backend: two instances, demo-a and demo-b',
    '',
    formatTryTable(demo.proxyUrl).replace(/\n+$/, ''),
    '',
    demoHealthBlock(a, b),
    'Press Ctrl-C to stop.',
    ''
  ].join('\n'), 'the whole banner, the try table unchanged')
  t.strictSame(demo.banner.split('\n').filter((line) => line.length >= 100 && !line.startsWith('clb-proxy: ')), [],
    'every line below the first two fits 100 columns')

  // Before the banner: each instance's registration and its first passing check, one line each.
  const diagnostics = demo.stderr.text.slice(0, demo.stderr.text.indexOf('clb-proxy: listening on ')).split('\n').slice(0, -1)
  const registered = (instance: typeof a): RegExp =>
    new RegExp(`^\\d\\d:\\d\\d:\\d\\d instance ${instance.id} \\(127\\.0\\.0\\.1:${instance.port}\\) registered: OutOfService \\(ELB: Instance registration is still in progress\\.\\)$`)
  const inService = (instance: typeof a): RegExp =>
    new RegExp(`^\\d\\d:\\d\\d:\\d\\d instance ${instance.id} \\(127\\.0\\.0\\.1:${instance.port}\\): OutOfService -> InService \\(N/A: N/A\\); last health check: 200 in [\\d.]+ ms$`)
  t.equal(diagnostics.length, 4, 'four diagnostic lines before the banner')
  t.match(diagnostics[0], registered(a))
  t.match(diagnostics[1], registered(b))
  t.ok(diagnostics.slice(2).some((line) => inService(a).test(line)), 'demo-a went InService before the banner')
  t.ok(diagnostics.slice(2).some((line) => inService(b).test(line)), 'demo-b went InService before the banner')

  // Through the proxy, both instances answer; the header says which.
  const answeredBy: string[] = []
  for (let request = 0; request < 2; request++) {
    const response = await fetch(`${demo.proxyUrl}/`)
    t.equal(response.status, 200)
    answeredBy.push(response.headers.get('x-demo-instance') ?? '')
    await response.arrayBuffer()
  }
  t.strictSame(answeredBy.sort(), ['demo-a', 'demo-b'])

  // The banner's commands go straight to an instance.
  const fail = await fetch(`http://127.0.0.1:${a.port}/demo/health/fail`)
  t.equal(fail.headers.get('x-demo-instance'), 'demo-a')
  t.match(await fail.text(), /^demo-a: \/health answers 500 from now on;/)
  const health = await fetch(`http://127.0.0.1:${a.port}/health`)
  t.equal(health.status, 500)
  await health.arrayBuffer()
  const pass = await fetch(`http://127.0.0.1:${a.port}/demo/health/pass`)
  t.match(await pass.text(), /^demo-a: \/health answers 200 from now on;/)

  t.equal(await stopDemo(demo), 0)
  const logLines = demo.stdout.text.split('\n')
  t.equal(logLines.length, 3, 'two access-log lines on stdout: the switches went around the proxy')
  t.strictSame(logLines.slice(0, 2).map((line) => line.split(' ')[3]).sort(), [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`].sort())
  t.equal(await isListening(demo.proxyPort), false, 'the proxy port is closed')
  t.equal(await isListening(a.port), false, 'demo-a is closed')
  t.equal(await isListening(b.port), false, 'demo-b is closed')
  t.equal(demo.signals.listenerCount('SIGTERM') + demo.signals.listenerCount('SIGINT'), 0, 'signal listeners removed')
})

t.test("the user's health options win, each on its own, by flag or environment variable", async (t) => {
  const demo = await startDemo(['--health-interval', '30', '--unhealthy-threshold', '3'], { CLB_HEALTHY_THRESHOLD: '4' })
  const [a] = demo.instances
  t.match(demo.banner, [
    "Health checks (yours: interval, healthy threshold, unhealthy threshold; the rest are the demo's):",
    '  target HTTP:/health, every 30 s, timeout 2 s, healthy threshold 4, unhealthy threshold 3',
    "  (CLB's defaults: every 30 s, timeout 5 s, healthy threshold 10, unhealthy threshold 2)"
  ].join('\n'), 'the settings, and which are the user\'s')
  t.match(demo.banner, '  After 3 failed checks (within about 90 s) stderr shows\n', 'the walk-through, with their numbers')
  t.match(demo.banner, `  Make demo-a pass again (InService after 4 passed checks, within about 120 s):\n    curl http://127.0.0.1:${a?.port ?? 0}/demo/health/pass\n`)
  t.equal(await stopDemo(demo), 0)
})

t.test('with every health option set, the block says they are all the user\'s', async (t) => {
  const demo = await startDemo(['--health-check', 'HTTP:/health', '--health-interval', '6', '--health-timeout', '3',
    '--healthy-threshold', '3', '--unhealthy-threshold', '4'])
  t.match(demo.banner, [
    'Health checks (all yours):',
    '  target HTTP:/health, every 6 s, timeout 3 s, healthy threshold 3, unhealthy threshold 4'
  ].join('\n'))
  t.match(demo.banner, '  After 4 failed checks (within about 24 s) stderr shows\n', 'the walk-through, with their numbers')
  t.equal(await stopDemo(demo), 0)
})

t.test("a timeout of the user's at or above the demo's 5 s interval moves the interval past it", async (t) => {
  const demo = await startDemo(['--health-timeout', '10'])
  t.match(demo.banner, [
    "Health checks (yours: timeout; the rest are the demo's):",
    '  target HTTP:/health, every 11 s, timeout 10 s, healthy threshold 2, unhealthy threshold 2'
  ].join('\n'))
  t.equal(await stopDemo(demo), 0)
})

t.test("a health check of the user's that does not request /health: the switch walk-through is left out", async (t) => {
  const demo = await startDemo(['--health-check', 'TCP'])
  const [a, b] = demo.instances
  const tail = [
    "Health checks (yours: target; the rest are the demo's):",
    '  target TCP, every 5 s, timeout 2 s, healthy threshold 2, unhealthy threshold 2',
    "  (CLB's defaults: every 30 s, timeout 5 s, healthy threshold 10, unhealthy threshold 2)",
    '',
    `  demo-a  ${a?.id ?? ''}  http://127.0.0.1:${a?.port ?? 0}  InService`,
    `  demo-b  ${b?.id ?? ''}  http://127.0.0.1:${b?.port ?? 0}  InService`,
    '',
    "  Your health check does not request /health on each instance's own port, so the demo's",
    '  /demo/health/fail and /demo/health/pass switches do not change what it sees.',
    '',
    'Press Ctrl-C to stop.',
    ''
  ].join('\n')
  t.equal(demo.banner.slice(-tail.length), tail, 'the settings and the instances, without the walk-through')
  t.equal(await stopDemo(demo), 0)
})

t.test('a bad value for a health option is still a usage error, before any demo instance starts', async (t) => {
  const listenCalls = t.capture(net.Server.prototype, 'listen')
  const stdout = new Sink()
  const stderr = new Sink()
  const code = await run(['--listen', '127.0.0.1:0', '--health-interval', '4'], {}, { stdout, stderr, signals: new EventEmitter() })
  t.equal(code, 2)
  t.match(stderr.text, /^clb-proxy: --health-interval must be an integer number of seconds from 5 to 300 \(CLB's range\), got "4"\n/)
  t.equal(listenCalls.args().length, 0, 'no server called listen()')
})
