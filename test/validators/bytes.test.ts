/**
 * validators/bytes.ts: latin1() must give what Buffer#toString('latin1', start, end) gives, for any
 * arguments and on views that do not start at their ArrayBuffer's first byte (every read the proxy
 * parses is such a view).
 */
import t from 'tap'
import { latin1 } from '../../validators/bytes.js'

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
