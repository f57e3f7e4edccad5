/**
 * aws/http-desync-guardian's whole corpus (test/helpers/desync-guardian.ts) through a live proxy,
 * once per desyncMode (CLB-DESYNC; docs/desync.md): one proxy per mode, one client connection per
 * case, a raw `net` backend that answers every request it receives.
 *
 * For every case:
 * - a request our own request parser rejects gets CLB's 400 before it is classified (outcome
 *   'bad-request', no classification); those cases are named in PARSER_REJECTS with why;
 * - any other request is classified on the exchange record (`record.desync`) with the corpus's
 *   tier and reason, except where the pure-level tests already list a difference
 *   (test/validators/desync-classifier.test.ts EXPECTED_DIFFERENCES, read from its source by
 *   test/helpers/desync-live.ts) or where LIVE_ONLY_CLASSIFICATION_DIFFERENCES lists one;
 * - the action is the mode's for that tier: blocked (CLB's exact 400, the client connection
 *   closed, no byte at the backend, outcome 'desync-blocked', a diagnostic naming tier and reason),
 *   forwarded (the backend's answer relayed), or in defensive mode for Ambiguous, forwarded and
 *   then both connections closed;
 * - DesyncMitigationMode_NonCompliant_Request_Count counts every classified request that is not Compliant;
 * - every non-compliant request writes a diagnostic naming its tier and reason, blocked or forwarded.
 *
 * Then the live classification must not depend on how the bytes are split into reads: every case
 * again with every head byte its own read, and split at random boundaries (fixed seed); a sample
 * also at every byte boundary of its head.
 */
import t from 'tap'
import type { Test } from 'tap'
import { SYNTHETIC_RESPONSES } from '../../../proxy/data-path/synthetic-responses.js'
import { loadDesyncGuardianCorpus, rawRequest, type DesyncCase, type RequestTier } from '../../helpers/desync-guardian.js'
import { bodyFor, readPureLevelExceptions, seededRandom, sendLive, CLASSIFIER_TEST, CORPUS_TEST, type LiveOutcome } from '../../helpers/desync-live.js'
import { startProxyFixture, type ProxyFixture } from '../../helpers/proxy-fixture.js'
import { reply } from '../../helpers/raw-backend.js'

type Mode = 'monitor' | 'defensive' | 'strictest'
type Action = 'forward' | 'forward-then-close' | 'block'

/** CLB-DESYNC's table (docs/desync.md, "Which mode blocks which tier"), written out here rather than asked of the proxy. */
const MODE_TABLE: Readonly<Record<Mode, Readonly<Record<RequestTier, Action>>>> = {
  monitor: { Compliant: 'forward', Acceptable: 'forward', Ambiguous: 'forward', Severe: 'forward' },
  defensive: { Compliant: 'forward', Acceptable: 'forward', Ambiguous: 'forward-then-close', Severe: 'block' },
  strictest: { Compliant: 'forward', Acceptable: 'block', Ambiguous: 'block', Severe: 'block' }
}
const MODES = Object.keys(MODE_TABLE) as Mode[]

/** What the raw backend answers to every request (no body, so it fits GET, HEAD and any method alike). */
const OK = 'HTTP/1.1 200 OK\r\nX-Backend: corpus\r\nContent-Length: 0\r\n\r\n'
const BAD_REQUEST = SYNTHETIC_RESPONSES[400].toString('latin1')

/** A guard, not a pause: fails the wait if it takes longer than a healthy run ever does. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })
  try {
    return await Promise.race([promise, guard])
  } finally {
    clearTimeout(timer)
  }
}

const cases = loadDesyncGuardianCorpus()
const byName = new Map(cases.map((c) => [c.name, c]))
const lists = readPureLevelExceptions()

// --- The exceptions ---

interface Classification {
  readonly tier: RequestTier
  readonly reason: string
}

/**
 * Where the live classification differs from the pure one (the classifier on the harness's raw
 * bytes): none. The live path classifies the head exactly as received, so every difference is
 * already one of EXPECTED_DIFFERENCES (compared both ways below, so an entry here would have to
 * be a real live-only difference).
 */
const LIVE_ONLY_CLASSIFICATION_DIFFERENCES: Readonly<Record<string, Classification & { readonly why: string }>> = {}

/**
 * Cases the pure parser test skips (a line break inside a field, SKIPPED in desync-guardian-corpus.test.ts)
 * whose bytes our request parser rejects on the wire, before classification. The other skipped
 * cases are accepted and classified as EXPECTED_DIFFERENCES says.
 */
const LIVE_ONLY_PARSER_REJECTS: Readonly<Record<string, string>> = {
  'severe.yaml: \\n in name is bad': 'the LF inside the name "Some-Bad-Header\\n" ends the line, so "Some-Bad-Header" is a header line without a colon: REQUEST_HEADER_INVALID at byte 24 (RFC 9112 §5.1; docs/clb-choices.md: "a header line without a colon", 400); the classifier would rate those bytes Ambiguous (MissingHeaderColon)',
  'uri-specific-test-cases.yaml: \\n in URI': 'the LF inside the URI ends the request line at "GET /endpoint_a", which has no HTTP version: REQUEST_LINE_INVALID at byte 3 (RFC 9112 §3: an invalid request-line gets 400)',
  'uri-specific-test-cases.yaml: Request Smuggling in URI': 'the first CRLF inside the URI ends the request line at "GET /endpoint_a\\tHTTP/1.1", a single space, so no HTTP version: REQUEST_LINE_INVALID at byte 3 (RFC 9112 §3); the second request the URI hides is never read (lingering close)'
}

const SEVERE_AGREES = 'corpus tier Severe, and our request parser answers 400 before classification, as desync-guardian-corpus.test.ts checks ("Severe <=> 400"; docs/clb-choices.md, "Requests")'

/** Why our request parser answers 400 before classification, or null when it accepts the head. */
function parserRejectReason (c: DesyncCase): string | null {
  const liveOnly = LIVE_ONLY_PARSER_REJECTS[c.name]
  if (liveOnly !== undefined) return liveOnly
  if (c.name in lists.skipped) return null
  const difference = lists.parserDifferences[c.name]
  if (difference !== undefined) return difference.ours === 'reject' ? `${CORPUS_TEST} KNOWN_DIFFERENCES: ${difference.reason}` : null
  return c.expected.tier === 'Severe' ? SEVERE_AGREES : null
}

/** The cases that get the parser's 400, each with why (built from the pure-level lists and the live-only one above). */
const PARSER_REJECTS: Readonly<Record<string, string>> = Object.fromEntries(cases.flatMap((c) => {
  const reason = parserRejectReason(c)
  return reason === null ? [] : [[c.name, reason]]
}))

/** The tier and reason the exchange record must carry. */
function expectedClassification (c: DesyncCase): Classification {
  const listed = LIVE_ONLY_CLASSIFICATION_DIFFERENCES[c.name] ?? lists.classifierDifferences[c.name]
  return listed === undefined ? { tier: c.expected.tier, reason: c.expected.reason } : { tier: listed.tier, reason: listed.reason }
}

/**
 * Whether the client's request itself asks for the client connection to close after the
 * response, by rules written out here: `Connection: close`; HTTP/1.0 without `Connection:
 * keep-alive` (RFC 9112 §9.3); both Transfer-Encoding and Content-Length (docs/clb-choices.md:
 * "client connection closed after").
 */
function clientAsksClose (c: DesyncCase): boolean {
  const tokens = (name: string): string[] => c.headers.filter((h) => h.name.toLowerCase() === name)
    .flatMap((h) => h.value.split(',').map((item) => item.trim().toLowerCase()))
  const connection = tokens('connection')
  if (connection.includes('close')) return true
  if (c.version === 'HTTP/1.0' && !connection.includes('keep-alive')) return true
  return tokens('transfer-encoding').length > 0 && tokens('content-length').length > 0
}

/** The bytes the client sends for a case: the harness's raw head, and the body it announces (test/helpers/desync-live.ts bodyFor). */
function requestBytes (c: DesyncCase): { readonly bytes: Buffer; readonly headLength: number } {
  const head = rawRequest(c)
  return { bytes: Buffer.concat([head, bodyFor(head)]), headLength: head.length }
}

t.test('the exception lists: read from the pure-level tests, every name a corpus case, every entry with a reason', async (t) => {
  t.equal(cases.length, 159, 'the whole corpus')
  t.ok(Object.keys(lists.classifierDifferences).length > 0, `${CLASSIFIER_TEST} EXPECTED_DIFFERENCES was read`)
  t.ok(Object.keys(lists.skipped).length > 0, `${CORPUS_TEST} SKIPPED was read`)
  t.ok(Object.keys(lists.parserDifferences).length > 0, `${CORPUS_TEST} KNOWN_DIFFERENCES was read`)
  const names = [...Object.keys(lists.classifierDifferences), ...Object.keys(lists.skipped), ...Object.keys(lists.parserDifferences),
    ...Object.keys(LIVE_ONLY_CLASSIFICATION_DIFFERENCES), ...Object.keys(LIVE_ONLY_PARSER_REJECTS)]
  t.same(names.filter((name) => !byName.has(name)), [], 'every listed name is a corpus case')
  for (const [name, d] of Object.entries(lists.classifierDifferences)) t.ok(d.why.length > 40, `${name}: the classifier difference says why`)
  for (const [name, why] of Object.entries(lists.skipped)) t.ok(why.length > 40, `${name}: the skip says why`)
  for (const [name, why] of Object.entries(PARSER_REJECTS)) t.ok(why.length > 40, `${name}: the parser's 400 says why`)
  t.same(Object.keys(LIVE_ONLY_PARSER_REJECTS).filter((name) => !(name in lists.skipped)), [], 'a live-only parser rejection is one the pure parser test skipped')
})

// --- The whole corpus, once per mode ---

interface Observed {
  readonly outcome: string
  readonly classification: Classification | null
  readonly client: string
  readonly closedByProxy: boolean
  readonly reset: boolean
  readonly backendRequests: number
  /** Bytes the backend received beyond the complete requests it read (always 0). */
  readonly backendStrayBytes: number
  /** For a block: the one diagnostic's outcome and whether its message names the mode, tier and reason. */
  readonly blockDiagnostic: { readonly outcome: unknown; readonly namesTierAndReason: boolean } | null
}

function observe (live: LiveOutcome, mode: Mode): Observed {
  const desync = live.record.desync
  const classification = desync === undefined ? null : { tier: desync.tier, reason: desync.reason }
  const forwarded = live.backendRequests.reduce((sum, r) => sum + r.bytes.length, 0)
  const blocked = live.record.outcome === 'desync-blocked'
  const diagnostic = live.diagnostics[0]
  return {
    outcome: live.record.outcome,
    classification,
    client: live.bytes.toString('latin1'),
    closedByProxy: live.closedByProxy,
    reset: live.reset,
    backendRequests: live.backendRequests.length,
    backendStrayBytes: live.backendBytes - forwarded,
    blockDiagnostic: !blocked || classification === null
      ? null
      : {
          outcome: live.diagnostics.length === 1 ? diagnostic?.outcome : `${live.diagnostics.length} diagnostics`,
          namesTierAndReason: String(diagnostic?.msg).includes(`desync mitigation mode ${mode} blocks ${classification.tier} requests: ${classification.reason}`)
        }
  }
}

function expected (c: DesyncCase, mode: Mode): Observed & { readonly action: Action | 'parser-400' } {
  const base = { reset: false, backendStrayBytes: 0 }
  if (c.name in PARSER_REJECTS) {
    return { ...base, action: 'parser-400', outcome: 'bad-request', classification: null, client: BAD_REQUEST, closedByProxy: true, backendRequests: 0, blockDiagnostic: null }
  }
  const classification = expectedClassification(c)
  const action = MODE_TABLE[mode][classification.tier]
  if (action === 'block') {
    return {
      ...base,
      action,
      outcome: 'desync-blocked',
      classification,
      client: BAD_REQUEST,
      closedByProxy: true,
      backendRequests: 0,
      blockDiagnostic: { outcome: 'desync-blocked', namesTierAndReason: true }
    }
  }
  return {
    ...base,
    action,
    outcome: 'relayed',
    classification,
    client: OK,
    closedByProxy: action === 'forward-then-close' || clientAsksClose(c),
    backendRequests: 1,
    blockDiagnostic: null
  }
}

/** How many cases end each way in a mode, for the record (and so a change in the corpus or the lists is seen). */
const EXPECTED_TALLY: Record<Mode, Record<string, number>> = {
  monitor: { 'parser-400': 87, 'forward Compliant': 25, 'forward Acceptable': 8, 'forward Ambiguous': 38, 'forward Severe': 1 },
  defensive: { 'parser-400': 87, 'forward Compliant': 25, 'forward Acceptable': 8, 'forward-then-close Ambiguous': 38, 'block Severe': 1 },
  strictest: { 'parser-400': 87, 'forward Compliant': 25, 'block Acceptable': 8, 'block Ambiguous': 38, 'block Severe': 1 }
}

async function startCorpusProxy (t: Test, mode: Mode): Promise<ProxyFixture> {
  return await startProxyFixture(t, { proxy: { desyncMode: mode }, respond: () => reply([OK]) })
}

for (const mode of MODES) {
  t.test(`${mode}: every corpus case, live: its tier and reason on the exchange record, and the mode's action`, async (t) => {
    const f = await startCorpusProxy(t, mode)
    const tally: Record<string, number> = {}
    const forwardedWithoutDiagnostic: string[] = []
    const rejectedByParser: string[] = []
    const liveOnlyDifferences: Record<string, Classification> = {}
    let nonCompliant = 0
    let forwarded = 0
    for (const c of cases) {
      const live = await sendLive(f, [requestBytes(c).bytes])
      const { action, ...want } = expected(c, mode)
      const desync = live.record.desync
      if (live.record.outcome === 'bad-request') rejectedByParser.push(c.name)
      const pure = lists.classifierDifferences[c.name] ?? c.expected
      if (desync !== undefined && (desync.tier !== pure.tier || desync.reason !== pure.reason)) liveOnlyDifferences[c.name] = { tier: desync.tier, reason: desync.reason }
      t.strictSame(observe(live, mode), want, `${c.name}: ${action}${want.classification === null ? '' : ` (${want.classification.tier} ${want.classification.reason})`}`)
      const key = action === 'parser-400' ? action : `${action} ${want.classification?.tier ?? ''}`
      tally[key] = (tally[key] ?? 0) + 1
      if (want.classification !== null && want.classification.tier !== 'Compliant') nonCompliant++
      if (action === 'parser-400') {
        t.match(live.record.defects[0]?.code, /^REQUEST_/, `${c.name}: the parser's 400 names its request defect`)
      }
      if (action === 'forward' || action === 'forward-then-close') forwarded++
      if (action === 'forward-then-close') {
        // CLB-DESYNC: "routes the requests but closes the client and target connections".
        const connection = f.backend.connections[live.backendConnection ?? -1]
        await within(f.backend.until(() => connection?.closed === true), 5000, `${c.name}: the backend connection closes`)
        t.ok(connection?.closed, `${c.name}: the backend connection is closed too`)
      }
      const tier = want.classification?.tier
      if (action !== 'block' && tier !== undefined && tier !== 'Compliant') {
        const named = live.diagnostics.some((d) => String(d.msg).includes(tier) && String(d.msg).includes(want.classification?.reason ?? ''))
        if (!named) forwardedWithoutDiagnostic.push(c.name)
      }
    }
    t.strictSame(tally, EXPECTED_TALLY[mode], `${cases.length} cases: how many end each way`)
    // Both ways, so neither list can go stale (each case above was also compared with them).
    t.strictSame(rejectedByParser.sort(), Object.keys(PARSER_REJECTS).sort(), 'the parser\'s 400s are exactly the cases of PARSER_REJECTS')
    t.strictSame(liveOnlyDifferences, Object.fromEntries(Object.entries(LIVE_ONLY_CLASSIFICATION_DIFFERENCES).map(([name, d]) => [name, { tier: d.tier, reason: d.reason }])),
      'the live classification differs from the pure-level expectation (corpus, or EXPECTED_DIFFERENCES) exactly where LIVE_ONLY_CLASSIFICATION_DIFFERENCES says')
    t.equal(f.records.length, cases.length, 'one exchange per case, no other')
    t.equal(f.backend.requests.length, forwarded, 'the backend received exactly the forwarded requests')
    t.equal(f.records.filter((r) => r.desync !== undefined && r.desync.tier !== 'Compliant').length, nonCompliant, 'the records say the same')
    t.equal(f.proxy.metrics().Metrics.DesyncMitigationMode_NonCompliant_Request_Count.Sum, nonCompliant,
      `DesyncMitigationMode_NonCompliant_Request_Count: the ${nonCompliant} classified requests that are not Compliant`)
    // Every non-compliant request writes a diagnostic with its tier and reason: blocked ones in
    // their 400's line (checked per case above), forwarded ones in a 'desync' notice.
    t.same(forwardedWithoutDiagnostic, [], 'every forwarded non-compliant request writes a diagnostic naming its tier and reason')
    await f.close(t)
  })
}

// --- The same classification whatever the reads ---

interface Signature {
  readonly outcome: string
  readonly desync: unknown
  readonly client: string
  readonly closedByProxy: boolean
  readonly forwarded: readonly string[]
}

function signature (live: LiveOutcome): Signature {
  return {
    outcome: live.record.outcome,
    desync: live.record.desync ?? null,
    client: live.bytes.toString('latin1'),
    closedByProxy: live.closedByProxy,
    forwarded: live.backendRequests.map((r) => r.bytes.toString('latin1'))
  }
}

/** Cuts `bytes` before each offset (sorted, deduplicated, inside the bytes). */
function cutAt (bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts)].filter((k) => k > 0 && k < bytes.length).sort((a, b) => a - b)
  const pieces: Buffer[] = []
  let from = 0
  for (const k of points) {
    pieces.push(bytes.subarray(from, k))
    from = k
  }
  pieces.push(bytes.subarray(from))
  return pieces
}

/**
 * Cases left out of the split runs, with why (they run whole in every mode above).
 */
const NOT_SPLIT: Readonly<Record<string, string>> = {
  'more-compliant-tests.yaml: Large Size OK': 'its head announces a body of about 4 MB (Content-Length), sent again with each split of the head: the split runs would spend their time on a body the classifier never reads. Its head is an ordinary Compliant one, and it runs whole in every mode above'
}

t.test('the live classification does not depend on how the request\'s bytes are split into reads', async (t) => {
  // Monitor mode: every classified request reaches the backend, so the forwarded bytes are compared too.
  const f = await startCorpusProxy(t, 'monitor')
  const random = seededRandom(20240817)
  const mismatches: string[] = []
  let sends = 0
  const baselines = new Map<string, Signature>()
  const check = async (c: DesyncCase, label: string, pieces: readonly Buffer[]): Promise<void> => {
    const got = signature(await sendLive(f, pieces))
    sends++
    const want = baselines.get(c.name)
    if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`${c.name}: ${label}: ${JSON.stringify(got)} vs one read ${JSON.stringify(want)}`)
  }
  const splitCases = cases.filter((c) => !(c.name in NOT_SPLIT))
  t.equal(cases.length - splitCases.length, Object.keys(NOT_SPLIT).length, 'every case left out is a corpus case')
  for (const c of splitCases) {
    const { bytes, headLength } = requestBytes(c)
    const whole = signature(await sendLive(f, [bytes]))
    sends++
    baselines.set(c.name, whole)
    const desync = whole.desync as Classification | null
    t.strictSame(desync === null ? null : { tier: desync.tier, reason: desync.reason }, c.name in PARSER_REJECTS ? null : expectedClassification(c), `${c.name}: one read`)
    // Every head byte a read of its own (every boundary of the head at once); the body, which the
    // classifier does not read, in one read after it.
    const head = bytes.subarray(0, headLength)
    const body = bytes.subarray(headLength)
    await check(c, 'every head byte alone', [...cutAt(head, Array.from({ length: headLength }, (_, k) => k)), ...(body.length > 0 ? [body] : [])])
    // Three to six reads, cut at random (seeded) places in the head; the body with the last piece.
    const cuts = Array.from({ length: 2 + random(4) }, () => 1 + random(headLength))
    await check(c, `cut at ${cuts.join(',')}`, cutAt(bytes, cuts))
  }
  // Two reads, at every byte boundary of the head, for a sample: the first case of each tier and of the parser's 400.
  const sample = new Map<string, DesyncCase>()
  for (const c of splitCases) {
    const desync = (baselines.get(c.name) as Signature).desync as Classification | null
    const key = desync === null ? 'parser-400' : desync.tier
    if (!sample.has(key)) sample.set(key, c)
  }
  for (const c of sample.values()) {
    const { bytes, headLength } = requestBytes(c)
    for (let k = 1; k <= headLength && k < bytes.length; k++) await check(c, `split at ${k}`, cutAt(bytes, [k]))
  }
  t.same(mismatches, [], `${sends} sends: ${splitCases.length} cases each whole, every head byte alone and cut at random places; ${[...sample.values()].map((c) => c.name).join(', ')} also at every head boundary`)
  t.strictSame([...sample.keys()].sort(), ['Acceptable', 'Ambiguous', 'Compliant', 'Severe', 'parser-400'], 'the sample has every tier and the parser\'s 400')
  t.equal(f.records.length, sends, 'one exchange per send, no other')
  await f.close(t)
})
