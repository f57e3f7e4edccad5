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
