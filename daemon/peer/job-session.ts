/**
 * One job on one daemon: the runner plus everything networked around it: the gradient
 * streams, the membership topic (coordinator announcements, heartbeats, leaves), the answers
 * to job/join requests and the state served to joining peers.
 */
import type { JobConfig } from '../../config/job-config.js'
import { createCodec } from '../../ml/compress/index.js'
import { ControlDecisionSchema, DigestReplySchema, JOB_PROTOCOL, LeaveReplySchema, MembershipAnnouncementSchema, type ControlDecision, type JobControlAction, type JobInfo, type JoinReply, type MembershipState } from '../../protocols/job/job-protocol.js'
import { requestJson } from '../../protocols/request/json-request.js'
import { createGradientExchange, type ExchangeMode, type FaultInjection, type GradientExchange } from '../../protocols/gradient-exchange/index.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import type { PeerNode, TrafficMeter } from '../../protocols/node/index.js'
import { fetchSnapshot as fetchStateSnapshot } from '../../protocols/state-sync/index.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createJobRunner, type DigestAtStep, type JobRunner, type JobRunnerEvents, type JobSnapshot } from '../job/job-runner.js'
import { fromTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import type { InboundGradient } from '../training/sync-trainer.js'
import { createJobRuntime, type JobRuntime } from '../training/job-runtime.js'
import { createMembershipChangeTracker, type MembershipChange } from './membership-changes.js'
import { createRejectionLog, type RejectionLog } from './rejection-log.js'
import type { JobDatasetLoader } from '../../ml/data/job-datasets.js'
import type { OffloadConfig } from '../../config/offload-config.js'

/** The runner's events, plus membership changes (joined, left, evicted) as they take effect. */
export interface JobSessionEvents extends JobRunnerEvents {
  onMembershipChange?(change: MembershipChange): void
}

export interface JobSessionOptions {
  readonly node: PeerNode
  readonly jobId: string
  readonly config: JobConfig
  readonly log: Logger
  readonly computeThreads: number
  /** where gradients are computed (the daemon's `offload` setting; absent: in process) */
  readonly offload?: OffloadConfig
  readonly host: boolean
  readonly snapshot?: JobSnapshot
  readonly selfNames?: readonly string[]
  readonly events?: JobSessionEvents
  readonly faults?: FaultInjection
  /** how gradients travel: direct streams (default) or gossip */
  readonly exchangeMode?: ExchangeMode
  readonly traffic?: TrafficMeter
  readonly loadDatasets?: JobDatasetLoader
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

export interface JobSession {
  readonly jobId: string
  readonly config: JobConfig
  readonly rejections: RejectionLog
  readonly sightings: ReadonlyMap<string, PeerSighting>
  /** set up networking; `runner` exists after this for hosts and restored peers */
  start(): Promise<void>
  /** become a running member from a snapshot (joining peers) */
  startFromSnapshot(snapshot: JobSnapshot): void
  /** a transport that carries the join itself (the broker): ask `coordinator`, fetch the state, start */
  join?(coordinator: string, signal: AbortSignal): Promise<void>
  runner(): JobRunner | undefined
  info(): JobInfo
  /** coordinator: admit a peer (a job resumed from a checkpoint answers once it has its members) */
  admit(peerId: string, addrs: readonly string[], signal?: AbortSignal): Promise<JoinReply>
  memberLeaving(peerId: string, effectiveStep: number): void
  /** coordinator: a member asks to pause or resume the whole job */
  decideControl(action: JobControlAction): ControlDecision
  snapshotFor(minStep: number, signal?: AbortSignal): Promise<JobSnapshot>
  digestFor(minStep: number, signal?: AbortSignal): Promise<DigestAtStep>
  adoptMembership(state: MembershipState, addresses?: Record<string, string[]>): void
  networkCounters(): NetworkCounters
  /** rejected inbound messages by reason: wire format (exchange) and content (codec, state) */
  rejectionCounts(): Record<string, number>
  /** clean leaves announced to this peer (and its own): peer -> first step without it; a member that left otherwise was evicted */
  announcedLeaves(): ReadonlyMap<string, number>
  /** sizes of the job's model and training set, once the runtime is up */
  runtimeInfo(): { readonly parameterCount: number, readonly trainSamples: number } | undefined
  /** finish the step in progress, tell the others this peer leaves, stop */
  stop(options?: { leave?: boolean }): Promise<void>
}

const HEARTBEAT_MS = 1000
/** pauses before re-sending a gradient to members a send missed */
const SEND_RETRY_DELAYS_MS = [250, 500, 1000, 2000]
/** one digest question; a member still finishing its last step answers when it gets there */
const DIGEST_REQUEST_TIMEOUT_MS = 30_000
/** inbound gradients kept while a joining peer has no runner yet */
const MAX_EARLY_GRADIENTS = 256

export function membershipTopic(jobId: string): string {
  return `/p2pmld/job/${jobId}/membership/1`
}

export function createJobSession(options: JobSessionOptions): JobSession {
  const { node, jobId, config, log } = options
  const selfId = node.peerId.toString()
  const rejections = createRejectionLog(log)
  const sightings = new Map<string, PeerSighting>()
  const codec = createCodec(config.compression)
  const topic = membershipTopic(jobId)
  let runtime: JobRuntime | undefined
  let runner: JobRunner | undefined
  let exchange: GradientExchange | undefined
  let heartbeat: NodeJS.Timeout | undefined
  let stopped = false
  let early: InboundGradient[] = []
  let parameterCount = 0
  let payloadBytes = 0
  /** the step each peer last announced it leaves from: a member gone without one was evicted */
  const leaveAnnounced = new Map<string, number>()
  const memberChanges = createMembershipChangeTracker((peer) => leaveAnnounced.get(peer))
  const runnerEvents: JobRunnerEvents = {
    ...options.events,
    onStep: (report) => {
      options.events?.onStep?.(report)
      for (const change of memberChanges.observe(report.step, report.members)) options.events?.onMembershipChange?.(change)
    }
  }
  const noteLeave = (peerId: string, effectiveStep: number): void => {
    leaveAnnounced.set(peerId, effectiveStep)
    runner?.memberLeaving(peerId, effectiveStep)
  }

  const publish = async (message: unknown): Promise<void> => {
    await node.pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(message)))
  }

  /** The exchange has checked the wire format, job, count, codec and sender; decode and hand over. */
  const onGradient = (message: GradientMessage, from: string): void => {
    let gradient: Float32Array
    try {
      gradient = codec.decode(message.payload, parameterCount)
    } catch (error) {
      rejections.reject('payload', { from, step: message.step }, (error as Error).message)
      return
    }
    const inbound: InboundGradient = { step: message.step, sender: from, digest: Buffer.from(message.digest).toString('hex'), gradient }
    if (runner === undefined) {
      if (early.length < MAX_EARLY_GRADIENTS) early.push(inbound)
      return
    }
    if (!runner.offerGradient(inbound)) rejections.reject('stale', { from, step: message.step }, `gradient for step ${message.step} is outside the window this peer collects (now at step ${runner.progress().step})`)
  }

  const onTopicMessage = (event: CustomEvent<{ topic: string, data: Uint8Array, type: string, from?: { toString(): string } }>): void => {
    const msg = event.detail
    if (msg.topic !== topic) return
    if (msg.type !== 'signed' || msg.from === undefined) {
      rejections.reject('unsigned', {}, 'unsigned membership message')
      return
    }
    const from = msg.from.toString()
    let parsed
    try {
      parsed = MembershipAnnouncementSchema.safeParse(JSON.parse(new TextDecoder().decode(msg.data)))
    } catch {
      rejections.reject('bad-json', { from }, 'membership message is not JSON')
      return
    }
    if (!parsed.success) {
      rejections.reject('bad-membership', { from }, `invalid membership message: ${parsed.error.issues[0]?.message}`)
      return
    }
    const announcement = parsed.data
    if (announcement.jobId !== jobId) {
      rejections.reject('job', { from }, `membership message for job ${announcement.jobId}`)
      return
    }
    const sighting = sightings.get(from) ?? { lastSeen: 0, addrs: [] }
    sighting.lastSeen = Date.now()
    sightings.set(from, sighting)
    switch (announcement.type) {
      case 'membership':
        for (const [peer, addrs] of Object.entries(announcement.addresses ?? {})) learnAddresses(peer, addrs)
        if (runner === undefined || runner.membership().isKnown(from, 0) || runner.membership().record(from) !== undefined) {
          runner?.adoptMembership(announcement.membership)
        }
        break
      case 'heartbeat':
        sighting.addrs = announcement.addrs.slice(0, 32)
        dialMemberIfNeeded(from, announcement.addrs)
        break
      case 'leave':
        noteLeave(from, announcement.effectiveStep)
        break
      case 'control':
        // only a member decides for the job
        if (runner?.membership().isKnown(from, runner.progress().step) === true) runner.control().adopt(announcement.decision)
        break
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

  const addressBook = (membership: MembershipState): Record<string, string[]> => {
    const book: Record<string, string[]> = {}
    for (const m of membership.members) {
      const addrs = m.peerId === selfId ? node.dialableAddrs() : sightings.get(m.peerId)?.addrs
      if (addrs !== undefined && addrs.length > 0) book[m.peerId] = addrs.slice(0, 32)
    }
    return book
  }

  const dialMemberIfNeeded = (peer: string, addrs: readonly string[]): void => {
    learnAddresses(peer, addrs)
    if (peer === selfId || runner === undefined || !runner.membership().isKnown(peer, runner.progress().step)) return
    void node.connectTo(peer, addrs)
  }

  // a member whose connection dropped (a cut link that healed) is dialed again: nothing else
  // would, and a peer the others evicted meanwhile would wait for a quorum, never hearing of it
  const redialing = new Set<string>()
  const redialLostMembers = (): void => {
    if (runner === undefined) return
    const connected = new Set(node.connectedPeers())
    for (const peer of runner.membership().membersAt(runner.progress().step)) {
      if (peer === selfId || connected.has(peer) || redialing.has(peer)) continue
      redialing.add(peer)
      void node.connectTo(peer, sightings.get(peer)?.addrs ?? []).finally(() => redialing.delete(peer))
    }
  }

  const createRunner = (snapshot: JobSnapshot | undefined): JobRunner => {
    if (runtime === undefined) throw new Error('job runtime not ready')
    return createJobRunner({
      selfId,
      selfNames: options.selfNames,
      runtime,
      log,
      events: runnerEvents,
      host: options.host,
      snapshot,
      network: {
        sendGradient: async (message, recipients) => {
          const outbound = { jobId, sender: selfId, step: message.step, epoch: message.epoch, codec: codec.id, parameterCount, digest: Buffer.from(message.digest, 'hex'), payload: message.payload }
          let pending = recipients
          for (const delayMs of [...SEND_RETRY_DELAYS_MS, undefined]) {
            if (exchange === undefined || stopped) return
            pending = (await exchange.publish(outbound, pending)).missed
            // a member this peer cannot reach yet (e.g. its address is still on the way in a
            // heartbeat, or its link is re-dialed) gets the gradient late rather than never,
            // as long as the step may still be waiting for it
            if (pending.length === 0 || delayMs === undefined) break
            await new Promise((resolve) => setTimeout(resolve, delayMs))
            if ((runner?.progress().step ?? 0) > message.step + 1) break
          }
          if (pending.length > 0) log.debug({ step: message.step, unreached: pending }, 'gradient not delivered to every member')
        },
        announceMembership: async (membership, step, phase) => {
          await publish({ v: 1, type: 'membership', jobId, step, phase, membership, addresses: addressBook(membership) })
        },
        queryDigest: async (peerId, minStep, signal) => {
          return await requestJson(node.libp2p, peerIdFromString(peerId), JOB_PROTOCOL, { v: 1, type: 'digest', jobId, step: minStep }, DigestReplySchema, { signal, timeoutMs: DIGEST_REQUEST_TIMEOUT_MS })
        },
        announceControl: async (decision) => {
          await publish({ v: 1, type: 'control', jobId, decision })
        },
        requestControl: async (coordinator, action) => {
          return await requestJson(node.libp2p, peerIdFromString(coordinator), JOB_PROTOCOL, { v: 1, type: 'control', jobId, action }, ControlDecisionSchema, { timeoutMs: DIGEST_REQUEST_TIMEOUT_MS })
        },
        fetchSnapshot: async (peerId, minStep) => {
          const snap = await fetchStateSnapshot(node.libp2p, peerIdFromString(peerId), { jobId, minStep })
          return fromTrainingSnapshot(snap, `peer ${peerId}`)
        }
      }
    })
  }

  const startRunner = (snapshot: JobSnapshot | undefined): void => {
    runner = createRunner(snapshot)
    for (const g of early) runner.offerGradient(g)
    early = []
    runner.start()
  }

  return {
    jobId,
    config,
    rejections,
    sightings,
    async start() {
      runtime = await createJobRuntime(config, {
        computeThreads: options.computeThreads,
        loadDatasets: options.loadDatasets,
        offload: options.offload,
        onOffloadFallback: (info) => options.log.warn(info, 'offloaded micro-batch failed after its retries: computed in process')
      })
      parameterCount = runtime.model.layout.totalSize
      payloadBytes = codec.encodedSize(parameterCount)
      exchange = createGradientExchange({
        mode: options.exchangeMode ?? 'stream',
        node,
        jobId,
        expect: { parameterCount, codec: codec.id, payloadBytes },
        logger: log,
        faults: options.faults
      })
      exchange.onGradient(onGradient)
      await exchange.start()
      node.pubsub.addEventListener('message', onTopicMessage as never)
      node.pubsub.subscribe(topic)
      heartbeat = setInterval(() => {
        publish({ v: 1, type: 'heartbeat', jobId, step: runner?.progress().step ?? 0, addrs: node.dialableAddrs() }).catch(() => {})
        redialLostMembers()
      }, HEARTBEAT_MS)
      if (options.host || options.snapshot !== undefined) startRunner(options.snapshot)
    },
    startFromSnapshot(snapshot: JobSnapshot) {
      if (runner !== undefined) return
      startRunner(snapshot)
    },
    runner: () => runner,
    info(): JobInfo {
      if (runner === undefined) throw new Error('this peer is still joining the job: ask another member')
      const coordinator = runner.membership().coordinatorAt(runner.progress().step) ?? selfId
      const state = runner.state()
      return {
        jobId,
        config,
        phase: state === 'finished' || state === 'failed' ? 'finished' : state === 'waiting' ? 'waiting' : 'training',
        step: runner.progress().step,
        coordinator: { peerId: coordinator, addrs: coordinator === selfId ? node.dialableAddrs() : sightings.get(coordinator)?.addrs ?? [] },
        membership: { version: runner.membershipVersion(), ...runner.membership().toSnapshot() }
      }
    },
    async admit(peerId: string, addrs: readonly string[], signal?: AbortSignal): Promise<JoinReply> {
      const r = runner
      if (r === undefined) throw new Error('this peer is still joining the job')
      if (!r.isCoordinator()) {
        throw new Error(`not the coordinator: send the join request to ${r.membership().coordinatorAt(r.progress().step)}`)
      }
      sightings.set(peerId, { lastSeen: Date.now(), addrs: [...addrs] })
      learnAddresses(peerId, addrs)
      let admitted = r.admit(peerId)
      // a job resumed from a checkpoint waits for its members before it goes on: a member
      // admitted meanwhile would otherwise run the resumed step alone; answer once it starts
      while (r.state() === 'waiting' && r.progress().step > 0 && signal?.aborted !== true) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        admitted = { effectiveStep: admitted.effectiveStep, membership: { version: r.membershipVersion(), ...r.membership().toSnapshot() } }
      }
      return { ...admitted, addresses: addressBook(admitted.membership) }
    },
    memberLeaving(peerId: string, effectiveStep: number) {
      noteLeave(peerId, effectiveStep)
    },
    decideControl(action: JobControlAction): ControlDecision {
      if (runner === undefined) throw new Error('this peer is still joining the job')
      return runner.control().decide(action)
    },
    snapshotFor(minStep: number, signal?: AbortSignal): Promise<JobSnapshot> {
      if (runner === undefined) return Promise.reject(new Error('this peer has no state yet'))
      return runner.snapshotAt(minStep, signal)
    },
    digestFor(minStep: number, signal?: AbortSignal): Promise<DigestAtStep> {
      if (runner === undefined) return Promise.reject(new Error('this peer has no state yet'))
      return runner.digestAt(minStep, signal)
    },
    adoptMembership(state: MembershipState, addresses?: Record<string, string[]>) {
      for (const [peer, addrs] of Object.entries(addresses ?? {})) {
        sightings.set(peer, { lastSeen: sightings.get(peer)?.lastSeen ?? 0, addrs })
        learnAddresses(peer, addrs)
      }
      runner?.adoptMembership(state)
    },
    networkCounters(): NetworkCounters {
      const stats = exchange?.stats()
      return {
        bytesSent: options.traffic?.bytesSent() ?? stats?.publishedBytes ?? 0,
        bytesReceived: options.traffic?.bytesReceived() ?? 0,
        messagesSent: stats?.published ?? 0,
        messagesReceived: stats?.delivered ?? 0
      }
    },
    rejectionCounts(): Record<string, number> {
      const counts: Record<string, number> = { ...rejections.counts() }
      for (const [reason, n] of Object.entries(exchange?.stats().rejected ?? {})) {
        if (n > 0) counts[reason] = (counts[reason] ?? 0) + n
      }
      return counts
    },
    announcedLeaves: () => leaveAnnounced,
    runtimeInfo: () => runtime === undefined ? undefined : { parameterCount, trainSamples: runtime.train.size },
    async stop(stopOptions = {}) {
      stopped = true
      if (heartbeat !== undefined) clearInterval(heartbeat)
      heartbeat = undefined
      const r = runner
      if (r !== undefined) {
        const leaving = stopOptions.leave === true && r.state() === 'training'
        await r.stop({ finishStep: leaving })
        if (leaving) {
          // the step in progress was finished (or, past the timeout, abandoned): the others stop
          // counting on this peer from the next step it would run
          const effectiveStep = r.progress().step
          leaveAnnounced.set(selfId, effectiveStep)
          await publish({ v: 1, type: 'leave', jobId, effectiveStep }).catch(() => {})
          // a gossip message can still be queued when the node stops right after (seen: the
          // others waited out deadlines and evicted a host that had left); a request is answered
          // only once the member has recorded the leave
          const others = r.membership().membersAt(effectiveStep).filter((id) => id !== selfId)
          await Promise.allSettled(others.map(async (id) => await requestJson(node.libp2p, peerIdFromString(id), JOB_PROTOCOL,
            { v: 1, type: 'leave', jobId, effectiveStep }, LeaveReplySchema, { timeoutMs: 2000 })))
        }
      }
      node.pubsub.removeEventListener('message', onTopicMessage as never)
      try {
        node.pubsub.unsubscribe(topic)
      } catch {}
      await exchange?.stop()
      await runtime?.close()
    }
  }
}
