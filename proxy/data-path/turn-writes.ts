import type { Writable } from 'node:stream'

/**
 * Small writes made during one turn of the event loop leave together, at the turn's end.
 *
 * One poll of the event loop hands the proxy the bytes of many connections; each answer and each
 * forwarded request is written as it is decided. Written at once, every write wakes its reader (the
 * client, or the instance) while the proxy goes on to the next connection, so under load the peers
 * are woken once per write, and each wake-up is paid in the proxy's own system time. Here a small
 * write corks its socket and one setImmediate uncorks every corked socket in the check phase that
 * follows: the writes of a turn leave back to back, the bytes of one socket in one writev. Node's
 * documentation of writable.cork(): "The primary intent of writable.cork() is to accommodate a
 * situation in which several small chunks are written to the stream in rapid succession."
 * (bench/README.md, "Writes at the end of the turn", has the measurements.)
 *
 * A write of the socket's high-water mark or more (a large body, a committed stream) goes at once,
 * after what the socket holds: held, it would answer `false` to a peer that reads fast and pause
 * the other side for nothing, and a large write already amortises its wake-up.
 *
 * Unchanged: the order of a socket's bytes, `end()` (which uncorks: the bytes go before the FIN).
 * A write waits at most until the next check phase (a write made in the close phase, after this
 * turn's check phase, waits for the next turn's). A socket about to be destroyed must be flushed
 * first (`flushNow`), or what it holds is dropped.
 */
const corked: Writable[] = []
let flushScheduled = false

/**
 * Writes `bytes` to `socket`: held until the end of this turn when small, at once when large.
 * Returns write()'s answer. `written`, if given, is write()'s callback: called once the socket is
 * done with `bytes` (handed to the kernel, or the write failed), never before this returns.
 */
export function writeInTurn (socket: Writable, bytes: Buffer, written?: () => void): boolean {
  if (bytes.length >= socket.writableHighWaterMark) {
    flushNow(socket)
    return socket.write(bytes, written)
  }
  if (socket.writableCorked === 0) {
    socket.cork()
    corked.push(socket)
    if (!flushScheduled) {
      flushScheduled = true
      setImmediate(uncorkAll)
    }
  }
  return socket.write(bytes, written)
}

/** Sends what `socket` holds now (before a destroy, which would drop it). */
export function flushNow (socket: Writable): void {
  while (socket.writableCorked > 0) socket.uncork()
}

function uncorkAll (): void {
  flushScheduled = false
  try {
    // Node runs write callbacks and errors in a later tick, so nothing is added while this runs.
    for (let index = 0; index < corked.length; index++) flushNow(corked[index] as Writable)
  } finally {
    corked.length = 0
  }
}
