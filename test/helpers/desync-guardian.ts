/**
 * Loads aws/http-desync-guardian's YAML test corpus (Apache-2.0, commit 7dd6f37, copied byte for
 * byte into test/fixtures/http-desync-guardian-tests/; its README.md and
 * FORMAT-upstream-README.md give the format, ORIGIN.md where it was copied from) and rebuilds each case's raw request exactly as the
 * upstream harness does (`src/request_analyzer.rs`, `file_tests` / `run_test_case`;
 * docs/clb-behavior.md §6.3):
 *
 * - every scalar it reads (method, uri, version, header name, value and tier, expected tier and
 *   reason) is a YAML string passed through the harness's own `unescape_value` (`\xNN`, `\b`, `\f`,
 *   `\n`, `\r`, `\t`, and `\c` -> `c` for any other character), or a YAML integer printed in
 *   decimal; anything else is a malformed case (the harness panics);
 * - strings are Unicode: a YAML `"\xA0"` is the code point U+00A0, and so is an `\xA0` expanded
 *   by `unescape_value` (Rust's `char::from(u8)`); the harness hands the string's UTF-8 bytes to
 *   the analyzer, so U+00A0 goes on the wire as C2 A0, never as the single byte A0 (caveat (b));
 * - the raw request is `"{method} {uri} {version}\r\n"` + `"{name}: {value}\r\n"` per header +
 *   `"\r\n"`, with no body. An empty version (HTTP/0.9 in the corpus) is written as the harness
 *   writes it: the request line ends in `" \r\n"`.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { parse } from 'yaml'

/** The request classification (CLB-DESYNC; ordered Compliant < Acceptable < Ambiguous < Severe). */
export type RequestTier = 'Compliant' | 'Acceptable' | 'Ambiguous' | 'Severe'
export const REQUEST_TIERS: readonly RequestTier[] = ['Compliant', 'Acceptable', 'Ambiguous', 'Severe']

/** The per-header tier the library assigns (library-specific, caveat (d): not used by our comparison). */
export type HeaderTier = 'Compliant' | 'NonCompliant' | 'Bad'
const HEADER_TIERS: readonly HeaderTier[] = ['Compliant', 'NonCompliant', 'Bad']

export interface DesyncHeader {
  /** After the harness's unescape: a Unicode string, sent as UTF-8. */
  readonly name: string
  readonly value: string
  readonly tier: HeaderTier
}

export interface DesyncCase {
  /** `<file>: <name>`, e.g. `severe.yaml: Multiple Content-Length` (the name as written, not unescaped; a repeated name gets ` (2)`). */
  readonly name: string
  readonly file: string
  readonly method: string
  readonly uri: string
  /** '' is HTTP/0.9 in the corpus. */
  readonly version: string
  readonly headers: readonly DesyncHeader[]
  readonly expected: {
    readonly tier: RequestTier
    /** The library's ClassificationReason name, e.g. `BadContentLength`. */
    readonly reason: string
    /** Substrings of the library's log message (library-specific, caveat (d)). */
    readonly requiredMessageItems: readonly string[]
  }
}

export const DESYNC_GUARDIAN_CORPUS_DIR = new URL('../fixtures/http-desync-guardian-tests/', import.meta.url)

/**
 * The harness's `unescape_value`: a backslash followed by `x` takes the next (at most) two
 * characters as hex digits and yields that code point (0x00-0xFF); `b f n r t` are the C escapes;
 * any other character after a backslash stands for itself.
 */
export function unescapeValue (text: string): string {
  let out = ''
  const chars = Array.from(text)
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string
    if (ch !== '\\') { out += ch; continue }
    const next = chars[++i]
    if (next === undefined) throw new Error(`malformed escape at the end of ${JSON.stringify(text)}`)
    if (next === 'x') {
      const digits = chars.slice(i + 1, i + 3)
      i += digits.length
      let value = 0
      for (const digit of digits) {
        const d = parseInt(digit, 16)
        // Rust's `to_digit(16).unwrap()` panics on a non-hex digit: a malformed case.
        if (Number.isNaN(d)) throw new Error(`malformed \\x escape in ${JSON.stringify(text)}`)
        value = value * 16 + d
      }
      out += String.fromCharCode(value & 0xff)
    } else if (next === 'b') out += '\b'
    else if (next === 'f') out += '\f'
    else if (next === 'n') out += '\n'
    else if (next === 'r') out += '\r'
    else if (next === 't') out += '\t'
    else out += next
  }
  return out
}

/** The harness's `extract_value!`: a string is unescaped, an integer printed in decimal. */
function scalar (value: unknown, where: string): string {
  if (typeof value === 'string') return unescapeValue(value)
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  throw new Error(`${where}: expected a string or an integer, got ${JSON.stringify(value)}`)
}

function oneOf<T extends string> (value: string, allowed: readonly T[], where: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`${where}: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`)
  return value as T
}

/**
 * Reads one corpus file into cases, in file order. A name used again in the same file gets
 * ` (2)`, ` (3)`… (acceptable.yaml names its GET and its HEAD case alike).
 */
export function parseCorpusFile (file: string, text: string): DesyncCase[] {
  const document: unknown = parse(text)
  if (!Array.isArray(document)) throw new Error(`${file}: the document is not a list of cases`)
  const seen = new Map<string, number>()
  return document.map((entry: Record<string, unknown>, index) => {
    const rawName = entry.name
    if (typeof rawName !== 'string') throw new Error(`${file}: case ${index} has no name`)
    const occurrence = (seen.get(rawName) ?? 0) + 1
    seen.set(rawName, occurrence)
    const where = `${file}: ${rawName}${occurrence > 1 ? ` (${occurrence})` : ''}`
    const expected = entry.expected as Record<string, unknown> | undefined
    if (expected === undefined || expected === null) throw new Error(`${where}: no expected outcome`)
    const headerList = (entry.headers ?? []) as Array<Record<string, unknown>>
    const items = (expected.required_message_items ?? []) as unknown[]
    return {
      name: where,
      file,
      method: scalar(entry.method, `${where}: method`),
      uri: scalar(entry.uri, `${where}: uri`),
      version: scalar(entry.version, `${where}: version`),
      headers: headerList.map((header, h) => ({
        name: scalar(header.name, `${where}: header ${h} name`),
        value: scalar(header.value, `${where}: header ${h} value`),
        tier: oneOf(scalar(header.tier, `${where}: header ${h} tier`), HEADER_TIERS, `${where}: header ${h} tier`)
      })),
      expected: {
        tier: oneOf(scalar(expected.tier, `${where}: expected.tier`), REQUEST_TIERS, `${where}: expected.tier`),
        reason: scalar(expected.reason, `${where}: expected.reason`),
        requiredMessageItems: items.map((item) => scalar(item, `${where}: required_message_items`))
      }
    }
  })
}

/** Every `*.yaml` file of the corpus, files in name order, cases in file order. */
export function loadDesyncGuardianCorpus (dir: URL = DESYNC_GUARDIAN_CORPUS_DIR): DesyncCase[] {
  return readdirSync(dir).filter((file) => file.endsWith('.yaml')).sort()
    .flatMap((file) => parseCorpusFile(file, readFileSync(new URL(file, dir), 'utf8')))
}

/** The header lines of a case, as the harness writes them: `"{name}: {value}\r\n"` each. */
export function headerLines (headers: readonly DesyncHeader[]): string {
  return headers.map((header) => `${header.name}: ${header.value}\r\n`).join('')
}

/** The raw request the harness builds for `analyze_raw_request`, as UTF-8 bytes. */
export function rawRequest (c: DesyncCase): Buffer {
  return Buffer.from(`${c.method} ${c.uri} ${c.version}\r\n${headerLines(c.headers)}\r\n`, 'utf8')
}
