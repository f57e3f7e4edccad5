/**
 * One request as the access log sees it. Typed values only: the sentinels CLB prints
 * (`-`, `-1`, `0`) appear in the formatter (proxy/observers/access-log-format.ts), never here.
 * Field order and meaning follow CLB-LOGS (docs/access-log.md).
 */
export interface AccessLogRecord {
  /** When the load balancer received the request from the client: microseconds since the Unix epoch. */
  readonly receivedAtMicros: number
  /** The `elb` field: the load balancer's name. */
  readonly elbName: string
  readonly clientAddress: string
  readonly clientPort: number
  /** The instance that processed the request; null when none was reached or it closed/timed out before answering. */
  readonly backend: { readonly address: string; readonly port: number } | null
  /** Seconds; null when the request was never dispatched (printed as -1). */
  readonly requestProcessingSeconds: number | null
  readonly backendProcessingSeconds: number | null
  readonly responseProcessingSeconds: number | null
  /** The status the load balancer sent to the client; null when nothing was sent (client gone). */
  readonly elbStatusCode: number | null
  /**
   * 'no-response': no backend response (printed `0`, as real CLB lines show for 503/504/408);
   * 'rejected': the backend answered but the response was rejected (printed `-`, our choice);
   * 'not-http': a TCP or SSL listener, which reads no HTTP status (printed `-`, CLB-LOGS);
   * a number: the backend's status code.
   */
  readonly backendStatusCode: number | 'no-response' | 'rejected' | 'not-http'
  /** Request body bytes received from the client (CLB-LOGS: "includes the request body but not the headers"). */
  readonly receivedBytes: number
  /** Response body bytes sent to the client ("includes the response body but not the headers"). */
  readonly sentBytes: number
  /** Request method as sent by the client; null when the request line could not be parsed. */
  readonly method: string | null
  /** The listener's protocol. */
  readonly scheme: 'http' | 'https' | 'tcp' | 'ssl'
  /** Host header value without its port, or the listener's address when the client sent none. */
  readonly host: string
  /** The listener port the client connected to. */
  readonly listenerPort: number
  /** The request-target as the client sent it (raw, unescaped; the formatter makes it log-safe). */
  readonly target: string | null
  /** e.g. 'HTTP/1.1'; null when the request line could not be parsed. */
  readonly httpVersion: string | null
  /** User-Agent header value (raw; the formatter escapes and truncates it to 8 KB); null when absent. */
  readonly userAgent: string | null
  /** OpenSSL cipher name and protocol for HTTPS listeners; null on HTTP. */
  readonly sslCipher: string | null
  readonly sslProtocol: string | null
}
