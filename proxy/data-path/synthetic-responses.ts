/**
 * Every response the load balancer generates itself, as exact bytes. Nothing else in the proxy
 * writes a status line. docs/synthetic-responses.md says which bytes were observed on real CLBs
 * (clb-behavior.md section 1) and which are our choice.
 */

export type SyntheticStatus = 400 | 405 | 408 | 502 | 503 | 504

function bytes (text: string): Buffer {
  return Buffer.from(text, 'latin1')
}

export const SYNTHETIC_RESPONSES: Readonly<Record<SyntheticStatus, Buffer>> = Object.freeze({
  // UNCONFIRMED wire form: the doc heading "HTTP 400: BAD_REQUEST", in the style of the observed
  // 502/504; Connection: close because desync mitigation "closes the client connection".
  400: bytes('HTTP/1.1 400 BAD_REQUEST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
  // UNCONFIRMED: doc heading "HTTP 405: METHOD_NOT_ALLOWED"; we close, since the request could not be read.
  405: bytes('HTTP/1.1 405 METHOD_NOT_ALLOWED\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
  // Observed (O-408): note "Content-Length:0" without a space and "Connection: Close".
  408: bytes('HTTP/1.1 408 REQUEST_TIMEOUT\r\nContent-Length:0\r\nConnection: Close\r\n\r\n'),
  // Weak evidence (O-PUTSREQ), consistent with the observed 504.
  502: bytes('HTTP/1.1 502 BAD_GATEWAY\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'),
  // Observed (O-INTERCOM, O-CTB).
  503: bytes('HTTP/1.1 503 Service Unavailable: Back-end server is at capacity\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n'),
  // Observed (O-CTB, O-H1).
  504: bytes('HTTP/1.1 504 GATEWAY_TIMEOUT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n')
})

/** Whether the client connection stays open after this synthetic response (its Connection header says so). */
export function keepsClientConnection (status: SyntheticStatus): boolean {
  return status === 502 || status === 503 || status === 504
}

// ELB-HOW: on an Expect header the load balancer answers "HTTP 100 Continue" itself and removes
// the header. Exact bytes UNCONFIRMED; this is the minimal RFC 9110 section 15.2.1 form.
export const CONTINUE_RESPONSE = bytes('HTTP/1.1 100 Continue\r\n\r\n')
