import { CR, LF } from './bytes.js'

/**
 * Receives one complete line. `end` excludes the line terminator (CRLF or a bare LF);
 * `offset` is the absolute byte offset of `buf[start]` in the message. Return true to stop
 * splitting after this line (the caller's block ended or failed).
 */
export type LineHandler<This = unknown> = (this: This, buf: Buffer, start: number, end: number, offset: number, bareLf: boolean) => boolean

const NO_BYTES = Buffer.alloc(0)
// First allocation for a carried line; the buffer doubles from there (amortized O(1) per byte).
const MIN_CARRY_CAPACITY = 256

/**
 * Splits a byte stream into lines at LF (RFC 9112 section 2.2: a recipient MAY recognize a bare LF
 * as a line terminator; callers report it as a defect). A line that spans reads is carried over
 * and joined, so handlers always see whole lines whatever the chunking.
 *
 * Memory: the carry holds one incomplete line, in a buffer that grows by doubling, so a line
 * trickled one byte per read costs O(length) copies, not O(length²). Callers bound the line's
 * length (`carriedBytes`) with their own limit (maxHeadBytes).
 */
export class LineSplitter {
  private carry: Buffer = NO_BYTES
  private carryLength = 0
  private carryOffset = 0

  /** Bytes of an incomplete line held back from earlier reads. */
  get carriedBytes (): number {
    return this.carryLength
  }

  /** Absolute offset of the first carried byte (meaningful while `carriedBytes > 0`). */
  get carriedFrom (): number {
    return this.carryOffset
  }

  /** The first `count` carried bytes (fewer when fewer are carried); a view, valid until the next split. */
  carriedPrefix (count: number): Buffer {
    return this.carry.subarray(0, Math.min(count, this.carryLength))
  }

  /**
   * Feeds `chunk[from..]`, whose first byte is at absolute offset `chunkOffset + from`.
   * Returns the index in `chunk` just after the line on which the handler stopped, or -1 when the
   * whole chunk was consumed without a stop (any incomplete tail is carried). `onLine` is called
   * with `receiver` as `this`: a parser passes one of its methods and itself, so that no closure
   * is made for each message.
   */
  split<This> (chunk: Buffer, from: number, chunkOffset: number, onLine: LineHandler<This>, receiver?: This): number {
    let buf = chunk
    let base = chunkOffset
    let i = from
    let carried = 0
    if (this.carryLength > 0) {
      if (chunk.indexOf(LF, from) === -1) {
        // Still no end of line: append, and join only once the LF arrives.
        this.append(chunk, from)
        return -1
      }
      carried = this.carryLength
      buf = Buffer.concat([this.carry.subarray(0, this.carryLength), chunk.subarray(from)])
      base = this.carryOffset
      i = 0
      this.reset()
    }
    while (i < buf.length) {
      const lf = buf.indexOf(LF, i)
      if (lf === -1) {
        this.carryOffset = base + i
        this.append(buf, i)
        return -1
      }
      const bareLf = lf === i || buf[lf - 1] !== CR
      const end = bareLf ? lf : lf - 1
      const stop = onLine.call(receiver as This, buf, i, end, base + i, bareLf)
      i = lf + 1
      if (stop) {
        // Translate the position back into the caller's chunk.
        return buf === chunk ? i : from + (i - carried)
      }
    }
    return -1
  }

  /** Drops any carried bytes (and the memory that held them). */
  reset (): void {
    this.carry = NO_BYTES
    this.carryLength = 0
  }

  private append (bytes: Buffer, from: number): void {
    const needed = this.carryLength + (bytes.length - from)
    if (needed > this.carry.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.carry.length * 2, MIN_CARRY_CAPACITY))
      this.carry.copy(grown, 0, 0, this.carryLength)
      this.carry = grown
    }
    bytes.copy(this.carry, this.carryLength, from)
    this.carryLength = needed
  }
}
