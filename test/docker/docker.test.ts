/**
 * The docker sidecar, without a Docker engine: docker/compose.yaml and docker/Dockerfile are read
 * and checked against the CLI's own option table, the Dockerfile is linted, and the runtime stage's
 * command is run for real from a clean production install laid out exactly as the image has it
 * (package.json, package-lock.json, dist/, `npm ci --omit=dev`), in front of the compose file's own
 * example app, with the image's and the compose file's environment.
 *
 * Slow (one TypeScript build, one `npm ci` that may reach the registry): it builds dist/ itself,
 * into a temp dir, so it needs neither `npm run build` first nor touches the repo's dist/.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, posix, resolve } from 'node:path'
import { validate as lintDockerfile } from 'dockerfile-utils'
import t, { type Test } from 'tap'
import { parse as parseYaml } from 'yaml'
import { OPTION_FLAGS, SWITCH_FLAGS } from '../../proxy/commands/option-flags.js'
import type { ClbProxyOptions } from '../../proxy/core/options.js'
import { resolveOptions } from '../../proxy/core/resolve-options.js'
import { REPO_ROOT } from '../helpers/repo.js'

t.setTimeout(10 * 60 * 1000)

const REPO = REPO_ROOT
const DOCKERFILE_PATH = join(REPO, 'docker', 'Dockerfile')
const COMPOSE_PATH = join(REPO, 'docker', 'compose.yaml')
const DOCKERFILE_TEXT = readFileSync(DOCKERFILE_PATH, 'utf8')
const COMPOSE_TEXT = readFileSync(COMPOSE_PATH, 'utf8')
const KNOWN_ENV_NAMES = new Set([...OPTION_FLAGS.map((option) => option.env), ...SWITCH_FLAGS.flatMap((option) => option.env === undefined ? [] : [option.env])])

// --- reading a Dockerfile ------------------------------------------------------------------------

interface Instruction {
  /** Upper-cased: FROM, RUN, COPY... */
  readonly keyword: string
  /** Everything after the keyword, continuation lines joined. */
  readonly args: string
  readonly line: number
}

interface Stage {
  readonly image: string
  readonly name: string | undefined
  readonly instructions: readonly Instruction[]
}

/**
 * Dockerfile reference: an instruction is `KEYWORD arguments`; a `\` at the end of a line continues
 * it on the next; lines whose first non-blank character is `#` are comments, also inside a
 * continued instruction. (Parser directives are comments here: this file uses none.)
 */
function parseInstructions(text: string): Instruction[] {
  const instructions: Instruction[] = []
  let pending = ''
  let startLine = 0
  text.split('\n').forEach((rawLine, index) => {
    const line = rawLine.replace(/\r$/, '')
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) return
    if (pending === '') startLine = index + 1
    if (/\\\s*$/.test(line)) {
      pending += `${line.replace(/\\\s*$/, '')} `
      return
    }
    const whole = (pending + line).trim()
    pending = ''
    const match = /^(\S+)\s*(.*)$/s.exec(whole)
    if (match === null) throw new Error(`bug in the test's Dockerfile reader at line ${startLine}`)
    instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim(), line: startLine })
  })
  if (pending !== '') throw new Error('the Dockerfile ends inside a continued instruction')
  return instructions
}

function splitStages(instructions: readonly Instruction[]): Stage[] {
  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args)
      if (match === null) throw new Error(`unreadable FROM at line ${instruction.line}: ${instruction.args}`)
      stages.push({ image: match[1] ?? '', name: match[2], instructions: [] })
      continue
    }
    const current = stages.at(-1)
    if (current === undefined) throw new Error(`${instruction.keyword} before any FROM at line ${instruction.line}`)
    current.instructions.push(instruction)
  }
  return stages
}

/** `ENV KEY=VALUE [KEY=VALUE...]` (double quotes allowed) or the legacy `ENV KEY VALUE`. */
function parseEnv(args: string): Array<[string, string]> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const legacy = /^(\S+)\s+(.*)$/.exec(args)
    if (legacy === null) throw new Error(`unreadable ENV ${args}`)
    return [[legacy[1] ?? '', legacy[2] ?? '']]
  }
  const pairs: Array<[string, string]> = []
  const pattern = /([A-Za-z_][A-Za-z0-9_]*)=(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*/gy
  let match: RegExpExecArray | null
  while ((match = pattern.exec(args)) !== null) {
    pairs.push([match[1] ?? '', match[2] ?? match[3] ?? ''])
    if (pattern.lastIndex === args.length) return pairs
  }
  throw new Error(`unreadable ENV ${args}`)
}

interface Copy {
  readonly from: string | undefined
  readonly sources: readonly string[]
  readonly destination: string
}

function parseCopy(args: string): Copy {
  const words = args.split(/\s+/)
  let from: string | undefined
  while (words[0]?.startsWith('--') === true) {
    const flag = words.shift() ?? ''
    const fromFlag = /^--from=(.+)$/.exec(flag)
    if (fromFlag === null) throw new Error(`COPY flag this test does not know: ${flag}`)
    from = fromFlag[1]
  }
  const destination = words.pop()
  if (destination === undefined || words.length === 0) throw new Error(`COPY without source or destination: ${args}`)
  return { from, sources: words, destination }
}

/** The exec (JSON array) form; undefined for the shell form, which Docker runs under /bin/sh -c. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  const parsed: unknown = JSON.parse(args)
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) return undefined
  return parsed as string[]
}

function only(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword)
}

function envOf(stage: Stage): Record<string, string> {
  return Object.fromEntries(only(stage, 'ENV').flatMap((instruction) => parseEnv(instruction.args)))
}

/** The one instruction of this kind in the stage; fails the test otherwise. */
function single(t: Test, stage: Stage, keyword: string): Instruction {
  const found = only(stage, keyword)
  t.equal(found.length, 1, `one ${keyword} in stage ${stage.name ?? stage.image}`)
  const first = found[0]
  if (first === undefined) throw new Error(`no ${keyword} in stage ${stage.name ?? stage.image}`)
  return first
}

const STAGES = splitStages(parseInstructions(DOCKERFILE_TEXT))
const BUILD_STAGE = STAGES[0]
const RUNTIME_STAGE = STAGES.at(-1)
if (BUILD_STAGE === undefined || RUNTIME_STAGE === undefined) throw new Error('docker/Dockerfile has no stage')
const RUNTIME_ENV = envOf(RUNTIME_STAGE)

/** The HEALTHCHECK's command in exec form (undefined for the shell form). */
function healthcheckProbe(args: string): string[] | undefined {
  const command = /(?:^|\s)CMD\s+(.*)$/s.exec(args)?.[1]
  return command === undefined ? undefined : execForm(command)
}

/** What the build stage's `npm run build -- FLAGS` passes on to tsc (none for a plain `npm run build`). */
const BUILD_COMPILE_FLAGS = ((): string[] => {
  const build = BUILD_STAGE.instructions.find((instruction) => instruction.keyword === 'RUN' && instruction.args.startsWith('npm run build'))
  if (build === undefined) throw new Error('the build stage does not run npm run build')
  const flags = build.args.split(/\s+--\s+/)[1]
  return flags === undefined ? [] : flags.trim().split(/\s+/)
})()

/** The whole npm ci command of the runtime stage's RUN, before any `&&` clean-up. */
function runtimeInstallCommand(): string[] {
  const run = RUNTIME_STAGE?.instructions.find((instruction) => instruction.keyword === 'RUN')
  const first = run?.args.split('&&')[0]?.trim()
  if (first === undefined) throw new Error('the runtime stage has no RUN')
  return first.split(/\s+/)
}

// --- options ------------------------------------------------------------------------------------

/**
 * Checks one variable's text the way the CLI reads it: its OPTION_FLAGS row turns the text into
 * the option value (comma-separated for lists), then resolveOptions checks the value's range.
 * Throws OptionError for a bad value.
 */
function checkEnvValue(name: string, text: string): void {
  const option = OPTION_FLAGS.find((candidate) => candidate.env === name)
  if (option === undefined) throw new Error(`${name} is not a clb-proxy variable`)
  const values = (option.multiple ? text.split(',').map((entry) => entry.trim()) : [text]).map((entry) => option.fromText(entry))
  resolveOptions({ [option.field]: option.multiple ? values : values[0] } as ClbProxyOptions, { requireBackends: false })
}

function portOfListen(listen: string): number {
  const match = /:(\d+)$/.exec(listen)
  if (match === null) throw new Error(`no port in ${listen}`)
  return Number(match[1])
}

// --- compose.yaml -------------------------------------------------------------------------------

interface ComposeService {
  image?: string
  build?: { context?: string; dockerfile?: string } | string
  command?: string[] | string
  environment?: Record<string, string | number | boolean | null> | string[]
  ports?: Array<string | number | { target?: number; published?: number | string }>
  depends_on?: string[] | Record<string, unknown>
  healthcheck?: { test?: string[] | string, interval?: string, timeout?: string, retries?: number }
}

const COMPOSE = parseYaml(COMPOSE_TEXT) as { services?: Record<string, ComposeService> }

/** compose `environment:` as a map; the list form `KEY=value` is read too. Values as strings. */
function composeEnvironment(service: ComposeService): Record<string, string> {
  const environment = service.environment ?? {}
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map((entry) => {
      const equals = entry.indexOf('=')
      return equals === -1 ? [entry, ''] : [entry.slice(0, equals), entry.slice(equals + 1)]
    }))
  }
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, value === null ? '' : String(value)]))
}

function composeService(name: string): ComposeService {
  const service = COMPOSE.services?.[name]
  if (service === undefined) throw new Error(`docker/compose.yaml has no service ${name}`)
  return service
}

t.test('docker/compose.yaml: an app and clb-proxy in front of it, with real variables', async (t) => {
  t.same(Object.keys(COMPOSE.services ?? {}).sort(), ['app', 'clb'], 'services app and clb')
  const clb = composeService('clb')
  const app = composeService('app')

  t.same(clb.build, { context: '..', dockerfile: 'docker/Dockerfile' }, 'clb is built from the repo root with docker/Dockerfile')
  if (typeof clb.build === 'object') {
    // Compose resolves context against the compose file's folder, dockerfile against the context.
    const dockerfile = resolve(dirname(COMPOSE_PATH), clb.build.context ?? '.', clb.build.dockerfile ?? 'Dockerfile')
    t.equal(dockerfile, DOCKERFILE_PATH, 'the build points at this docker/Dockerfile')
  }

  const environment = composeEnvironment(clb)
  t.same(Object.keys(environment).sort(), ['CLB_BACKENDS', 'CLB_IDLE_TIMEOUT', 'CLB_NAME'], 'clb sets backends, name and idle timeout')
  for (const [name, text] of Object.entries(environment)) {
    t.ok(KNOWN_ENV_NAMES.has(name), `${name} is an environment variable of OPTION_FLAGS`)
    t.doesNotThrow(() => checkEnvValue(name, text), `${name}=${text} is a value the CLI accepts`)
  }
  t.equal(environment.CLB_BACKENDS, 'http://app:3000', 'the backend is the app service, by its compose name')
  t.equal(environment.CLB_NAME, 'my-app-clb')
  t.equal(environment.CLB_IDLE_TIMEOUT, '10')

  // Every CLB_ name anywhere in the file, comments included, is a real one.
  const mentioned = new Set(COMPOSE_TEXT.match(/\bCLB_[A-Z][A-Z0-9_]*/g) ?? [])
  t.same([...mentioned].filter((name) => !KNOWN_ENV_NAMES.has(name)), [], 'no unknown CLB_ variable is mentioned')

  // The published port reaches the port the image listens on (compose does not override CLB_LISTEN).
  t.same(clb.ports, ['8080:8080'], 'host port 8080 to container port 8080')
  t.equal(environment.CLB_LISTEN, undefined, 'compose keeps the image\'s CLB_LISTEN')
  t.equal(portOfListen(RUNTIME_ENV.CLB_LISTEN ?? ''), 8080, 'the image listens on the container port compose publishes')
  t.same(clb.depends_on, { app: { condition: 'service_healthy' } }, 'clb starts once app answers its health check')
  t.match(app.healthcheck, { test: ['CMD', 'node', '-e'], interval: '2s', timeout: '2s' }, 'the app has an exec-form health check with node, which its image has')

  t.equal(app.image, 'node:20-bookworm-slim', 'the example app runs on the same Node image')
  t.equal(app.ports, undefined, 'the app publishes no port: requests reach it only through clb')
  t.notMatch(JSON.stringify(app.command), /\$/, 'no $ in the app script (compose would interpolate it)')
})

// --- Dockerfile -----------------------------------------------------------------------------------

t.test('docker/Dockerfile: a build stage and a lean, non-root runtime stage', async (t) => {
  t.equal(STAGES.length, 2, 'two stages')
  t.equal(BUILD_STAGE.name, 'build')
  t.equal(RUNTIME_STAGE.name, 'runtime', 'the runtime stage is last, so a plain docker build produces it')
  for (const stage of STAGES) {
    t.equal(stage.image, 'node:20-bookworm-slim', `stage ${stage.name ?? ''} runs on Node 20, the version package.json supports`)
  }

  t.test('build stage: npm ci, then exactly what tsconfig.build.json compiles, then npm run build', async (t) => {
    t.same(only(BUILD_STAGE, 'RUN').map((instruction) => instruction.args), [
      'npm ci --ignore-scripts --no-audit --no-fund',
      `npm run build -- ${BUILD_COMPILE_FLAGS.join(' ')}`
    ])
    t.same(BUILD_COMPILE_FLAGS, ['--sourceMap', 'false', '--declaration', 'false'], 'the image gets no source map and no type declaration')
    const copied = only(BUILD_STAGE, 'COPY').flatMap((instruction) => parseCopy(instruction.args).sources)
    const buildConfig = JSON.parse(readFileSync(join(REPO, 'tsconfig.build.json'), 'utf8')) as { include: string[]; extends?: string }
    // "bin/**/*.ts" needs the bin folder; "index.ts" needs the file.
    const needed = buildConfig.include.map((pattern) => pattern.split('/')[0] ?? pattern)
    for (const path of [...needed, 'tsconfig.build.json', buildConfig.extends?.replace(/^\.\//, '') ?? 'tsconfig.json', 'package.json', 'package-lock.json']) {
      t.ok(copied.includes(path), `the build stage copies ${path}`)
    }
    t.same(copied.filter((path) => !existsSync(join(REPO, path))), [], 'every copied path exists in the repo')
    // package.json's build script is the one the Dockerfile relies on: it ends with the compile
    // this test runs (what comes before it only empties dist/, which the build stage does not have).
    const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    t.match(manifest.scripts.build, /(?:^|&& )tsc -p tsconfig\.build\.json$/)
  })

  t.test('runtime stage', async (t) => {
    t.same(only(RUNTIME_STAGE, 'COPY').map((instruction) => parseCopy(instruction.args)), [
      { from: undefined, sources: ['package.json', 'package-lock.json'], destination: './' },
      { from: 'build', sources: ['/app/dist'], destination: './dist' }
    ], 'copies package.json, the lockfile and the compiled dist/ only')
    t.same(single(t, RUNTIME_STAGE, 'WORKDIR').args, '/app')
    t.same(single(t, BUILD_STAGE, 'WORKDIR').args, '/app', 'the build stage compiles into /app/dist')
    t.same(runtimeInstallCommand(), ['npm', 'ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'],
      'production dependencies only')
    t.equal(only(RUNTIME_STAGE, 'RUN').length, 1, 'one RUN')

    const user = single(t, RUNTIME_STAGE, 'USER').args
    t.equal(user, 'node', 'runs as the official image\'s unprivileged node user')
    const userIndex = RUNTIME_STAGE.instructions.findIndex((instruction) => instruction.keyword === 'USER')
    t.same(RUNTIME_STAGE.instructions.slice(userIndex).filter((instruction) => ['RUN', 'COPY', 'ADD'].includes(instruction.keyword)), [],
      'nothing is installed or copied after USER: the files stay root-owned and read-only for node')

    t.same(execForm(single(t, RUNTIME_STAGE, 'ENTRYPOINT').args), ['node', '--max-semi-space-size=4', 'dist/bin/clb-proxy.js'],
      'exec-form entry: node is PID 1 and gets the stop signal itself')
    t.same(only(RUNTIME_STAGE, 'CMD'), [], 'no CMD: arguments given to docker run are clb-proxy flags')
    t.equal(single(t, RUNTIME_STAGE, 'STOPSIGNAL').args, 'SIGTERM', 'the CLI handles SIGTERM (proxy/commands/command-line.ts listenForStop)')
    t.equal(single(t, RUNTIME_STAGE, 'EXPOSE').args, '8080')

    const healthcheck = single(t, RUNTIME_STAGE, 'HEALTHCHECK').args
    t.match(healthcheck, /^--interval=\d+s\s+--timeout=\d+s\s+--start-period=\d+s\s+--retries=\d+\s+CMD\s+\[/, 'HEALTHCHECK options, then an exec-form CMD')
    const probe = healthcheckProbe(healthcheck)
    t.same(probe?.slice(0, 2), ['node', '-e'], 'the probe is plain node: no curl or wget in the image')

    t.same(RUNTIME_ENV, {
      NODE_ENV: 'production',
      CLB_LISTEN: '0.0.0.0:8080',
      CLB_ACCESS_LOG: '-',
      CLB_DRAIN_TIMEOUT: '5',
      CLB_CAPTURE_DIR: '/tmp/clb-proxy-captures'
    }, 'the image\'s environment')
    for (const [name, text] of Object.entries(RUNTIME_ENV).filter(([name]) => name.startsWith('CLB_'))) {
      t.ok(KNOWN_ENV_NAMES.has(name), `${name} is an environment variable of OPTION_FLAGS`)
      t.doesNotThrow(() => checkEnvValue(name, text), `${name}=${text} is a value the CLI accepts`)
    }
    // docker stop waits 10 s before SIGKILL: the drain must end first for a flushed log and exit 0.
    t.ok(Number(RUNTIME_ENV.CLB_DRAIN_TIMEOUT) < 10, 'the drain ends before docker stop\'s SIGKILL')
  })

  t.test('every CLB_ name in the Dockerfile and docker/README.md is real; the README lists every one', async (t) => {
    const readme = readFileSync(join(REPO, 'docker', 'README.md'), 'utf8')
    for (const [file, text] of [['docker/Dockerfile', DOCKERFILE_TEXT], ['docker/README.md', readme]] as const) {
      const mentioned = new Set(text.match(/\bCLB_[A-Z][A-Z0-9_]*/g) ?? [])
      t.same([...mentioned].filter((name) => !KNOWN_ENV_NAMES.has(name)), [], `${file} mentions no unknown CLB_ variable`)
    }
    t.same([...KNOWN_ENV_NAMES].filter((name) => !readme.includes(`\`${name}\``)), [], 'docker/README.md lists every variable')
  })
})

t.test('.dockerignore keeps node_modules, dist, .git, test and bench out, and nothing the build needs', async (t) => {
  const patterns = readFileSync(join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  t.same(patterns.filter((pattern) => /[!*?[\]]/.test(pattern.replace(/^\*\.log$/, ''))), [], 'plain names only (besides *.log), so this check reads them right')
  for (const name of ['node_modules', 'dist', '.git', 'test', 'bench']) t.ok(patterns.includes(name), `${name} is ignored`)
  const sources = STAGES.flatMap((stage) => only(stage, 'COPY').map((instruction) => parseCopy(instruction.args)))
    .filter((copy) => copy.from === undefined)
    .flatMap((copy) => copy.sources)
  for (const source of sources) {
    const topLevel = posix.normalize(source).split('/')[0] ?? source
    t.notOk(patterns.includes(topLevel), `${source}, which the build copies, is not ignored`)
  }
})

t.test('dockerfile-utils finds nothing to report in docker/Dockerfile', async (t) => {
  t.same(lintDockerfile(DOCKERFILE_TEXT).map((diagnostic) => `line ${diagnostic.range.start.line + 1}: ${diagnostic.message}`), [])
  // The linter is awake: the same file with a broken duration and port is reported.
  const broken = DOCKERFILE_TEXT.replace('--interval=10s', '--interval=10x').replace('EXPOSE 8080', 'EXPOSE http')
  t.same(lintDockerfile(broken).map((diagnostic) => diagnostic.message).sort(), ['Invalid containerPort: http', 'time: unknown unit x in duration 10x'].sort())
})

// --- the runtime stage, run --------------------------------------------------------------------------

interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * The environment for npm and tsc: this process's, without what tap and npm put there (npm_*
 * would point npm back at this repo; NODE_OPTIONS would load tap's hooks) and without CLB_*.
 */
function toolEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) =>
    !/^(npm_|NODE_OPTIONS$|NODE_V8_COVERAGE$|_TAPJS_|TAP|TS_NODE_|CLB_)/i.test(name)))
}

/** Runs a command to its end and collects its output. */
async function runToEnd(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Finished> {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  return { code, signal, stdout, stderr }
}

/** A running child whose output is kept, with a way to wait for a pattern in it. */
class Watched {
  stdout = ''
  stderr = ''
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (text: string) => { this.stdout += text; child.emit('output') })
    child.stderr?.setEncoding('utf8').on('data', (text: string) => { this.stderr += text; child.emit('output') })
    this.exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  }

  /** Resolves with the first match in the stream; rejects if the process ends without one. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = this[stream].match(pattern)
        if (match !== null) {
          this.child.off('output', check)
          this.child.off('close', ended)
          resolve(match)
        }
      }
      const ended = (): void => {
        this.child.off('output', check)
        reject(new Error(`process ended before ${stream} matched ${pattern}:\nstdout: ${this.stdout}\nstderr: ${this.stderr}`))
      }
      this.child.on('output', check)
      this.child.once('close', ended)
      check()
    })
  }
}

function watch(t: Test, command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Watched {
  const watched = new Watched(spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] }))
  t.teardown(async () => {
    if (watched.child.exitCode === null && watched.child.signalCode === null) {
      watched.child.kill('SIGKILL')
      await watched.exited
    }
  })
  return watched
}

/** A port nothing listens on right now (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * The HEALTHCHECK probe as the container runs it, except that it reads the arguments of `pid`
 * instead of PID 1's: here the proxy is a child of the test, not the container's main process.
 */
function probeOf(probe: readonly string[], pid: number | undefined): string[] {
  if (pid === undefined) throw new Error('the proxy has no pid')
  return probe.map((arg) => arg.replace('/proc/1/cmdline', `/proc/${pid}/cmdline`))
}

/** One request on its own connection (agent: false), so nothing stays open afterwards. */
async function get(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const request = http.get(url, { agent: false, headers })
  const [response] = (await once(request, 'response')) as [http.IncomingMessage]
  response.setEncoding('utf8')
  let body = ''
  for await (const chunk of response) body += chunk as string
  return { status: response.statusCode ?? 0, body }
}

t.test('the runtime stage\'s command, from a clean production install, in front of the compose app', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clb-docker-test-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const app = join(root, 'app') // the image's WORKDIR /app

  // Build stage: `npm run build -- FLAGS` is `tsc -p tsconfig.build.json FLAGS`; here into the temp /app/dist.
  const build = await runToEnd(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', ...BUILD_COMPILE_FLAGS, '--outDir', join(app, 'dist')], { cwd: REPO, env: toolEnvironment() })
  t.equal(build.code, 0, `the build stage's compile succeeds${build.code === 0 ? '' : `:\n${build.stdout}${build.stderr}`}`)
  const compiled = await readdir(join(app, 'dist'), { recursive: true })
  t.same(compiled.filter((name) => name.endsWith('.map') || name.endsWith('.d.ts')), [], 'dist/ has no source map and no type declaration')
  t.ok(compiled.includes(join('bin', 'clb-proxy.js')), 'dist/ has the CLI')

  // Runtime stage: COPY package.json package-lock.json ./, then its npm ci, then dist/ from the build.
  for (const file of ['package.json', 'package-lock.json']) await copyFile(join(REPO, file), join(app, file))
  const [npm, ...npmArgs] = runtimeInstallCommand()
  const install = await runToEnd(npm ?? 'npm', npmArgs, { cwd: app, env: toolEnvironment() })
  t.equal(install.code, 0, `${runtimeInstallCommand().join(' ')} succeeds${install.code === 0 ? '' : `:\n${install.stderr}`}`)
  const installed = new Set(await readdir(join(app, 'node_modules')))
  t.ok(installed.has('fastify') && installed.has('pino'), 'the production dependencies are installed')
  t.same(['typescript', 'tap', 'yaml', 'dockerfile-utils'].filter((name) => installed.has(name)), [], 'no development dependency is')

  // The compose file's app, run as compose runs it (its command), on a free port instead of 3000.
  const appCommand = composeService('app').command
  if (!Array.isArray(appCommand) || appCommand[0] !== 'node') throw new Error('the compose app command is not an exec-form node command')
  const backend = watch(t, process.execPath, appCommand.slice(1), { cwd: root, env: { PATH: process.env.PATH, PORT: '0' } })
  const backendPort = Number((await backend.waitFor('stdout', /app listening on port (\d+)\n/))[1])

  // The app's health check, as compose runs it: healthy while the app answers, not when nothing listens.
  const appHealth = composeService('app').healthcheck?.test
  if (!Array.isArray(appHealth) || appHealth[0] !== 'CMD' || appHealth[1] !== 'node') throw new Error('the compose app health check is not an exec-form node command')
  const appHealthy = await runToEnd(process.execPath, appHealth.slice(2), { cwd: root, env: { PATH: process.env.PATH, PORT: String(backendPort) } })
  t.same({ code: appHealthy.code, stderr: appHealthy.stderr }, { code: 0, stderr: '' }, 'the app\'s health check passes while it answers')
  const appDown = await runToEnd(process.execPath, appHealth.slice(2), { cwd: root, env: { PATH: process.env.PATH, PORT: String(await closedPort()) } })
  t.equal(appDown.code, 1, 'and fails when nothing listens')

  // The container: the image's ENV, then compose's environment, as Docker layers them. Two
  // overrides for a shared machine: loopback and a free port instead of 0.0.0.0:8080, and the app
  // at its free port instead of http://app:3000 (a name only compose's network resolves).
  const containerEnv = {
    PATH: process.env.PATH,
    ...RUNTIME_ENV,
    ...composeEnvironment(composeService('clb')),
    CLB_LISTEN: '127.0.0.1:0',
    CLB_BACKENDS: `http://127.0.0.1:${backendPort}`
  }
  const entry = execForm(single(t, RUNTIME_STAGE, 'ENTRYPOINT').args) ?? []
  t.equal(entry[0], 'node')
  const proxy = watch(t, process.execPath, entry.slice(1), { cwd: app, env: containerEnv })
  const banner = await proxy.waitFor('stderr', /^clb-proxy: listening on (http:\/\/127\.0\.0\.1:(\d+)), forwarding to (\S+) \(access log: (\w+)\)\n/m)
  const [, proxyUrl = '', proxyPortText = '', bannerBackends, bannerLog] = banner
  t.equal(bannerBackends, `http://127.0.0.1:${backendPort}`, 'the banner names the backend')
  t.equal(bannerLog, 'stdout', 'the access log goes to stdout')
  t.equal(proxy.stdout, '', 'nothing on stdout before the first request: the banner is on stderr')

  const response = await get(`${proxyUrl}/hello`, { 'user-agent': 'clb-docker-test' })
  t.same(response, { status: 200, body: 'hello from app: GET /hello\n' }, 'the app\'s answer, through the proxy')

  const [logLine = ''] = await proxy.waitFor('stdout', /^.*\n/)
  const proxyPort = Number(proxyPortText)
  const fields = new RegExp(
    '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z my-app-clb 127\\.0\\.0\\.1:\\d+ ' +
    `127\\.0\\.0\\.1:${backendPort} \\d+(?:\\.\\d{1,6})? \\d+(?:\\.\\d{1,6})? \\d+(?:\\.\\d{1,6})? 200 200 0 ${Buffer.byteLength(response.body)} ` +
    `"GET http://127\\.0\\.0\\.1:${proxyPort}/hello HTTP/1\\.1" "clb-docker-test" - -\\n$`)
  t.match(logLine, fields, 'one CLB access-log line on stdout, with compose\'s CLB_NAME')

  // The HEALTHCHECK probe, with the container's CLB_LISTEN as it would read it: the wildcard as in
  // the image (probed on loopback), and an explicit host. The proxy's command has no --listen.
  const probe = healthcheckProbe(single(t, RUNTIME_STAGE, 'HEALTHCHECK').args) ?? []
  t.equal(probe.join(' ').split('/proc/1/cmdline').length, 2, 'the probe reads the main process\'s arguments, /proc/1/cmdline, once')
  const envProbe = probeOf(probe, proxy.child.pid)
  for (const listen of [`0.0.0.0:${proxyPort}`, `127.0.0.1:${proxyPort}`]) {
    const healthy = await runToEnd(process.execPath, envProbe.slice(1), { cwd: app, env: { ...containerEnv, CLB_LISTEN: listen } })
    t.same({ code: healthy.code, stderr: healthy.stderr }, { code: 0, stderr: '' }, `healthy with CLB_LISTEN=${listen}`)
  }

  // docker stop: SIGTERM, then the proxy drains, flushes and exits 0.
  proxy.child.kill('SIGTERM')
  const [code, signal] = await proxy.exited
  t.same({ code, signal }, { code: 0, signal: null }, 'SIGTERM: a clean stop, exit 0')
  t.equal(proxy.stdout, logLine, 'stdout holds exactly the one access-log line, flushed: the probes logged nothing')
  t.match(proxy.stderr, /clb-proxy: SIGTERM received/, 'the stop is reported on stderr')

  const unhealthy = await runToEnd(process.execPath, envProbe.slice(1), { cwd: app, env: { ...containerEnv, CLB_LISTEN: `127.0.0.1:${proxyPort}` } })
  t.equal(unhealthy.code, 1, 'the probe fails once nothing listens')

  // --listen after the image name (docker run clb-proxy --listen ...), in both of the forms the
  // CLI reads, wins over CLB_LISTEN for the probe as for the CLI. CLB_LISTEN names a closed port
  // here, so only the flag can make the probe pass.
  const envListen = `127.0.0.1:${await closedPort()}`
  for (const form of ['--listen HOST:PORT', '--listen=HOST:PORT']) {
    const listen = `127.0.0.1:${await closedPort()}`
    const flags = form === '--listen HOST:PORT' ? ['--listen', listen] : [`--listen=${listen}`]
    const flagged = watch(t, process.execPath, [...entry.slice(1), ...flags], { cwd: app, env: { ...containerEnv, CLB_LISTEN: envListen } })
    await flagged.waitFor('stderr', new RegExp(`^clb-proxy: listening on http://${listen.replaceAll('.', '\\.')},`, 'm'))
    const probeEnv = { ...containerEnv, CLB_LISTEN: envListen }
    const healthy = await runToEnd(process.execPath, probeOf(probe, flagged.child.pid).slice(1), { cwd: app, env: probeEnv })
    t.same({ code: healthy.code, stderr: healthy.stderr }, { code: 0, stderr: '' }, `${form} after the image name: healthy (CLB_LISTEN=${envListen} is closed)`)
    // The same listener, seen by a probe reading a command without --listen (this test's own): CLB_LISTEN, closed.
    const withoutFlag = await runToEnd(process.execPath, probeOf(probe, process.pid).slice(1), { cwd: app, env: probeEnv })
    t.equal(withoutFlag.code, 1, `${form}: without the flag in the command, the probe goes to CLB_LISTEN and fails`)
    flagged.child.kill('SIGTERM')
    const [flaggedCode] = await flagged.exited
    t.equal(flaggedCode, 0, `${form}: SIGTERM, exit 0`)
    t.equal(flagged.stdout, '', `${form}: the probes wrote no access-log line`)
  }

  // CLB_LISTENERS (a compose file's) replaces the image's CLB_LISTEN, for the CLI and the probe,
  // which reads its first listener; so does --listener after the image name.
  for (const form of ['CLB_LISTENERS', '--listener PROTO://HOST:PORT']) {
    const listen = `127.0.0.1:${await closedPort()}`
    const env = form === 'CLB_LISTENERS' ? { ...containerEnv, CLB_LISTEN: envListen, CLB_LISTENERS: `http://${listen}` } : { ...containerEnv, CLB_LISTEN: envListen }
    const flags = form === 'CLB_LISTENERS' ? [] : ['--listener', `http://${listen}`]
    const started = watch(t, process.execPath, [...entry.slice(1), ...flags], { cwd: app, env })
    await started.waitFor('stderr', new RegExp(`^clb-proxy: listening on http://${listen.replaceAll('.', '\\.')},`, 'm'))
    const healthy = await runToEnd(process.execPath, probeOf(probe, form === 'CLB_LISTENERS' ? process.pid : started.child.pid).slice(1), { cwd: app, env })
    t.same({ code: healthy.code, stderr: healthy.stderr }, { code: 0, stderr: '' }, `${form}: the CLI listens there and the probe finds it (CLB_LISTEN=${envListen} is closed)`)
    started.child.kill('SIGTERM')
    const [startedCode] = await started.exited
    t.equal(startedCode, 0, `${form}: SIGTERM, exit 0`)
  }

  backend.child.kill('SIGTERM')
  const [backendCode, backendSignal] = await backend.exited
  t.same({ code: backendCode, signal: backendSignal }, { code: null, signal: 'SIGTERM' }, 'the app stops on SIGTERM (Node\'s default when not PID 1)')
})
