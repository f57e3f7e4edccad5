import { CR, LF } from './bytes.js'

/**
 * Receives one complete line. `end` excludes the line terminator (CRLF or a bare LF);
 * `offset` is the absolute byte offset of `buf[start]` in the message. Return true to stop
 * splitting after this line (the caller's block ended or failed).
 */
export type LineHandler = (buf: Buffer, start: number, end: number, offset: number, bareLf: boolean) => boolean

/**
 * Splits a byte stream into lines at LF (RFC 9112 section 2.2: a recipient MAY recognize a bare LF
 * as a line terminator; callers report it as a defect). A line that spans reads is carried over
 * and joined, so handlers always see whole lines whatever the chunking.
 */
export class LineSplitter {
  private carry: Buffer | null = null
  private carryOffset = 0

  /** Bytes of an incomplete line held back from earlier reads. */
  get carriedBytes (): number {
    return this.carry === null ? 0 : this.carry.length
  }

  /** Absolute offset of the first carried byte (meaningful while `carriedBytes > 0`). */
  get carriedFrom (): number {
    return this.carryOffset
  }

  /**
   * Feeds `chunk[from..]`, whose first byte is at absolute offset `chunkOffset + from`.
   * Returns the index in `chunk` just after the line on which the handler stopped, or -1 when the
   * whole chunk was consumed without a stop (any incomplete tail is carried).
   */
  split (chunk: Buffer, from: number, chunkOffset: number, onLine: LineHandler): number {
    let buf = chunk
    let base = chunkOffset
    let i = from
    let carried = 0
    if (this.carry !== null) {
      carried = this.carry.length
      buf = Buffer.concat([this.carry, chunk.subarray(from)])
      base = this.carryOffset
      i = 0
      this.carry = null
    }
    while (i < buf.length) {
      const lf = buf.indexOf(LF, i)
      if (lf === -1) {
        this.carry = Buffer.from(buf.subarray(i))
        this.carryOffset = base + i
        return -1
      }
      const bareLf = lf === i || buf[lf - 1] !== CR
      const end = bareLf ? lf : lf - 1
      const stop = onLine(buf, i, end, base + i, bareLf)
      i = lf + 1
      if (stop) {
        // Translate the position back into the caller's chunk.
        return buf === chunk ? i : from + (i - carried)
      }
    }
    return -1
  }

  reset (): void {
    this.carry = null
  }
}
