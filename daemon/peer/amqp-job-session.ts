/**
 * One job on one daemon with the RabbitMQ broker as its only transport: the same runner as over
 * libp2p (daemon/job), with membership announcements, heartbeats, leaves, join/digest requests
 * and state sync carried as signed messages on the broker (protocols/amqp). It implements the
 * JobSession seam, so peer-daemon and the control socket do not know which transport runs.
 */
import type { PrivateKey } from '@libp2p/interface'
import type { JobConfig } from '../../config/job-config.js'
import { createCodec } from '../../ml/compress/index.js'
import type { JobDatasetLoader } from '../../ml/data/job-datasets.js'
import { createAmqpJobTransport, createBrokerConnection, type AmqpJobTransport, type BrokerConnection } from '../../protocols/amqp/index.js'
import type { FaultInjection } from '../../protocols/gradient-exchange/index.js'
import {
  ControlDecisionSchema, DigestReplySchema, JobRequestSchema, JoinReplySchema, LeaveReplySchema, MembershipAnnouncementSchema,
  type ControlDecision, type JobControlAction, type JobInfo, type JoinReply, type MembershipState
} from '../../protocols/job/job-protocol.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import { createJobRunner, type DigestAtStep, type JobRunner, type JobRunnerEvents, type JobSnapshot } from '../job/job-runner.js'
import { fromTrainingSnapshot, toTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import { createJobRuntime, type JobRuntime } from '../training/job-runtime.js'
import type { InboundGradient } from '../training/sync-trainer.js'
import type { JobSession, JobSessionEvents, NetworkCounters, PeerSighting } from './job-session.js'
import { createMembershipChangeTracker } from './membership-changes.js'
import { createRejectionLog } from './rejection-log.js'

export interface AmqpJobSessionOptions {
  readonly selfId: string
  /** signs every message this peer puts on the broker */
  readonly privateKey: PrivateKey
  readonly amqpUrl: string
  readonly jobId: string
  readonly config: JobConfig
  readonly log: Logger
  readonly computeThreads: number
  readonly host: boolean
  readonly snapshot?: JobSnapshot
  readonly selfNames?: readonly string[]
  readonly events?: JobSessionEvents
  readonly faults?: FaultInjection
  readonly loadDatasets?: JobDatasetLoader
}

const HEARTBEAT_MS = 1000
/** pauses before re-sending a gradient to members whose queue did not take it yet */
const SEND_RETRY_DELAYS_MS = [250, 500, 1000, 2000]
const DIGEST_REQUEST_TIMEOUT_MS = 30_000
const DIGEST_WAIT_MS = 25_000
const MAX_EARLY_GRADIENTS = 256

export function createAmqpJobSession(options: AmqpJobSessionOptions): JobSession {
  const { jobId, config, log, selfId } = options
  const rejections = createRejectionLog(log)
  const sightings = new Map<string, PeerSighting>()
  const codec = createCodec(config.compression)
  let runtime: JobRuntime | undefined
  let runner: JobRunner | undefined
  let connection: BrokerConnection | undefined
  let transport: AmqpJobTransport | undefined
  let heartbeat: NodeJS.Timeout | undefined
  let stopped = false
  let early: InboundGradient[] = []
  let parameterCount = 0
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

  const watchMembers = (membership: MembershipState): void => {
    for (const m of membership.members) transport?.watchSender(m.peerId)
  }

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

  const onControl = (from: string, message: unknown): void => {
    const parsed = MembershipAnnouncementSchema.safeParse(message)
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
        if (runner === undefined || runner.membership().isKnown(from, 0) || runner.membership().record(from) !== undefined) {
          runner?.adoptMembership(announcement.membership)
          watchMembers(announcement.membership)
        }
        break
      case 'heartbeat':
        transport?.watchSender(from)
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

  const onRequest = async (from: string, raw: unknown): Promise<unknown> => {
    const request = JobRequestSchema.parse(raw)
    if (request.type === 'info') return session.info()
    if (request.jobId !== jobId) throw new Error(`this peer runs job ${jobId}, not ${request.jobId}`)
    if (request.type === 'join') return await session.admit(from, [])
    if (request.type === 'control') return session.decideControl(request.action)
    if (request.type === 'digest') return await session.digestFor(request.step, AbortSignal.timeout(DIGEST_WAIT_MS))
    session.memberLeaving(from, request.effectiveStep)
    return { membership: session.info().membership }
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
            if (transport === undefined || stopped) return
            for (const r of pending) transport.watchSender(r)
            pending = (await transport.publishGradient(outbound, pending)).missed
            // a member whose queue for us is not declared yet (its first heartbeat from us is on
            // the way) or a broker that is reconnecting: later rather than never, while the step waits
            if (pending.length === 0 || delayMs === undefined) break
            await new Promise((resolve) => setTimeout(resolve, delayMs))
            if ((runner?.progress().step ?? 0) > message.step + 1) break
          }
          if (pending.length > 0) log.debug({ step: message.step, unreached: pending }, 'gradient not delivered to every member')
        },
        announceMembership: async (membership, step, phase) => {
          watchMembers(membership)
          await transport?.broadcast({ v: 1, type: 'membership', jobId, step, phase, membership })
        },
        queryDigest: async (peerId, minStep, signal) => {
          if (transport === undefined) throw new Error('the broker transport is stopped')
          return await transport.request(peerId, { v: 1, type: 'digest', jobId, step: minStep }, DigestReplySchema, { signal, timeoutMs: DIGEST_REQUEST_TIMEOUT_MS })
        },
        announceControl: async (decision) => {
          await transport?.broadcast({ v: 1, type: 'control', jobId, decision })
        },
        requestControl: async (coordinator, action) => {
          if (transport === undefined) throw new Error('the broker transport is stopped')
          return await transport.request(coordinator, { v: 1, type: 'control', jobId, action }, ControlDecisionSchema, { timeoutMs: DIGEST_REQUEST_TIMEOUT_MS })
        },
        fetchSnapshot: async (peerId, minStep) => {
          if (transport === undefined) throw new Error('the broker transport is stopped')
          return fromTrainingSnapshot(await transport.fetchSnapshot(peerId, minStep), `peer ${peerId}`)
        }
      }
    })
  }

  const startRunner = (snapshot: JobSnapshot | undefined): void => {
    runner = createRunner(snapshot)
    watchMembers(runner.membership().toSnapshot() as MembershipState)
    for (const g of early) runner.offerGradient(g)
    early = []
    runner.start()
  }

  const session: JobSession = {
    jobId,
    config,
    rejections,
    sightings,
    async start() {
      runtime = await createJobRuntime(config, { computeThreads: options.computeThreads, loadDatasets: options.loadDatasets })
      parameterCount = runtime.model.layout.totalSize
      connection = createBrokerConnection({ url: options.amqpUrl, logger: log })
      await connection.start()
      transport = createAmqpJobTransport({
        connection,
        jobId,
        selfId,
        key: options.privateKey,
        expect: { jobId, parameterCount, codec: codec.id, payloadBytes: codec.encodedSize(parameterCount) },
        logger: log,
        faults: options.faults
      })
      transport.onGradient(onGradient)
      transport.onControl(onControl)
      transport.onRequest(onRequest)
      transport.serveSnapshots(async (_from, minStep) => toTrainingSnapshot(await session.snapshotFor(minStep, AbortSignal.timeout(120_000))))
      transport.onDiscovery(() => runner?.isCoordinator() === true && runner.state() !== 'finished' && runner.state() !== 'failed' ? session.info() : undefined)
      await transport.start()
      heartbeat = setInterval(() => {
        transport?.broadcast({ v: 1, type: 'heartbeat', jobId, step: runner?.progress().step ?? 0, addrs: [] }).catch(() => {})
      }, HEARTBEAT_MS)
      if (options.host || options.snapshot !== undefined) startRunner(options.snapshot)
    },
    async join(coordinator: string, signal: AbortSignal) {
      if (transport === undefined) throw new Error('start the session before joining')
      transport.watchSender(coordinator)
      const reply: JoinReply = await transport.request(coordinator, { v: 1, type: 'join', jobId, addrs: [] }, JoinReplySchema, { signal, timeoutMs: 30_000 })
      watchMembers(reply.membership)
      log.info({ job: jobId, effectiveStep: reply.effectiveStep, coordinator }, 'admitted to job over the broker: fetching its state')
      const snapshot = fromTrainingSnapshot(await transport.fetchSnapshot(coordinator, reply.effectiveStep, { signal }), `peer ${coordinator}`)
      signal.throwIfAborted()
      session.startFromSnapshot(snapshot)
      session.adoptMembership(reply.membership)
      log.info({ job: jobId, step: snapshot.step, epoch: snapshot.epoch }, 'joined job over the broker')
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
        coordinator: { peerId: coordinator, addrs: [] },
        membership: { version: runner.membershipVersion(), ...runner.membership().toSnapshot() }
      }
    },
    async admit(peerId: string): Promise<JoinReply> {
      if (runner === undefined) throw new Error('this peer is still joining the job')
      if (!runner.isCoordinator()) throw new Error(`not the coordinator: send the join request to ${runner.membership().coordinatorAt(runner.progress().step)}`)
      sightings.set(peerId, { lastSeen: Date.now(), addrs: [] })
      transport?.watchSender(peerId)
      return runner.admit(peerId)
    },
    memberLeaving(peerId: string, effectiveStep: number) {
      noteLeave(peerId, effectiveStep)
    },
    decideControl(action: JobControlAction): ControlDecision {
      if (runner === undefined) throw new Error('this peer is still joining the job')
      return runner.control().decide(action)
    },
    announcedLeaves: () => leaveAnnounced,
    runtimeInfo: () => runtime === undefined ? undefined : { parameterCount, trainSamples: runtime.train.size },
    snapshotFor(minStep: number, signal?: AbortSignal): Promise<JobSnapshot> {
      if (runner === undefined) return Promise.reject(new Error('this peer has no state yet'))
      return runner.snapshotAt(minStep, signal)
    },
    digestFor(minStep: number, signal?: AbortSignal): Promise<DigestAtStep> {
      if (runner === undefined) return Promise.reject(new Error('this peer has no state yet'))
      return runner.digestAt(minStep, signal)
    },
    adoptMembership(state: MembershipState) {
      watchMembers(state)
      runner?.adoptMembership(state)
    },
    networkCounters(): NetworkCounters {
      const stats = transport?.stats()
      return {
        bytesSent: stats?.socketBytesWritten ?? 0,
        bytesReceived: stats?.socketBytesRead ?? 0,
        messagesSent: stats?.published ?? 0,
        messagesReceived: stats?.delivered ?? 0
      }
    },
    rejectionCounts(): Record<string, number> {
      const counts: Record<string, number> = { ...rejections.counts() }
      const stats = transport?.stats()
      for (const [reason, n] of Object.entries(stats?.rejected ?? {})) {
        if (n > 0) counts[reason] = (counts[reason] ?? 0) + n
      }
      if ((stats?.badEnvelopes ?? 0) > 0) counts['bad-envelope'] = stats?.badEnvelopes ?? 0
      return counts
    },
    async stop(stopOptions = {}) {
      stopped = true
      if (heartbeat !== undefined) clearInterval(heartbeat)
      heartbeat = undefined
      const r = runner
      if (r !== undefined) {
        const leaving = stopOptions.leave === true && r.state() === 'training'
        await r.stop({ finishStep: leaving })
        if (leaving && transport !== undefined) {
          const effectiveStep = r.progress().step
          leaveAnnounced.set(selfId, effectiveStep)
          await transport.broadcast({ v: 1, type: 'leave', jobId, effectiveStep }).catch(() => {})
          const t = transport
          const others = r.membership().membersAt(effectiveStep).filter((id) => id !== selfId)
          await Promise.allSettled(others.map(async (id) => await t.request(id, { v: 1, type: 'leave', jobId, effectiveStep }, LeaveReplySchema, { timeoutMs: 2000 })))
        }
      }
      await transport?.stop({ deleteJob: true, peers: [...(r?.membership().toSnapshot().members.map((m) => m.peerId) ?? []), ...sightings.keys()] })
      await connection?.stop()
      await runtime?.close()
    }
  }
  return session
}
