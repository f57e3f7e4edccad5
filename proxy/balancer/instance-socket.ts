/**
 * Opens the socket to an instance for its protocol (CLB-LISTEN InstanceProtocol): plain TCP for
 * http and tcp instances, TLS for https and ssl instances. Independent of HTTP: the data path's
 * exchanges, the health checks and the TCP/SSL listeners all connect through here.
 *
 * The contract of the returned socket:
 * - ready: it emits `instanceReadyEvent(address)` once bytes may flow: 'connect' (plain) or
 *   'secureConnect' (TLS, after the handshake and, with a CA, the certificate checks). Bytes
 *   written before that are queued, never sent in clear text.
 * - failure: one 'error', then 'close'. On a TLS socket an 'error' after 'connect' and before
 *   'secureConnect' is a failed handshake (`error.code`: an OpenSSL verify code such as
 *   UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID, an ERR_SSL_* code such as
 *   ERR_SSL_WRONG_VERSION_NUMBER or ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION, or ECONNRESET); before
 *   'connect' it is the TCP connection's (ECONNREFUSED...). `errorReason(error)` gives its words.
 * - writes that meet the instance's reset never destroy it: the TCP connection is a BackendSocket
 *   (`instanceTransportOf(socket)`), which records the reset in `writeFailure` and keeps reading,
 *   and TLS runs over it (tls.connect's `socket` option: "Usually, a socket is already connected
 *   when passed to tls.connect(), but it can be connected later"), so the instance's early answer
 *   is still decrypted and read.
 * - idle timeout: with `idleTimeoutMs`, the socket's timer (its 'timeout' event) as CLB-IDLE says.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import net from 'node:net'
import tls from 'node:tls'
import { instanceProtocolOf, type BackendAddress } from '../core/options.js'
import { BackendSocket, type InstanceReadBuffer } from './backend-connection.js'

export { errorReason } from './backend-connection.js'

export interface InstanceSocketSettings {
  /**
   * PEM text of the CA that https/ssl instances' certificates must chain to (back-end server
   * authentication, CLB-LISTEN); null: any certificate is accepted, as CLB does without it.
   */
  readonly backendCa: string | null
  /**
   * CLB-IDLE: "If no data has been sent or received by the time that the idle timeout period
   * elapses, the load balancer closes the connection": one timer for the socket's life, restarted
   * by Node on every read and write. Absent: no timer (a health check bounds itself).
   */
  readonly idleTimeoutMs?: number
}

/** The event after which bytes flow to the instance. */
export type InstanceReadyEvent = 'connect' | 'secureConnect'

// node:net publishes every socket net.connect() creates on this channel; a BackendSocket is
// created with `new` and published here the same way, so tools that watch the channel still see it.
const clientSocketChannel = diagnosticsChannel.channel('net.client.socket')

/** The TCP connection under each TLS socket this module opened (a plain socket is its own). */
const transports = new WeakMap<net.Socket, BackendSocket>()

/** Whether connections to instances of this protocol use TLS (https and ssl). */
export function usesTls (address: BackendAddress): boolean {
  const protocol = instanceProtocolOf(address)
  return protocol === 'https' || protocol === 'ssl'
}

/** 'secureConnect' for https/ssl instances, 'connect' for http/tcp ones. */
export function instanceReadyEvent (address: BackendAddress): InstanceReadyEvent {
  return usesTls(address) ? 'secureConnect' : 'connect'
}

/**
 * The socket to `address`, connecting now. Throws only what net.Socket#connect throws
 * synchronously for an address node:net refuses outright (ERR_SOCKET_BAD_PORT...), after closing
 * everything it opened.
 */
export function openInstanceSocket (address: BackendAddress, settings: InstanceSocketSettings, readBuffer: InstanceReadBuffer | null = null): net.Socket {
  const plain = !usesTls(address)
  // A plain socket reads into `readBuffer` when one is given; TLS reads the ordinary way (node:tls has no onread).
  const transport = plain && readBuffer !== null ? new BackendSocket({ onread: readBuffer.onread } as net.SocketConstructorOpts) : new BackendSocket()
  transport.setNoDelay(true)
  if (plain) {
    // The plain path: exactly the socket the proxy always opened, nothing more per connection.
    connectOrClose(transport, address, null)
    if (clientSocketChannel.hasSubscribers) clientSocketChannel.publish({ socket: transport })
    if (settings.idleTimeoutMs !== undefined) transport.setTimeout(settings.idleTimeoutMs)
    return transport
  }
  const backendCa = settings.backendCa
  // Created before the transport connects: an unconnected socket is wrapped as a stream, so TLS
  // writes go through BackendSocket#_write (a connected one would hand TLS its handle directly).
  const secure = tls.connect({
    socket: transport,
    // Used for certificate validation only (node:tls: "host ... ignored, except for certificate
    // validation"): an IP address is checked against the certificate's IP subject alternative names.
    host: address.host,
    // RFC 6066 section 3: "Literal IPv4 and IPv6 addresses are not permitted in "HostName"".
    ...(net.isIP(address.host) === 0 ? { servername: address.host } : {}),
    // CLB-LISTEN "Back-End Server Authentication": without it the instance's certificate is not
    // validated (self-signed certificates pass); with a CA, the chain and the host name are.
    rejectUnauthorized: backendCa !== null,
    ...(backendCa === null ? {} : { ca: backendCa }),
    // Node's defaults (its ciphers, TLSv1.3 at most), stated: TLSv1.2 and TLSv1.3 are offered.
    minVersion: 'TLSv1.2'
  })
  transports.set(secure, transport)
  connectOrClose(transport, address, secure)
  if (clientSocketChannel.hasSubscribers) clientSocketChannel.publish({ socket: transport })
  if (settings.idleTimeoutMs !== undefined) {
    // The timer runs on the TCP connection, whose reads and writes (the handshake's included) are
    // the bytes CLB-IDLE counts, and its 'timeout' is the TLS socket's: a timer set on the TLS
    // socket before its handshake first fired only after twice the idle timeout (measured: 2.0 s
    // for 1 s), so a stalled handshake got its 408 late.
    transport.setTimeout(settings.idleTimeoutMs)
    transport.on('timeout', () => secure.emit('timeout'))
  }
  return secure
}

/**
 * Connects the transport; on a synchronous throw (net.Socket#connect has already made its TCP
 * handle by then) closes it, and the TLS socket over it, before rethrowing.
 */
function connectOrClose (transport: BackendSocket, address: BackendAddress, secure: tls.TLSSocket | null): void {
  try {
    transport.connect({ host: address.host, port: address.port })
  } catch (error) {
    secure?.destroy()
    transport.destroy()
    throw error
  }
}

/**
 * The TCP connection a socket from openInstanceSocket runs on: the socket itself for http/tcp
 * instances, the BackendSocket under the TLS socket for https/ssl ones. Its `writeFailure` says
 * whether a write met the instance's reset.
 */
export function instanceTransportOf (socket: net.Socket): BackendSocket {
  const transport = transports.get(socket)
  if (transport !== undefined) return transport
  if (socket instanceof BackendSocket) return socket
  throw new TypeError('instanceTransportOf: this socket was not opened by openInstanceSocket (a bug)')
}
