/**
 * The defect registry: a public contract. Each code is stable and never reused; docs/defects.md
 * has one row per code and test/validators/defects-doc.test.ts fails when the two drift.
 *
 * `source` says why the default verdict is what it is:
 * - 'aws-documented': the AWS 502 article names it (KC-502), so CLB parity is claimed;
 * - 'aws-504' / 'aws-400' / 'aws-405': the AWS troubleshooting page names the cause for that status;
 * - 'peer-consensus': every strict peer (HAProxy, nginx >= 1.23, Envoy, llhttp) rejects it;
 * - 'peers-split': peers disagree, so the `clb` profile warns and `strict` rejects;
 * - 'our-choice': undocumented and no consensus; the reason is in docs/defects.md.
 */

export type DefectSource = 'aws-documented' | 'aws-504' | 'aws-400' | 'aws-405' | 'peer-consensus' | 'peers-split' | 'our-choice'
export type DefectAction = 'reject' | 'warn'
export type DefectDirection = 'response' | 'request'

export interface DefectInfo {
  readonly code: DefectCode
  readonly direction: DefectDirection
  /** One line, present tense, says what the bytes did. */
  readonly summary: string
  readonly source: DefectSource
  /** Verdict under each profile. `strict` rejects everything `clb` warns about. */
  readonly clb: DefectAction
  readonly strict: DefectAction
}

/** One finding: what, where (byte offset from the first byte of the message), and a short message. */
export interface Defect {
  readonly code: DefectCode
  readonly offset: number
  readonly message: string
}

type DefectEntry = Omit<DefectInfo, 'code'>

function defect (direction: DefectDirection, source: DefectSource, clb: DefectAction, summary: string): DefectEntry {
  return { direction, summary, source, clb, strict: 'reject' }
}

const registry = {
  // --- The three causes AWS documents for an ELB-generated 502 (KC-502) ---
  HDR_BLANK_LINE: defect('response', 'aws-documented', 'reject',
    'a blank line ends the header block but header lines follow it ("more than one CRLF between each header")'),
  CL_NOT_INTEGER: defect('response', 'aws-documented', 'reject',
    'Content-Length is not a non-negative integer ("a Content-Length header which contains a non-integer")'),
  BODY_EXCEEDS_CL: defect('response', 'aws-documented', 'reject',
    'more body bytes arrived than Content-Length announced ("more bytes in the body than the Content-Length header value")'),

  // --- Cannot be framed or parsed: every strict peer rejects ---
  CL_OVERFLOW: defect('response', 'peer-consensus', 'reject',
    'Content-Length is too large to be a byte count'),
  CL_DUP_DIFFERENT: defect('response', 'peer-consensus', 'reject',
    'Content-Length appears with different values'),
  STATUS_LINE_INVALID: defect('response', 'peer-consensus', 'reject',
    'the status line is not HTTP-version SP 3DIGIT [SP reason-phrase]'),
  LINE_BARE_CR: defect('response', 'peer-consensus', 'reject',
    'a CR is not followed by LF'),
  HDR_NO_COLON: defect('response', 'peer-consensus', 'reject',
    'a header line has no colon'),
  HDR_NAME_WHITESPACE: defect('response', 'peer-consensus', 'reject',
    'whitespace inside a header name or between it and its colon (RFC 9112 section 5.1: MUST reject)'),
  HDR_NAME_NUL: defect('response', 'peer-consensus', 'reject',
    'a NUL byte in a header name (parsers that drop it would read another name, e.g. Transfer-Encoding)'),
  HDR_NAME_EMPTY: defect('response', 'peer-consensus', 'reject',
    'a header line starts with its colon: the field name is empty'),
  HDR_NAME_CTL: defect('response', 'peer-consensus', 'reject',
    'a control character (other than NUL, CR or HT) in a header name'),
  HDR_VALUE_NUL: defect('response', 'peer-consensus', 'reject',
    'a NUL byte in a header value'),
  HDR_TOO_LARGE: defect('response', 'peer-consensus', 'reject',
    'the response head is larger than the configured limit'),
  HEADERS_TRUNCATED: defect('response', 'peer-consensus', 'reject',
    'the connection ended before the header block was complete'),
  BODY_SHORT_CL: defect('response', 'peer-consensus', 'reject',
    'the connection ended before Content-Length body bytes arrived'),
  CHUNK_SIZE_INVALID: defect('response', 'peer-consensus', 'reject',
    'a chunk-size line or the CRLF after chunk data is malformed'),
  CHUNKED_TRUNCATED: defect('response', 'peer-consensus', 'reject',
    'the connection ended before the last chunk'),
  STATUS_101_UNSUPPORTED: defect('response', 'our-choice', 'reject',
    'the backend switched protocols; CLB HTTP listeners do not relay upgraded connections'),

  // --- AWS names the status: not a parse defect but an exchange outcome ---
  EMPTY_RESPONSE: defect('response', 'aws-504', 'reject',
    'the instance closed the connection without sending a byte (CLB answers 504)'),

  // --- Peers split: clb warns, strict rejects ---
  CL_DUP_SAME: defect('response', 'peers-split', 'warn',
    'Content-Length appears more than once with the same value'),
  TE_AND_CL: defect('response', 'peers-split', 'warn',
    'both Transfer-Encoding and Content-Length are present; Transfer-Encoding wins (RFC 9112 section 6.3)'),
  TE_UNSUPPORTED: defect('response', 'peers-split', 'warn',
    'Transfer-Encoding does not end in chunked; the body is read until the connection closes'),
  LINE_BARE_LF: defect('response', 'peers-split', 'warn',
    'a line ends in LF without CR'),
  HDR_OBS_FOLD: defect('response', 'peers-split', 'warn',
    'a header value is continued on the next line (obs-fold, RFC 9112 section 5.2)'),
  HDR_NAME_INVALID: defect('response', 'peers-split', 'warn',
    'a header name has a character that is not a token character'),
  HDR_VALUE_CTL: defect('response', 'peers-split', 'warn',
    'a header value has a control character other than HT'),
  VERSION_UNSUPPORTED: defect('response', 'peers-split', 'warn',
    'the status line names an HTTP version other than 1.0 or 1.1'),
  STATUS_LINE_EXTRA_SPACES: defect('response', 'peers-split', 'warn',
    'more than one SP between the HTTP version and the status code'),
  EMPTY_LINE_BEFORE_STATUS: defect('response', 'peers-split', 'warn',
    'an empty line (CRLF or LF) comes before the status line'),
  BODY_UNTIL_CLOSE: defect('response', 'our-choice', 'warn',
    'no Content-Length or chunked Transfer-Encoding: the body is delimited by the connection closing'),
  BODY_NOT_ALLOWED: defect('response', 'our-choice', 'warn',
    'a response to HEAD, or a 1xx/204/304, carries framing for a body it must not have'),
  EXTRA_BYTES_AFTER_RESPONSE: defect('response', 'our-choice', 'warn',
    'the backend sent bytes on a kept-alive connection after a complete response'),
  STATUS_CODE_BELOW_100: defect('response', 'our-choice', 'warn',
    'the status code is below 100 (000-099); the response is read as a final one'),
  STATUS_REASON_CTL: defect('response', 'our-choice', 'warn',
    'the reason phrase has a control character other than HT (NUL included)'),

  // --- Requests (the client side): CLB answers 400/405/408 ---
  REQUEST_LINE_INVALID: defect('request', 'aws-400', 'reject',
    'the request line is not method SP request-target SP HTTP-version'),
  REQUEST_METHOD_TOO_LONG: defect('request', 'aws-405', 'reject',
    'the method is longer than 127 characters (CLB answers 405)'),
  REQUEST_CONNECT: defect('request', 'aws-400', 'reject',
    'CONNECT is not supported by Elastic Load Balancing'),
  REQUEST_HEADER_INVALID: defect('request', 'aws-400', 'reject',
    'a request header line is malformed (no colon, whitespace before the colon, NUL or bare CR)'),
  REQUEST_CL_INVALID: defect('request', 'aws-400', 'reject',
    'the request Content-Length is not an integer, or appears with different values'),
  REQUEST_TE_INVALID: defect('request', 'aws-400', 'reject',
    'the request Transfer-Encoding does not end in chunked (RFC 9112 section 6.3: respond 400)'),
  REQUEST_CHUNK_INVALID: defect('request', 'aws-400', 'reject',
    'the request chunked body is malformed'),
  REQUEST_HEAD_TOO_LARGE: defect('request', 'our-choice', 'reject',
    'the request head is larger than the configured limit'),
  REQUEST_LINE_TOO_LONG: defect('request', 'our-choice', 'reject',
    'the request line is longer than maxRequestLineBytes (CRLF excluded)'),
  REQUEST_HEADER_LINE_TOO_LONG: defect('request', 'our-choice', 'reject',
    'a header field line (with its obs-fold continuations) is longer than maxHeaderLineBytes (CRLF excluded)'),
  REQUEST_TOO_MANY_HEADERS: defect('request', 'our-choice', 'reject',
    'the request has more header fields than maxHeaderCount')
} as const

export type DefectCode = keyof typeof registry
export const DEFECT_CODES: readonly DefectCode[] = Object.freeze(Object.keys(registry) as DefectCode[])
export const DEFECTS: Readonly<Record<DefectCode, DefectInfo>> = Object.freeze(Object.fromEntries(
  DEFECT_CODES.map((code) => [code, Object.freeze({ code, ...registry[code] })])
) as Record<DefectCode, DefectInfo>)

export function defectAction (code: DefectCode, profile: 'clb' | 'strict'): DefectAction {
  return DEFECTS[code][profile]
}
