import t from 'tap'
import {
  STICKINESS_CACHE_CONTROL_LINE,
  appCookieStickinessHeaders,
  durationCookieHeaders,
  fieldValues,
  findRequestCookie,
  insertHeaderLines,
  stickinessCookieValue
} from '../../../proxy/balancer/stickiness.js'
import { RequestParser } from '../../../validators/request-parser.js'
import { ResponseParser, type ResponseHead } from '../../../validators/response-parser.js'

const V = stickinessCookieValue('my-load-balancer', 'i-0123456789abcdef0')

t.test('the AWSELB value: upper-case hex of the observed length, the same for the same instance', async (t) => {
  t.match(V, /^[0-9A-F]{128,}$/)
  // The value observed on a real CLB (O-COOKIE) has 138 characters.
  t.equal(V.length, 138)
  t.equal(stickinessCookieValue('my-load-balancer', 'i-0123456789abcdef0'), V, 'deterministic')
  t.not(stickinessCookieValue('my-load-balancer', 'i-0fedcba9876543210'), V, 'another instance, another value')
  t.not(stickinessCookieValue('other-load-balancer', 'i-0123456789abcdef0'), V, 'another load balancer, another value')
  t.not(stickinessCookieValue('ab', 'c'), stickinessCookieValue('a', 'bc'), 'the two parts do not run together')
  t.match(stickinessCookieValue('', ''), /^[0-9A-F]{138}$/)
})

t.test('duration-based: AWSELB and AWSELBCORS, byte for byte', async (t) => {
  t.strictSame(durationCookieHeaders(V, 600), [
    `Set-Cookie: AWSELB=${V};PATH=/;MAX-AGE=600`,
    `Set-Cookie: AWSELBCORS=${V};PATH=/;MAX-AGE=600;SECURE;SAMESITE=None`
  ])
  // The observed capture (O-COOKIE), value and all.
  const observed = '97B3358B1C150AC96AC74F39ED34D289809132006F7BA5B2F25F07E55154F8085275EA0D2F39DF8BB21744F830D89ECD43579653C46C0C919E1E506531E2E9FA2E694132F7'
  t.equal(durationCookieHeaders(observed, 10)[1], `Set-Cookie: AWSELBCORS=${observed};PATH=/;MAX-AGE=10;SECURE;SAMESITE=None`)
})

t.test('duration-based with expiration 0: a browser-session cookie, no MAX-AGE', async (t) => {
  t.strictSame(durationCookieHeaders(V, 0), [
    `Set-Cookie: AWSELB=${V};PATH=/`,
    `Set-Cookie: AWSELBCORS=${V};PATH=/;SECURE;SAMESITE=None`
  ])
})

t.test('duration-based: an expiration that is not a whole number of seconds is refused', async (t) => {
  t.throws(() => durationCookieHeaders(V, -1), RangeError)
  t.throws(() => durationCookieHeaders(V, 1.5), RangeError)
  t.throws(() => durationCookieHeaders(V, Number.NaN), RangeError)
})

t.test('the Cache-control line is exactly the observed one, and not in the cookie lines', async (t) => {
  t.equal(STICKINESS_CACHE_CONTROL_LINE, 'Cache-control: no-cache="set-cookie"')
  t.notOk(durationCookieHeaders(V, 600).includes(STICKINESS_CACHE_CONTROL_LINE))
})

t.test('findRequestCookie', async (t) => {
  t.equal(findRequestCookie(['AWSELB=ABC'], 'AWSELB'), 'ABC', 'alone')
  t.equal(findRequestCookie(['a=1; AWSELB=ABC; b=2'], 'AWSELB'), 'ABC', 'among others')
  t.equal(findRequestCookie(['a=1;AWSELB=ABC;b=2'], 'AWSELB'), 'ABC', 'no spaces')
  t.equal(findRequestCookie(['  a=1 ;   AWSELB = ABC  ; b=2'], 'AWSELB'), 'ABC', 'extra spaces')
  t.equal(findRequestCookie(['a=1', 'b=2; AWSELB=ABC'], 'AWSELB'), 'ABC', 'in a second Cookie header')
  t.equal(findRequestCookie(['AWSELB=FIRST', 'AWSELB=SECOND'], 'AWSELB'), 'FIRST', 'first match wins across headers')
  t.equal(findRequestCookie(['AWSELB=FIRST; AWSELB=SECOND'], 'AWSELB'), 'FIRST', 'first match wins in one header')
  t.equal(findRequestCookie(['AWSELBCORS=CORS; AWSELB=ABC'], 'AWSELB'), 'ABC', 'a longer name is another cookie')
  t.equal(findRequestCookie(['AWSELBCORS=CORS'], 'AWSELBCORS'), 'CORS')
  t.equal(findRequestCookie(['awselb=lower'], 'AWSELB'), null, 'names are case-sensitive')
  t.equal(findRequestCookie(['a=1; b=2'], 'AWSELB'), null, 'missing')
  t.equal(findRequestCookie([], 'AWSELB'), null, 'no Cookie header')
  t.equal(findRequestCookie([''], 'AWSELB'), null, 'an empty Cookie header')
  t.equal(findRequestCookie(['AWSELB; x=1'], 'AWSELB'), null, 'a piece without = has no name')
  t.equal(findRequestCookie(['AWSELB='], 'AWSELB'), '', 'an empty value is a value')
  t.equal(findRequestCookie(['k=a=b'], 'k'), 'a=b', 'the value runs past further = signs')
})

t.test('findRequestCookie takes the Cookie values a RequestHead gives', async (t) => {
  const parser = new RequestParser(65536)
  parser.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCOOKIE: AWSELB=ABC; b=2\r\n\r\n', 'latin1'))
  const fields = parser.head?.fields ?? []
  t.strictSame(fieldValues(fields, 'cookie'), ['a=1', 'AWSELB=ABC; b=2'])
  t.equal(findRequestCookie(fieldValues(fields, 'cookie'), 'AWSELB'), 'ABC')
})

t.test('application-controlled: attributes copied in order, in the load balancer style', async (t) => {
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc; Path=/my_path; Max-Age=600; HttpOnly; SameSite=Lax'], 'SESSION', V),
    [`Set-Cookie: AWSELB=${V};PATH=/my%5Fpath;MAX-AGE=600;HTTPONLY;SAMESITE=Lax`])
  // Every listed attribute, in the app's order, values as sent.
  t.strictSame(appCookieStickinessHeaders([
    'JSESSIONID=x1; Version=1; Comment=c; CommentURL="http://e/c"; Discard; Port="80,8080"; secure; ' +
    'Expires=Wed, 21 Oct 2026 07:28:00 GMT; Domain=.example.com; path=/; max-age=60; httponly; samesite=None'
  ], 'JSESSIONID', V), [
    `Set-Cookie: AWSELB=${V};VERSION=1;COMMENT=c;COMMENTURL="http://e/c";DISCARD;PORT="80,8080";SECURE;` +
    'EXPIRES=Wed, 21 Oct 2026 07:28:00 GMT;DOMAIN=.example.com;PATH=/;MAX-AGE=60;HTTPONLY;SAMESITE=None'
  ])
})

t.test('application-controlled: unknown attributes are dropped', async (t) => {
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc; Partitioned; Priority=High; Path=/; Foo=bar; ; Secure'], 'SESSION', V),
    [`Set-Cookie: AWSELB=${V};PATH=/;SECURE`])
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc'], 'SESSION', V), [`Set-Cookie: AWSELB=${V}`], 'no attributes')
})

t.test('application-controlled: every underscore of the path is re-encoded, other attributes keep theirs', async (t) => {
  t.strictSame(appCookieStickinessHeaders(['SESSION=a_b; Path=/my_path/sub_dir; Domain=my_host.example'], 'SESSION', V),
    [`Set-Cookie: AWSELB=${V};PATH=/my%5Fpath/sub%5Fdir;DOMAIN=my_host.example`])
})

t.test('application-controlled: a trailing semicolon makes the load balancer ignore the cookie', async (t) => {
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc; Path=/;'], 'SESSION', V), [])
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc;'], 'SESSION', V), [])
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc; Path=/;  '], 'SESSION', V), [], 'trailing whitespace after it')
  t.strictSame(appCookieStickinessHeaders(['SESSION=abc; Path=/a;', 'SESSION=def; Path=/b'], 'SESSION', V),
    [`Set-Cookie: AWSELB=${V};PATH=/b`], 'an ignored one does not hide a valid one')
})

t.test('application-controlled: only the app cookie counts', async (t) => {
  t.strictSame(appCookieStickinessHeaders(['other=1; Path=/x', 'SESSION=abc; Path=/y', 'more=2; Max-Age=5'], 'SESSION', V),
    [`Set-Cookie: AWSELB=${V};PATH=/y`])
  t.strictSame(appCookieStickinessHeaders(['other=1; Path=/x'], 'SESSION', V), [], 'another cookie only')
  t.strictSame(appCookieStickinessHeaders(['session=abc; Path=/'], 'SESSION', V), [], 'the name is case-sensitive')
  t.strictSame(appCookieStickinessHeaders(['SESSIONID=abc; Path=/'], 'SESSION', V), [], 'a longer name is another cookie')
  t.strictSame(appCookieStickinessHeaders(['x=1; SESSION=abc'], 'SESSION', V), [], 'an attribute named like the cookie')
  t.strictSame(appCookieStickinessHeaders(['SESSION'], 'SESSION', V), [], 'no = sets no cookie')
  t.strictSame(appCookieStickinessHeaders([], 'SESSION', V), [], 'no Set-Cookie')
})

t.test('application-controlled: the app sets its cookie twice, the last one (the one a browser keeps) counts', async (t) => {
  t.strictSame(appCookieStickinessHeaders(['SESSION=a; Max-Age=0', 'SESSION=b; Max-Age=60'], 'SESSION', V),
    [`Set-Cookie: AWSELB=${V};MAX-AGE=60`])
})

t.test('application-controlled: takes the Set-Cookie values a ResponseHead gives', async (t) => {
  const parser = new ResponseParser({ requestMethod: 'GET', maxHeadBytes: 65536 })
  parser.push(Buffer.from('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: SESSION=abc; Path=/p_q\r\nContent-Length: 0\r\n\r\n', 'latin1'))
  const head = parser.head as ResponseHead
  t.strictSame(appCookieStickinessHeaders(fieldValues(head.fields, 'set-cookie'), 'SESSION', V), [`Set-Cookie: AWSELB=${V};PATH=/p%5Fq`])
})

const LINES = ['Set-Cookie: AWSELB=ABC;PATH=/', STICKINESS_CACHE_CONTROL_LINE]

function headEndOf (raw: Buffer): number {
  const parser = new ResponseParser({ requestMethod: 'GET', maxHeadBytes: 65536 })
  parser.push(raw)
  return (parser.head as ResponseHead).end
}

t.test('insertHeaderLines: a CRLF head, with a body after it', async (t) => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
  const out = insertHeaderLines(raw, headEndOf(raw), LINES)
  t.equal(out.toString('latin1'),
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: AWSELB=ABC;PATH=/\r\nCache-control: no-cache="set-cookie"\r\n\r\nhello')
  t.equal(raw.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'the input is unchanged')
})

t.test('insertHeaderLines: a head with bare LF line ends gets bare LFs', async (t) => {
  const raw = Buffer.from('HTTP/1.1 200 OK\nContent-Length: 2\n\nhi', 'latin1')
  t.equal(insertHeaderLines(raw, headEndOf(raw), LINES).toString('latin1'),
    'HTTP/1.1 200 OK\nContent-Length: 2\nSet-Cookie: AWSELB=ABC;PATH=/\nCache-control: no-cache="set-cookie"\n\nhi')
})

t.test('insertHeaderLines: mixed line ends follow the last header line', async (t) => {
  const crlfThenLf = Buffer.from('HTTP/1.1 200 OK\r\nA: 1\r\n\nbody', 'latin1')
  t.equal(insertHeaderLines(crlfThenLf, crlfThenLf.length - 4, ['B: 2']).toString('latin1'), 'HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\nbody')
  const lfThenCrlf = Buffer.from('HTTP/1.1 200 OK\nA: 1\n\r\nbody', 'latin1')
  t.equal(insertHeaderLines(lfThenCrlf, lfThenCrlf.length - 4, ['B: 2']).toString('latin1'), 'HTTP/1.1 200 OK\nA: 1\nB: 2\n\r\nbody')
})

t.test('insertHeaderLines: a head with no header lines, and bytes of a next response after the body', async (t) => {
  const raw = Buffer.from('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n', 'latin1')
  t.equal(insertHeaderLines(raw, 'HTTP/1.1 204 No Content\r\n\r\n'.length, ['X: y']).toString('latin1'),
    'HTTP/1.1 204 No Content\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n\r\n')
})

t.test('insertHeaderLines: the lines are written as latin1', async (t) => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\n\r\n', 'latin1')
  const out = insertHeaderLines(raw, raw.length, ['X: caf\u00e9'])
  t.ok(out.equals(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nX: caf', 'latin1'), Buffer.from([0xe9]), Buffer.from('\r\n\r\n', 'latin1')])))
})

t.test('insertHeaderLines: zero lines give the same bytes, in a new buffer', async (t) => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
  const out = insertHeaderLines(raw, headEndOf(raw), [])
  t.ok(out.equals(raw))
  t.not(out, raw)
})

t.test('insertHeaderLines: refuses an offset that does not follow a blank line, and a line with a line break', async (t) => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
  const end = headEndOf(raw)
  t.throws(() => insertHeaderLines(raw, end + 1, []), RangeError, 'inside the body')
  t.throws(() => insertHeaderLines(raw, end - 2, []), RangeError, 'after the last header line, not the blank line')
  t.throws(() => insertHeaderLines(raw, 1, []), RangeError, 'too small')
  t.throws(() => insertHeaderLines(raw, raw.length + 1, []), RangeError, 'past the end')
  t.throws(() => insertHeaderLines(Buffer.from('\r\n', 'latin1'), 2, []), RangeError, 'a blank line with no head before it')
  t.throws(() => insertHeaderLines(raw, end, ['X: 1\r\nY: 2']), RangeError, 'CRLF inside a line')
  t.throws(() => insertHeaderLines(raw, end, ['X: 1\nY: 2']), RangeError, 'LF inside a line')
})
