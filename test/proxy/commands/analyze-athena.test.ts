import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Sink } from '../../helpers/sink.js'
import { REPO_ROOT } from '../../helpers/repo.js'
import { run } from '../../../proxy/commands/cli.js'
import { ATHENA_DDL, ATHENA_QUERIES } from '../../../proxy/commands/analyze-athena.js'

const SPEC_DDL = readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'analyze', 'athena-ddl.sql'), 'utf8').replace(/\n$/, '')

/** The columns the DDL defines, read from the DDL itself. */
const COLUMNS = new Set([...SPEC_DDL.matchAll(/^\s+([a-z_]+) (?:string|int|double|bigint),?$/gm)].map((m) => m[1] as string))

/** SQL keywords and Athena (Trino) functions the queries may use; anything else must be a column or an alias. */
const SQL_WORDS = new Set(['select', 'from', 'where', 'group', 'by', 'order', 'desc', 'asc', 'limit', 'as', 'and', 'or', 'not', 'like', 'count', 'count_if', 'date_trunc', 'from_iso8601_timestamp', 'cast', 'varchar', 'url_extract_path', 'approx_percentile', 'max', 'elb_logs'])

function stripStrings (sql: string): string {
  return sql.replace(/'(?:[^']|'')*'/g, "''")
}

t.test('the DDL is the spec\'s, verbatim', async (t) => {
  t.equal(ATHENA_DDL, SPEC_DDL)
  t.equal(COLUMNS.size, 19)
})

t.test('each query: only columns the DDL defines, balanced parentheses, one statement', async (t) => {
  t.ok(ATHENA_QUERIES.length >= 7)
  for (const query of ATHENA_QUERIES) {
    const sql = stripStrings(query.sql)
    const aliases = new Set([...sql.matchAll(/\bAS\s+([a-z_][a-z0-9_]*)/gi)].map((m) => (m[1] as string).toLowerCase()))
    const quoted = [...sql.matchAll(/"([^"]*)"/g)].map((m) => m[1] as string)
    for (const name of quoted) t.ok(COLUMNS.has(name), `${query.title}: quoted "${name}" is a column`)
    const bare = sql.replace(/"[^"]*"/g, ' ')
    for (const word of bare.match(/\b[a-z_][a-z0-9_]*\b/gi) ?? []) {
      const lower = word.toLowerCase()
      if (SQL_WORDS.has(lower) || aliases.has(lower)) continue
      t.ok(COLUMNS.has(word), `${query.title}: '${word}' is a column of the DDL`)
    }
    let depth = 0
    for (const c of sql) {
      if (c === '(') depth++
      if (c === ')') depth--
      if (depth < 0) break
    }
    t.equal(depth, 0, `${query.title}: balanced parentheses`)
    t.equal(sql.split(';').length, 2, `${query.title}: one statement`)
    t.ok(sql.trimEnd().endsWith(';'))
    t.match(query.sql, /\bFROM elb_logs\b/)
  }
})

t.test('analyze --athena prints the DDL and the queries', async (t) => {
  const stdout = new Sink()
  const code = await run(['analyze', '--athena'], {}, { stdout, stderr: new Sink(), signals: new EventEmitter() })
  t.equal(code, 0)
  t.match(stdout.text, SPEC_DDL)
  for (const query of ATHENA_QUERIES) t.match(stdout.text, `-- ${query.title}\n${query.sql}\n`)
})
