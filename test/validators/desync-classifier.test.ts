/**
 * validators/desync-classifier.ts against aws/http-desync-guardian's own corpus (docs/clb-behavior.md
 * §6.3; loaded by test/helpers/desync-guardian.ts). Every case's raw request, built as the upstream
 * harness builds it, is classified; tier and reason must be the corpus's, except the cases listed in
 * EXPECTED_DIFFERENCES with why. The list is compared both ways, so it cannot go stale.
 *
 * The corpus's reason is the one HDG gives for the request handed over as parsed fields
 * (`analyze_parsed_request`); our classifier sees bytes, as HDG's `analyze_raw_request` does, and
 * the upstream harness itself only asks the raw run for the same tier, and not even that when its
 * reason is MultilineHeader, MissingHeaderColon, SpaceInUri, AmbiguousUri or NonCrLfLineTermination.
 * Every listed difference is one where HDG's own raw run answers exactly what we answer (checked
 * against HDG 7dd6f37 built from source, the 159 cases and 69,000 mutated heads: no case where tier
 * or reason differed).
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  blocks, classifyRequest, classifyRequestInDetail, desyncAction, DESYNC_REASON_TIERS, DESYNC_REASONS, DESYNC_TIERS,
  type DesyncClassification, type DesyncMode, type DesyncTier
} from '../../validators/desync-classifier.js'
import { loadDesyncGuardianCorpus, rawRequest, type DesyncCase } from '../helpers/desync-guardian.js'
import { REPO_URL } from '../helpers/repo.js'

const cases = loadDesyncGuardianCorpus()
const byName = new Map(cases.map((c) => [c.name, c]))
const results = new Map(cases.map((c) => [c.name, classifyRequest(rawRequest(c))]))

interface Difference {
  readonly tier: DesyncTier
  readonly reason: string
  readonly why: string
}

const LINE_BREAK = 'the case puts a line break inside a field; over the wire it ends the line, so the bytes are another request'
const FOLD = 'a header line that starts with whitespace is, in raw bytes, an obs-fold line (RFC 9112 §5.2) before it is a header name: HDG\'s raw run reports MultilineHeader first (Ambiguous, the same tier); the corpus reason is for the name handed over as a field'

/** Where our (tier, reason) differs from the corpus's; HDG's own analyze_raw_request gives the same as ours for each. */
const EXPECTED_DIFFERENCES: Record<string, Difference> = {
  // Same tier, another reason
  'ambiguous.yaml: [white-space]Transfer-Encoding and Content-Length': { tier: 'Ambiguous', reason: 'MultilineHeader', why: FOLD },
  'ambiguous.yaml: [white-space]Transfer-Encoding and [white-space]Content-Length': { tier: 'Ambiguous', reason: 'MultilineHeader', why: FOLD },
  'ambiguous.yaml: Only white-spaces header name': { tier: 'Ambiguous', reason: 'MultilineHeader', why: FOLD },
  'ambiguous.yaml: Transfer-Encoding with UTF8 spaces': { tier: 'Ambiguous', reason: 'MultilineHeader', why: `${FOLD} (despite its name, the case's name starts with three ASCII spaces)` },
  'severe.yaml: \\n in value is bad': { tier: 'Severe', reason: 'MultipleContentLength', why: `${LINE_BREAK}: "Content-Length: 10\\n20" is a Content-Length line and an obs-fold "20" line read as a second, different Content-Length` },
  // Another tier
  'severe.yaml: Multiline headers are deprecated': { tier: 'Ambiguous', reason: 'MultilineHeader', why: `${LINE_BREAK}: the CRLF + SP in the value is an obs-fold on the wire, which HDG rates Ambiguous; the corpus rates the field value with a CR in it (BadHeader)` },
  'severe.yaml: Multiline headers are deprecated (with \\n only)': { tier: 'Ambiguous', reason: 'MultilineHeader', why: `${LINE_BREAK}: as above, with LF + SP` },
  'severe.yaml: Http Engine missed LF': { tier: 'Ambiguous', reason: 'MultilineHeader', why: `${LINE_BREAK}: as above` },
  'severe.yaml: \\n in name is bad': { tier: 'Ambiguous', reason: 'MissingHeaderColon', why: `${LINE_BREAK}: the part of the name before the LF is a line without a colon` },
  'uri-specific-test-cases.yaml: \\n in URI': { tier: 'Ambiguous', reason: 'MissingHeaderColon', why: `${LINE_BREAK}: the request line ends at the LF and the rest of the URI is a header line without a colon` },
  'uri-specific-test-cases.yaml: Request Smuggling in URI': { tier: 'Ambiguous', reason: 'AmbiguousUri', why: `${LINE_BREAK}: the CRLFs split the request line; what is left of it has a tab in its URI` },
  'uri-specific-test-cases.yaml: [space] in URI resulted in a bad version': { tier: 'Acceptable', reason: 'SpaceInUri', why: 'the version field is "HTTP/1.1 HTTP/1.1"; on the wire the version is the token after the LAST space (HDG last_token), so the line reads as URI "/endpoint_a HTTP/1.1" (a space in the URI, Acceptable) and version "HTTP/1.1"; the corpus rates the field with the space in it (BadVersion)' }
}

t.test('every corpus case: the tier and reason of HDG, except the listed differences', async (t) => {
  t.equal(cases.length, 159, 'clb-behavior.md §6.3: 159 cases')
  const differences: Record<string, { tier: DesyncTier; reason: string }> = {}
  let agreeTier = 0
  for (const c of cases) {
    const r = results.get(c.name) as DesyncClassification
    if (r.tier === c.expected.tier) agreeTier++
    if (r.tier !== c.expected.tier || r.reason !== c.expected.reason) differences[c.name] = { tier: r.tier, reason: r.reason }
  }
  t.same(differences, Object.fromEntries(Object.entries(EXPECTED_DIFFERENCES).map(([name, d]) => [name, { tier: d.tier, reason: d.reason }])),
    'the cases that differ are exactly the listed ones, with our tier and reason as listed')
  for (const [name, d] of Object.entries(EXPECTED_DIFFERENCES)) {
    t.ok(byName.has(name), `${name}: a corpus case`)
    t.ok(d.why.length > 40, `${name}: the difference says why`)
  }
  const agree = cases.length - Object.keys(differences).length
  t.equal(agree, 147, `${cases.length} cases, ${agree} agree on tier and reason, ${agreeTier} on tier, ${Object.keys(differences).length} listed differences`)
  t.equal(agreeTier, 152)
})

t.test('where the reason agrees, the message names what the corpus asks it to (required_message_items)', async (t) => {
  const missing: string[] = []
  for (const c of cases) {
    const r = results.get(c.name) as DesyncClassification
    if (r.reason !== c.expected.reason || r.reason === 'Compliant') continue
    const message = (r.reasons.find((f) => f.reason === r.reason)?.message ?? '').toLowerCase()
    for (const item of c.expected.requiredMessageItems) if (!message.includes(item.toLowerCase())) missing.push(`${c.name}: ${item} not in ${message}`)
  }
  t.same(missing, [])
})

t.test('the deciding reason is the first finding at the highest tier, and every finding is listed once', async (t) => {
  for (const c of cases) {
    const r = results.get(c.name) as DesyncClassification
    const names = r.reasons.map((f) => f.reason)
    t.equal(new Set(names).size, names.length, `${c.name}: one finding per reason`)
    const top = r.reasons.reduce((tier, f) => Math.max(tier, DESYNC_TIERS.indexOf(DESYNC_REASON_TIERS[f.reason])), 0)
    t.equal(r.tier, DESYNC_TIERS[top], `${c.name}: the tier is the highest finding's`)
    t.equal(r.reason, r.reasons.find((f) => DESYNC_REASON_TIERS[f.reason] === r.tier)?.reason ?? 'Compliant', `${c.name}: the first at that tier decides`)
    for (const f of r.reasons) t.ok(f.offset >= 0 && f.offset <= rawRequest(c).length, `${c.name}: ${f.reason} offset inside the head`)
  }
})

function classify (text: string, from?: number): DesyncClassification {
  return classifyRequest(Buffer.from(text, 'latin1'), from)
}

t.test('offsets point at the byte that decided each finding', async (t) => {
  const space = classify('GET /a b HTTP/1.1\r\nHost: x\r\n\r\n')
  t.same([space.tier, space.reason, space.reasons[0]?.offset], ['Acceptable', 'SpaceInUri', 6], 'spec §6.2: method up to the first SP, version after the last')
  const nul = classify('POST / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n')
  t.same([nul.tier, nul.reason, nul.reasons[0]?.offset], ['Severe', 'BadHeader', 32])
  const two = classify('POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')
  t.same([two.reason, two.reasons[0]?.offset], ['MultipleContentLength', 51])
  const fold = classify('GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n')
  t.same([fold.tier, fold.reason, fold.reasons[0]?.offset], ['Ambiguous', 'MultilineHeader', 24])
  const crlf = classify('GET / HTTP/1.1\nHost: x\n\n')
  t.same([crlf.tier, crlf.reason, crlf.reasons[0]?.offset], ['Acceptable', 'NonCrLfLineTermination', 14])
})

t.test('all findings are kept, in HDG\'s analysis order (headers, TE/CL, method, version, URI)', async (t) => {
  const r = classify('GET /a\tb HTTP/1.1\r\nX-\x01: 1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n')
  t.same(r.reasons.map((f) => f.reason), ['NonCompliantHeader', 'UndefinedTransferEncodingSemantics', 'GetHeadZeroContentLength', 'BothTeClPresent', 'AmbiguousUri'])
  t.same([r.tier, r.reason], ['Ambiguous', 'UndefinedTransferEncodingSemantics'])
})

t.test('the head alone is read; what follows the empty line is not', async (t) => {
  const head = 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n'
  t.same(classify(head), classify(`${head}a\x00\r\n`))
  t.same(classify(head).tier, 'Compliant')
  t.same(classify('GET / HTTP/1.1\r\nHost: x\r\n').reason, 'MissingLastEmptyLine')
  t.same(classify('GET / HTTP/1.1\r\nHost: x').reason, 'PartialHeaderLine', 'a header line cut short (after its NonCrLf finding, which is only Acceptable)')
})

t.test('from: the leading empty lines RFC 9112 §2.2 lets a server ignore', async (t) => {
  const text = '\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'
  t.same([classify(text).tier, classify(text).reason], ['Ambiguous', 'MissingUri'], 'HDG reads the empty line as a request line')
  t.same(classify(text, 2).tier, 'Compliant')
  t.same(classify('GET /a b HTTP/1.1\r\n\r\n', 0).reasons[0]?.offset, classify('\r\nGET /a b HTTP/1.1\r\n\r\n', 2).reasons[0]?.offset as number - 2, 'offsets still count from head[0]')
})

t.test('HDG quirks kept on purpose', async (t) => {
  t.same(classify('GET / HTTP/2.0\r\nContent-Length: x\r\n\r\n').tier, 'Compliant', '"H2+ validation is not supported": a version >= "HTTP/2" (byte-wise) is not analysed')
  t.same(classify('GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n').reason, 'UndefinedTransferEncodingSemantics')
  t.same(classify('POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n').tier, 'Compliant', 'spec §6.2: the repeated-chunked flag is reset by gzip')
  t.same(classify('POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n').reason, 'MultipleTransferEncodingChunked')
  t.same(classify('POST / HTTP/1.1\r\nContent-Length: \r\n\r\n').tier, 'Compliant', 'HDG parse_num reads an empty value as 0')
  t.same(classify('get / HTTP/1.1\r\nContent-Length: 5\r\n\r\n').tier, 'Compliant', 'GET/HEAD is matched case-sensitively')
  t.same(classify('POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n').tier, 'Compliant')
  t.same(classify('POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n').reason, 'BadContentLength', 'u64 overflow')
  t.same(classify('POST / HTTP/1.1\r\nContent-Type: a\r\n b\r\n\r\n').tier, 'Compliant', 'obs-fold is allowed in Content-Type only')
})

t.test('no throwing and bounded work on any bytes', async (t) => {
  let seed = 7
  const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  const alphabet = ['\r', '\n', ' ', '\t', ':', ',', '\x00', '\x7f', '\xc5\xbf', 'HTTP/1.1', 'Transfer-Encoding', 'Content-Length', 'chunked', '5', 'GET', '/']
  for (let i = 0; i < 2000; i++) {
    let text = ''
    for (let k = random(40); k > 0; k--) text += alphabet[random(alphabet.length)] as string
    const r = classify(text)
    t.ok(DESYNC_TIERS.includes(r.tier), 'a tier')
  }
  t.same(classifyRequest(Buffer.alloc(0)).reason, 'MissingUri')
  // A large head of the slowest kinds of lines still finishes in one pass (similarity, value scan, CL parse).
  const big = `POST / HTTP/1.1\r\n${'\x01\x01Transfer\x01Encoding\x01\x01: chunked,chunked,\x01\r\n'.repeat(5000)}${`Content-Length: ${'9'.repeat(100000)}\r\n`}\r\n`
  const started = process.hrtime.bigint()
  t.same(classify(big).tier, 'Severe')
  t.ok(process.hrtime.bigint() - started < 5_000_000_000n, 'well under a second in practice; 5 s only guards against a quadratic pass')
})

t.test('the one-scan answer for plain heads is the detailed analysis\'s answer', async (t) => {
  // Heads as clients send them (curl, wrk, a browser, an upload, HTTP/1.0); the plain ones take the
  // one-scan path, which answers one shared, frozen Compliant.
  const heads = [
    'GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n',
    'GET /a?b=%20c#d HTTP/1.1\r\nHost: x\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n' +
      'Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Mode: navigate\r\nCookie: a=\xe9\r\nX-Empty:\r\n\r\n',
    'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n',
    'PUT /x HTTP/1.0\r\ncontent-length:\t 1234567890123456789 \r\n\r\n',
    'GET / HTTP/1.0\r\nxontent-length: 1\r\nXransfer-Encoding: a\r\nTransfer-Encodinx: a\r\n\r\n',
    'GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n',
    'POST /x HTTP/1.1\r\nContent-Length: 12345678901234567890\r\nContent-Length: 1\r\n\r\n'
  ]
  const plain = heads.filter((h) => Object.isFrozen(classify(h)))
  t.same(heads.map((h) => classify(h).tier), ['Compliant', 'Compliant', 'Compliant', 'Compliant', 'Compliant', 'Compliant', 'Acceptable', 'Severe'],
    'the last three are Compliant, Acceptable (GET with Content-Length: 0) and Severe (MultipleContentLength) by the full analysis')
  t.same(plain.length, 5, 'the one-scan path takes all but the last three: a name like Transfer-Encoding, a GET with a Content-Length, a 20-digit or second Content-Length')
  // Each head, and each head with one byte replaced or inserted anywhere by a byte that matters to
  // some rule: both ways must give the same tier, reason and findings.
  const bytes = ['\x00', '\t', '\n', '\r', ' ', ':', ',', '\x7f', '\x80', '\xff', 'a', '-', '!', 't', 'C', '/', '.', '0', '2', '9']
  let compared = 0
  const mismatches: string[] = []
  const compare = (text: string, from: number): void => {
    const head = Buffer.from(text, 'latin1')
    compared++
    const fast = classifyRequest(head, from)
    const detailed = classifyRequestInDetail(head, from)
    if (fast.tier !== detailed.tier || fast.reason !== detailed.reason || JSON.stringify(fast.reasons) !== JSON.stringify(detailed.reasons)) {
      mismatches.push(JSON.stringify(text))
    }
  }
  for (const c of cases) compare(rawRequest(c).toString('latin1'), 0)
  for (const head of heads) {
    for (const prefix of ['', '\r\n']) {
      const text = prefix + head
      compare(text, prefix.length)
      for (let at = prefix.length; at <= text.length; at++) {
        for (const b of bytes) {
          compare(text.slice(0, at) + b + text.slice(at + 1), prefix.length)
          compare(text.slice(0, at) + b + text.slice(at), prefix.length)
        }
      }
    }
  }
  t.same(mismatches.slice(0, 5), [], `no difference in ${compared} heads`)
  t.ok(compared > 20_000, `${compared} heads compared`)
})

// --- The modes (CLB-DESYNC, spec §6.1 table; §6.4) ---

const MODE_TABLE: Record<DesyncMode, Record<DesyncTier, ReturnType<typeof desyncAction>>> = {
  monitor: { Compliant: 'allow', Acceptable: 'allow', Ambiguous: 'allow', Severe: 'allow' },
  defensive: { Compliant: 'allow', Acceptable: 'allow', Ambiguous: 'allow-and-close', Severe: 'block' },
  strictest: { Compliant: 'allow', Acceptable: 'block', Ambiguous: 'block', Severe: 'block' }
}

t.test('which mode blocks which tier', async (t) => {
  for (const [mode, row] of Object.entries(MODE_TABLE) as Array<[DesyncMode, Record<DesyncTier, string>]>) {
    for (const tier of DESYNC_TIERS) {
      t.equal(desyncAction(mode, tier), row[tier], `${mode} / ${tier}`)
      t.equal(blocks(mode, tier), row[tier] === 'block', `${mode} blocks ${tier}: ${String(row[tier] === 'block')}`)
    }
  }
})

// --- docs/desync.md keeps up with the code ---

t.test('docs/desync.md lists every reason with its tier, and the mode table', async (t) => {
  const doc = readFileSync(new URL('docs/desync.md', REPO_URL), 'utf8')
  const rows = new Map<string, string>()
  for (const line of doc.split('\n')) {
    const m = /^\| `([A-Za-z]+)` \| (Compliant|Acceptable|Ambiguous|Severe) \|/.exec(line)
    if (m !== null) rows.set(m[1] as string, m[2] as string)
  }
  t.same(Object.fromEntries(rows), { ...DESYNC_REASON_TIERS }, 'one row per reason, with the tier the classifier gives it')
  t.same([...rows.keys()], [...DESYNC_REASONS], 'in the code\'s order')
  for (const [mode, row] of Object.entries(MODE_TABLE)) {
    const line = doc.split('\n').find((l) => l.startsWith(`| \`${mode}\` |`))
    t.ok(line !== undefined, `${mode}: a row in the mode table`)
    const cells = (line ?? '').split('|').slice(2, 6).map((cell) => cell.trim())
    t.same(cells, DESYNC_TIERS.map((tier) => ({ allow: 'allowed', 'allow-and-close': 'allowed, then both connections closed', block: 'blocked: 400, close' })[row[tier]]), `${mode}: the row says what desyncAction does`)
  }
})

/** The harness's raw-run excuse list (spec §6.3), for the record: every tier difference above has one of these reasons. */
t.test('every tier difference is one the upstream harness itself excuses for its raw run', async (t) => {
  const excused = ['MultilineHeader', 'MissingHeaderColon', 'SpaceInUri', 'AmbiguousUri', 'NonCrLfLineTermination']
  for (const [name, d] of Object.entries(EXPECTED_DIFFERENCES)) {
    const c = byName.get(name) as DesyncCase
    if (d.tier !== c.expected.tier) t.ok(excused.includes(d.reason), `${name}: ${d.reason} is excused`)
    else t.equal(d.tier, c.expected.tier, `${name}: same tier`)
  }
})
