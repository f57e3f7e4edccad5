import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { Instance } from '../../../proxy/balancer/instance.js'
import { ClbProxyEvents } from '../../../proxy/core/events.js'

t.test('a connection released to the pool while paused reads again: what the instance sends on it is seen', async (t) => {
  const accepted: net.Socket[] = []
  const server = net.createServer((socket) => accepted.push(socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const events = new ClbProxyEvents()
  const instance = new Instance({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, {
    backendCa: null,
    idleTimeoutMs: 60_000,
    keepaliveRace: 'detect',
    clock: { nowMicros: () => 0 },
    events
  }, false)
  const acquired = instance.acquire()
  if (acquired.kind !== 'connection') throw new Error(`expected a connection, got ${acquired.kind}`)
  const { connection } = acquired
  await once(connection.socket, 'connect')
  // An exchange paused it for its client's back-pressure, and then ended.
  connection.socket.pause()
  instance.release(connection)
  t.equal(connection.socket.isPaused(), false, 'reading again in the pool')
  const idleEvent = once(events, 'backend-idle-event')
  // Stray bytes, then the instance's FIN: a paused socket would show only the close (its 'end'
  // still comes), and a request sent on it later would never have its answer read.
  accepted[0]?.end('HTTP/1.1 200 OK\r\n')
  const [event] = await idleEvent as [{ event: string, bytes: number }]
  t.strictSame([event.event, event.bytes], ['extra-bytes', 17], 'the pool read the stray bytes')
  await once(connection.socket, 'close')
  t.equal(instance.openConnections, 0, 'and dropped the connection')
})
