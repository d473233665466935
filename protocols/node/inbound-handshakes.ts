/**
 * Sees inbound connections refused before they became libp2p connections: a TCP connection
 * whose pre-shared-key or Noise handshake failed (another --psk-file, a peer without one, or
 * bytes that are not libp2p at all) closes without libp2p ever opening a connection on it.
 * libp2p hands every raw connection to its metrics component before the upgrade, so this wraps
 * that component: an inbound raw connection is remembered by remote address until libp2p opens
 * a connection from that address (`upgraded`) or the gater refuses it for another reason
 * (`settled`); one that closes still remembered is reported to `onFailed`.
 */
import type { MultiaddrConnection } from '@libp2p/interface'

export interface InboundHandshakes {
  /** the metrics component to hand libp2p (delegates everything to the wrapped one) */
  readonly metrics: () => unknown
  /** libp2p opened a connection from `remoteAddr`: its handshake succeeded */
  upgraded(remoteAddr: string): void
  /** the connection from `remoteAddr` was refused and reported elsewhere (the allowlist) */
  settled(remoteAddr: string): void
}

/** libp2p names an opened connection's remote address with /p2p/<peer id>; the raw one without */
const withoutPeerId = (address: string): string => address.split('/p2p/')[0]

type Tracker = Record<string, unknown> & { trackMultiaddrConnection?: (maConn: MultiaddrConnection) => void }

/** `inner`: the metrics component to wrap (e.g. a TrafficMeter's); `onFailed` gets the remote multiaddr */
export function watchInboundHandshakes (inner: Tracker, onFailed: (remoteAddr: string) => void): InboundHandshakes {
  const pending = new Set<string>()
  const metrics: Tracker = {
    ...inner,
    trackMultiaddrConnection (maConn: MultiaddrConnection) {
      inner.trackMultiaddrConnection?.(maConn)
      if (maConn.direction !== 'inbound') return
      const address = withoutPeerId(maConn.remoteAddr.toString())
      pending.add(address)
      maConn.addEventListener('close', () => {
        if (pending.delete(address)) onFailed(address)
      }, { once: true })
    }
  }
  return {
    metrics: () => metrics,
    upgraded: (remoteAddr) => { pending.delete(withoutPeerId(remoteAddr)) },
    settled: (remoteAddr) => { pending.delete(withoutPeerId(remoteAddr)) }
  }
}
