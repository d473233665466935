/**
 * One job on one daemon with the RabbitMQ broker as its only transport: the shared session core
 * (session-core.ts: the runner, membership messages, re-sends, leaves) with membership
 * announcements, heartbeats, leaves, join/digest requests and state sync carried as signed
 * messages on the broker (protocols/amqp). It implements the JobSession seam, so peer-daemon and
 * the control socket do not know which transport runs.
 */
import type { PrivateKey } from '@libp2p/interface'
import { createAmqpJobTransport, createBrokerConnection, describeBrokerFailure, type AmqpJobTransport, type BrokerConnection } from '../../protocols/amqp/index.js'
import { JobRequestSchema, JoinReplySchema, type JoinReply, type MembershipState } from '../../protocols/job/job-protocol.js'
import type { JobSnapshot } from '../job/job-runner.js'
import { fromTrainingSnapshot, toTrainingSnapshot } from '../job/snapshot-conversion.js'
import { budgetSignal } from '../job/budget-signal.js'
import { silenceSignal } from '../job/silence-signal.js'
import { admissionReply, notTheCoordinator } from './admission-reply.js'
import { BROKER_HEARTBEAT_MS, createBrokerGoneMembers } from './broker-gone-members.js'
import type { JobSession, JoinedWith, NetworkCounters } from './job-session.js'
import { createSessionCore, type JobWire, type SessionJobOptions } from './session-core.js'

export interface AmqpJobSessionOptions extends SessionJobOptions {
  readonly selfId: string
  /** signs every message this peer puts on the broker */
  readonly privateKey: PrivateKey
  readonly amqpUrl: string
}

const HEARTBEAT_MS = BROKER_HEARTBEAT_MS
const DIGEST_WAIT_MS = 25_000
/** a joiner whose reply is held sends heartbeats meanwhile: none for this long, it is gone (ms) */
const JOINER_SILENT_MS = 5 * HEARTBEAT_MS
/**
 * After the job finished here, the control queue stays this long (members still agreeing on the
 * final state ask through it, and a peer arriving at the end takes the final state), then this
 * peer's queues go; the gradient queues go at once.
 */
export const BROKER_LINGER_AFTER_JOB_MS = 30_000

export function createAmqpJobSession(options: AmqpJobSessionOptions): JobSession {
  const { jobId, log, selfId } = options
  let connection: BrokerConnection | undefined
  let transport: AmqpJobTransport | undefined
  let heartbeat: NodeJS.Timeout | undefined
  let linger: NodeJS.Timeout | undefined
  let closing: Promise<void> | undefined

  /**
   * Delete this peer's queues and disconnect; once. Only a job that is over here (finished or
   * failed, or the linger after it) also deletes the queues between this peer and the others and
   * the exchange: a session that stops mid-job (a held joiner told to ask again, a member
   * stopping to restart) would otherwise delete a member's queue of this peer's gradients, which
   * that member consumes, and the gradients of this peer's next session would go nowhere.
   */
  const closeBroker = (jobOver: boolean): Promise<void> => {
    closing ??= (async () => {
      if (heartbeat !== undefined) clearInterval(heartbeat)
      heartbeat = undefined
      goneMembers.stop()
      const r = core.runner()
      await transport?.stop({ deleteJob: jobOver, peers: [...(r?.membership().toSnapshot().members.map((m) => m.peerId) ?? []), ...sightings.keys()] })
      await connection?.stop()
    })()
    return closing
  }
  const afterJob = (): void => {
    void transport?.releaseGradientQueues()
    linger = setTimeout(() => { void closeBroker(true) }, BROKER_LINGER_AFTER_JOB_MS)
    linger.unref()
  }

  const watchMembers = (membership: MembershipState): void => {
    for (const m of membership.members) transport?.watchSender(m.peerId)
  }
  const core = createSessionCore({
    ...options,
    events: { ...options.events, onFinished: (result) => { options.events?.onFinished?.(result); afterJob() } },
    // the coordinator's queue follows the members it announces
    membershipExtras: (membership) => {
      watchMembers(membership)
      return {}
    }
  })
  const { sightings, rejections } = core

  const onControl = (from: string, message: unknown): void => {
    const applied = core.onAnnouncement(from, message)
    if (applied === undefined) return
    if (applied.announcement.type === 'membership' && applied.adopted) watchMembers(applied.announcement.membership)
    else if (applied.announcement.type === 'heartbeat') transport?.watchSender(from)
  }

  const onRequest = async (from: string, raw: unknown): Promise<unknown> => {
    const request = JobRequestSchema.parse(raw)
    if (request.type === 'info') return session.info()
    if (request.jobId !== jobId) throw new Error(`this peer runs job ${jobId}, not ${request.jobId}`)
    if (request.type === 'join') {
      // a reply held until the start ends when the joiner goes silent (killed: over the broker no
      // stream closes), or after the wait for the start (the joiner then asks again)
      const requestedAt = Date.now()
      const gone = silenceSignal(() => Math.max(requestedAt, sightings.get(from)?.lastSeen ?? 0), JOINER_SILENT_MS,
        `no heartbeat from the joiner on the broker for ${JOINER_SILENT_MS} ms: it went away`)
      const wait = budgetSignal(DIGEST_WAIT_MS, gone.signal)
      try {
        return await session.admit(from, [], wait.signal)
      } finally {
        wait.dispose()
        gone.dispose()
      }
    }
    if (request.type === 'control') return session.decideControl(request.action)
    if (request.type === 'digest') return await session.digestFor(request.step, AbortSignal.timeout(DIGEST_WAIT_MS), from)
    session.memberLeaving(from, request.effectiveStep)
    return { membership: session.info().membership }
  }

  /** members found gone from the broker (their queues went with their connection): JobWire.refusing */
  const goneMembers = createBrokerGoneMembers({
    selfId,
    members: () => {
      const r = core.runner()
      return r === undefined || r.state() === 'finished' || r.state() === 'failed' ? [] : r.membership().membersAt(r.progress().step)
    },
    lastHeard: (peer) => sightings.get(peer)?.lastSeen ?? 0,
    probe: async (peer) => {
      if (transport === undefined) throw new Error('the broker transport is stopped')
      return await transport.probeGone(peer)
    }
  })

  const wire: JobWire = {
    publishGradient: async (message, recipients) => {
      if (transport === undefined) return { missed: recipients }
      // a broker that is reconnecting misses it: the core re-sends while the step waits
      for (const r of recipients) transport.watchSender(r)
      const sentAt = Date.now()
      const report = await transport.publishGradient(message, recipients)
      goneMembers.noteUnroutable(report.unroutable, sentAt)
      return report
    },
    refusing: goneMembers.gone,
    broadcast: async (message) => await transport?.broadcast(message),
    request: async (peer, request, schema, requestOptions) => {
      if (transport === undefined) throw new Error('the broker transport is stopped')
      return await transport.request(peer, request, schema, requestOptions)
    },
    fetchSnapshot: async (peer, minStep, fetchOptions) => {
      if (transport === undefined) throw new Error('the broker transport is stopped')
      return await transport.fetchSnapshot(peer, minStep, fetchOptions)
    }
  }

  const session: JobSession = {
    ...core,
    startStage() {
      const failing = transport === undefined ? connection?.lastFailure() : undefined
      return failing === undefined
        ? undefined
        : describeBrokerFailure(options.amqpUrl, failing, ': retrying')
    },
    async start() {
      await core.startRuntime((info) => log.warn(info, 'offloaded micro-batch failed after its retries: computed in process'))
      const parameterCount = core.parameterCount()
      connection = createBrokerConnection({ url: options.amqpUrl, logger: log })
      // a re-made connection: the others' may be re-made too, their queues missing meanwhile
      connection.onTopology(async () => { goneMembers.connected() })
      await connection.start()
      transport = createAmqpJobTransport({
        connection,
        jobId,
        selfId,
        key: options.privateKey,
        expect: { jobId, parameterCount, codec: core.codec.id, payloadBytes: core.codec.encodedSize(parameterCount) },
        logger: log,
        faults: options.faults
      })
      transport.onGradient(core.onGradient)
      transport.onRepeat(core.onRepeat)
      transport.onControl(onControl)
      transport.onRequest(onRequest)
      transport.serveSnapshots(async (from, minStep) => toTrainingSnapshot(await session.snapshotFor(minStep, AbortSignal.timeout(120_000), from)))
      transport.onDiscovery(() => {
        const runner = core.runner()
        return runner?.isCoordinator() === true && runner.state() !== 'finished' && runner.state() !== 'failed' ? session.info() : undefined
      })
      await transport.start()
      core.attach(wire)
      heartbeat = setInterval(() => {
        transport?.broadcast({ v: 1, type: 'heartbeat', jobId, step: core.runner()?.progress().step ?? 0, addrs: [] }).catch(() => {})
      }, HEARTBEAT_MS)
      goneMembers.start()
      core.startIfOwned()
      const runner = core.runner()
      if (runner !== undefined) watchMembers(runner.membership().toSnapshot() as MembershipState)
    },
    async join(coordinator: string, signal: AbortSignal) {
      if (transport === undefined) throw new Error('start the session before joining')
      transport.watchSender(coordinator)
      const reply: JoinReply = await transport.request(coordinator, { v: 1, type: 'join', jobId, addrs: [] }, JoinReplySchema, { signal, timeoutMs: 30_000 })
      watchMembers(reply.membership)
      log.info({ effectiveStep: reply.effectiveStep, coordinator }, 'admitted to job over the broker: fetching its state')
      const snapshot = fromTrainingSnapshot(await transport.fetchSnapshot(coordinator, reply.effectiveStep, { signal }), `peer ${coordinator}`)
      signal.throwIfAborted()
      // from the coordinator alone, unchecked: not vouched for to joiners until f+1 members confirm it
      session.startFromSnapshot(snapshot, { provisional: true, ...(reply.deadlineMs === undefined ? {} : { warmupDeadlineMs: reply.deadlineMs }), ...(reply.control === undefined ? {} : { control: reply.control }) })
      session.adoptMembership(reply.membership)
      if (snapshot.meta.finished) log.info({ step: snapshot.step, admittedAt: reply.effectiveStep }, 'the job finished before this peer\'s admission took effect: took its final state')
      else log.info({ step: snapshot.step, epoch: snapshot.epoch + 1 }, 'joined job over the broker')
      return { step: snapshot.step, epoch: snapshot.epoch, finished: snapshot.meta.finished === true, membership: reply.membership }
    },
    startFromSnapshot(snapshot: JobSnapshot, joined?: JoinedWith) {
      core.startFromSnapshot(snapshot, joined)
      const runner = core.runner()
      if (runner !== undefined) watchMembers(runner.membership().toSnapshot() as MembershipState)
    },
    async admit(peerId: string, _addrs: readonly string[], signal?: AbortSignal): Promise<JoinReply> {
      const r = core.runner()
      if (r === undefined) throw new Error('this peer is still joining the job')
      if (!r.isCoordinator()) throw notTheCoordinator(r.membership().coordinatorAt(r.progress().step), peerId)
      sightings.set(peerId, { lastSeen: Date.now(), addrs: [] })
      transport?.watchSender(peerId)
      // answered once the job starts where it waits to (the membership it starts with)
      // gone before a held reply (admission-reply.ts): not heard from, so not counted as back
      return await admissionReply(r, peerId, signal, () => { sightings.set(peerId, { lastSeen: 0, addrs: [] }) })
    },
    adoptMembership(state: MembershipState) {
      watchMembers(state)
      core.runner()?.adoptMembership(state)
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
    droppedCounts: () => rejections.dropped(),
    async stop(stopOptions = {}) {
      if (heartbeat !== undefined) clearInterval(heartbeat)
      heartbeat = undefined
      goneMembers.stop()
      clearTimeout(linger)
      const state = core.runner()?.state()
      await core.stopRunner(stopOptions.leave === true)
      await closeBroker(state === 'finished' || state === 'failed')
      await core.close()
    }
  }
  return session
}
