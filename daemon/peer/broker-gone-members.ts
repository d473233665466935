/**
 * Which job members are known gone from the broker, for JobWire.refusing in a `transport: amqp`
 * job: a step does not wait out its deadline for them. A member's control queue is exclusive to
 * its broker connection and its gradient queues auto-delete with their consumer, so once that
 * connection closed (its process died, or it lost the broker) a gradient published to it or a
 * probe (a mandatory message to its control queue) comes back unroutable. Such a finding counts
 * only for a member silent for PROBE_SILENT_MS (every member heartbeats each second; a connection
 * that blipped and came back is heard again within about a second) and not while this peer's own
 * connection was re-made within RECONNECT_GRACE_MS (after a broker restart every member
 * reconnects, with up to 5 s of backoff, and re-declares its queues). A member heard after the
 * finding is waited for again.
 */

/** every member broadcasts a heartbeat this often on the broker (ms) */
export const BROKER_HEARTBEAT_MS = 1000
/** a member not heard from for this long is probed, and only such a one can be found gone (ms) */
export const PROBE_SILENT_MS = BROKER_HEARTBEAT_MS + 200
/** how often the members' silence is looked at (ms) */
const PROBE_CHECK_MS = 250
/** after this peer's connection is re-made, findings wait this long: the others are reconnecting too (ms) */
export const RECONNECT_GRACE_MS = 8_000

export interface BrokerGoneMembersOptions {
  readonly selfId: string
  /** the members to watch now (none when no job runs here or it is over) */
  members(): readonly string[]
  /** when `peer` was last heard from on the broker (Date.now() ms; 0 when never) */
  lastHeard(peer: string): number
  /** whether `peer`'s control queue is gone (AmqpJobTransport.probeGone); throws while this peer has no broker */
  probe(peer: string): Promise<boolean>
}

export interface BrokerGoneMembers {
  /** starts probing silent members */
  start(): void
  /** stops probing and forgets every finding */
  stop(): void
  /** this peer's broker connection was made (the first time) or re-made */
  connected(): void
  /** a gradient published at `sentAt` (Date.now() ms) came back unroutable from these members */
  noteUnroutable(peers: readonly string[], sentAt: number): void
  /** `peer` was found gone and has not been heard from since */
  gone(peer: string): boolean
}

export function createBrokerGoneMembers(options: BrokerGoneMembersOptions): BrokerGoneMembers {
  const goneSince = new Map<string, number>()
  const probing = new Set<string>()
  let connects = 0
  let reconnectedAt = -Infinity
  let timer: NodeJS.Timeout | undefined
  const gone = (peer: string): boolean => {
    const since = goneSince.get(peer)
    return since !== undefined && options.lastHeard(peer) < since
  }
  const note = (peer: string, at: number): void => {
    if (at - reconnectedAt < RECONNECT_GRACE_MS || at - options.lastHeard(peer) < PROBE_SILENT_MS) return
    goneSince.set(peer, at)
  }
  const probeSilent = (): void => {
    const now = Date.now()
    if (now - reconnectedAt < RECONNECT_GRACE_MS) return
    for (const peer of options.members()) {
      if (peer === options.selfId || probing.has(peer) || gone(peer) || now - options.lastHeard(peer) < PROBE_SILENT_MS) continue
      probing.add(peer)
      options.probe(peer).then((isGone) => {
        if (isGone) note(peer, now)
      }, () => { /* no broker here now: nothing learned */ }).finally(() => probing.delete(peer))
    }
  }
  return {
    start() {
      timer ??= setInterval(probeSilent, PROBE_CHECK_MS)
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      goneSince.clear()
    },
    connected() {
      if (++connects > 1) reconnectedAt = Date.now()
    },
    noteUnroutable(peers, sentAt) {
      for (const peer of peers) note(peer, sentAt)
    },
    gone
  }
}
