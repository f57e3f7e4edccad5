/**
 * The npm package as a user gets it: a clean copy of the repository (what a fresh clone holds: the
 * files git tracks, plus the working changes not yet committed, and no dist/), `npm pack` in it (its
 * prepare script builds dist/), the tarball's file list, then the tarball installed into an empty
 * project on this Node.js, where the `clb-proxy` bin, the ESM entry, the CommonJS entry, the type
 * declarations and the README's links are each used as a user would.
 *
 * Slow (one TypeScript build, one `npm install` that may reach the registry for fastify and pino).
 * It relies on neither `npm run build` nor the state of the repo's own dist/.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
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
  exports: { '.': { types: string; import: string; require: string } }
}

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * The environment for git, npm, npx, node and tsc: this process's, without what tap and npm put
 * there (npm_* would point npm back at this repo; NODE_OPTIONS would load tap's hooks) and without
 * CLB_*.
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

/**
 * What a fresh clone of this repository holds, with the working changes: every file git tracks
 * (as it is in the working tree; a tracked file deleted there is left out) and every untracked file
 * .gitignore does not exclude. So no node_modules/, dist/, .tap/ or coverage/.
 */
async function copyAsCloned(destination: string): Promise<string[]> {
  const listed = await runToEnd('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], REPO)
  if (listed.code !== 0) throw new Error(`git ls-files failed (the test needs a git checkout):\n${listed.stderr}`)
  const paths = [...new Set(listed.stdout.split('\0'))].filter((path) => path !== '' && existsSync(join(REPO, path))).sort()
  for (const path of paths) {
    await mkdir(dirname(join(destination, path)), { recursive: true })
    await copyFile(join(REPO, path), join(destination, path))
  }
  return paths
}

/**
 * Markdown links `[text](target)` and `[text]: target` outside code (fenced blocks and inline code
 * spans are removed first), without the angle brackets or a title.
 */
function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/(`+)[\s\S]*?\1/g, '')
  const inline = [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1] ?? '')
  const reference = [...prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)].map((match) => match[1] ?? '')
  return [...inline, ...reference]
}

/**
 * The anchors of a Markdown file's headings (outside fenced code), as GitHub makes them: the text
 * without its markup, lower-cased, every character that is not a letter, digit, space, `_` or `-`
 * dropped, each space a `-`; a repeated anchor gets `-1`, `-2`... Explicit `<a name>`/`id` anchors too.
 */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const line of markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading === null) continue
    const text = (heading[1] ?? '').replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '')
    const anchor = text.toLowerCase().replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/\s/g, '-')
    const repeats = seen.get(anchor) ?? 0
    seen.set(anchor, repeats + 1)
    anchors.add(repeats === 0 ? anchor : `${anchor}-${repeats}`)
  }
  for (const explicit of markdown.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(explicit[1] ?? '')
  return anchors
}

/** Relative: no scheme (http:, mailto:...), not a bare #anchor, not an absolute path. */
function isRelativeLink(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#') && !target.startsWith('/')
}

/** Everything a published package may hold (package.json "files", plus what npm always adds). */
// No source maps: they would point at .ts sources that are not in the package. The documents are
// the ones README.md links to, so that its links work in node_modules/clb-proxy too.
const ALLOWED_IN_PACKAGE = new RegExp('^(' + [
  'package\\.json', 'README\\.md', 'LICENSE', 'index\\.cjs',
  'dist/index\\.(js|d\\.ts)',
  'dist/(bin|validators)/[\\w.-]+\\.(js|d\\.ts)',
  'dist/proxy/[\\w-]+/[\\w.-]+\\.(js|d\\.ts)',
  'docs/[\\w.-]+\\.md', 'examples/[\\w.-]+\\.mjs', 'docker/(README\\.md|compose\\.yaml)', 'bench/README\\.md'
].join('|') + ')$')

/** What the CommonJS entry says where require() cannot load an ES module (index.cjs). */
function esmOnlyMessage(nodeVersion: string): string {
  return "clb-proxy is an ES module package: import { startClbProxy } from 'clb-proxy' in an ES module, " +
    "or const { startClbProxy } = await import('clb-proxy') from CommonJS. " +
    `require('clb-proxy') needs Node.js 20.19 or later without --no-experimental-require-module (this is ${nodeVersion}).`
}

t.test('npm pack of a clean copy, then install the tarball and use the bin, both entries, the types and the docs', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clb-package-test-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const source = join(root, 'source')
  const copied = await copyAsCloned(source)
  t.ok(copied.includes('package.json') && copied.includes('index.ts'), `the clean copy holds the repository (${copied.length} files)`)
  t.notOk(existsSync(join(source, 'dist')), 'and no dist/: only the prepare build can put it there')
  // A fresh clone runs `npm ci` before packing; the repo's own install is that install.
  await symlink(join(REPO, 'node_modules'), join(source, 'node_modules'), 'dir')

  const packed = await runToEnd('npm', ['pack', '--json', '--pack-destination', root], source)
  t.equal(packed.code, 0, `npm pack succeeds${packed.code === 0 ? '' : `:\n${packed.stdout}${packed.stderr}`}`)
  // npm prints each lifecycle script it runs ("> clb-proxy@0.1.0 prepare") on stderr when --json is given.
  t.match(packed.stderr, /^> clb-proxy@\S+ prepare\n> npm run build$/m, 'npm pack ran the prepare script')
  const built = existsSync(join(source, 'dist')) ? await filesUnder(join(source, 'dist'), source) : []
  t.ok(built.includes('dist/index.js'), 'which built dist/ in the clean copy')
  t.notOk(built.some((path) => path.startsWith('dist/test/')), 'tsconfig.build.json compiles no test')
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
    const entries = Object.values(MANIFEST.exports['.']).map((path) => path.replace(/^\.\//, ''))
    const required = ['package.json', 'README.md', 'LICENSE', ...entries, ...Object.values(MANIFEST.bin).map((path) => path.replace(/^\.\//, ''))]
    t.same(required.filter((path) => !paths.includes(path)), [], `it holds ${required.join(', ')}`)
    t.same(paths.filter((path) => !ALLOWED_IN_PACKAGE.test(path)), [],
      'nothing else: no test/, dist/test/, bench scripts, Dockerfile, fixtures, source maps or .ts sources (only .d.ts)')
    // Every compiled module and declaration is shipped: a new top-level source folder that
    // package.json "files" does not list would leave imports in the package pointing at nothing.
    const compiled = built.filter((path) => /\.(js|d\.ts)$/.test(path))
    t.same(compiled.filter((path) => !paths.includes(path)), [], 'every compiled .js and .d.ts is in the tarball')
  })

  // A user's project: empty, ESM, in a folder with no node_modules above it.
  const consumer = join(root, 'consumer')
  await mkdir(consumer)
  await writeFile(join(consumer, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`)
  const install = await runToEnd('npm', ['install', join(root, pack.filename), '--no-audit', '--no-fund', '--prefer-offline'], consumer)
  t.equal(install.code, 0, `npm install of the tarball succeeds${install.code === 0 ? '' : `:\n${install.stderr}`}`)
  // The dependencies resolve afresh here (no lockfile, none of our "overrides"), as for any user.
  t.notMatch(`${install.stdout}${install.stderr}`, /EBADENGINE/, `no dependency refuses Node.js ${process.version} (npm warns EBADENGINE)`)
  const installed = join(consumer, 'node_modules', 'clb-proxy')

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

  t.test("import('clb-proxy') from an ES module", async (t) => {
    await writeFile(join(consumer, 'imports.mjs'), IMPORT_SCRIPT)
    const imported = await runToEnd(process.execPath, ['imports.mjs'], consumer)
    const entry = await realpath(join(installed, 'dist', 'index.js'))
    t.same(imported, { code: 0, stdout: JSON.stringify({ startClbProxy: 'function', file: entry }), stderr: '' },
      'gives startClbProxy, from the installed dist/index.js')
  })

  t.test("require('clb-proxy') from CommonJS", async (t) => {
    await writeFile(join(consumer, 'requires.cjs'), REQUIRE_SCRIPT)
    // Node.js 20.19 and later load an ES module with require(): the same module as import.
    const canRequireEsm = (process.features as { require_module?: boolean }).require_module === true
    const required = await runToEnd(process.execPath, ['requires.cjs'], consumer)
    t.equal(required.code, 0, `the script runs${required.code === 0 ? '' : `:\n${required.stderr}`}`)
    t.same(JSON.parse(required.stdout), canRequireEsm
      ? { required: 'function', sameAsImport: true }
      : { error: { code: 'ERR_REQUIRE_ESM', message: esmOnlyMessage(process.version), causeCode: 'ERR_REQUIRE_ESM' }, imported: 'function' },
    canRequireEsm ? `works on Node.js ${process.version}, and gives the module import gives` : `says how to import it on Node.js ${process.version}`)

    // Where require() cannot load an ES module (Node.js 20 before 20.19, or this flag): the
    // message says how to import it, and the way it names works from the same CommonJS file.
    const refused = await runToEnd(process.execPath, ['--no-experimental-require-module', 'requires.cjs'], consumer)
    t.equal(refused.code, 0, `the script runs${refused.code === 0 ? '' : `:\n${refused.stderr}`}`)
    t.same(JSON.parse(refused.stdout), {
      error: { code: 'ERR_REQUIRE_ESM', message: esmOnlyMessage(process.version), causeCode: 'ERR_REQUIRE_ESM' },
      imported: 'function'
    }, 'without require(esm): ERR_REQUIRE_ESM with the way to import it, and await import() works')

    // A module loader of its own (Jest's runtime) that cannot load an ES module, on a Node.js that can.
    await writeFile(join(consumer, 'own-loader.cjs'), OWN_LOADER_SCRIPT)
    const ownLoader = await runToEnd(process.execPath, ['--require', './own-loader.cjs', 'requires.cjs'], consumer)
    t.equal(ownLoader.code, 0, `the script runs${ownLoader.code === 0 ? '' : `:\n${ownLoader.stderr}`}`)
    t.same(JSON.parse(ownLoader.stdout).error, canRequireEsm
      ? {
          code: 'ERR_REQUIRE_ESM',
          message: "clb-proxy is an ES module package: import { startClbProxy } from 'clb-proxy' in an ES module, " +
            "or const { startClbProxy } = await import('clb-proxy') from CommonJS. " +
            `Node.js ${process.version} can require() it, but the module loader that ran this require() cannot ` +
            "(Jest's, for one: run Jest with NODE_OPTIONS=--experimental-vm-modules and import clb-proxy).",
          causeCode: 'ERR_REQUIRE_ESM'
        }
      : { code: 'ERR_REQUIRE_ESM', message: esmOnlyMessage(process.version), causeCode: 'ERR_REQUIRE_ESM' },
    'the message does not blame a Node.js that can require() ES modules')
  })

  t.test('every relative link of the shipped Markdown files resolves inside the installed package', async (t) => {
    const documents = (await filesUnder(installed, installed)).filter((path) => path.endsWith('.md'))
    t.ok(documents.includes('README.md'), 'README.md is installed')
    let checked = 0
    let sections = 0
    for (const document of documents) {
      const links = linkTargets(await readFile(join(installed, document), 'utf8')).filter(isRelativeLink)
      if (document === 'README.md') t.ok(links.length >= 10, `README.md has its relative links (${links.length})`)
      const broken = links.filter((link) => {
        const target = resolve(dirname(join(installed, document)), decodeURIComponent(link.replace(/#.*$/, '')))
        const inside = relative(installed, target)
        return inside.startsWith('..') || !existsSync(target)
      })
      t.same(broken, [], `${document}: every relative link names a file or folder of the package`)
      checked += links.length
      // A link to a section (`file.md#heading`, or `#heading` in the same file) names a heading the
      // file has, as GitHub and npm make its anchor: a renamed heading breaks such a link silently.
      const sectionLinks = linkTargets(await readFile(join(installed, document), 'utf8'))
        .filter((link) => (isRelativeLink(link) || link.startsWith('#')) && /^[^#]*\.md#|^#/.test(link))
      const lost: string[] = []
      for (const link of sectionLinks) {
        const [file = '', fragment = ''] = link.split('#')
        const target = file === '' ? join(installed, document) : resolve(dirname(join(installed, document)), decodeURIComponent(file))
        if (!existsSync(target)) continue
        if (!headingAnchors(await readFile(target, 'utf8')).has(decodeURIComponent(fragment))) lost.push(link)
      }
      t.same(lost, [], `${document}: every link to a section names a heading of its file`)
      sections += sectionLinks.length
    }
    t.comment(`${checked} relative links in ${documents.length} Markdown files, ${sections} of them to a section`)
  })

  t.test('the types resolve from the installed package', async (t) => {
    await writeFile(join(consumer, 'uses-types.ts'), TYPED_USE)
    await writeFile(join(consumer, 'misuses-types.ts'), TYPED_MISUSE)
    // A strict NodeNext project; @types/node from this repo (the package's declarations use
    // NodeJS stream types, as any Node library's do).
    const flags = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--types', 'node', '--typeRoots', join(REPO, 'node_modules', '@types')]
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
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

/** import() from an ES module: what it gives, and from which file. */
const IMPORT_SCRIPT = `import { fileURLToPath } from 'node:url'
const clb = await import('clb-proxy')
process.stdout.write(JSON.stringify({ startClbProxy: typeof clb.startClbProxy, file: fileURLToPath(import.meta.resolve('clb-proxy')) }))
`

/** require() from CommonJS: what it gives, or the error it throws and whether await import() then works. */
const REQUIRE_SCRIPT = `'use strict'
let required
try {
  required = require('clb-proxy')
} catch (error) {
  import('clb-proxy').then((imported) => {
    process.stdout.write(JSON.stringify({
      error: { code: error.code, message: error.message, causeCode: error.cause && error.cause.code },
      imported: typeof imported.startClbProxy
    }))
  })
}
if (required !== undefined) {
  import('clb-proxy').then((imported) => {
    process.stdout.write(JSON.stringify({ required: typeof required.startClbProxy, sameAsImport: imported === required }))
  })
}
`

/** A preloaded stand-in for a loader that cannot load ES modules (as Jest's runtime): it refuses the package's dist/index.js. */
const OWN_LOADER_SCRIPT = `'use strict'
const Module = require('node:module')
const nodeRequire = Module.prototype.require
Module.prototype.require = function (id) {
  if (/dist[\\\\/]index\\.js$/.test(id)) throw Object.assign(new Error('Must use import to load ES Module: ' + id), { code: 'ERR_REQUIRE_ESM' })
  return nodeRequire.call(this, id)
}
`

const TYPED_USE = `import { startClbProxy, CLB_DEFAULTS, SYNTHETIC_RESPONSES, type ClbProxy, type ClbProxyOptions, type AccessLogRecord, type DiagnosticsLogger } from 'clb-proxy'
import { pino } from 'pino'

const options: ClbProxyOptions = { listen: '127.0.0.1:0', backends: ['http://127.0.0.1:3000'], idleTimeoutSeconds: 5 }
export const starting: Promise<ClbProxy> = startClbProxy(options)
// The diagnostics logger: pino's, or any object with info, warn and error (docs/library.md).
const seen: string[] = []
const plainLogger = {
  info: (details: object, message?: string) => { seen.push(message ?? '') },
  warn: (details: object, message?: string) => { seen.push(message ?? '') },
  error: (details: object, message?: string) => { seen.push(message ?? '') }
}
export const withPlainLogger: Promise<ClbProxy> = startClbProxy(options, { logger: plainLogger })
export const withPino: Promise<ClbProxy> = startClbProxy(options, { logger: pino() })
export const typed: DiagnosticsLogger = plainLogger
export const defaultPort: number = CLB_DEFAULTS.listen.port
export const statuses: string[] = Object.keys(SYNTHETIC_RESPONSES)
export function elbOf(record: AccessLogRecord): string {
  return record.elbName
}
`

const TYPED_MISUSE = `import { startClbProxy } from 'clb-proxy'

export const starting = startClbProxy({ listen: 8080 })
`
