/**
 * Counts the bytes a node puts on (and takes off) the wire: the TCP socket's own counters for
 * every connection, so Noise, yamux, multistream and gossip control traffic are all included.
 * It plugs in as libp2p's `metrics` component, which the upgrader hands every new raw
 * connection; the other metric registrations are accepted and ignored.
 */
import type { Socket } from 'node:net'

/** Bytes on the wire, in total and by remote address. */
export interface TrafficCounts {
  /** bytes written to TCP sockets since creation (or the last reset) */
  bytesSent(): number
  bytesReceived(): number
  /** the same bytes by remote address of the TCP connection (e.g. '/ip4/10.0.0.2/tcp/4001') */
  byRemoteAddress(): Map<string, { sent: number, received: number }>
}

export interface TrafficMeter extends TrafficCounts {
  reset(): void
  /** pass as `metrics` to createPeerNode */
  readonly metricsFactory: () => unknown
}

interface Tracked { socket: Socket, address: string, baseSent: number, baseReceived: number }

export function createTrafficMeter (): TrafficMeter {
  const open = new Set<Tracked>()
  let closedSent = 0
  let closedReceived = 0
  const closedByAddress = new Map<string, { sent: number, received: number }>()

  const noop = (): void => {}
  const metric = { update: noop, increment: noop, decrement: noop, reset: noop, timer: () => noop }
  const metrics = {
    trackMultiaddrConnection (maConn: { socket?: Socket, remoteAddr?: { toString(): string } }) {
      const socket = maConn.socket
      if (socket === undefined || typeof socket.bytesWritten !== 'number') return
      const tracked: Tracked = { socket, address: maConn.remoteAddr?.toString() ?? 'unknown', baseSent: 0, baseReceived: 0 }
      open.add(tracked)
      socket.once('close', () => {
        const sent = socket.bytesWritten - tracked.baseSent
        const received = socket.bytesRead - tracked.baseReceived
        closedSent += sent
        closedReceived += received
        const entry = closedByAddress.get(tracked.address) ?? { sent: 0, received: 0 }
        entry.sent += sent
        entry.received += received
        closedByAddress.set(tracked.address, entry)
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
    byRemoteAddress () {
      const totals = new Map([...closedByAddress].map(([a, t]) => [a, { ...t }]))
      for (const t of open) {
        const entry = totals.get(t.address) ?? { sent: 0, received: 0 }
        entry.sent += t.socket.bytesWritten - t.baseSent
        entry.received += t.socket.bytesRead - t.baseReceived
        totals.set(t.address, entry)
      }
      return totals
    },
    reset () {
      closedSent = 0
      closedReceived = 0
      closedByAddress.clear()
      for (const t of open) {
        t.baseSent = t.socket.bytesWritten
        t.baseReceived = t.socket.bytesRead
      }
    },
    metricsFactory: () => metrics
  }
}

/**
 * The bytes `meter` counts from now on (a job's share of its daemon's lifetime meter: a report
 * or `p2pmld metrics` of the second job must not include the first's). Assumes the meter is not
 * reset meanwhile.
 */
export function trafficSince(meter: TrafficCounts): TrafficCounts {
  const sent = meter.bytesSent()
  const received = meter.bytesReceived()
  const byAddress = meter.byRemoteAddress()
  return {
    bytesSent: () => meter.bytesSent() - sent,
    bytesReceived: () => meter.bytesReceived() - received,
    byRemoteAddress () {
      const now = meter.byRemoteAddress()
      for (const [address, t] of now) {
        const before = byAddress.get(address)
        if (before === undefined) continue
        t.sent -= before.sent
        t.received -= before.received
        if (t.sent === 0 && t.received === 0) now.delete(address)
      }
      return now
    }
  }
}
