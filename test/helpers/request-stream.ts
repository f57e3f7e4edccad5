import { RequestParser, type RequestHead, type RequestLimits, type RequestParserState } from '../../validators/request-parser.js'
import type { Defect } from '../../validators/defects.js'
import type { Chunking } from './split.js'

/** What one request in a client stream came to. */
export interface RequestOutcome {
  readonly state: RequestParserState
  readonly head: RequestHead | null
  readonly requestLine: RequestParser['requestLineSeen']
  readonly defects: readonly Defect[]
  /** Body bytes consumed; null for an invalid request (as `consumed`). */
  readonly bodyBytes: number | null
  /**
   * Bytes of the stream that belong to this request (the rest starts the next one); null for an
   * invalid request, after which the parser swallows whatever it is given (the proxy answers and closes).
   */
  readonly consumed: number | null
}

/**
 * Feeds a client byte stream the way proxy/data-path/client-connection.ts does: each read goes to the
 * current parser; the bytes it did not consume start the next request (pipelining). Stops at the
 * first invalid request (the proxy answers 400/405 and closes). `limits` is what RequestParser takes:
 * a number (maxHeadBytes, the other limits infinite) or every limit.
 */
export function feedStream (chunking: Chunking, limits: number | RequestLimits): RequestOutcome[] {
  const outcomes: RequestOutcome[] = []
  let parser = new RequestParser(limits)
  let consumed = 0
  const settle = (): void => {
    outcomes.push({
      state: parser.state,
      head: parser.head,
      requestLine: parser.requestLineSeen,
      defects: parser.defects.map((d) => ({ ...d })),
      bodyBytes: parser.state === 'invalid' ? null : parser.bodyBytes,
      consumed: parser.state === 'invalid' ? null : consumed
    })
  }
  for (const piece of chunking.pieces) {
    let rest = piece
    while (rest.length > 0 && parser.state !== 'invalid') {
      const result = parser.push(rest)
      if (result.bodyFrom > result.consumed) throw new Error(`bodyFrom ${result.bodyFrom} past consumed ${result.consumed}`)
      consumed += result.consumed
      rest = rest.subarray(result.consumed)
      if (parser.state === 'complete') {
        settle()
        parser = new RequestParser(limits)
        consumed = 0
      }
    }
    if (parser.state === 'invalid') break
  }
  if (parser.state !== 'complete' && (parser.bytesReceived > 0 || parser.state === 'invalid' || outcomes.length === 0)) settle()
  return outcomes
}
