/**
 * The response case table: what a backend sends, and what clb-proxy's ResponseParser and judge()
 * must make of it. Data only, reviewable without reading the parser (style.md lesson 11, after
 * aws/http-desync-guardian's tests/*.yaml). It holds every row of the observed peer matrix in
 * ../shared/spec/peers-validation.md §0.3 (`peersRow` names the row) and at least one case for
 * every response defect code in validators/defects.ts.
 *
 * Used by test/response-parser.test.ts (whole, split at every head boundary, byte by byte) and by
 * the socket-level tests, which replay `bytes` from a raw `net` backend:
 * - write `bytes` in one write; then `laterRead` (if any) in a later one, after the proxy answered;
 * - end the backend socket after writing when `endsWithClose` (with an RST instead of a FIN when
 *   `endsWithReset`); otherwise keep it open;
 * - ask with `requestMethod` (GET when absent); a case with `maxHeadBytes` is parser-level only.
 * What the client gets follows from the verdict under the proxy's profile: 'pass' relays the
 * backend's bytes unchanged; 'reject' is CLB's 502, except EMPTY_RESPONSE, which is CLB's 504
 * (CLB-HTTPERR 504: "Registered instances closing the connection to Elastic Load Balancing").
 *
 * Offsets count from the first byte the backend sent (0-based), as in HAProxy's "error at position".
 */
import type { ResponseParserState } from '../../validators/response-parser.js'
import type { DefectCode } from '../../validators/defects.js'

export type Verdict = 'pass' | 'reject'

export interface ResponseCase {
  /** Unique, kebab-case; it names the test. */
  readonly name: string
  /** What the backend sends, as a latin1 string: `\r\n` for CRLF, `\xHH` for other bytes. */
  readonly bytes: string
  /** The request method this response answers; absent means GET. A response to HEAD has no body. */
  readonly requestMethod?: string
  /**
   * The parser's maxHeadBytes for this case; absent means CLB_DEFAULTS.maxHeadBytes (64 KiB). The
   * values used are below the proxy option's minimum (1 KiB), to keep the split-at-every-boundary
   * runs small: such cases are parser-level only.
   */
  readonly maxHeadBytes?: number
  /** The backend closes the connection after sending `bytes` (the parser is told with finish()). */
  readonly endsWithClose: boolean
  /** The close is a TCP RST rather than a FIN (the parser sees the same finish()). */
  readonly endsWithReset?: boolean
  /** Bytes the backend sends in a later read, after the response was judged: not part of this exchange. */
  readonly laterRead?: string
  /** Every defect the parser finds, in the order it finds them. */
  readonly expectedCodes: readonly DefectCode[]
  /** The offset of each defect in `expectedCodes`, same order. */
  readonly expectedOffsets: readonly number[]
  /** ResponseParser.state once `bytes` (and the close, if any) were fed. */
  readonly expectedState: ResponseParserState
  /** judge(defects, 'clb').action: 'reject' means CLB's own 502 (or 504, see above). */
  readonly expectedVerdict: Verdict
  /** judge(defects, 'strict').action. */
  readonly expectedStrictVerdict: Verdict
  /** judge(defects, 'clb').primary, present exactly when `expectedVerdict` is 'reject'. */
  readonly expectedPrimary?: { readonly code: DefectCode; readonly offset: number }
  /** The first-column label of the peers-validation.md §0.3 row this case reproduces. */
  readonly peersRow?: string
  /** The RFC section or AWS sentence the expectation encodes. */
  readonly rule: string
}

// Sources quoted below (full references in ../shared/spec/clb-behavior.md and peers-validation.md):
// KC-502 = https://repost.aws/knowledge-center/load-balancer-http-502-errors, the three causes of an ELB 502.
const KC502_BLANK_LINE = 'KC-502: "A response containing more than one CRLF between each header" gets an ELB 502'
const KC502_NOT_INTEGER = 'KC-502: "a Content-Length header which contains a non-integer" gets an ELB 502; RFC 9110 §8.6: Content-Length = 1*DIGIT'
const KC502_EXCESS = 'KC-502: "more bytes in the body than the Content-Length header value" gets an ELB 502'
const RFC_CL_INVALID_502 = 'RFC 9112 §6.3 rule 5: an invalid Content-Length in a response received by a proxy: "the proxy MUST close the connection to the server, discard the received response, and send a 502"'
const RFC_BARE_LF = 'RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line terminator" (peers split: llhttp rejects, HAProxy and nginx accept): warn'
const RFC_STATUS_LINE = 'RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]; HTTP-version = "HTTP/" DIGIT "." DIGIT; status-code = 3DIGIT'
const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' // 47 bytes

export const RESPONSE_CASES: readonly ResponseCase[] = [
  // --- Well-formed responses: nothing to reject under either profile ---
  {
    name: 'ok-content-length',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    peersRow: 'ok',
    rule: 'RFC 9112 §6.3 rule 6: a valid Content-Length gives the body length'
  },
  {
    name: 'ok-chunked-extensions-trailers',
    bytes: CHUNKED_HEAD + '5;name=value\r\nhello\r\n6 ; q="a b"\r\n world\r\n0\r\nX-Trailer: done\r\n\r\n',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    rule: 'RFC 9112 §7.1 chunked-body; §7.1.1 chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ); §7.1.2 trailer section'
  },
  {
    name: 'ok-until-close',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello',
    endsWithClose: true,
    expectedCodes: ['BODY_UNTIL_CLOSE'],
    expectedOffsets: [45],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    rule: 'RFC 9112 §6.3 rule 8: no Content-Length or Transfer-Encoding, the body ends when the server closes; KC-502 asks to "Be sure that Content-Length or transfer encoding is not missed", so warn'
  },
  {
    name: 'head-response-with-content-length',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n',
    requestMethod: 'HEAD',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    rule: 'RFC 9112 §6.3 rule 1: a response to HEAD ends after the header section, whatever Content-Length says'
  },
  {
    name: 'status-204-no-body',
    bytes: 'HTTP/1.1 204 No Content\r\n\r\n',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    rule: 'RFC 9112 §6.3 rule 1: a 204 response ends after the header section'
  },
  {
    name: 'status-304-with-content-length',
    bytes: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    rule: 'RFC 9110 §8.6: a 304 may carry the Content-Length of the selected representation; RFC 9112 §6.3 rule 1: no body follows'
  },
  {
    name: 'interim-1xx-then-final',
    bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    rule: 'RFC 9110 §15.2: "A client MUST be able to parse one or more 1xx responses received prior to a final response"'
  },
  {
    name: 'no-reason-phrase',
    bytes: 'HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    peersRow: 'no reason phrase',
    rule: RFC_STATUS_LINE + '; a missing SP before an empty reason is tolerated, as by every peer in §0.3'
  },
  {
    name: 'empty-reason-phrase',
    bytes: 'HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    rule: RFC_STATUS_LINE + ' (the reason-phrase may be empty)'
  },

  // --- KC-502 cause 1: more than one CRLF between headers (our heuristic, docs/clb-choices.md) ---
  {
    name: 'blank-line-content-length-before',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nX-Late: 1\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_BLANK_LINE', 'BODY_EXCEEDS_CL'],
    expectedOffsets: [38, 43],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_BLANK_LINE', offset: 38 },
    peersRow: 'blank line, CL before',
    rule: KC502_BLANK_LINE + '; the header-like line right after the blank line decides it, before the excess bytes'
  },
  {
    name: 'blank-line-content-length-after',
    bytes: 'HTTP/1.1 200 OK\r\nX-Early: 1\r\n\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: true,
    expectedCodes: ['BODY_UNTIL_CLOSE', 'HDR_BLANK_LINE'],
    expectedOffsets: [31, 31],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_BLANK_LINE', offset: 31 },
    peersRow: 'blank line, CL after (then close)',
    rule: KC502_BLANK_LINE + '; every peer reads this body to EOF (§0.3), CLB answers 502'
  },
  {
    name: 'blank-line-false-positive-message-body',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Type: message/rfc822\r\nContent-Length: 13\r\n\r\nSubject: hi\r\n',
    endsWithClose: false,
    expectedCodes: ['HDR_BLANK_LINE'],
    expectedOffsets: [69],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_BLANK_LINE', offset: 69 },
    rule: 'docs/clb-choices.md "The blank-line heuristic": known false positive, a body that starts with a header-like line'
  },

  // --- KC-502 cause 2: a Content-Length that is not an integer ---
  {
    name: 'content-length-abc',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_NOT_INTEGER'],
    expectedOffsets: [33],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_NOT_INTEGER', offset: 33 },
    peersRow: 'CL `abc`',
    rule: KC502_NOT_INTEGER
  },
  {
    name: 'content-length-5x',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_NOT_INTEGER'],
    expectedOffsets: [34],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_NOT_INTEGER', offset: 34 },
    peersRow: 'CL `5x`',
    rule: KC502_NOT_INTEGER + ' (the offset is the first byte that is not a digit)'
  },
  {
    name: 'content-length-minus-5',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_NOT_INTEGER'],
    expectedOffsets: [33],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_NOT_INTEGER', offset: 33 },
    peersRow: 'CL `-5` / `+5`',
    rule: KC502_NOT_INTEGER
  },
  {
    name: 'content-length-plus-5',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_NOT_INTEGER'],
    expectedOffsets: [33],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_NOT_INTEGER', offset: 33 },
    peersRow: 'CL `-5` / `+5`',
    rule: KC502_NOT_INTEGER
  },
  {
    name: 'content-length-empty',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_NOT_INTEGER'],
    expectedOffsets: [33],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_NOT_INTEGER', offset: 33 },
    peersRow: 'CL empty',
    rule: KC502_NOT_INTEGER + ' (1*DIGIT: at least one digit)'
  },
  {
    name: 'content-length-5.0',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5.0\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_NOT_INTEGER'],
    expectedOffsets: [34],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_NOT_INTEGER', offset: 34 },
    rule: KC502_NOT_INTEGER
  },
  {
    name: 'content-length-overflow',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_OVERFLOW'],
    expectedOffsets: [33],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_OVERFLOW', offset: 33 },
    rule: 'RFC 9110 §8.6: "a recipient MUST anticipate potentially large decimal numerals and prevent parsing errors due to integer conversion overflows"; ' + RFC_CL_INVALID_502
  },

  // --- KC-502 cause 3: more body bytes than Content-Length, in the read that completes the message ---
  {
    name: 'body-exceeds-content-length',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world',
    endsWithClose: false,
    expectedCodes: ['BODY_EXCEEDS_CL'],
    expectedOffsets: [43],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'BODY_EXCEEDS_CL', offset: 43 },
    peersRow: 'body > CL, keep-alive, same segment',
    rule: KC502_EXCESS
  },
  {
    name: 'body-exceeds-content-length-connection-close',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello world',
    endsWithClose: true,
    expectedCodes: ['BODY_EXCEEDS_CL'],
    expectedOffsets: [62],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'BODY_EXCEEDS_CL', offset: 62 },
    peersRow: 'body > CL, `Connection: close`',
    rule: KC502_EXCESS
  },
  {
    name: 'body-exceeds-content-length-in-a-later-read',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    laterRead: ' world',
    endsWithClose: false,
    expectedCodes: [],
    expectedOffsets: [],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'pass',
    peersRow: 'body > CL, excess 200 ms later',
    rule: 'docs/architecture.md "The commit rule": the response is judged with the read that completes it; later bytes belong to no exchange (no peer notices them either, §0.3)'
  },
  {
    name: 'two-responses-in-one-write',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye',
    endsWithClose: false,
    expectedCodes: ['BODY_EXCEEDS_CL'],
    expectedOffsets: [43],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'BODY_EXCEEDS_CL', offset: 43 },
    peersRow: 'two responses in one write',
    rule: KC502_EXCESS + '; CLB sends one request at a time to an instance (no back-end pipelining), so a second response is excess'
  },

  // --- Content-Length duplicates ---
  {
    name: 'content-length-twice-different',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
    endsWithClose: false,
    expectedCodes: ['CL_DUP_DIFFERENT'],
    expectedOffsets: [52],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_DUP_DIFFERENT', offset: 52 },
    peersRow: 'CL 5 then CL 6',
    rule: RFC_CL_INVALID_502
  },
  {
    name: 'content-length-list-different',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!',
    endsWithClose: false,
    expectedCodes: ['CL_DUP_DIFFERENT'],
    expectedOffsets: [36],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CL_DUP_DIFFERENT', offset: 36 },
    rule: RFC_CL_INVALID_502
  },
  {
    name: 'content-length-twice-same',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_DUP_SAME'],
    expectedOffsets: [36],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'CL 5 then CL 5',
    rule: 'RFC 9110 §8.6: a recipient MAY "replace that invalid field value with a single instance of the decimal value" (peers split: HAProxy merges, llhttp rejects): warn'
  },
  {
    name: 'content-length-list-same',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['CL_DUP_SAME'],
    expectedOffsets: [17],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'CL `5, 5`',
    rule: 'RFC 9110 §8.6: a list of identical values MAY be replaced by one value (peers split): warn'
  },

  // --- Transfer-Encoding ---
  {
    name: 'transfer-encoding-and-content-length',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['TE_AND_CL'],
    expectedOffsets: [36],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'TE chunked + CL',
    rule: 'RFC 9112 §6.3 rule 3: Transfer-Encoding overrides Content-Length and the connection is closed after (peers split: HAProxy drops CL, llhttp rejects): warn'
  },
  {
    name: 'transfer-encoding-gzip',
    bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello',
    endsWithClose: true,
    expectedCodes: ['TE_UNSUPPORTED'],
    expectedOffsets: [36],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'TE `gzip` (read to close)',
    rule: 'RFC 9112 §6.3 rule 4: in a response, a Transfer-Encoding that does not end in chunked means the body is read "until it is closed by the server" (peers split: HAProxy rejects, llhttp reads to close): warn'
  },
  {
    name: 'transfer-encoding-chunked-twice',
    bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['TE_UNSUPPORTED'],
    expectedOffsets: [36],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    rule: 'RFC 9112 §6.1: "A sender MUST NOT apply the chunked transfer coding more than once"; the final chunked still frames the body: warn'
  },

  // --- Chunked framing ---
  {
    name: 'chunk-size-not-hex',
    bytes: CHUNKED_HEAD + 'zz\r\nhello\r\n0\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['CHUNK_SIZE_INVALID'],
    expectedOffsets: [47],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CHUNK_SIZE_INVALID', offset: 47 },
    peersRow: 'bad chunk size',
    rule: 'RFC 9112 §7.1: chunk-size = 1*HEXDIG; every peer rejects (HAProxy "error at position 47")'
  },
  {
    name: 'chunk-data-not-followed-by-crlf',
    bytes: CHUNKED_HEAD + '5\r\nhelloX\r\n0\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['CHUNK_SIZE_INVALID'],
    expectedOffsets: [55],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CHUNK_SIZE_INVALID', offset: 55 },
    rule: 'RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF'
  },
  {
    name: 'chunk-line-too-long',
    bytes: CHUNKED_HEAD + '1;' + 'x'.repeat(100) + '\r\na\r\n0\r\n\r\n',
    maxHeadBytes: 64,
    endsWithClose: false,
    expectedCodes: ['CHUNK_SIZE_INVALID'],
    expectedOffsets: [111],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CHUNK_SIZE_INVALID', offset: 111 },
    rule: 'RFC 9112 §7.1.1: "A server ought to limit the total length of chunk extensions received"; a chunk-size line longer than maxHeadBytes fails at its byte number maxHeadBytes'
  },
  {
    name: 'chunked-framing-bare-lf',
    bytes: CHUNKED_HEAD + '5\nhello\n0\n\n',
    endsWithClose: false,
    expectedCodes: ['LINE_BARE_LF', 'LINE_BARE_LF', 'LINE_BARE_LF', 'LINE_BARE_LF'],
    expectedOffsets: [48, 54, 56, 57],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    rule: RFC_BARE_LF
  },
  {
    name: 'chunked-truncated',
    bytes: CHUNKED_HEAD + '5\r\nhel',
    endsWithClose: true,
    expectedCodes: ['CHUNKED_TRUNCATED'],
    expectedOffsets: [53],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'CHUNKED_TRUNCATED', offset: 53 },
    peersRow: 'chunked truncated + FIN',
    rule: 'RFC 9112 §8: "A message that uses a valid chunked transfer coding is incomplete if the zero-sized chunk that terminates the encoding has not been received"; docs/clb-choices.md: 502 while nothing was sent'
  },
  {
    name: 'extra-bytes-after-chunked',
    bytes: CHUNKED_HEAD + '5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n',
    endsWithClose: false,
    expectedCodes: ['EXTRA_BYTES_AFTER_RESPONSE'],
    expectedOffsets: [62],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    rule: 'our choice (docs/defects.md): bytes after a complete chunked response are not the documented Content-Length cause; the response is relayed and the connection not reused'
  },

  // --- Truncation and closes ---
  {
    name: 'body-shorter-than-content-length-fin',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello',
    endsWithClose: true,
    expectedCodes: ['BODY_SHORT_CL'],
    expectedOffsets: [44],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'BODY_SHORT_CL', offset: 44 },
    peersRow: 'body < CL, then FIN',
    rule: 'RFC 9112 §8: a message with a valid Content-Length is incomplete if fewer octets arrive; docs/clb-choices.md: 502 while nothing was sent'
  },
  {
    name: 'body-shorter-than-content-length-rst',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhel',
    endsWithClose: true,
    endsWithReset: true,
    expectedCodes: ['BODY_SHORT_CL'],
    expectedOffsets: [43],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'BODY_SHORT_CL', offset: 43 },
    peersRow: 'RST after headers',
    rule: 'RFC 9112 §8 (incomplete message); an RST and a FIN end the exchange the same way'
  },
  {
    name: 'empty-response',
    bytes: '',
    endsWithClose: true,
    expectedCodes: ['EMPTY_RESPONSE'],
    expectedOffsets: [0],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'EMPTY_RESPONSE', offset: 0 },
    peersRow: 'empty response',
    rule: 'CLB-HTTPERR 504: "Registered instances closing the connection to Elastic Load Balancing" (CLB answers 504, not 502)'
  },
  {
    name: 'headers-cut',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Le',
    endsWithClose: true,
    expectedCodes: ['HEADERS_TRUNCATED'],
    expectedOffsets: [27],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HEADERS_TRUNCATED', offset: 27 },
    peersRow: 'headers cut + FIN',
    rule: 'RFC 9112 §8: a connection closed prematurely leaves an incomplete message; docs/clb-choices.md: 502 for part of a head (HAProxy SH, nginx "prematurely closed")'
  },
  {
    name: 'head-too-large',
    bytes: 'HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(300) + '\r\nContent-Length: 0\r\n\r\n',
    maxHeadBytes: 256,
    endsWithClose: false,
    expectedCodes: ['HDR_TOO_LARGE'],
    expectedOffsets: [256],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_TOO_LARGE', offset: 256 },
    rule: 'CLB\'s limit is undocumented (docs/clb-choices.md); the head fails at its byte number maxHeadBytes'
  },

  // --- Line endings ---
  {
    name: 'obs-fold',
    bytes: 'HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_OBS_FOLD'],
    expectedOffsets: [30],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'obs-fold',
    rule: 'RFC 9112 §5.2: a proxy MUST either reject obs-fold or replace it with SP (peers split: HAProxy folds, nginx and llhttp reject): warn'
  },
  {
    name: 'bare-lf-everywhere',
    bytes: 'HTTP/1.1 200 OK\nContent-Length: 5\n\nhello',
    endsWithClose: false,
    expectedCodes: ['LINE_BARE_LF', 'LINE_BARE_LF', 'LINE_BARE_LF'],
    expectedOffsets: [15, 33, 34],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'bare LF everywhere',
    rule: RFC_BARE_LF
  },
  {
    name: 'one-bare-lf',
    bytes: 'HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['LINE_BARE_LF'],
    expectedOffsets: [23],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'one bare LF',
    rule: RFC_BARE_LF
  },
  {
    name: 'bare-cr-in-header',
    bytes: 'HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['LINE_BARE_CR'],
    expectedOffsets: [23],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'LINE_BARE_CR', offset: 23 },
    peersRow: 'bare CR',
    rule: 'RFC 9112 §2.2: "A sender MUST NOT generate a bare CR"; every peer rejects, even llhttp in lenient mode (the offset is the CR; HAProxy and llhttp point at the byte after it)'
  },
  {
    name: 'bare-cr-in-status-line',
    bytes: 'HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['LINE_BARE_CR'],
    expectedOffsets: [15],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'LINE_BARE_CR', offset: 15 },
    rule: 'RFC 9112 §2.2: "A sender MUST NOT generate a bare CR"'
  },

  // --- Status line ---
  {
    name: 'status-code-four-digits',
    bytes: 'HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [12],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 12 },
    peersRow: 'status `2000`',
    rule: RFC_STATUS_LINE
  },
  {
    name: 'status-code-missing',
    bytes: 'HTTP/1.1 OK\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [9],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 9 },
    peersRow: 'status missing',
    rule: RFC_STATUS_LINE + ' (HAProxy: "error at position 9")'
  },
  {
    name: 'protocol-htpt',
    bytes: 'HTPT/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [2],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 2 },
    peersRow: 'protocol `HTPT/1.1`',
    rule: RFC_STATUS_LINE + ' (the first byte that cannot spell "HTTP/")'
  },
  {
    name: 'version-http-1.2',
    bytes: 'HTTP/1.2 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['VERSION_UNSUPPORTED'],
    expectedOffsets: [5],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'version `HTTP/1.2`',
    rule: 'RFC 9110 §2.5: a recipient "SHOULD process the message as if it were in the highest minor version within that major version to which the recipient is conformant" (peers split: HAProxy and nginx accept, llhttp rejects): warn'
  },
  {
    name: 'not-http',
    bytes: 'hello',
    endsWithClose: true,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [0],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 0 },
    peersRow: 'not HTTP at all',
    rule: RFC_STATUS_LINE + '; KC-502: a "message that can\'t be parsed" gets an ELB 502'
  },
  {
    name: 'random-bytes',
    bytes: '\x8f\x01\xfe A\r\n\x00\x13',
    endsWithClose: true,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [0],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 0 },
    peersRow: 'random bytes + FIN',
    rule: 'KC-502: a "message that can\'t be parsed" gets an ELB 502 (HAProxy: "error at position 0")'
  },
  {
    name: 'status-101-switching-protocols',
    bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['STATUS_101_UNSUPPORTED'],
    expectedOffsets: [9],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_101_UNSUPPORTED', offset: 9 },
    rule: 'our choice (docs/clb-choices.md): CLB-LISTEN says to use a TCP listener when the load balancer "is not able to terminate the request due to unexpected methods, response codes"'
  },
  {
    name: 'interim-then-bad-status-line',
    bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTPX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [27],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 27 },
    rule: RFC_STATUS_LINE + '; the final status line after a 1xx is held to the same grammar'
  },
  {
    name: 'interim-then-short-status-line',
    bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTT\nX-A: 1\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['STATUS_LINE_INVALID'],
    expectedOffsets: [28],
    expectedState: 'invalid',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'STATUS_LINE_INVALID', offset: 28 },
    rule: RFC_STATUS_LINE + ' (the LF at offset 28 is where "HTTP/" breaks, whatever the reads)'
  },

  // --- Header lines ---
  {
    name: 'space-before-colon',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_NAME_WHITESPACE', 'BODY_UNTIL_CLOSE'],
    expectedOffsets: [31, 39],
    expectedState: 'body',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_NAME_WHITESPACE', offset: 31 },
    peersRow: 'space before colon',
    rule: 'RFC 9112 §5.1: "No whitespace is allowed between the field name and colon"; every strict peer rejects (the name is not Content-Length, so no framing is found)'
  },
  {
    name: 'bad-name-character',
    bytes: 'HTTP/1.1 200 OK\r\nBad/Name: x\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_NAME_INVALID'],
    expectedOffsets: [20],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'bad name char',
    rule: 'RFC 9110 §5.1: field-name = token (peers split: nginx accepts "/", HAProxy and llhttp reject): warn'
  },
  {
    name: 'line-without-colon',
    bytes: 'HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_NO_COLON'],
    expectedOffsets: [17],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_NO_COLON', offset: 17 },
    peersRow: 'line without colon',
    rule: 'RFC 9112 §5: field-line = field-name ":" OWS field-value OWS; HAProxy rejects even with accept-invalid-http-response'
  },
  {
    name: 'nul-in-name',
    // \0Transfer-Encoding: a parser that drops the NUL reads chunked framing; we frame by Content-Length.
    bytes: 'HTTP/1.1 200 OK\r\n\x00Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_NAME_NUL'],
    expectedOffsets: [17],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_NAME_NUL', offset: 17 },
    rule: 'RFC 9110 section 5.1: field-name = token; a NUL-prefixed Transfer-Encoding is a desync vector (HDG BadHeader, Severe)'
  },
  {
    name: 'nul-in-value',
    bytes: 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_VALUE_NUL'],
    expectedOffsets: [23],
    expectedState: 'complete',
    expectedVerdict: 'reject',
    expectedStrictVerdict: 'reject',
    expectedPrimary: { code: 'HDR_VALUE_NUL', offset: 23 },
    peersRow: 'NUL in value',
    rule: 'RFC 9110 §5.5: "Field values containing CR, LF, or NUL characters are invalid and dangerous"'
  },
  {
    name: 'ctl-in-value',
    bytes: 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 5\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['HDR_VALUE_CTL'],
    expectedOffsets: [23],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    peersRow: 'CTL 0x01 in value',
    rule: 'RFC 9110 §5.5: field-value is VCHAR / SP / HTAB / obs-text (peers split: HAProxy and nginx accept 0x01, llhttp rejects): warn'
  },

  // --- Bodies that must not be there ---
  {
    name: 'status-204-with-content-length',
    bytes: 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n',
    endsWithClose: false,
    expectedCodes: ['BODY_NOT_ALLOWED'],
    expectedOffsets: [25],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    rule: 'RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any response with a status code of 1xx ... or 204"; the response still ends at its head: warn'
  },
  {
    name: 'bytes-after-204',
    bytes: 'HTTP/1.1 204 No Content\r\n\r\nhello',
    endsWithClose: false,
    expectedCodes: ['BODY_NOT_ALLOWED'],
    expectedOffsets: [27],
    expectedState: 'complete',
    expectedVerdict: 'pass',
    expectedStrictVerdict: 'reject',
    rule: 'RFC 9112 §6.3 rule 1: a 204 ends after its head, so the bytes after it belong to no response: relayed without them, connection not reused'
  }
]

/** The bytes of a case, as the backend sends them. */
export function caseBytes (responseCase: ResponseCase): Buffer {
  return Buffer.from(responseCase.bytes, 'latin1')
}
