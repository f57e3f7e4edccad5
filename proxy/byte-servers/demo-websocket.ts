/**
 * The demo backend's WebSocket echo (`/ws`), so the demo can show what CLB does to a WebSocket:
 * through a TCP listener it works; through an HTTP listener the Upgrade header is dropped (spec
 * §5.10) and the instance sees a plain GET, which the demo answers 426. A minimal RFC 6455 server:
 * the opening handshake (section 4.2.2), then each data frame echoed, ping answered with pong,
 * close answered with close; payloads above DEMO_WEBSOCKET_MAX_PAYLOAD close with 1009.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

export const DEMO_WEBSOCKET_PATH = '/ws'
/** Our choice: a demo echo needs no more; beyond it the connection closes with 1009 ("message too big"). */
export const DEMO_WEBSOCKET_MAX_PAYLOAD = 64 * 1024

// RFC 6455 section 1.3: the GUID appended to Sec-WebSocket-Key before hashing.
const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const OPCODE_CLOSE = 0x8
const OPCODE_PING = 0x9
const OPCODE_PONG = 0xa

/** RFC 6455 section 4.2.2: base64 of the SHA-1 of the key and the GUID. */
export function websocketAccept (key: string): string {
  return createHash('sha1').update(key + HANDSHAKE_GUID).digest('base64')
}

/**
 * Answers an HTTP upgrade request: a WebSocket handshake on DEMO_WEBSOCKET_PATH becomes an echo;
 * anything else gets 400 and the connection is closed. `sockets` holds the upgraded connections,
 * so the demo's close() can end them (the HTTP server no longer tracks them).
 */
export function handleDemoUpgrade (request: IncomingMessage, socket: Duplex, head: Buffer, sockets: Set<Duplex>): void {
  socket.on('error', () => {})
  const key = request.headers['sec-websocket-key']
  const path = (request.url ?? '').split('?')[0]
  if (path !== DEMO_WEBSOCKET_PATH || request.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string' || request.headers['sec-websocket-version'] !== '13') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    return
  }
  sockets.add(socket)
  socket.once('close', () => sockets.delete(socket))
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`)
  let buffered = head
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    for (;;) {
      const frame = readFrame(buffered)
      if (frame === 'incomplete') return
      if (frame === 'unmasked' || frame === 'too-big') {
        // RFC 6455 section 5.1: "The server MUST close the connection upon receiving a frame that is not masked" (1002); 1009: too big.
        socket.end(frameBytes(0x80 | OPCODE_CLOSE, closePayload(frame === 'unmasked' ? 1002 : 1009)))
        socket.off('data', onData)
        return
      }
      buffered = buffered.subarray(frame.length)
      if (frame.opcode === OPCODE_CLOSE) {
        socket.end(frameBytes(0x80 | OPCODE_CLOSE, frame.payload.subarray(0, 2)))
        socket.off('data', onData)
        return
      }
      if (frame.opcode === OPCODE_PING) socket.write(frameBytes(0x80 | OPCODE_PONG, frame.payload))
      else if (frame.opcode !== OPCODE_PONG) socket.write(frameBytes(frame.firstByte, frame.payload))
    }
  }
  socket.on('data', onData)
  if (head.length > 0) onData(Buffer.alloc(0))
}

interface Frame {
  readonly firstByte: number
  readonly opcode: number
  readonly payload: Buffer
  /** Bytes the frame took, header included. */
  readonly length: number
}

/** RFC 6455 section 5.2: one client frame from the start of `bytes`, unmasked. */
function readFrame (bytes: Buffer): Frame | 'incomplete' | 'unmasked' | 'too-big' {
  if (bytes.length < 2) return 'incomplete'
  const firstByte = bytes[0] as number
  const second = bytes[1] as number
  if ((second & 0x80) === 0) return 'unmasked'
  let payloadLength = second & 0x7f
  let offset = 2
  if (payloadLength === 126) {
    if (bytes.length < 4) return 'incomplete'
    payloadLength = bytes.readUInt16BE(2)
    offset = 4
  } else if (payloadLength === 127) {
    if (bytes.length < 10) return 'incomplete'
    const length = bytes.readBigUInt64BE(2)
    if (length > BigInt(DEMO_WEBSOCKET_MAX_PAYLOAD)) return 'too-big'
    payloadLength = Number(length)
    offset = 10
  }
  if (payloadLength > DEMO_WEBSOCKET_MAX_PAYLOAD) return 'too-big'
  if (bytes.length < offset + 4 + payloadLength) return 'incomplete'
  const mask = bytes.subarray(offset, offset + 4)
  const payload = Buffer.from(bytes.subarray(offset + 4, offset + 4 + payloadLength))
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number)
  return { firstByte, opcode: firstByte & 0x0f, payload, length: offset + 4 + payloadLength }
}

/** A server frame (never masked, RFC 6455 section 5.1). */
function frameBytes (firstByte: number, payload: Buffer): Buffer {
  const header = payload.length < 126
    ? Buffer.from([firstByte, payload.length])
    : Buffer.from([firstByte, 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, payload])
}

function closePayload (code: number): Buffer {
  const payload = Buffer.alloc(2)
  payload.writeUInt16BE(code)
  return payload
}
