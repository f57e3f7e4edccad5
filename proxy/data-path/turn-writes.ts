import type { Writable } from 'node:stream'

/**
 * Writes made during one turn of the event loop leave together, at the turn's end.
 *
 * One poll of the event loop hands the proxy the bytes of many connections; each answer and each
 * forwarded request is written as it is decided. Written at once, every write wakes its reader (the
 * client, or the instance) while the proxy goes on to the next connection, so under load the peers
 * are woken once per write, and each wake-up is paid in the proxy's own system time. Here the first
 * write of a turn corks its socket and one setImmediate uncorks every corked socket after the poll
 * phase: the writes of a turn leave back to back, the bytes of one socket in one writev. Node's
 * documentation of writable.cork(): "The primary intent of writable.cork() is to accommodate a
 * situation in which several small chunks are written to the stream in rapid succession."
 * (bench/README.md, "Writes at the end of the turn", has the measurements.)
 *
 * Nothing else changes: the order of a socket's bytes, write()'s back-pressure answer (a corked
 * socket still counts what it holds), `end()` (which uncorks: the bytes go before the FIN). A socket
 * about to be destroyed must be flushed first (`flushNow`), or what it holds is dropped.
 */
let corked: Writable[] = []
let spare: Writable[] = []
let flushScheduled = false

/** Corks `socket` until the end of this turn of the event loop, unless it is corked already. */
export function corkForTurn (socket: Writable): void {
  if (socket.writableCorked !== 0) return
  socket.cork()
  corked.push(socket)
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(uncorkAll)
  }
}

/** Sends what `socket` holds now (before a destroy, which would drop it). */
export function flushNow (socket: Writable): void {
  while (socket.writableCorked > 0) socket.uncork()
}

function uncorkAll (): void {
  flushScheduled = false
  // A write made while flushing (a write callback) corks into the other list, for the next turn.
  const sockets = corked
  corked = spare
  spare = sockets
  for (let index = 0; index < sockets.length; index++) flushNow(sockets[index] as Writable)
  sockets.length = 0
}
