/**
 * One job on one daemon over libp2p: the shared session core (session-core.ts: the runner,
 * membership messages, re-sends, leaves) on the gradient streams (or gossip), the membership
 * topic, job requests and state sync; plus what is libp2p's own: peers' addresses (learned from
 * heartbeats and membership announcements), dialing members and re-dialing lost ones.
 */
import type { JobConfig } from '../../config/job-config.js'
import { JOB_PROTOCOL, NOTHING_TO_JOIN, type ControlDecision, type JobControlAction, type JobInfo, type JoinReply, type MembershipState } from '../../protocols/job/job-protocol.js'
import { RemoteError, requestJson } from '../../protocols/request/json-request.js'
import { createGradientExchange, type ExchangeMode, type GradientExchange } from '../../protocols/gradient-exchange/index.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import type { PeerNode, TrafficCounts } from '../../protocols/node/index.js'
import { fetchSnapshot as fetchStateSnapshot, StateSyncRemoteError } from '../../protocols/state-sync/index.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { DigestAtStep, JobRunner, JobRunnerEvents, JobSnapshot } from '../job/job-runner.js'
import { admissionReply, notTheCoordinator } from './admission-reply.js'
import { BROKER_LINGER_AFTER_JOB_MS } from './amqp-job-session.js'
import { createBrokerFallback, type BrokerFallback, type BrokerFallbackOptions } from './broker-fallback.js'
import type { MembershipChange } from './membership-changes.js'
import { createRefusedMembers } from './refused-members.js'
import type { RejectionLog } from './rejection-log.js'
import { createSessionCore, type JobWire, type SessionJobOptions } from './session-core.js'
import { createStateDonors } from './state-donors.js'

/** The runner's events, plus membership changes (joined, left, evicted) as they take effect. */
export interface JobSessionEvents extends JobRunnerEvents {
  onMembershipChange?(change: MembershipChange): void
  /**
   * this peer left the job as it stopped (a clean leave from `step`); `others`: the members it
   * told, who carry the job on if there are at least `needed` (the aggregation rule's minimum);
   * `beforeStart`: it left while the job waited for its minPeers (the host waits on without it)
   */
  onLeft?(step: number, others: number, needed: number, beforeStart?: boolean): void
}

export interface JobSessionOptions extends SessionJobOptions {
  readonly node: PeerNode
  /** how gradients travel, overriding the job's `exchange` (tests) */
  readonly exchangeMode?: ExchangeMode
  readonly traffic?: TrafficCounts
  /** `transport: auto`: the broker that carries what libp2p cannot deliver to a member */
  readonly brokerFallback?: Omit<BrokerFallbackOptions, 'jobId' | 'selfId' | 'log' | 'faults'>
}

export interface NetworkCounters {
  readonly bytesSent: number
  readonly bytesReceived: number
  readonly messagesSent: number
  readonly messagesReceived: number
}

export interface PeerSighting {
  lastSeen: number
  addrs: string[]
}

/** what a joiner's admission gave besides the state (JobSession.startFromSnapshot) */
export interface JoinedWith {
  readonly provisional?: boolean
  readonly warmupDeadlineMs?: number
  readonly control?: ControlDecision
}

export interface JobSession {
  readonly jobId: string
  readonly config: JobConfig
  readonly rejections: RejectionLog
  readonly sightings: ReadonlyMap<string, PeerSighting>
  /** set up networking; `runner` exists after this for hosts and restored peers */
  start(): Promise<void>
  /** become a running member from a snapshot (joining peers) */
  /**
   * provisional: the state was taken unchecked (JobRunnerOptions.provisional); warmupDeadlineMs:
   * the admitting coordinator's step deadline (JoinReply.deadlineMs, JobRunnerOptions.warmupDeadlineMs);
   * control: its latest pause/resume decision (JoinReply.control), adopted before the first step
   */
  startFromSnapshot(snapshot: JobSnapshot, joined?: JoinedWith): void
  /**
   * a transport that carries the join itself (the broker): ask `coordinator`, fetch the state,
   * start; resolves with the state's step and epoch (from 0), whether the job had finished, and the
   * coordinator's membership (as the reply gave it)
   */
  join?(coordinator: string, signal: AbortSignal): Promise<{ step: number, epoch: number, finished: boolean, membership: MembershipState }>
  runner(): JobRunner | undefined
  info(): JobInfo
  /** coordinator: admit a peer (a job resumed from a checkpoint answers once it has its members) */
  admit(peerId: string, addrs: readonly string[], signal?: AbortSignal): Promise<JoinReply>
  memberLeaving(peerId: string, effectiveStep: number): void
  /** coordinator: a member asks to pause or resume the whole job */
  decideControl(action: JobControlAction): ControlDecision
  /** `requester`: the peer asking (a reconciling member waits for the members it read to read it) */
  snapshotFor(minStep: number, signal?: AbortSignal, requester?: string, range?: boolean): Promise<JobSnapshot>
  /** `requester`: the peer asking (a state taken unchecked is not vouched for to a joiner: session-core.ts) */
  digestFor(minStep: number, signal?: AbortSignal, requester?: string): Promise<DigestAtStep>
  adoptMembership(state: MembershipState, addresses?: Record<string, string[]>): void
  networkCounters(): NetworkCounters
  /** rejected inbound messages by reason: wire format (exchange) and content (codec, state); refusals the protocol expects are not here */
  rejectionCounts(): Record<string, number>
  /** inbound messages dropped as the protocol expects, by reason (an async job's stale gradients) */
  droppedCounts(): Record<string, number>
  /** clean leaves announced to this peer (and its own): peer -> first step without it; a member that left otherwise was evicted */
  announcedLeaves(): ReadonlyMap<string, number>
  /**
   * This peer's job finished and every other member of its last step announced it finished too:
   * none of them will ask this peer for the final state or digest any more
   */
  othersFinished(): boolean
  /** `transport: auto`: gradients this peer sent through the broker, by recipient (libp2p could not reach it) */
  gradientsThroughBroker?(): Readonly<Record<string, number>>
  /** why the session has not started its job yet, in words (e.g. the broker cannot be reached); undefined once it has, or when nothing holds it up */
  startStage?(): string | undefined
  /** sizes of the job's model and training set, and the model's layout fingerprint (layoutFingerprint), once the runtime is up */
  runtimeInfo(): { readonly parameterCount: number, readonly trainSamples: number, readonly layout: string } | undefined
  /** finish the step in progress, tell the others this peer leaves, stop */
  stop(options?: { leave?: boolean }): Promise<void>
}

const HEARTBEAT_MS = 1000

export function membershipTopic(jobId: string): string {
  return `/p2pmld/job/${jobId}/membership/1`
}

export function createJobSession(options: JobSessionOptions): JobSession {
  const { node, jobId, log } = options
  const selfId = node.peerId.toString()
  const topic = membershipTopic(jobId)
  let exchange: GradientExchange | undefined
  let heartbeat: NodeJS.Timeout | undefined
  const fallback: BrokerFallback | undefined = options.brokerFallback === undefined
    ? undefined
    : createBrokerFallback({ ...options.brokerFallback, jobId, selfId, log, faults: options.faults })

  const addressesOf = (peer: string): string[] => peer === selfId ? node.dialableAddrs() : core.sightings.get(peer)?.addrs ?? []
  const donors = createStateDonors(selfId)
  const addressBook = (membership: MembershipState): Record<string, string[]> => {
    const book: Record<string, string[]> = {}
    for (const m of membership.members) {
      const addrs = addressesOf(m.peerId)
      if (addrs.length > 0) book[m.peerId] = addrs.slice(0, 32)
    }
    return book
  }
  const members = (): string[] => [...(core.runner()?.membership().toSnapshot().members.map((m) => m.peerId) ?? []), ...core.sightings.keys()]
  const core = createSessionCore({
    ...options,
    // transport auto: the broker's queues go once the job is over (amqp-job-session.ts)
    events: fallback === undefined ? options.events : { ...options.events, onFinished: (result) => { options.events?.onFinished?.(result); fallback.afterJob(members, BROKER_LINGER_AFTER_JOB_MS) } },
    selfId,
    addressesOf,
    membershipExtras: (membership) => {
      // the coordinator's broker queues follow the members it announces
      fallback?.watchMembers(membership)
      return { addresses: addressBook(membership) }
    }
  })
  const { sightings, rejections } = core

  const publish = async (message: object): Promise<void> => {
    // with a broker fallback, on both: a member only the broker reaches hears it too
    const sent = fallback?.broadcast(message).catch((error: unknown) => {
      log.debug({ err: (error as Error).message }, 'could not broadcast through the broker')
    })
    await node.pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(message)))
    await sent
  }
  /** a gradient from either transport; with a fallback, one that came both ways is handed on once */
  const onGradient = (message: GradientMessage, from: string): void => {
    if (fallback === undefined || fallback.firstDelivery(from, message.step)) core.onGradient(message, from)
  }

  const onTopicMessage = (event: CustomEvent<{ topic: string, data: Uint8Array, type: string, from?: { toString(): string } }>): void => {
    const msg = event.detail
    if (msg.topic !== topic) return
    if (msg.type !== 'signed' || msg.from === undefined) {
      rejections.reject('unsigned', {}, 'unsigned membership message')
      return
    }
    const from = msg.from.toString()
    let message: unknown
    try {
      message = JSON.parse(new TextDecoder().decode(msg.data))
    } catch {
      rejections.reject('bad-json', { from }, 'membership message is not JSON')
      return
    }
    onAnnouncement(from, message)
  }

  /** a membership-topic message (gossip, or the broker's broadcast) from an authenticated peer */
  const onAnnouncement = (from: string, message: unknown): void => {
    const applied = core.onAnnouncement(from, message)
    if (applied === undefined) return
    const { announcement } = applied
    if (announcement.type === 'membership') {
      for (const [peer, addrs] of Object.entries(announcement.addresses ?? {})) {
        learnAddresses(peer, addrs)
        // kept for members.json until the member's own heartbeat says where it listens: a job
        // stopped a second after a member joined had not heard it yet and recorded no address
        const sighting = sightings.get(peer)
        if (peer !== selfId && addrs.length > 0 && (sighting === undefined || sighting.addrs.length === 0)) {
          sightings.set(peer, { lastSeen: sighting?.lastSeen ?? 0, addrs: addrs.slice(0, 32) })
        }
      }
      if (applied.adopted) fallback?.watchMembers(announcement.membership)
    } else if (announcement.type === 'heartbeat') {
      const sighting = sightings.get(from)
      if (sighting !== undefined) sighting.addrs = announcement.addrs.slice(0, 32)
      dialMemberIfNeeded(from, announcement.addrs)
    }
  }

  /** Remember where a peer listens, so dials by peer id (gradient streams) find it. */
  const learnAddresses = (peer: string, addrs: readonly string[]): void => {
    if (peer === selfId || addrs.length === 0) return
    const multiaddrs = addrs.flatMap((a) => {
      try {
        return [multiaddr(a)]
      } catch {
        return []
      }
    })
    node.libp2p.peerStore.merge(peerIdFromString(peer), { multiaddrs }).catch((error: unknown) => {
      log.debug({ peer, err: (error as Error).message }, 'could not record peer addresses')
    })
  }

  const dialMemberIfNeeded = (peer: string, addrs: readonly string[]): void => {
    learnAddresses(peer, addrs)
    const runner = core.runner()
    if (peer === selfId || runner === undefined || !runner.membership().isKnown(peer, runner.progress().step)) return
    void node.connectTo(peer, addrs)
  }

  // a member whose connection dropped (a cut link that healed) is dialed again: nothing else
  // would, and a peer the others evicted meanwhile would wait for a quorum, never hearing of it
  const redialing = new Set<string>()
  const redialLostMembers = (): void => {
    const runner = core.runner()
    if (runner === undefined) return
    const connected = new Set(node.connectedPeers())
    for (const peer of runner.membership().membersAt(runner.progress().step)) {
      if (peer === selfId || connected.has(peer) || redialing.has(peer)) continue
      redialing.add(peer)
      void node.connectTo(peer, sightings.get(peer)?.addrs ?? []).finally(() => redialing.delete(peer))
    }
  }

  /** `transport: auto`: a member this peer reaches through the broker for now (no libp2p connection) */
  const aroundLibp2p = (peer: string): boolean => fallback?.routesAround(peer) === true
  /** a libp2p request that got no answer from the member (refused, cut) is asked again through the broker */
  const orThroughBroker = async <T>(peer: string, signal: AbortSignal | undefined, direct: () => Promise<T>, around: (f: BrokerFallback) => Promise<T>): Promise<T> => {
    if (fallback === undefined) return await direct()
    if (aroundLibp2p(peer)) return await around(fallback)
    try {
      return await direct()
    } catch (error) {
      // the member answered (a refusal, a state it does not have): asking again elsewhere would not change it
      if (error instanceof RemoteError || error instanceof StateSyncRemoteError || signal?.aborted === true) throw error
      log.debug({ peer, err: (error as Error).message }, 'transport auto: request failed over libp2p; asking through the broker')
      return await around(fallback)
    }
  }

  /** members found gone (their port refuses connections): steps do not wait for them (JobWire.refusing); not with a broker fallback, which may reach them */
  const refused = createRefusedMembers({
    node,
    isMember: (peer) => {
      const runner = core.runner()
      return fallback === undefined && runner !== undefined && runner.membership().isMemberAt(peer, runner.progress().step)
    }
  })

  const wire: JobWire = {
    publishGradient: async (message, recipients) => {
      if (exchange === undefined) return { missed: recipients }
      const e = exchange
      if (fallback === undefined) {
        const sentAt = Date.now()
        const report = await e.publish(message, recipients)
        refused.notePush(report, sentAt)
        return report
      }
      return await fallback.publish(message, recipients, async (m, direct) => await e.publish(m, direct))
    },
    refusing: (peer) => refused.refusing(peer),
    broadcast: publish,
    request: async (peer, request, schema, requestOptions) => await orThroughBroker(peer, requestOptions?.signal,
      async () => await requestJson(node.libp2p, peerIdFromString(peer), JOB_PROTOCOL, request, schema, requestOptions),
      async (f) => await f.request(peer, request, schema, requestOptions)),
    fetchSnapshot: async (peer, minStep, fetchOptions) => await orThroughBroker(peer, fetchOptions?.signal,
      async () => await fetchStateSnapshot(node.libp2p, peerIdFromString(peer), { jobId, minStep }, { signal: fetchOptions?.signal }),
      async (f) => await f.fetchSnapshot(peer, minStep, fetchOptions))
  }

  return {
    ...core,
    async start() {
      await core.startRuntime((info) => log.warn(info, 'offloaded micro-batch failed after its retries: computed in process'))
      const parameterCount = core.parameterCount()
      exchange = createGradientExchange({
        mode: options.exchangeMode ?? (options.config.exchange === 'gossipsub' ? 'gossip' : 'stream'),
        // every member is dialed directly (membership heartbeats carry the addresses): the
        // sender's own publish reaches them all, and relaying would cost (P-1)x the bytes
        relay: false,
        node,
        jobId,
        expect: { parameterCount, codec: core.codec.id, payloadBytes: core.codec.encodedSize(parameterCount) },
        logger: log,
        faults: options.faults
      })
      exchange.onGradient(onGradient)
      exchange.onRepeat(core.onRepeat)
      await exchange.start()
      await fallback?.start({ core, expect: { jobId, parameterCount, codec: core.codec.id, payloadBytes: core.codec.encodedSize(parameterCount) }, onGradient, onAnnouncement, connected: (peer) => node.connectedPeers().includes(peer) })
      core.attach(wire)
      node.pubsub.addEventListener('message', onTopicMessage as never)
      refused.start()
      node.pubsub.subscribe(topic)
      heartbeat = setInterval(() => {
        publish({ v: 1, type: 'heartbeat', jobId, step: core.runner()?.progress().step ?? 0, addrs: node.dialableAddrs() }).catch(() => {})
        redialLostMembers()
      }, HEARTBEAT_MS)
      core.startIfOwned()
      const runner = core.runner()
      if (runner !== undefined) fallback?.watchMembers(runner.membership().toSnapshot() as MembershipState)
    },
    async admit(peerId: string, addrs: readonly string[], signal?: AbortSignal): Promise<JoinReply> {
      const r = core.runner()
      if (r === undefined) throw new Error('this peer is still joining the job')
      if (!r.isCoordinator()) throw notTheCoordinator(r.membership().coordinatorAt(r.progress().step), peerId)
      sightings.set(peerId, { lastSeen: Date.now(), addrs: [...addrs] })
      learnAddresses(peerId, addrs)
      // answered once the job starts where it waits to (the membership it starts with)
      // gone before a held reply (admission-reply.ts): not heard from, so not counted as back
      const admitted = await admissionReply(r, peerId, signal, () => { sightings.set(peerId, { lastSeen: 0, addrs: [...addrs] }) }).catch((error: unknown) => {
        // a finished job's runner, once stopped, admits no one (one that arrives as the job ends
        // is admitted and given the final state): the joiner said 'the job stopped' of it
        const result = r.result()
        throw result === undefined ? error : new Error(`job ${core.jobId} finished at step ${result.step}: ${NOTHING_TO_JOIN} (the next job submitted to its members is joined)`)
      })
      return { ...admitted, addresses: addressBook(admitted.membership), ...donors.next(r, admitted.effectiveStep, peerId) }
    },
    adoptMembership(state: MembershipState, addresses?: Record<string, string[]>) {
      for (const [peer, addrs] of Object.entries(addresses ?? {})) {
        sightings.set(peer, { lastSeen: sightings.get(peer)?.lastSeen ?? 0, addrs })
        learnAddresses(peer, addrs)
      }
      fallback?.watchMembers(state)
      core.runner()?.adoptMembership(state)
    },
    networkCounters(): NetworkCounters {
      const stats = exchange?.stats()
      const broker = fallback?.stats()
      return {
        bytesSent: (options.traffic?.bytesSent() ?? stats?.publishedBytes ?? 0) + (broker?.socketBytesWritten ?? 0),
        bytesReceived: (options.traffic?.bytesReceived() ?? 0) + (broker?.socketBytesRead ?? 0),
        messagesSent: (stats?.published ?? 0) + (broker?.published ?? 0),
        messagesReceived: (stats?.delivered ?? 0) + (broker?.delivered ?? 0)
      }
    },
    ...(fallback === undefined ? {} : { gradientsThroughBroker: () => fallback.gradientsSent() }),
    rejectionCounts(): Record<string, number> {
      const counts: Record<string, number> = { ...rejections.counts() }
      for (const [reason, n] of [...Object.entries(exchange?.stats().rejected ?? {}), ...Object.entries(fallback?.stats()?.rejected ?? {})]) {
        if (n > 0) counts[reason] = (counts[reason] ?? 0) + n
      }
      const badEnvelopes = fallback?.stats()?.badEnvelopes ?? 0
      if (badEnvelopes > 0) counts['bad-envelope'] = badEnvelopes
      return counts
    },
    droppedCounts: () => rejections.dropped(),
    async stop(stopOptions = {}) {
      if (heartbeat !== undefined) clearInterval(heartbeat)
      heartbeat = undefined
      const state = core.runner()?.state()
      await core.stopRunner(stopOptions.leave === true)
      await fallback?.stop(members(), state === 'finished' || state === 'failed')
      node.pubsub.removeEventListener('message', onTopicMessage as never)
      refused.stop()
      try {
        node.pubsub.unsubscribe(topic)
      } catch {}
      await exchange?.stop()
      await core.close()
    }
  }
}
