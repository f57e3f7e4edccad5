/** Byte classes from RFC 9110 section 5.6.2 (token) and 5.5 (field values), as lookup tables. */

const CR = 0x0d
const LF = 0x0a

function table (predicate: (byte: number) => boolean): Uint8Array {
  const t = new Uint8Array(256)
  for (let b = 0; b < 256; b++) t[b] = predicate(b) ? 1 : 0
  return t
}

/** tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
export const TCHAR = table((b) =>
  (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
  "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b)))

export const HEXDIG_VALUE = (() => {
  const t = new Int8Array(256).fill(-1)
  for (let d = 0; d < 10; d++) t[0x30 + d] = d
  for (let d = 0; d < 6; d++) { t[0x41 + d] = 10 + d; t[0x61 + d] = 10 + d }
  return t
})()

export function isDigit (b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39
}

export function isWhitespace (b: number | undefined): boolean {
  return b === 0x20 || b === 0x09
}

/** A control character other than HT (RFC 9110 section 5.5: field values are VCHAR, SP, HTAB, obs-text). */
export function isControl (b: number): boolean {
  return (b < 0x20 && b !== 0x09) || b === 0x7f
}

/**
 * Escapes bytes for humans and logs: printable ASCII as is, `\r \n \t \\` and `\xHH` for the rest
 * (the same escapes HAProxy's `show errors` uses).
 */
export function escapeBytes (bytes: Uint8Array, start = 0, end = bytes.length): string {
  let out = ''
  for (let i = start; i < end; i++) {
    const b = bytes[i] as number
    if (b === CR) out += '\\r'
    else if (b === LF) out += '\\n'
    else if (b === 0x09) out += '\\t'
    else if (b === 0x5c) out += '\\\\'
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b)
    else out += '\\x' + b.toString(16).padStart(2, '0')
  }
  return out
}

interface Latin1Sliceable { latin1Slice (start: number, end: number): string }

/**
 * `buf.toString('latin1', start, end)`: one char per byte, so header bytes (obs-text included) are
 * kept as received. Calls Buffer#latin1Slice, the method toString('latin1') ends in (node:buffer),
 * with only the clamping toString does (latin1Slice itself throws outside the buffer): this runs
 * for every name, value and request line.
 */
export function latin1 (buf: Buffer, start: number, end: number): string {
  const from = start > 0 ? start : 0
  const to = end < buf.length ? end : buf.length
  return from >= to ? '' : (buf as unknown as Latin1Sliceable).latin1Slice(from, to)
}

/** Parses `1*DIGIT` into a safe integer; returns -1 for a non-integer and -2 for an overflow. */
export function parseDecimal (text: string): number {
  if (text.length === 0) return -1
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return -1
  }
  const value = Number(text)
  return Number.isSafeInteger(value) ? value : -2
}

export { CR, LF }

/**
 * Common words by their exact bytes: `find` returns the value made once for a word instead of
 * decoding the same bytes into a new string for every message.
 */
export class WordTable<T> {
  private readonly byLength: Array<Array<{ readonly bytes: Uint8Array, readonly value: T }>> = []

  constructor (entries: ReadonlyArray<readonly [word: string, value: T]>) {
    for (const [word, value] of entries) (this.byLength[word.length] ??= []).push({ bytes: Buffer.from(word, 'latin1'), value })
  }

  /** The value of the word spelled exactly by `buf[start..end)`, or null. */
  find (buf: Uint8Array, start: number, end: number): T | null {
    const candidates = this.byLength[end - start]
    if (candidates === undefined) return null
    for (let k = 0; k < candidates.length; k++) {
      const candidate = candidates[k] as { readonly bytes: Uint8Array, readonly value: T }
      const bytes = candidate.bytes
      let i = 0
      while (i < bytes.length && buf[start + i] === bytes[i]) i++
      if (i === bytes.length) return candidate.value
    }
    return null
  }
}

/** A table whose values are the words themselves. */
export function wordTable (words: readonly string[]): WordTable<string> {
  return new WordTable(words.map((word) => [word, word] as const))
}
