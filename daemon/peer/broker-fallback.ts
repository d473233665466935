/**
 * The broker side of `transport: auto`: a job runs over libp2p, and a member this peer cannot
 * reach over libp2p (dials refused or failing: a firewall, a NAT without a relay) gets its
 * gradients, requests and state transfers through the RabbitMQ broker instead, per member and
 * per direction. The runner and the session core do not know which way a message went.
 *
 * Routing: a recipient goes through the broker once a libp2p send to it missed, and libp2p is
 * tried again only when this peer holds a connection to it and DIRECT_RETRY_MS have passed (the
 * session re-dials lost members every heartbeat; a peer whose gater refuses us lets the dial
 * open on our side and closes it, so a connection alone proves nothing). Sends to one recipient
 * stay in step order whichever way they go: a libp2p push of step t that fails after step t+1
 * went through the broker would otherwise arrive second and be dropped by the latest-gradient
 * queue, and the recipient would wait out its deadline. Membership messages are broadcast on both
 * transports, so a member that only the broker reaches still hears them. Every member's
 * latest-gradient queue for this peer is consumed (protocols/amqp/job-transport.ts), and a
 * gradient that arrives both ways (a libp2p send reported missed that got through after all) is
 * handed to the runner once.
 */
import type { PrivateKey } from '@libp2p/interface'
import type { z } from 'zod'
import { createAmqpJobTransport, createBrokerConnection, type AmqpJobTransport, type AmqpJobTransportStats, type BrokerConnection } from '../../protocols/amqp/index.js'
import type { FaultInjection } from '../../protocols/gradient-exchange/index.js'
import { JobRequestSchema, type MembershipState } from '../../protocols/job/job-protocol.js'
import type { GradientExpectations, GradientMessage } from '../../protocols/messages/index.js'
import type { TrainingSnapshot } from '../../protocols/snapshot/index.js'
import { toTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import type { SessionCore } from './session-core.js'

/** how long start() waits for the broker before going on over libp2p alone (it keeps trying) */
const CONNECT_WAIT_MS = 3_000
/** a question over the broker waits this long for a member still finishing a step */
const DIGEST_WAIT_MS = 25_000
/** a member reached through the broker is tried over libp2p again after this long (if connected) */
const DIRECT_RETRY_MS = 30_000
/** (sender, step) pairs remembered to hand a gradient that came both ways to the runner once */
const DEDUP_STEPS = 64

export interface BrokerFallbackOptions {
  readonly amqpUrl: string
  readonly jobId: string
  readonly selfId: string
  /** signs every message this peer puts on the broker (the same key as its libp2p identity) */
  readonly privateKey: PrivateKey
  readonly log: Logger
  readonly faults?: FaultInjection
}

/** What the broker side hands on: gradients and announcements go through the session's own handlers. */
export interface BrokerFallbackWiring {
  readonly core: SessionCore
  readonly expect: GradientExpectations
  /** a gradient that passed the broker's checks (signature, job, size) */
  readonly onGradient: (message: GradientMessage, from: string) => void
  /** a broadcast (membership, heartbeat, leave, control) from an authenticated member */
  readonly onAnnouncement: (from: string, message: unknown) => void
  /** libp2p holds a connection to `peer` */
  readonly connected: (peer: string) => boolean
}

/** a libp2p send to some recipients: reports those it did not reach */
export type DirectSend = (message: GradientMessage, recipients: readonly string[]) => Promise<{ readonly reached: readonly string[], readonly missed: readonly string[] }>

export interface BrokerFallback {
  /** connect (waiting a few seconds at most: without a broker the job runs over libp2p alone) */
  start(wiring: BrokerFallbackWiring): Promise<void>
  /**
   * Delete this peer's queues and disconnect; once. With `jobOver` (the job finished or failed
   * here) also the queues between this peer and `peers` and the job's exchange once nobody is
   * bound; a mid-job stop leaves them to the members still using them (see amqp-job-session.ts).
   */
  stop(peers: readonly string[], jobOver: boolean): Promise<void>
  /** the job finished here: its gradient queues go now, the rest after lingerMs (see amqp-job-session.ts) */
  afterJob(peers: () => readonly string[], lingerMs: number): void
  /** a member this peer currently reaches through the broker, not over libp2p */
  routesAround(peer: string): boolean
  /**
   * Send a gradient to each recipient over libp2p (`direct`) or, for a member libp2p did not
   * reach, through the broker; per recipient in step order. Resolves with those neither reached.
   */
  publish(message: GradientMessage, recipients: readonly string[], direct: DirectSend): Promise<{ readonly missed: readonly string[] }>
  broadcast(message: object): Promise<void>
  request<T>(peer: string, request: unknown, schema: z.ZodType<T>, options?: { timeoutMs?: number, signal?: AbortSignal }): Promise<T>
  fetchSnapshot(peer: string, minStep: number, options?: { signal?: AbortSignal }): Promise<TrainingSnapshot>
  /** keep a latest-gradient queue from every member */
  watchMembers(membership: MembershipState): void
  /** a gradient from either transport: false when the other one delivered it already */
  firstDelivery(sender: string, step: number): boolean
  /** gradients sent through the broker, by recipient */
  gradientsSent(): Readonly<Record<string, number>>
  stats(): AmqpJobTransportStats | undefined
}

export function createBrokerFallback(options: BrokerFallbackOptions): BrokerFallback {
  const { jobId, selfId, log } = options
  let connection: BrokerConnection | undefined
  let transport: AmqpJobTransport | undefined
  /** members reached through the broker, and since when */
  const routed = new Map<string, number>()
  /** the last send to each recipient (settled): the next one starts after it */
  const tails = new Map<string, Promise<unknown>>()
  let connected: (peer: string) => boolean = () => false
  let linger: NodeJS.Timeout | undefined
  let stopping: Promise<void> | undefined
  const sentTo = new Map<string, number>()
  const delivered = new Map<string, Set<number>>()

  const routesAround = (peer: string): boolean => {
    const since = routed.get(peer)
    return since !== undefined && (!connected(peer) || Date.now() - since < DIRECT_RETRY_MS)
  }
  /** one gradient to one member through the broker: false when the broker did not take it */
  const sendAround = async (message: GradientMessage, recipient: string): Promise<boolean> => {
    const t = transport
    if (t === undefined) return false
    t.watchSender(recipient)
    const { missed } = await t.publishGradient(message, [recipient])
    if (missed.length > 0) return false
    sentTo.set(recipient, (sentTo.get(recipient) ?? 0) + 1)
    return true
  }

  const attached = (): AmqpJobTransport => {
    if (transport === undefined) throw new Error('the broker fallback is not started')
    return transport
  }

  return {
    async start(wiring) {
      const { core, expect, onGradient, onAnnouncement } = wiring
      connected = wiring.connected
      connection = createBrokerConnection({ url: options.amqpUrl, logger: log })
      transport = createAmqpJobTransport({ connection, jobId, selfId, key: options.privateKey, expect, logger: log, faults: options.faults })
      transport.onGradient(onGradient)
      transport.onRepeat(core.onRepeat)
      transport.onControl(onAnnouncement)
      transport.onRequest(async (from, raw) => {
        const request = JobRequestSchema.parse(raw)
        if (request.type === 'info') return core.info()
        if (request.jobId !== jobId) throw new Error(`this peer runs job ${jobId}, not ${request.jobId}`)
        // admission stays on libp2p: a joiner learns the members' addresses from the coordinator
        if (request.type === 'join') throw new Error('transport auto admits peers over libp2p: dial the coordinator')
        if (request.type === 'control') return core.decideControl(request.action)
        if (request.type === 'digest') return await core.digestFor(request.step, AbortSignal.timeout(DIGEST_WAIT_MS), from)
        core.memberLeaving(from, request.effectiveStep)
        return { membership: core.info().membership }
      })
      transport.serveSnapshots(async (from, minStep) => toTrainingSnapshot(await core.snapshotFor(minStep, AbortSignal.timeout(120_000), from)))
      // the topology is declared on every (re)connection, so the transport starts before the connection
      await transport.start()
      const connecting = connection.start()
      connecting.catch(() => {})
      let timer: NodeJS.Timeout | undefined
      await Promise.race([connecting, new Promise((resolve) => { timer = setTimeout(resolve, CONNECT_WAIT_MS) })]).catch(() => {})
      clearTimeout(timer)
      if (!connection.connected()) {
        log.warn({ broker: new URL(options.amqpUrl).host }, 'transport auto: the broker is not reachable yet; the job runs over libp2p alone until it is (is it running? --amqp-url / P2PMLD_AMQP_URL name it)')
      }
    },
    stop(peers, jobOver) {
      clearTimeout(linger)
      stopping ??= (async () => {
        await transport?.stop({ deleteJob: jobOver, peers })
        await connection?.stop()
      })()
      return stopping
    },
    afterJob(peers, lingerMs) {
      void transport?.releaseGradientQueues()
      linger = setTimeout(() => { void this.stop(peers(), true) }, lingerMs)
      linger.unref()
    },
    routesAround,
    async publish(sent, recipients, direct) {
      // a send to a member waits for the previous one to it, past this call's first await:
      // the payload is copied (the trainer reuses its buffer, JobWire.publishGradient)
      const message = { ...sent, payload: sent.payload.slice() }
      const outcomes = await Promise.all(recipients.map(async (r) => {
        const previous = tails.get(r)
        const send = (async (): Promise<boolean> => {
          await previous
          if (!routesAround(r)) {
            const report = await direct(message, [r])
            if (report.reached.includes(r)) {
              if (routed.delete(r)) log.info({ peer: r, step: message.step }, 'transport auto: member reachable over libp2p again')
              return true
            }
            if (!routed.has(r)) log.info({ peer: r, step: message.step }, 'transport auto: member not reachable over libp2p; its gradients go through the broker')
            routed.set(r, Date.now())
          }
          return await sendAround(message, r)
        })()
        tails.set(r, send.catch(() => false))
        return await send
      }))
      return { missed: recipients.filter((_, i) => !outcomes[i]) }
    },
    async broadcast(message) {
      await transport?.broadcast(message)
    },
    async request(peer, request, schema, requestOptions) {
      return await attached().request(peer, request, schema, requestOptions)
    },
    async fetchSnapshot(peer, minStep, fetchOptions) {
      return await attached().fetchSnapshot(peer, minStep, fetchOptions)
    },
    watchMembers(membership) {
      for (const m of membership.members) transport?.watchSender(m.peerId)
    },
    firstDelivery(sender, step) {
      let steps = delivered.get(sender)
      if (steps === undefined) {
        steps = new Set()
        delivered.set(sender, steps)
      }
      if (steps.has(step)) return false
      steps.add(step)
      for (const s of steps) {
        if (s < step - DEDUP_STEPS) steps.delete(s)
      }
      return true
    },
    gradientsSent: () => Object.fromEntries(sentTo),
    stats: () => transport?.stats()
  }
}
