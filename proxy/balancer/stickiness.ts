/**
 * CLB's two sticky-session policies as pure pieces (docs/clb-behavior.md section 5.8):
 * the AWSELB cookie value, the exact `Set-Cookie` lines the load balancer adds to a response, the
 * lookup of a cookie in the client's `Cookie` headers, and the insertion of header lines into a
 * raw response head. No sockets, timers or I/O: the data path decides when to call them and where
 * a request is routed.
 *
 * Header values come as the parsers give them: `HeaderField.value` (validators/field-line.ts), the
 * value without its surrounding whitespace, one entry per header line; `fieldValues` picks them.
 * Quotes marked CLB-STICKY are from doc_source/elb-sticky-sessions.md (clb-behavior.md section 0).
 */
import { createHash } from 'node:crypto'
import type { HeaderField } from '../../validators/field-line.js'

/** The load balancer's stickiness cookie, for both policies (CLB-STICKY: "a special cookie, AWSELB"). */
export const STICKINESS_COOKIE = 'AWSELB'

/**
 * The second cookie of the duration-based policy, documented in that policy's section only
 * (CLB-STICKY: "With CORS (cross-origin resource sharing) requests, some browsers require
 * `SameSite=None; Secure` to enable stickiness. In this case, Elastic Load Balancing creates a
 * second stickiness cookie, AWSELBCORS, which includes the same information as the original
 * stickiness cookie plus this `SameSite` attribute. Clients receive both cookies.").
 */
export const STICKINESS_CORS_COOKIE = 'AWSELBCORS'

/**
 * Seen next to the AWSELB cookie in several captures (O-COOKIE), spelled with a lower-case
 * `control`, which application frameworks do not write; that CLB adds it is UNCONFIRMED
 * (clb-behavior.md section 7 item 9). The line is not part of `durationCookieHeaders` or
 * `appCookieStickinessHeaders`: the caller decides whether to add it after them.
 */
export const STICKINESS_CACHE_CONTROL_LINE = 'Cache-control: no-cache="set-cookie"'

/**
 * Attributes of the application's cookie that the load balancer copies into its own (CLB-STICKY:
 * "The following attributes set by back-end instances are sent to clients in the cookie: path,
 * port, domain, secure, httponly, discard, max-age, expires, version, comment, commenturl, and
 * samesite."). Matched without regard to case, as cookie attribute names are (RFC 6265 5.2).
 */
const COPIED_ATTRIBUTES = new Set(['path', 'port', 'domain', 'secure', 'httponly', 'discard', 'max-age',
  'expires', 'version', 'comment', 'commenturl', 'samesite'])

/**
 * The AWSELB value for one instance of one load balancer: 138 upper-case hex characters (69 bytes:
 * SHA-512 then the first 5 bytes of SHA-256 of the same input), the length of the value observed on
 * a real CLB (O-COOKIE, clb-behavior.md section 5.8: "long upper-case hex string (≈130–140
 * chars)"). CLB's own encoding is unknown (section 7 item 9); what matters is that the same
 * instance always gets the same value, so a cookie maps back to its instance by comparing it with
 * each registered instance's value. A caller that wants "If a client switches to a listener with
 * a different backend port, stickiness is lost." (CLB-STICKY) folds the port into `instanceId`.
 */
export function stickinessCookieValue (loadBalancerName: string, instanceId: string): string {
  // A NUL between the two parts: ('ab', 'c') and ('a', 'bc') give different values.
  const input = `${loadBalancerName}\0${instanceId}`
  const long = createHash('sha512').update(input, 'utf8').digest()
  const tail = createHash('sha256').update(input, 'utf8').digest().subarray(0, 5)
  return Buffer.concat([long, tail]).toString('hex').toUpperCase()
}

/**
 * The header lines (without CRLF) the duration-based policy (LBCookieStickinessPolicy) adds when
 * it picks an instance for a request that carried no usable AWSELB cookie, in the observed form
 * (O-COOKIE): upper-case attributes, `;` with no space,
 *   `Set-Cookie: AWSELB=<value>;PATH=/;MAX-AGE=600`
 *   `Set-Cookie: AWSELBCORS=<value>;PATH=/;MAX-AGE=600;SECURE;SAMESITE=None`
 * `expirationSeconds` 0 is a browser-session cookie: no MAX-AGE (BOTO: CookieExpirationPeriod
 * "If this parameter is not specified, the stickiness session lasts for the duration of the
 * browser session.", default 0). No SECURE or HTTPONLY on AWSELB (CLB-STICKY: "You can't set
 * the `secure` flag or `HttpOnly` flag on your duration-based session stickiness cookies").
 * Always both cookies: "Clients receive both cookies." (CLB-STICKY).
 */
export function durationCookieHeaders (value: string, expirationSeconds: number): string[] {
  if (!Number.isSafeInteger(expirationSeconds) || expirationSeconds < 0) {
    throw new RangeError(`the cookie expiration period must be a whole number of seconds, 0 or more: ${expirationSeconds}`)
  }
  const maxAge = expirationSeconds === 0 ? '' : `;MAX-AGE=${expirationSeconds}`
  return [
    `Set-Cookie: ${STICKINESS_COOKIE}=${value};PATH=/${maxAge}`,
    // Observed: `AWSELBCORS=<same value>;PATH=/;MAX-AGE=10;SECURE;SAMESITE=None` (O-COOKIE).
    `Set-Cookie: ${STICKINESS_CORS_COOKIE}=${value};PATH=/${maxAge};SECURE;SAMESITE=None`
  ]
}

/**
 * The value of cookie `name` in the request's `Cookie` header values (RFC 6265 section 5.4:
 * `name=value; name2=value2`; section 4.2.1 lets no client send more than one `Cookie` header, but
 * servers see several, so all are searched in order). Whitespace around names and values is
 * tolerated; the name is compared exactly, case included (cookie names are case-sensitive); the
 * first match wins. A pair without `=` has no name (RFC 6265bis 5.6 step 3) and never matches.
 * Returns null when the cookie is absent.
 */
export function findRequestCookie (cookieHeaderValues: readonly string[], name: string): string | null {
  for (const header of cookieHeaderValues) {
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=')
      if (eq === -1) continue
      if (pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim()
    }
  }
  return null
}

/**
 * The lines the application-controlled policy (AppCookieStickinessPolicy) adds to a response whose
 * `Set-Cookie` values (`setCookieHeaderValues`, one per header line) set the application cookie
 * `appCookieName`; [] when none does. `value` is the AWSELB value of the instance that answered.
 * The result is one line, `Set-Cookie: AWSELB=<value>` followed by the copied attributes of the
 * app cookie, in its order, in the load balancer's style: `AWSELB=<V>;PATH=/my%5Fpath;MAX-AGE=600;HTTPONLY`.
 */
export function appCookieStickinessHeaders (setCookieHeaderValues: readonly string[], appCookieName: string,
  value: string): string[] {
  let chosen: string | null = null
  for (const setCookie of setCookieHeaderValues) {
    // CLB-STICKY: "The load balancer only inserts a new stickiness cookie if the application
    // response includes a new application cookie": other cookies of the response are not looked at.
    if (setCookieName(setCookie) !== appCookieName) continue
    // CLB-STICKY: "If you have a trailing semicolon in the `Set-Cookie` field of an application
    // cookie, the load balancer ignores the cookie." (trailing whitespace after it does not help).
    if (setCookie.trimEnd().endsWith(';')) continue
    // Our choice when the app sets its cookie more than once: the last one, the one a browser keeps
    // (RFC 6265 5.3 step 11 replaces the earlier cookie), so AWSELB lives as long as it.
    chosen = setCookie
  }
  if (chosen === null) return []
  let line = `Set-Cookie: ${STICKINESS_COOKIE}=${value}`
  for (const attribute of chosen.split(';').slice(1)) {
    const eq = attribute.indexOf('=')
    const attributeName = (eq === -1 ? attribute : attribute.slice(0, eq)).trim()
    const lowerName = attributeName.toLowerCase()
    // Only the listed attributes are copied (CLB-STICKY's list); others (Partitioned, Priority,
    // typos, empty pieces) are dropped. CLB-STICKY: "if you set the `secure` flag or `HttpOnly` flag
    // on an application-controlled session stickiness cookie, it is also set on the AWSELB cookie".
    if (!COPIED_ATTRIBUTES.has(lowerName)) continue
    line += `;${lowerName.toUpperCase()}`
    if (eq === -1) continue
    let attributeValue = attribute.slice(eq + 1).trim()
    // CLB-STICKY: "Elastic Load Balancing URI encodes underscore characters as `%5F` ... if the
    // cookie has the property `path=/my_path`, Elastic Load Balancing changes this property ... to
    // `path=/my%5Fpath`". Only AWSELB's copy is re-encoded; the app's own Set-Cookie is relayed as sent.
    if (lowerName === 'path') attributeValue = attributeValue.replaceAll('_', '%5F')
    line += `=${attributeValue}`
  }
  return [line]
}

/** The name of the cookie a `Set-Cookie` value sets (RFC 6265 5.2: before the first `=`, trimmed), or null without `=`. */
function setCookieName (setCookie: string): string | null {
  const pairEnd = setCookie.indexOf(';')
  const pair = pairEnd === -1 ? setCookie : setCookie.slice(0, pairEnd)
  const eq = pair.indexOf('=')
  return eq === -1 ? null : pair.slice(0, eq).trim()
}

/** The values of every header named `lowerName` (lower case), in order: `Cookie` from a RequestHead, `Set-Cookie` from a ResponseHead. */
export function fieldValues (fields: readonly HeaderField[], lowerName: string): string[] {
  return fields.filter((field) => field.lowerName === lowerName).map((field) => field.value)
}

const LF = 0x0a
const CR = 0x0d

/**
 * A new buffer: `rawResponse` with `lines` (latin1, each followed by a line end) inserted just
 * before the blank line that ends its head, the rest unchanged. `headEnd` is the offset of the
 * first byte after the head (ResponseHead.end: just past the blank line). The line end is the one
 * the head used for its last header line (CRLF, or a bare LF for a head written with bare LFs), so
 * the head stays consistent. Throws a RangeError when `headEnd` does not follow a blank line, or
 * a line holds a CR or LF (it would split into two header lines: header injection).
 */
export function insertHeaderLines (rawResponse: Buffer, headEnd: number, lines: readonly string[]): Buffer {
  if (!Number.isSafeInteger(headEnd) || headEnd < 2 || headEnd > rawResponse.length || rawResponse[headEnd - 1] !== LF) {
    throw new RangeError(`offset ${headEnd} is not just past the blank line that ends a head`)
  }
  // The blank line: CRLF, or a bare LF.
  const blankLineStart = rawResponse[headEnd - 2] === CR ? headEnd - 2 : headEnd - 1
  if (blankLineStart < 1 || rawResponse[blankLineStart - 1] !== LF) {
    throw new RangeError(`offset ${headEnd} is not just past the blank line that ends a head`)
  }
  const lineEnd = blankLineStart >= 2 && rawResponse[blankLineStart - 2] === CR ? '\r\n' : '\n'
  for (const line of lines) {
    if (/[\r\n]/.test(line)) throw new RangeError(`a header line may not hold a CR or LF: ${JSON.stringify(line)}`)
  }
  const inserted = Buffer.from(lines.map((line) => line + lineEnd).join(''), 'latin1')
  return Buffer.concat([rawResponse.subarray(0, blankLineStart), inserted, rawResponse.subarray(blankLineStart)])
}
