/**
 * The house keeps its shape: docs/architecture.md's folder table names exactly the folders of the
 * tree (every top-level folder and every folder under proxy/), every relative import of the source
 * (static, dynamic, type-only) goes to the importer's own folder or to one its row allows, and no
 * files import each other in a circle.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import t from 'tap'
import { REPO_ROOT } from './helpers/repo.js'

/** Top-level folders that are not the project's own: installed, built or generated. */
const NOT_OURS = new Set(['node_modules', 'dist', 'coverage'])
const SOURCE_ROOTS = ['index.ts', 'bin', 'proxy', 'validators']

interface FolderRow {
  readonly folder: string
  /** Folders its files may import; null: the rule does not apply (tests, docs, tooling). */
  readonly mayImport: readonly string[] | null
}

function folderTable (): FolderRow[] {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'architecture.md'), 'utf8')
  const section = doc.slice(doc.indexOf('## Folders'), doc.indexOf('\n## ', doc.indexOf('## Folders') + 3))
  const rows: FolderRow[] = []
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim())
    const folder = /^`([a-z0-9/-]+\/)`$/.exec(cells[1] ?? '')?.[1]
    if (folder === undefined) continue
    const rule = cells[3] ?? ''
    const listed = [...rule.matchAll(/`([a-z0-9/-]+\/)`/g)].map((m) => m[1] as string)
    rows.push({ folder, mayImport: rule === '(none)' ? [] : listed.length > 0 ? listed : null })
  }
  return rows
}

function treeFolders (): string[] {
  const top = readdirSync(REPO_ROOT, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && !NOT_OURS.has(entry.name))
    .map((entry) => `${entry.name}/`)
  const proxy = readdirSync(join(REPO_ROOT, 'proxy'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory()).map((entry) => `proxy/${entry.name}/`)
  return [...top.filter((folder) => folder !== 'proxy/'), ...proxy].sort()
}

function sourceFiles (): string[] {
  const files: string[] = []
  const walk = (path: string): void => {
    if (statSync(join(REPO_ROOT, path)).isDirectory()) {
      for (const name of readdirSync(join(REPO_ROOT, path))) walk(join(path, name))
    } else if (path.endsWith('.ts')) {
      files.push(path)
    }
  }
  for (const root of SOURCE_ROOTS) walk(root)
  return files.sort()
}

/** Relative imports of a file: `from '...'`, `import('...')`, `export ... from '...'`, as repo paths of .ts files. */
function importsOf (file: string): string[] {
  const text = readFileSync(join(REPO_ROOT, file), 'utf8')
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)].map((m) => m[1] as string)
  return specifiers.map((specifier) => normalize(join(dirname(file), specifier)).replace(/\.js$/, '.ts'))
}

/** The table row a file belongs to: the longest folder that contains it; '' for the package entry. */
function folderOf (file: string, rows: readonly FolderRow[]): string {
  let best = ''
  for (const { folder } of rows) if (file.startsWith(folder) && folder.length > best.length) best = folder
  return best
}

t.test('docs/architecture.md has one row per folder of the tree, and no row for a folder that does not exist', async (t) => {
  t.strictSame(folderTable().map((row) => row.folder).sort(), treeFolders())
})

t.test('every relative import goes to its own folder or to one its row allows', async (t) => {
  const rows = folderTable()
  const allowed = new Map(rows.map((row) => [row.folder, row.mayImport]))
  const violations: string[] = []
  for (const file of sourceFiles()) {
    const from = folderOf(file, rows)
    if (from === '') continue // index.ts: the package entry re-exports the public surface
    const may = allowed.get(from)
    if (may === null || may === undefined) continue
    for (const target of importsOf(file)) {
      const to = folderOf(target, rows)
      if (to !== from && !may.includes(to)) violations.push(`${file} -> ${target} (${from} may not import ${to === '' ? relative('.', target) : to})`)
    }
  }
  t.strictSame(violations, [])
})

t.test('no files import each other in a circle', async (t) => {
  const files = sourceFiles()
  const edges = new Map(files.map((file) => [file, importsOf(file).filter((target) => files.includes(target))]))
  const circles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    path.push(file)
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === 'open') circles.push([...path.slice(path.indexOf(next)), next].join(' -> '))
      else if (!state.has(next)) visit(next)
    }
    path.pop()
    state.set(file, 'done')
  }
  for (const file of files) if (!state.has(file)) visit(file)
  t.strictSame(circles, [])
})

t.test('the rule test reads real imports (a sample the table must allow)', async (t) => {
  t.ok(importsOf('proxy/data-path/exchange.ts').includes('proxy/balancer/backend-pool.ts'), 'exchange.ts imports the balancer')
  t.ok(importsOf('proxy/library/clb-proxy.ts').includes('proxy/admin/admin-server.ts'), 'a dynamic import counts')
  t.equal(folderOf('proxy/data-path/exchange.ts', folderTable()), 'proxy/data-path/')
})
