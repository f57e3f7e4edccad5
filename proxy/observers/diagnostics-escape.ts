/**
 * Text that came from a client, a backend or a capture file, made safe to log, print and paste.
 *
 * A request target, a header value quoted in a defect message or a field of a shared capture file
 * can hold any byte, among them ESC (the start of an ANSI/OSC terminal sequence) and a bare CR
 * (which moves the cursor back and lets the rest of the line overwrite ours, forging a log line).
 * Bytes are decoded as latin1 everywhere on the data path, so one byte is one character U+0000 to
 * U+00FF here. The escapes are the ones escapeBytes (validators/bytes.ts) and the capture dump use:
 * `\r \n \t \\ \xHH`.
 */

const CR = 0x0d
const LF = 0x0a
const TAB = 0x09
const BACKSLASH = 0x5c
const FIRST_PRINTABLE = 0x20
const LAST_PRINTABLE = 0x7e

function isPrintableAscii (code: number): boolean {
  return code >= FIRST_PRINTABLE && code <= LAST_PRINTABLE
}

/** The escape of one character outside printable ASCII: `\r \n \t`, `\xHH` up to U+00FF, `\u{H...}` above. */
function escapeCodePoint (code: number): string {
  if (code === CR) return '\\r'
  if (code === LF) return '\\n'
  if (code === TAB) return '\\t'
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`
  return `\\u{${code.toString(16)}}`
}

/**
 * Foreign text in escapes, cut to at most `maxChars` characters of output plus a note of how many
 * input characters were left out. A backslash is doubled, so the result reads back unambiguously
 * (`\x1b` is always an escape, never four typed characters). Never cuts inside an escape.
 */
export function escapeForeign (text: string, maxChars = Number.POSITIVE_INFINITY): string {
  let out = ''
  let index = 0
  for (; index < text.length; index++) {
    const code = text.charCodeAt(index)
    const token = code === BACKSLASH ? '\\\\' : isPrintableAscii(code) ? text[index] as string : escapeCodePoint(code)
    if (out.length + token.length > maxChars) break
    out += token
  }
  return index < text.length ? `${out}...(${text.length - index} more characters)` : out
}

/**
 * For a terminal: every character outside printable ASCII is escaped, control bytes and 8-bit bytes
 * included, so nothing reaches the terminal as a control sequence or a line break. Backslashes are
 * kept: text escaped at its source (excerpts, requests) reads the same, and nothing here can turn
 * into a control character.
 */
export function terminalSafe (text: string): string {
  return escapeWhere(text, (code) => !isPrintableAscii(code))
}

/** `text` with each code point for which `escaped(code)` holds written as escapeCodePoint writes it. */
function escapeWhere (text: string, escaped: (code: number) => boolean): string {
  let out = ''
  let plainFrom = 0
  for (let index = 0; index < text.length; index++) {
    const code = text.codePointAt(index) as number
    if (!escaped(code)) {
      // A code point above U+FFFF takes two UTF-16 units.
      if (code > 0xffff) index++
      continue
    }
    out += text.slice(plainFrom, index) + escapeCodePoint(code)
    if (code > 0xffff) index++
    plainFrom = index + 1
  }
  return plainFrom === 0 ? text : out + text.slice(plainFrom)
}

/**
 * A control character of Unicode text: C0 and DEL, C1 (U+0080 to U+009F: some terminals read
 * U+009B as CSI), the bidirectional controls (UAX #9: U+061C, U+200E, U+200F, U+202A to U+202E,
 * U+2066 to U+2069: they reorder the text around them on screen), the line and paragraph
 * separators (U+2028, U+2029), and a surrogate without its pair.
 */
function isUnicodeControl (code: number): boolean {
  return code < FIRST_PRINTABLE || (code >= 0x7f && code <= 0x9f) || code === 0x061c || code === 0x200e || code === 0x200f ||
    (code >= 0x2028 && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069) || (code >= 0xd800 && code <= 0xdfff)
}

/**
 * terminalSafe for text that was decoded as UTF-8 (an access log read by `analyze`), not as latin1
 * bytes: only control characters are escaped, the same way; printable Unicode (`café`, `日本`) is
 * shown as it is. Backslashes are kept, as terminalSafe keeps them.
 */
export function unicodeTerminalSafe (text: string): string {
  return escapeWhere(text, isUnicodeControl)
}

/** Characters a POSIX shell reads as a plain word, unquoted. */
const SHELL_PLAIN_WORD = /^[A-Za-z0-9_/.:=@%+,-]+$/

/**
 * A word as a POSIX shell reads it back: bare when it is plain, in single quotes when it is
 * printable ASCII, else in ANSI-C quotes `$'...'` (bash, zsh, ksh, POSIX.1-2024 sh) with every
 * byte outside printable ASCII as `\xHH`: a pasted command then carries no control character to
 * the terminal, and the shell still receives the exact bytes.
 */
export function shellQuote (word: string): string {
  if (SHELL_PLAIN_WORD.test(word)) return word
  let printable = true
  for (let index = 0; index < word.length; index++) {
    if (!isPrintableAscii(word.charCodeAt(index))) { printable = false; break }
  }
  if (printable) return `'${word.replaceAll("'", "'\\''")}'`
  let quoted = ''
  for (const byte of Buffer.from(word, 'utf8')) {
    if (byte === BACKSLASH || byte === 0x27) quoted += `\\${String.fromCharCode(byte)}`
    else if (isPrintableAscii(byte)) quoted += String.fromCharCode(byte)
    else quoted += `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return `$'${quoted}'`
}
