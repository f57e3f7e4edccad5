import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import ts from 'typescript'
import { REPO_ROOT } from '../../helpers/repo.js'

const root = REPO_ROOT
const libraryDoc = readFileSync(`${root}docs/library.md`, 'utf8')
const EXAMPLES = ['examples/tap.test.mjs', 'examples/node-test.test.mjs'] as const

/** The member names of an interface declared in `file`, read with the TypeScript compiler API. */
function interfaceMembers (file: string, name: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(`${root}${file}`, 'utf8'), ts.ScriptTarget.Latest, true)
  const declaration = source.statements.find((statement): statement is ts.InterfaceDeclaration =>
    ts.isInterfaceDeclaration(statement) && statement.name.text === name)
  if (declaration === undefined) throw new Error(`interface ${name} not found in ${file}`)
  return declaration.members.map((member) => {
    if (member.name === undefined || !ts.isIdentifier(member.name)) throw new Error(`${name} has a member without a plain name`)
    return member.name.text
  })
}

/** The text of the `## heading` section of docs/library.md, up to the next `## `. */
function section (heading: string): string {
  const start = libraryDoc.indexOf(`\n## ${heading}\n`)
  if (start === -1) throw new Error(`docs/library.md has no "## ${heading}" section`)
  const end = libraryDoc.indexOf('\n## ', start + 1)
  return libraryDoc.slice(start, end === -1 ? undefined : end)
}

/** First-column `code` names of a Markdown table. */
function tableFields (text: string): string[] {
  return [...text.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map((match) => match[1] as string)
}

const sorted = (names: readonly string[]): string[] => [...new Set(names)].sort()

t.test('every member of the ClbProxy interface has a ### entry under "The handle", and every entry is a member', async (t) => {
  const members = interfaceMembers('proxy/library/clb-proxy.ts', 'ClbProxy')
  t.ok(members.includes('waitFor') && members.includes('close'), 'the interface was read')
  const documented = [...section('The handle (`ClbProxy`)').matchAll(/^### `proxy\.([A-Za-z]+)/gm)].map((match) => match[1] as string)
  t.strictSame(sorted(documented), sorted(members))
  t.equal(documented.length, new Set(documented).size, 'no member is documented twice')
})

t.test('every option and every hook has a row in docs/library.md, and every row is a field', async (t) => {
  t.strictSame(sorted(tableFields(section('Options'))), sorted(interfaceMembers('proxy/core/options.ts', 'ClbProxyOptions')))
  t.strictSame(sorted(tableFields(section('Hooks'))), sorted(interfaceMembers('proxy/library/clb-proxy.ts', 'ClbProxyHooks')))
})

t.test('the examples in docs/library.md are byte-identical to the files in examples/', async (t) => {
  for (const file of EXAMPLES) {
    const match = new RegExp(`<!-- example: ${file.replace(/[.]/g, '\\.')} -->\\n\`\`\`js\\n([\\s\\S]*?)\`\`\`\\n`).exec(libraryDoc)
    t.ok(match, `docs/library.md embeds ${file}`)
    t.equal(match?.[1], readFileSync(`${root}${file}`, 'utf8'), file)
  }
})

/** Runs a command in the repository root with an environment free of tap's own loader and child-process variables. */
async function run (command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'NODE_OPTIONS' && !name.startsWith('TAP') && !name.startsWith('NODE_V8_COVERAGE')))
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
  const [code] = await once(child, 'close') as [number | null]
  return { code, output }
}

t.test('the examples run and pass against the built package', async (t) => {
  // 'clb-proxy' resolves to this package through package.json "exports", i.e. dist/ (npm test builds it first).
  const built = existsSync(`${root}dist/index.js`) && readFileSync(`${root}dist/proxy/library/clb-proxy.js`, 'utf8').includes('waitFor')
  if (!built) {
    t.fail('dist/ is missing or stale: run `npm run build` (npm test does) before this test')
    return
  }
  const tap = await run(process.execPath, ['examples/tap.test.mjs'])
  t.equal(tap.code, 0, 'node examples/tap.test.mjs exits 0', { output: tap.output })
  t.match(tap.output, /^ok 1 - CLB answers 502 when the body is longer than Content-Length/m)
  t.match(tap.output, /# \{ total: 5, pass: 5 \}/)

  const nodeTest = await run(process.execPath, ['--test', 'examples/node-test.test.mjs'])
  t.equal(nodeTest.code, 0, 'node --test examples/node-test.test.mjs exits 0', { output: nodeTest.output })
  t.match(nodeTest.output, /^# pass 1$/m)
  t.match(nodeTest.output, /^# fail 0$/m)
})
