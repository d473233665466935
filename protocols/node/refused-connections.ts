/**
 * Inbound connections this node refused, counted by reason and logged at warn, at most once a
 * minute per remote address (with the count since), so a port scanner or a misconfigured peer
 * is seen without flooding the log. Reasons: 'not-allowlisted' (the Noise handshake named a peer
 * id that is not on the allowlist) and 'handshake-failed' (an inbound connection closed before
 * libp2p opened a connection on it: a wrong pre-shared key, or bytes that are not libp2p; seen
 * by inbound-handshakes.ts).
 */
import type { Logger } from 'pino'

export type RefusalReason = 'not-allowlisted' | 'handshake-failed'

export interface RefusedConnections {
  refuse(reason: RefusalReason, remoteAddress: string, detail?: object): void
  /** refusals since start, by reason */
  counts(): Record<string, number>
}

const LOG_EVERY_MS = 60_000
/** remote addresses remembered for rate limiting; the oldest is forgotten past this */
const MAX_TRACKED = 1024

export function createRefusedConnections (logger: Logger, hint: string, now: () => number = Date.now): RefusedConnections {
  const counts = new Map<string, number>()
  const lastLogged = new Map<string, { at: number, suppressed: number }>()
  return {
    refuse (reason, remoteAddress, detail = {}) {
      counts.set(reason, (counts.get(reason) ?? 0) + 1)
      // one remote host, whatever its source port
      const host = remoteAddress.replace(/\/tcp\/\d+.*$/, '')
      const last = lastLogged.get(host)
      if (last !== undefined && now() - last.at < LOG_EVERY_MS) {
        last.suppressed++
        return
      }
      lastLogged.delete(host)
      lastLogged.set(host, { at: now(), suppressed: 0 })
      if (lastLogged.size > MAX_TRACKED) lastLogged.delete(lastLogged.keys().next().value as string)
      logger.warn({ ...detail, remoteAddress, reason, refusedSinceLastLog: last?.suppressed ?? 0 },
        reason === 'not-allowlisted' ? 'refused a connection from a peer not on the allowlist' : `refused a connection: ${hint}`)
    },
    counts: () => Object.fromEntries(counts)
  }
}
