/**
 * docs/defects.md and validators/defects.ts are one contract (style.md lesson 3, after fastify's
 * test/internals/errors.test.js): one table row per code, with the registry's verdicts and source.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { DEFECTS, DEFECT_CODES, type DefectCode } from '../../validators/defects.js'
import { REPO_URL } from '../helpers/repo.js'

interface DocRow {
  readonly code: string
  readonly example: string
  readonly clb: string
  readonly strict: string
  readonly source: string
  readonly why: string
  readonly section: string
}

const HEADER = '| code | example | clb | strict | source | what clb-proxy answers, and why |'

/** The rows of every defect table in the document (a table starts with HEADER). */
function readDocRows (markdown: string): DocRow[] {
  const rows: DocRow[] = []
  let section = ''
  let inTable = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('## ')) section = line.slice(3).trim()
    if (line === HEADER) { inTable = true; continue }
    if (!line.startsWith('|')) { inTable = false; continue }
    if (!inTable || line.startsWith('| ---')) continue
    // Split on cell borders, not on escaped pipes inside a cell.
    const cells = line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim())
    if (cells.length !== 6) throw new Error(`docs/defects.md: a row with ${cells.length} cells: ${line}`)
    const [code, example, clb, strict, source, why] = cells as [string, string, string, string, string, string]
    rows.push({ code: code.replace(/^`|`$/g, ''), example, clb, strict, source, why, section })
  }
  return rows
}

const rows = readDocRows(readFileSync(new URL('docs/defects.md', REPO_URL), 'utf8'))

t.test('docs/defects.md has one row per defect code, and no other', async (t) => {
  const documented = rows.map((row) => row.code)
  t.same(DEFECT_CODES.filter((code) => !documented.includes(code)), [], 'codes missing from the doc')
  t.same(documented.filter((code) => !(DEFECT_CODES as readonly string[]).includes(code)), [], 'documented codes that are not in the registry')
  t.same(documented.filter((code, i) => documented.indexOf(code) !== i), [], 'codes documented twice')
})

t.test('each row gives the registry\'s verdicts and source', async (t) => {
  for (const row of rows.filter((r) => (DEFECT_CODES as readonly string[]).includes(r.code))) {
    const info = DEFECTS[row.code as DefectCode]
    t.same({ clb: row.clb, strict: row.strict, source: row.source }, { clb: info.clb, strict: info.strict, source: info.source }, row.code)
    const expectedSection = info.direction === 'response' ? 'Response defects (the backend\'s bytes)' : 'Request defects (the client\'s bytes)'
    t.equal(row.section, expectedSection, `${row.code} is in the ${info.direction} table`)
    t.ok(row.example.length > 0 && row.why.length > 0, `${row.code} has an example and a reason`)
  }
})

t.test('the doc lists the codes in registry order', async (t) => {
  t.same(rows.map((row) => row.code), [...DEFECT_CODES])
})
