import { HEXDIG_VALUE, CR, LF, isControl, isWhitespace } from './bytes.js'
import { LineSplitter } from './line-splitter.js'

/** Why a chunked body could not be framed; the caller maps it to its own defect code. */
export interface ChunkedError {
  readonly offset: number
  readonly message: string
}

export interface ChunkedProgress {
  /** Index in the fed chunk just past the end of the message, or -1 while it continues. */
  readonly end: number
  readonly error: ChunkedError | null
}

/**
 * Told the offset of each LF that ends a chunked framing line without CR, as it is found. A
 * callback rather than a list in ChunkedProgress: a body can have one such line per chunk, and a
 * list would grow with the body (the caller keeps the first few and a count).
 */
export type BareLfHandler = (lfOffset: number) => void

function ignoreBareLf (): void {}

// A chunk size above 2^53 cannot be a byte count we could ever relay.
const MAX_CHUNK_SIZE_DIGITS = 13

/**
 * Tracks chunked framing (RFC 9112 section 7.1) without decoding: finds where the message ends,
 * and the first malformed byte. chunked-body = *chunk last-chunk trailer-section CRLF;
 * chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF.
 */
export class ChunkedFramer {
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' | 'done' = 'size'
  private remaining = 0
  private sawCr = false
  private readonly lines = new LineSplitter()

  constructor (private readonly maxLineBytes: number, private readonly onBareLf: BareLfHandler = ignoreBareLf) {}

  get done (): boolean {
    return this.state === 'done'
  }

  feed (chunk: Buffer, from: number, chunkOffset: number): ChunkedProgress {
    let error: ChunkedError | null = null
    let i = from
    while (i < chunk.length && error === null && this.state !== 'done') {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, chunk.length - i)
        this.remaining -= take
        i += take
        if (this.remaining === 0) { this.state = 'data-crlf'; this.sawCr = false }
        continue
      }
      if (this.state === 'data-crlf') {
        // chunk-data is followed by CRLF; a bare LF is tolerated and reported.
        const b = chunk[i] as number
        if (!this.sawCr && b === CR) { this.sawCr = true; i++; continue }
        if (b === LF) {
          if (!this.sawCr) this.onBareLf(chunkOffset + i)
          this.state = 'size'
          i++
          continue
        }
        error = { offset: chunkOffset + i, message: 'chunk data is not followed by CRLF' }
        break
      }
      // 'size' or 'trailer': line oriented.
      const next = this.lines.split(chunk, i, chunkOffset, (buf, start, end, offset, bareLf) => {
        // A line longer than the limit fails at its byte number maxLineBytes, whether the line is
        // whole here or still carried (below), so the offset does not depend on the chunking.
        if (end - start > this.maxLineBytes) {
          error = this.lineTooLong(offset)
          return true
        }
        if (bareLf) this.onBareLf(offset + (end - start))
        error = this.state === 'size' ? this.sizeLine(buf, start, end, offset) : this.trailerLine(buf, start, end, offset)
        return true
      })
      if (next === -1) {
        // The carry may end with the CR of the terminator, which is not part of the line.
        if (this.lines.carriedBytes > this.maxLineBytes + 1) error = this.lineTooLong(this.lines.carriedFrom)
        i = chunk.length
      } else {
        i = next
      }
    }
    return { end: this.state === 'done' && error === null ? i : -1, error }
  }

  private lineTooLong (lineOffset: number): ChunkedError {
    return { offset: lineOffset + this.maxLineBytes, message: `a chunk-size or trailer line is longer than ${this.maxLineBytes} bytes` }
  }

  private sizeLine (buf: Buffer, start: number, end: number, offset: number): ChunkedError | null {
    let size = 0
    let i = start
    while (i < end && HEXDIG_VALUE[buf[i] as number] !== -1) {
      size = size * 16 + (HEXDIG_VALUE[buf[i] as number] as number)
      i++
    }
    const digits = i - start
    if (digits === 0) return { offset: offset + (i - start), message: 'chunk-size is not a hexadecimal number' }
    if (digits > MAX_CHUNK_SIZE_DIGITS) return { offset, message: `chunk-size has ${digits} hex digits: too large` }
    // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
    while (i < end && isWhitespace(buf[i])) i++
    if (i < end) {
      if (buf[i] !== 0x3b) return { offset: offset + (i - start), message: 'unexpected byte after chunk-size' }
      for (let j = i; j < end; j++) {
        const b = buf[j] as number
        if (isControl(b) && b !== 0x09) return { offset: offset + (j - start), message: 'control character in chunk extension' }
      }
    }
    if (size === 0) { this.state = 'trailer' } else { this.state = 'data'; this.remaining = size }
    return null
  }

  private trailerLine (buf: Buffer, start: number, end: number, offset: number): ChunkedError | null {
    if (start === end) { this.state = 'done'; return null }
    const cr = buf.indexOf(CR, start)
    if (cr !== -1 && cr < end) return { offset: offset + (cr - start), message: 'CR not followed by LF in a trailer line' }
    const colon = buf.indexOf(0x3a, start)
    if (colon === -1 || colon >= end || colon === start) return { offset, message: 'trailer line has no field name and colon' }
    return null
  }
}
