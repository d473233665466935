/**
 * Counts the bytes a node puts on (and takes off) the wire: the TCP socket's own counters for
 * every connection, so Noise, yamux, multistream and gossip control traffic are all included.
 * It plugs in as libp2p's `metrics` component, which the upgrader hands every new raw
 * connection; the other metric registrations are accepted and ignored.
 */
import type { Socket } from 'node:net'

export interface TrafficMeter {
  /** bytes written to TCP sockets since creation (or the last reset) */
  bytesSent(): number
  bytesReceived(): number
  reset(): void
  /**
   * Bytes per remote TCP endpoint (`ip:port`, as libp2p's connection.remoteAddr names it),
   * closed connections included: with the connections' peer ids, bytes by peer.
   */
  byRemoteEndpoint(): Map<string, { sent: number, received: number }>
  /** pass as `metrics` to createPeerNode */
  readonly metricsFactory: () => unknown
}

interface Tracked { socket: Socket, endpoint: string, baseSent: number, baseReceived: number }

/** `ip:port` of a socket's remote end (IPv6 in brackets) */
const endpointOf = (socket: Socket): string => socket.remoteAddress?.includes(':') === true ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`

export function createTrafficMeter (): TrafficMeter {
  const open = new Set<Tracked>()
  let closedSent = 0
  let closedReceived = 0
  const closedByEndpoint = new Map<string, { sent: number, received: number }>()

  const noop = (): void => {}
  const metric = { update: noop, increment: noop, decrement: noop, reset: noop, timer: () => noop }
  const metrics = {
    trackMultiaddrConnection (maConn: { socket?: Socket }) {
      const socket = maConn.socket
      if (socket === undefined || typeof socket.bytesWritten !== 'number') return
      const tracked: Tracked = { socket, endpoint: endpointOf(socket), baseSent: 0, baseReceived: 0 }
      open.add(tracked)
      socket.once('close', () => {
        closedSent += socket.bytesWritten - tracked.baseSent
        closedReceived += socket.bytesRead - tracked.baseReceived
        const closed = closedByEndpoint.get(tracked.endpoint) ?? { sent: 0, received: 0 }
        closed.sent += socket.bytesWritten - tracked.baseSent
        closed.received += socket.bytesRead - tracked.baseReceived
        closedByEndpoint.set(tracked.endpoint, closed)
        open.delete(tracked)
      })
    },
    trackProtocolStream: noop,
    registerMetric: () => metric,
    registerMetricGroup: () => metric,
    registerCounter: () => metric,
    registerCounterGroup: () => metric,
    registerHistogram: () => metric,
    registerHistogramGroup: () => metric,
    registerSummary: () => metric,
    registerSummaryGroup: () => metric,
    createTrace: () => undefined,
    traceFunction: <F>(_name: string, fn: F) => fn
  }

  return {
    bytesSent () {
      let total = closedSent
      for (const t of open) total += t.socket.bytesWritten - t.baseSent
      return total
    },
    bytesReceived () {
      let total = closedReceived
      for (const t of open) total += t.socket.bytesRead - t.baseReceived
      return total
    },
    byRemoteEndpoint () {
      const totals = new Map<string, { sent: number, received: number }>()
      for (const [endpoint, c] of closedByEndpoint) totals.set(endpoint, { ...c })
      for (const t of open) {
        const total = totals.get(t.endpoint) ?? { sent: 0, received: 0 }
        total.sent += t.socket.bytesWritten - t.baseSent
        total.received += t.socket.bytesRead - t.baseReceived
        totals.set(t.endpoint, total)
      }
      return totals
    },
    reset () {
      closedSent = 0
      closedReceived = 0
      closedByEndpoint.clear()
      for (const t of open) {
        t.baseSent = t.socket.bytesWritten
        t.baseReceived = t.socket.bytesRead
      }
    },
    metricsFactory: () => metrics
  }
}
