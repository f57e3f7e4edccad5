/**
 * Ways to cut one byte stream into reads, for tests that prove a verdict does not depend on how
 * TCP happened to segment the bytes (style.md lesson 10: "Every malformed-response case also runs
 * split at every byte boundary of its head and byte by byte").
 *
 * The one rule every helper here keeps: bytes past the end of the framed message stay in the read
 * with the byte that completes the message. The proxy judges a response with the bytes of the read
 * that completes it ("more bytes than Content-Length" is CLB's documented 502 cause only when the
 * excess is part of that read); bytes in a later read are a different, documented case
 * (docs/architecture.md, "The commit rule"). `messageEnd` is the offset just past the framed
 * message, or -1 when the message never completes (then no such grouping applies).
 */

/** One way to cut a byte stream: the reads in order, and a short label for assertion messages. */
export interface Chunking {
  readonly label: string
  readonly pieces: readonly Buffer[]
}

/** The whole input as one read. */
export function wholeRead (bytes: Buffer): Chunking {
  return { label: 'one read', pieces: [bytes] }
}

/**
 * Cuts `bytes` before each offset in `cuts` (sorted, deduplicated, empty pieces dropped). A cut at
 * or past `messageEnd` is ignored, so the bytes after the message stay with the byte that completes it.
 */
export function cutAt (bytes: Buffer, cuts: readonly number[], messageEnd = -1): Chunking {
  const limit = messageEnd === -1 ? bytes.length : Math.min(messageEnd - 1, bytes.length)
  const points = [...new Set(cuts)].filter((cut) => cut > 0 && cut <= limit && cut < bytes.length).sort((a, b) => a - b)
  const pieces: Buffer[] = []
  let from = 0
  for (const cut of points) {
    pieces.push(bytes.subarray(from, cut))
    from = cut
  }
  if (from < bytes.length || pieces.length === 0) pieces.push(bytes.subarray(from))
  return { label: `cut at [${points.join(',')}]`, pieces }
}

/**
 * Two reads for every byte boundary inside the head: `[0, k)` and `[k, end)` for k = 1 ..
 * headLength (k = headLength cuts between the head and the body). Cuts that would separate the
 * completing byte from the bytes after the message are left out (see the rule above).
 */
export function splitAtEveryBoundary (bytes: Buffer, headLength: number, messageEnd = -1): Chunking[] {
  const last = Math.min(headLength, bytes.length - 1, messageEnd === -1 ? Infinity : messageEnd - 1)
  const chunkings: Chunking[] = []
  for (let k = 1; k <= last; k++) {
    chunkings.push({ label: `split at ${k}`, pieces: [bytes.subarray(0, k), bytes.subarray(k)] })
  }
  return chunkings
}

/**
 * One read per byte, except that the byte at `messageEnd - 1` (the one that completes the message)
 * carries every byte after it in the same read.
 */
export function byteByByte (bytes: Buffer, messageEnd = -1): Chunking {
  const pieces: Buffer[] = []
  const grouped = messageEnd === -1 ? bytes.length : Math.min(messageEnd - 1, bytes.length)
  for (let i = 0; i < grouped; i++) pieces.push(bytes.subarray(i, i + 1))
  if (grouped < bytes.length) pieces.push(bytes.subarray(grouped))
  return { label: 'byte by byte', pieces }
}

/** One read per byte with no grouping at all (for parsers, like the request parser, that hand back unconsumed bytes). */
export function everyByteAlone (bytes: Buffer): Chunking {
  const pieces: Buffer[] = []
  for (let i = 0; i < bytes.length; i++) pieces.push(bytes.subarray(i, i + 1))
  return { label: 'every byte alone', pieces }
}
