import net from 'node:net'
import { once } from 'node:events'

/**
 * One request over a raw client socket: writes `request` (latin1), collects what comes back until
 * `expectedLength` bytes arrived or the server ended the connection, then closes its side and
 * waits for the socket to close, so nothing is left open. `ended` says the server sent its FIN.
 */
export async function rawExchange (port: number, request: string, expectedLength: number): Promise<{ received: Buffer, ended: boolean, localPort: number }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const localPort = socket.localPort as number
  socket.write(request, 'latin1')
  const chunks: Buffer[] = []
  let received = 0
  let ended = false
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      if (received >= expectedLength) resolve()
    })
    socket.on('end', () => { ended = true; resolve() })
    socket.on('error', reject)
  })
  // Our FIN ends a kept-alive connection; anything the server still sends is collected too.
  socket.end()
  await once(socket, 'close')
  return { received: Buffer.concat(chunks), ended, localPort }
}
