/**
 * validators/bytes.ts: latin1() must give what Buffer#toString('latin1', start, end) gives, for any
 * arguments and on views that do not start at their ArrayBuffer's first byte (every read the proxy
 * parses is such a view). A word table finds a word only when the bytes spell it exactly.
 */
import t from 'tap'
import { latin1, wordTable } from '../../validators/bytes.js'
import { parseFieldLine } from '../../validators/field-line.js'

t.test('latin1 equals toString(\'latin1\', start, end), views and out-of-range arguments included', async (t) => {
  const whole = Buffer.from('xxGET /\xe9\x00 HTTP/1.1\r\nyy', 'latin1')
  const views = [whole, whole.subarray(2), whole.subarray(2, whole.length - 2), whole.subarray(5, 5)]
  const positions = [-3, -1, 0, 1, 2, 5, 8, 13, 14, 20, 21, 40]
  let compared = 0
  const differences: string[] = []
  for (const view of views) {
    for (const start of positions) {
      for (const end of positions) {
        compared++
        const expected = view.toString('latin1', start, end)
        if (latin1(view, start, end) !== expected) differences.push(`${view.length}-byte view, ${start}..${end}`)
      }
    }
  }
  t.same(differences, [], `${compared} argument pairs`)
  t.equal(latin1(whole.subarray(2), 0, 5), 'GET /', 'a view reads from its own first byte')
  t.equal(latin1(whole, 7, 9), '\xe9\x00', 'obs-text and NUL kept, one char per byte')
})

t.test('a word table returns its own string only for the exact bytes, at any position of a view', async (t) => {
  const table = wordTable(['GET', 'POST', 'OK'])
  const read = Buffer.from('..GET POST get GETS OK Ok', 'latin1').subarray(2)
  t.equal(table.find(read, 0, 3), 'GET')
  t.equal(table.find(read, 4, 8), 'POST')
  t.equal(table.find(read, 9, 12), null, 'another case is not the word')
  t.equal(table.find(read, 13, 17), null, 'a longer word is not the word')
  t.equal(table.find(read, 13, 16), 'GET', 'a prefix of the bytes, bounded by end')
  t.equal(table.find(read, 18, 20), 'OK')
  t.equal(table.find(read, 21, 23), null)
  t.equal(table.find(read, 0, 0), null, 'no bytes')
})

t.test('a field name is kept as sent and lower-cased alike, whether a common spelling or not', async (t) => {
  const names = ['Host', 'host', 'HOST', 'hOst', 'Content-Length', 'content-length', 'CONTENT-LENGTH', 'X-Powered-By', 'x-powered-by',
    'X-Custom', 'Hos', 'Hosts', 'ETag', 'Etag', 'etag']
  for (const name of names) {
    const line = Buffer.from(`..${name}: v`, 'latin1')
    const field = parseFieldLine(line, 2, line.length, 0, () => t.fail(`no issue expected for ${name}`))
    t.same({ name: field?.name, lowerName: field?.lowerName, value: field?.value }, { name, lowerName: name.toLowerCase(), value: 'v' }, name)
  }
})

t.test('every byte in a field name or value: reported exactly when RFC 9110 does not allow it, and the field read alike', async (t) => {
  // RFC 9110 section 5.6.2: tchar; section 5.5: field-value bytes are VCHAR, SP, HTAB and obs-text.
  const isTchar = (b: number): boolean => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/.test(String.fromCharCode(b))
  const valueAllows = (b: number): boolean => b === 0x09 || (b >= 0x20 && b !== 0x7f)
  const mismatches: string[] = []
  let lines = 0
  for (let b = 0; b < 256; b++) {
    if (b === 0x0a || b === 0x3a) continue // LF ends a line; a colon ends the name
    const byte = String.fromCharCode(b)
    // In the name: at its start, middle and end. Whitespace inside a name and a name that starts with it are problems alike.
    for (const name of [`${byte}Name`, `Na${byte}me`, `Name${byte}`]) {
      const line = Buffer.from(`..${name}: v`, 'latin1')
      const issues: string[] = []
      const field = parseFieldLine(line, 2, line.length, 10, (issue) => issues.push(issue.problem))
      lines++
      if ((issues.length === 0) !== isTchar(b)) mismatches.push(`name ${JSON.stringify(name)}: ${issues.join(',') || 'no issue'}`)
      if (field?.name !== name || field.value !== 'v' || field.offset !== 10 || field.valueOffset !== 10 + name.length + 2) mismatches.push(`name ${JSON.stringify(name)}: read as ${JSON.stringify(field)}`)
    }
    // In the value: at its start, middle and end; whitespace around the value is not part of it (RFC 9112 section 5.1).
    for (const value of [`${byte}va`, `v${byte}a`, `va${byte}`]) {
      const line = Buffer.from(`..X-Name:  ${value} `, 'latin1')
      const issues: string[] = []
      const field = parseFieldLine(line, 2, line.length, 0, (issue) => issues.push(issue.problem))
      lines++
      if ((issues.length === 0) !== valueAllows(b)) mismatches.push(`value ${JSON.stringify(value)}: ${issues.join(',') || 'no issue'}`)
      const expected = b === 0x20 || b === 0x09 ? value.trim() : value
      if (field?.value !== expected || field.name !== 'X-Name') mismatches.push(`value ${JSON.stringify(value)}: read as ${JSON.stringify(field)}`)
    }
  }
  t.same(mismatches, [], `${lines} field lines`)
})
