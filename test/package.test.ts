/**
 * The npm package as a user gets it: `npm pack` of a copy of this repo (with dist/ built into it),
 * the tarball's file list, then the tarball installed into an empty project where the `clb-proxy`
 * bin, the ESM entry and the type declarations are each used as a user would.
 *
 * Slow (one TypeScript build, one `npm install` that may reach the registry for fastify and pino).
 * It builds dist/ itself, into a temp copy of the repo, so it relies on neither `npm run build`
 * nor the state of the repo's own dist/.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

t.setTimeout(10 * 60 * 1000)

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const MANIFEST = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  name: string
  version: string
  bin: Record<string, string>
  files: string[]
}

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * The environment for npm, npx, node and tsc: this process's, without what tap and npm put there
 * (npm_* would point npm back at this repo; NODE_OPTIONS would load tap's hooks) and without CLB_*.
 */
function toolEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) =>
    !/^(npm_|NODE_OPTIONS$|NODE_V8_COVERAGE$|_TAPJS_|TAP|TS_NODE_|CLB_)/i.test(name)))
}

async function runToEnd(command: string, args: readonly string[], cwd: string): Promise<Finished> {
  const child = spawn(command, args, { cwd, env: toolEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr }
}

/** Every file under a folder, as /-separated paths relative to `base`. */
async function filesUnder(folder: string, base: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true })
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(base, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort()
}

/** What the repo copy leaves out: installed or generated things, as a fresh checkout has none of them. */
const NOT_COPIED = new Set(['node_modules', '.git', 'dist', '.tap', 'coverage'])

/** Everything a published package may hold (package.json "files", plus what npm always adds). */
// No source maps: they would point at .ts sources that are not in the package.
const ALLOWED_IN_PACKAGE = /^(package\.json|README\.md|LICENSE|dist\/(bin|proxy|validators)\/[\w.-]+\.(js|d\.ts)|dist\/index\.(js|d\.ts))$/

t.test('npm pack, then install the tarball and use the bin, the ESM entry and the types', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clb-package-test-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const source = join(root, 'source')
  await cp(REPO, source, { recursive: true, filter: (path) => !NOT_COPIED.has(relative(REPO, path).split(sep)[0] ?? '') })

  // `npm run build` (tsc -p tsconfig.build.json), with its output in the copy's dist/.
  const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
  const build = await runToEnd(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(source, 'dist')], REPO)
  t.equal(build.code, 0, `the build succeeds${build.code === 0 ? '' : `:\n${build.stdout}${build.stderr}`}`)
  const built = await filesUnder(join(source, 'dist'), source)
  t.notOk(built.some((path) => path.startsWith('dist/test/')), 'tsconfig.build.json compiles no test')
  // As if someone ran `tsc -p tsconfig.json` (which includes test/) before publishing.
  await mkdir(join(source, 'dist', 'test'), { recursive: true })
  await writeFile(join(source, 'dist', 'test', 'stray.test.js'), '// compiled test: must not be published\n')

  const packed = await runToEnd('npm', ['pack', '--json', '--pack-destination', root], source)
  t.equal(packed.code, 0, `npm pack succeeds${packed.code === 0 ? '' : `:\n${packed.stderr}`}`)
  const [pack] = JSON.parse(packed.stdout) as Array<{
    name: string
    version: string
    filename: string
    size: number
    unpackedSize: number
    files: Array<{ path: string; size: number }>
  }>
  if (pack === undefined) throw new Error(`npm pack printed no package:\n${packed.stdout}`)
  t.same({ name: pack.name, version: pack.version }, { name: MANIFEST.name, version: MANIFEST.version })
  const paths = pack.files.map((file) => file.path).sort()
  t.comment(`${pack.filename}: ${pack.files.length} files, ${pack.size} bytes packed, ${pack.unpackedSize} bytes unpacked`)

  t.test('the tarball holds the package and nothing else', async (t) => {
    const required = ['package.json', 'dist/index.js', 'dist/index.d.ts', ...Object.values(MANIFEST.bin).map((path) => path.replace(/^\.\//, ''))]
    for (const name of ['README.md', 'LICENSE']) if (existsSync(join(REPO, name))) required.push(name)
    t.ok(required.includes('README.md'), 'the repo has a README.md, so the package page has one')
    t.same(required.filter((path) => !paths.includes(path)), [], `it holds ${required.join(', ')}`)
    t.same(paths.filter((path) => !ALLOWED_IN_PACKAGE.test(path)), [],
      'nothing else: no test/, dist/test/, bench/, docker/, fixtures or .ts sources (only .d.ts)')
    t.notOk(paths.some((path) => path.startsWith('dist/test/')), 'the stray compiled test stays out')
    // Every compiled module and declaration is shipped: a new top-level source folder that
    // package.json "files" does not list would leave imports in the package pointing at nothing.
    const compiled = built.filter((path) => /\.(js|d\.ts)$/.test(path))
    t.same(compiled.filter((path) => !paths.includes(path)), [], 'every compiled .js and .d.ts is in the tarball')
  })

  // A user's project: empty, ESM, in a folder with no node_modules above it.
  const consumer = join(root, 'consumer')
  await mkdir(consumer)
  await writeFile(join(consumer, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`)
  const install = await runToEnd('npm', ['install', join(root, pack.filename), '--no-audit', '--no-fund'], consumer)
  t.equal(install.code, 0, `npm install of the tarball succeeds${install.code === 0 ? '' : `:\n${install.stderr}`}`)

  t.test('npx clb-proxy --version', async (t) => {
    // --no: never fetch a package of that name from the registry; only the installed bin may run.
    const version = await runToEnd('npx', ['--no', '--', 'clb-proxy', '--version'], consumer)
    t.same(version, { code: 0, stdout: `clb-proxy ${MANIFEST.version}\n`, stderr: '' })
    t.equal(await realpath(join(consumer, 'node_modules', '.bin', 'clb-proxy')), await realpath(join(consumer, 'node_modules', 'clb-proxy', 'dist', 'bin', 'clb-proxy.js')),
      'the bin is the installed package\'s dist/bin/clb-proxy.js')
  })

  t.test("import { startClbProxy } from 'clb-proxy', in front of a backend", async (t) => {
    await writeFile(join(consumer, 'smoke.mjs'), SMOKE_SCRIPT)
    const smoke = await runToEnd(process.execPath, ['smoke.mjs'], consumer)
    t.equal(smoke.code, 0, `the script ends by itself, exit 0${smoke.code === 0 ? '' : `:\n${smoke.stderr}`}`)
    const result = JSON.parse(smoke.stdout) as { status: number; body: string; logLines: string[]; openClients: number }
    t.same({ status: result.status, body: result.body }, { status: 200, body: 'backend saw /from-package' })
    t.equal(result.logLines.length, 1, 'one access-log line')
    t.match(result.logLines[0], /^\S+Z package-test 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+ [\d.]+ [\d.]+ [\d.]+ 200 200 0 25 "GET http:\/\/127\.0\.0\.1:\d+\/from-package HTTP\/1\.1" "-" - -$/)
    // The exit above, without process.exit(), already shows that no socket or timer was left open.
    t.equal(result.openClients, 0, 'close() left no client connection')
  })

  t.test('the types resolve from the installed package', async (t) => {
    await writeFile(join(consumer, 'uses-types.ts'), TYPED_USE)
    await writeFile(join(consumer, 'misuses-types.ts'), TYPED_MISUSE)
    // A strict NodeNext project; @types/node from this repo (the package's declarations use
    // NodeJS stream types, as any Node library's do).
    const flags = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--types', 'node', '--typeRoots', join(REPO, 'node_modules', '@types')]
    const good = await runToEnd(process.execPath, [tsc, ...flags, 'uses-types.ts'], consumer)
    t.same(good, { code: 0, stdout: '', stderr: '' }, 'a typed use of the package compiles')
    // Not `any`: a wrong option type is an error at the call.
    const bad = await runToEnd(process.execPath, [tsc, ...flags, 'misuses-types.ts'], consumer)
    t.equal(bad.code, 2, 'a misuse does not compile')
    t.match(bad.stdout, /^misuses-types\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string \| ListenAddress/m)
    t.equal(bad.stdout.match(/error TS/g)?.length, 1, 'and that is the only error')
  })
})

/** Starts a backend and the proxy in front of it, makes one request, closes both, prints JSON. */
const SMOKE_SCRIPT = `import { once } from 'node:events'
import http from 'node:http'
import { PassThrough } from 'node:stream'
import { startClbProxy } from 'clb-proxy'

const backend = http.createServer((request, response) => response.end('backend saw ' + request.url))
backend.listen(0, '127.0.0.1')
await once(backend, 'listening')
const accessLog = new PassThrough()
let logText = ''
accessLog.setEncoding('utf8').on('data', (text) => { logText += text })
const proxy = await startClbProxy(
  { listen: '127.0.0.1:0', backends: ['http://127.0.0.1:' + backend.address().port], name: 'package-test' },
  { accessLogStream: accessLog }
)
const request = http.get(proxy.url + '/from-package', { agent: false })
const [response] = await once(request, 'response')
response.setEncoding('utf8')
let body = ''
for await (const chunk of response) body += chunk
await proxy.close()
await new Promise((resolve) => backend.close(resolve))
process.stdout.write(JSON.stringify({
  status: response.statusCode,
  body,
  logLines: logText.split('\\n').filter((line) => line !== ''),
  openClients: proxy.openSockets().clients
}))
`

const TYPED_USE = `import { startClbProxy, CLB_DEFAULTS, SYNTHETIC_RESPONSES, type ClbProxy, type ClbProxyOptions, type AccessLogRecord } from 'clb-proxy'

const options: ClbProxyOptions = { listen: '127.0.0.1:0', backends: ['http://127.0.0.1:3000'], idleTimeoutSeconds: 5 }
export const starting: Promise<ClbProxy> = startClbProxy(options)
export const defaultPort: number = CLB_DEFAULTS.listen.port
export const statuses: string[] = Object.keys(SYNTHETIC_RESPONSES)
export function elbOf(record: AccessLogRecord): string {
  return record.elbName
}
`

const TYPED_MISUSE = `import { startClbProxy } from 'clb-proxy'

export const starting = startClbProxy({ listen: 8080 })
`
