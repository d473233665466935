/**
 * Which job members are known gone because their port refuses connections (their host is up,
 * their process died), for JobWire.refusing: a step does not wait out its deadline for them. A
 * cut link or a host that is down drops packets and times out instead: never listed here, still
 * waited for. Found by a push of a gradient that every address refused, or by a dial right after
 * a member's last connection closed (the push just before a crash counted as reached). A member
 * leaves the list when a connection from it opens or a push reaches it; a refusal from a dial
 * begun before its latest connection opened is old news (a restarted process came back meanwhile).
 */
import type { PublishReport } from '../../protocols/gradient-exchange/index.js'
import { dialRefused, type PeerNode } from '../../protocols/node/index.js'

/** a member's last connection closed: a dial to it this long at most tells a dead process (refused) from a cut link (no answer) */
const DISCONNECT_PROBE_TIMEOUT_MS = 5_000

export interface RefusedMembersOptions {
  readonly node: Pick<PeerNode, 'libp2p' | 'connectedPeers'>
  /** whether `peer` is a member of the job now (only members are probed when they disconnect) */
  isMember(peer: string): boolean
}

export interface RefusedMembers {
  /** listens to the node's connection events */
  start(): void
  /** stops listening and forgets every member */
  stop(): void
  /** `peer`'s port refused connections and nothing since says it is back */
  refusing(peer: string): boolean
  /** what a push begun at `sentAt` (Date.now() ms) found: reached members are back, refused ones gone */
  notePush(report: Pick<PublishReport, 'reached' | 'refused'>, sentAt: number): void
}

export function createRefusedMembers(options: RefusedMembersOptions): RefusedMembers {
  const { node } = options
  const refusing = new Set<string>()
  /** when a connection to each peer last opened (Date.now() ms) */
  const connectedAt = new Map<string, number>()
  const markRefused = (peer: string, dialedAt: number): void => {
    if ((connectedAt.get(peer) ?? -Infinity) <= dialedAt && !node.connectedPeers().includes(peer)) refusing.add(peer)
  }
  const onConnect = (event: CustomEvent<{ toString(): string }>): void => {
    const peer = event.detail.toString()
    refusing.delete(peer)
    connectedAt.set(peer, Date.now())
  }
  const onDisconnect = (event: CustomEvent<{ toString(): string }>): void => {
    const peer = event.detail.toString()
    if (!options.isMember(peer)) return
    const dialedAt = Date.now()
    node.libp2p.dial(event.detail as never, { signal: AbortSignal.timeout(DISCONNECT_PROBE_TIMEOUT_MS) }).catch((error: unknown) => {
      if (dialRefused(error)) markRefused(peer, dialedAt)
    })
  }
  return {
    start() {
      node.libp2p.addEventListener('peer:connect', onConnect as never)
      node.libp2p.addEventListener('peer:disconnect', onDisconnect as never)
    },
    stop() {
      node.libp2p.removeEventListener('peer:connect', onConnect as never)
      node.libp2p.removeEventListener('peer:disconnect', onDisconnect as never)
      refusing.clear()
      connectedAt.clear()
    },
    refusing: (peer) => refusing.has(peer),
    notePush(report, sentAt) {
      for (const peer of report.reached) refusing.delete(peer)
      for (const peer of report.refused ?? []) markRefused(peer, sentAt)
    }
  }
}
