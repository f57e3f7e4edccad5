/**
 * A small instance for balancer tests: a raw `net` server that answers GET requests on kept-alive
 * connections. `/health` answers as its `health` mode says (a 200, a 500, a 302 redirect, a
 * malformed 200, or a close without a byte); `/malformed` answers a 200 whose Content-Length is
 * not an integer (CLB's 502); `/hold` waits until `release()`; anything else
 * answers 200 with the instance's name as the body, so a test sees which instance answered.
 * Every request's head is recorded; every connection is closed at teardown.
 */
import net from 'node:net'
import { once } from 'node:events'
import type { Test } from 'tap'

export type HealthMode = 'ok' | 'error' | 'redirect' | 'malformed' | 'close'

const HEALTH_ANSWERS: Readonly<Record<Exclude<HealthMode, 'close'>, string>> = {
  ok: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  error: 'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail',
  redirect: 'HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n',
  malformed: 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok'
}

export interface InstanceServer {
  readonly name: string
  readonly port: number
  readonly url: string
  /** How /health answers from now on. */
  health: HealthMode
  /** Request heads received, in order (health checks included). */
  readonly heads: string[]
  /** Requests on /hold not answered yet. */
  readonly held: number
  /** Answers every held request with 200 and the instance's name. */
  release (): void
  /** Resolves when `count` requests are held. */
  whenHeld (count: number): Promise<void>
  /** Stops listening and destroys every connection (the instance goes away). */
  stop (): Promise<void>
}

export async function startInstanceServer (t: Test, name: string): Promise<InstanceServer> {
  const sockets = new Set<net.Socket>()
  const held: net.Socket[] = []
  const heldWaiters: Array<{ count: number, resolve: () => void }> = []
  const heads: string[] = []
  const answer = (socket: net.Socket): void => {
    if (!socket.destroyed) socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${name.length}\r\n\r\n${name}`)
  }
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let pending = ''
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1')
      let end: number
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end + 4)
        pending = pending.slice(end + 4)
        heads.push(head)
        const path = head.split(' ')[1] ?? '/'
        if (path === '/health') {
          if (instance.health === 'close') socket.destroy()
          else socket.write(HEALTH_ANSWERS[instance.health])
        } else if (path === '/malformed') {
          // KC-502: "a Content-Length header which contains a non-integer".
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok')
        } else if (path === '/hold') {
          held.push(socket)
          for (const waiter of [...heldWaiters]) {
            if (held.length >= waiter.count) {
              heldWaiters.splice(heldWaiters.indexOf(waiter), 1)
              waiter.resolve()
            }
          }
        } else {
          answer(socket)
        }
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  let stopped: Promise<void> | null = null
  const instance: InstanceServer = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    health: 'ok',
    heads,
    get held () { return held.length },
    release () {
      for (const socket of held.splice(0)) answer(socket)
    },
    async whenHeld (count) {
      if (held.length >= count) return
      await new Promise<void>((resolve) => heldWaiters.push({ count, resolve }))
    },
    async stop () {
      stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        for (const socket of sockets) socket.destroy()
        await closed
      })()
      await stopped
    }
  }
  t.teardown(() => instance.stop())
  return instance
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
