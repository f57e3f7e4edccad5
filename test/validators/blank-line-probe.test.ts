/**
 * The blank-line heuristic's probe (docs/clb-choices.md, "The blank-line heuristic"): a first line
 * whose name runs past 256 token characters is not a header, so a body of token characters is
 * decided at once; and the decision is the same however the body is split into reads.
 */
import t from 'tap'
import { ResponseParser, looksLikeFieldLine } from '../../validators/response-parser.js'

t.test('a name of up to 256 token characters can be a header; a longer run is not', async (t) => {
  t.equal(looksLikeFieldLine(Buffer.from(`${'a'.repeat(256)}: x\r\n`, 'latin1')), 'yes')
  t.equal(looksLikeFieldLine(Buffer.from(`${'a'.repeat(257)}: x\r\n`, 'latin1')), 'no')
  t.equal(looksLikeFieldLine(Buffer.from('a'.repeat(257), 'latin1')), 'no', 'decided without waiting for the rest of the body')
  t.equal(looksLikeFieldLine(Buffer.from('a'.repeat(200), 'latin1')), 'undecided')
})

t.test('a 4 KiB body of token characters: no finding, whole or split into reads', async (t) => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n'
  const body = 'x'.repeat(4096)
  for (const size of [4096 + head.length, 100, 7, 1]) {
    const parser = new ResponseParser({ requestMethod: 'GET', maxHeadBytes: 65536 })
    const bytes = Buffer.from(head + body, 'latin1')
    for (let at = 0; at < bytes.length; at += size) parser.push(bytes.subarray(at, at + size))
    t.strictSame([parser.state, parser.defects], ['complete', []], `reads of ${size} bytes`)
  }
})

t.test('a header after the blank line split across reads is still found', async (t) => {
  const bytes = Buffer.from('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
  for (const size of [bytes.length, 30, 3, 1]) {
    const parser = new ResponseParser({ requestMethod: 'GET', maxHeadBytes: 65536 })
    for (let at = 0; at < bytes.length; at += size) parser.push(bytes.subarray(at, at + size))
    parser.finish()
    t.ok(parser.defects.some((d) => d.code === 'HDR_BLANK_LINE' && d.offset === 27), `reads of ${size} bytes`)
  }
})
