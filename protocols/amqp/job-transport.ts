/**
 * The broker side of one job on one peer (the paper's queue design, done per receiver): a direct
 * exchange per job; for each sender this peer hears from, an exclusive queue holding only that
 * sender's latest gradient (x-max-length 1, overflow drop-head: a new gradient replaces an
 * unread one); a control queue for broadcasts (membership, heartbeats, leaves), requests and
 * replies (join, digest, leave) and snapshot chunks. Every message is a signed envelope
 * (envelope.ts); gradients are published once per recipient as mandatory messages with
 * publisher confirms, so a recipient without a queue yet is reported missed, never dropped
 * silently. Exclusive queues disappear with their connection (a SIGKILLed peer leaves none);
 * stop() deletes this peer's queues and, once no member is bound any more, the job's exchange.
 */
import { randomBytes } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import type { ConfirmChannel, ConsumeMessage } from 'amqplib'
import type { Logger } from 'pino'
import type { z } from 'zod'
import { createInboundPipeline } from '../gradient-exchange/inbound.js'
import type { FaultInjection } from '../gradient-exchange/fault-injector.js'
import type { ExchangeStats, GradientHandler, RepeatHandler } from '../gradient-exchange/types.js'
import { encodeGradientMessage, type GradientExpectations, type GradientMessage } from '../messages/gradient-message.js'
import type { TrainingSnapshot } from '../snapshot/index.js'
import { BrokerUnavailableError, type BrokerConnection } from './broker-connection.js'
import {
  BrokerRequestRefusedError, ControlHeaderSchema, DiscoverHeaderSchema, ReplyHeaderSchema,
  RequestHeaderSchema, SnapshotRequestHeaderSchema
} from './control-messages.js'
import { openEnvelope, sealEnvelope, type Envelope, type EnvelopeHeader } from './envelope.js'
import { createChannelTopology } from './channel-topology.js'
import { BROADCAST_KEY, controlKey, DISCOVERY_EXCHANGE, gradientKey, jobNames } from './names.js'
import { createPendingAnswers } from './pending-answers.js'
import { createSnapshotReceiver, snapshotMessageBodies } from './snapshot-transfer.js'

/** a gradient published while the broker is away waits this long for the connection to come back */
const RECONNECT_WAIT_MS = 30_000
/** below RabbitMQ's default max_message_size (128 MiB) with a wide margin */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
export interface AmqpJobTransportOptions {
  readonly connection: BrokerConnection
  readonly jobId: string
  readonly selfId: string
  /** this peer's libp2p key: signs every message */
  readonly key: PrivateKey
  readonly expect: GradientExpectations
  readonly logger: Logger
  readonly faults?: FaultInjection
  /** largest message published; snapshots are chunked below it (default 4 MiB) */
  readonly maxMessageBytes?: number
}

export type ControlHandler = (from: string, message: unknown) => void
export type RequestHandler = (from: string, request: unknown) => Promise<unknown>
export type SnapshotProvider = (from: string, minStep: number) => Promise<TrainingSnapshot>
/** answer a discovery question (undefined: stay silent, e.g. not the coordinator) */
export type DiscoveryHandler = (from: string) => unknown

export interface AmqpJobTransportStats extends ExchangeStats {
  readonly reconnects: number
  readonly unroutable: number
  /** inbound envelopes dropped (bad signature, wrong job, wrong sender for the queue) */
  readonly badEnvelopes: number
  readonly socketBytesWritten: number
  readonly socketBytesRead: number
}

export interface AmqpJobTransport {
  /** declare the topology and start consuming (the connection must be started) */
  start(): Promise<void>
  /**
   * Delete this peer's queues, and with `deleteJob` the queues between it and `peers` (members
   * that died leave theirs) and the job exchange once nobody is bound to it any more.
   */
  stop(options?: { deleteJob?: boolean, peers?: readonly string[] }): Promise<void>
  /** keep a latest-gradient queue for `sender` (idempotent; re-declared after reconnects; none after releaseGradientQueues) */
  watchSender(sender: string): void
  /** the job ended on this peer: delete its latest-gradient queues and declare no more */
  releaseGradientQueues(): Promise<void>
  /**
   * Publish to each recipient's queue of this peer's gradients. `missed`: recipients it did not
   * reach (the broker away, or no queue); `unroutable`, of those, the ones whose queue is gone
   * after it had been declared: auto-deleted when its consumer went, i.e. the recipient's broker
   * connection closed (its process died, or it lost the broker)
   */
  publishGradient(message: GradientMessage, recipients: readonly string[]): Promise<{ missed: string[], unroutable: string[] }>
  /**
   * Whether `peer` is gone from the broker: a mandatory 'probe' message to its control queue
   * came back unroutable (the queue is exclusive to its connection, so it went when that
   * connection closed: its process died, or it lost the broker). false when the queue is there;
   * throws BrokerUnavailableError while this peer has no broker connection. The peer ignores it.
   */
  probeGone(peer: string): Promise<boolean>
  onGradient(handler: GradientHandler): () => void
  /** duplicates, refused, still say where their sender is (RepeatHandler) */
  onRepeat(handler: RepeatHandler): () => void
  broadcast(message: unknown): Promise<void>
  onControl(handler: ControlHandler): void
  request<T>(peer: string, request: unknown, schema: z.ZodType<T>, options?: { timeoutMs?: number, signal?: AbortSignal }): Promise<T>
  onRequest(handler: RequestHandler): void
  fetchSnapshot(peer: string, minStep: number, options?: { signal?: AbortSignal, idleTimeoutMs?: number }): Promise<TrainingSnapshot>
  serveSnapshots(provider: SnapshotProvider): void
  onDiscovery(handler: DiscoveryHandler): void
  stats(): AmqpJobTransportStats
}

export function createAmqpJobTransport(options: AmqpJobTransportOptions): AmqpJobTransport {
  const { connection, jobId, selfId, key, logger } = options
  const names = jobNames(jobId)
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
  const pipeline = createInboundPipeline({ expect: options.expect, logger, faults: options.faults })
  const senders = new Set<string>()
  const { consumeOnce, declareRoute } = createChannelTopology(names)
  const answers = createPendingAnswers()
  /** the newest step whose gradient was published to each recipient */
  const newestStep = new Map<string, number>()
  let controlHandler: ControlHandler = () => {}
  let requestHandler: RequestHandler = async () => { throw new Error('this peer serves no requests yet') }
  let snapshotProvider: SnapshotProvider = async () => { throw new Error('this peer has no state to serve yet') }
  let discoveryHandler: DiscoveryHandler = () => undefined
  let unregister: (() => void) | undefined
  let running = false
  let published = 0
  let publishedBytes = 0
  let badEnvelopes = 0
  let gradientsReleased = false

  const header = (fields: Record<string, unknown> & { kind: string }): EnvelopeHeader => ({ ...fields, job: jobId, from: selfId })

  const declareGradientQueue = async (ch: ConfirmChannel, sender: string): Promise<void> => {
    await declareRoute(ch, selfId, sender)
    await consumeOnce(ch, names.gradientQueue(selfId, sender), (msg) => { void onGradientMessage(msg, sender) }, () => {
      // deleted by someone else while this peer still expects the sender's gradients (a session
      // of the sender's that stopped mid-job, a broker policy): declare it again, or the
      // sender's next gradients go to a queue nobody reads and each step waits out its deadline
      if (!running || gradientsReleased || !senders.has(sender)) return
      logger.warn({ sender }, 'the queue of a member\'s gradients was deleted on the broker: declared again')
      redeclareGradientQueue(sender)
    })
  }
  const redeclareGradientQueue = (sender: string): void => {
    if (!connection.connected()) return
    connection.withChannel(async (ch) => { await declareGradientQueue(ch, sender) }).catch((error: unknown) => {
      // re-declared with the rest of the topology when the connection comes back
      logger.debug({ sender, err: (error as Error).message }, 'could not declare a gradient queue yet')
    })
  }

  const declare = async (ch: ConfirmChannel): Promise<void> => {
    await ch.assertExchange(names.exchange, 'direct', { durable: false, autoDelete: false })
    await ch.assertExchange(DISCOVERY_EXCHANGE, 'fanout', { durable: false, autoDelete: true })
    const control = names.controlQueue(selfId)
    await ch.assertQueue(control, { exclusive: true, durable: false })
    await ch.bindQueue(control, names.exchange, controlKey(selfId))
    await ch.bindQueue(control, names.exchange, BROADCAST_KEY)
    await ch.bindQueue(control, DISCOVERY_EXCHANGE, '')
    await consumeOnce(ch, control, (msg) => { void onControlMessage(msg) })
    for (const sender of senders) await declareGradientQueue(ch, sender)
  }

  const open = async (msg: ConsumeMessage): Promise<Envelope | undefined> => {
    try {
      const envelope = await openEnvelope(msg.content)
      if (envelope.header.job !== jobId && envelope.header.kind !== 'discover') throw new Error(`message for job '${envelope.header.job}'`)
      return envelope
    } catch (error) {
      badEnvelopes++
      logger.warn({ err: (error as Error).message }, 'dropped a broker message')
      return undefined
    }
  }

  const onGradientMessage = async (msg: ConsumeMessage, sender: string): Promise<void> => {
    const envelope = await open(msg)
    if (envelope === undefined || !running) return
    if (envelope.header.kind !== 'gradient' || envelope.header.from !== sender) {
      badEnvelopes++
      logger.warn({ queueSender: sender, from: envelope.header.from, kind: envelope.header.kind }, 'dropped a message in a gradient queue that its sender did not sign')
      return
    }
    pipeline.accept(envelope.body, sender)
  }

  const send = async (routingKey: string, fields: Record<string, unknown> & { kind: string }, body?: Uint8Array, exchange = names.exchange): Promise<void> => {
    const bytes = await sealEnvelope(key, header(fields), body)
    await connection.publish(exchange, routingKey, bytes)
  }

  const reply = (to: string, id: string, outcome: { ok: true, result: unknown } | { ok: false, error: string }): void => {
    send(controlKey(to), { kind: 'reply', id, ...outcome }).catch((error: unknown) => {
      logger.debug({ to, err: (error as Error).message }, 'could not send a reply over the broker')
    })
  }

  const serveSnapshot = async (from: string, id: string, minStep: number): Promise<void> => {
    try {
      let index = 0
      for (const { body, last } of snapshotMessageBodies(await snapshotProvider(from, minStep), maxMessageBytes)) {
        await send(controlKey(from), { kind: 'snapshot-chunk', id, index: index++, last }, body)
      }
    } catch (error) {
      reply(from, id, { ok: false, error: (error as Error).message })
    }
  }

  const onControlMessage = async (msg: ConsumeMessage): Promise<void> => {
    const envelope = await open(msg)
    if (envelope === undefined || !running) return
    const from = envelope.header.from
    const h = envelope.header
    switch (h.kind) {
      case 'control': {
        const parsed = ControlHeaderSchema.safeParse(h)
        if (parsed.success && from !== selfId) controlHandler(from, parsed.data.msg)
        return
      }
      case 'request': {
        const parsed = RequestHeaderSchema.safeParse(h)
        if (!parsed.success) return
        const { id } = parsed.data
        requestHandler(from, parsed.data.req).then(
          (result) => reply(from, id, { ok: true, result }),
          (error: unknown) => reply(from, id, { ok: false, error: (error as Error).message })
        )
        return
      }
      case 'snapshot-request': {
        const parsed = SnapshotRequestHeaderSchema.safeParse(h)
        if (parsed.success) void serveSnapshot(from, parsed.data.id, parsed.data.minStep)
        return
      }
      case 'probe':
        // a member checking that this peer is still on the broker (probeGone): delivered is the answer
        return
      case 'reply':
      case 'snapshot-chunk': {
        answers.deliver(from, typeof h.id === 'string' ? h.id : '', envelope)
        return
      }
      case 'discover': {
        const parsed = DiscoverHeaderSchema.safeParse(h)
        if (!parsed.success || from === selfId) return
        const info = discoveryHandler(from)
        if (info === undefined) return
        sealEnvelope(key, { kind: 'discover-reply', job: jobId, from: selfId, id: parsed.data.id, info })
          .then(async (bytes) => await connection.publish('', parsed.data.replyTo, bytes))
          .catch((error: unknown) => logger.debug({ err: (error as Error).message }, 'could not answer a discovery question'))
        return
      }
      default:
        badEnvelopes++
    }
  }

  return {
    async start() {
      if (running) return
      running = true
      pipeline.start()
      unregister = connection.onTopology(declare)
      if (connection.connected()) await connection.withChannel(declare)
    },
    async stop(stopOptions = {}) {
      if (!running) return
      running = false
      pipeline.stop()
      unregister?.()
      answers.rejectAll(new Error('broker transport stopped'))
      if (!connection.connected()) return
      try {
        await connection.withScratchChannel(async (ch) => {
          const others = new Set([...senders, ...newestStep.keys(), ...(stopOptions.deleteJob === true ? stopOptions.peers ?? [] : [])])
          others.delete(selfId)
          for (const peer of others) {
            await ch.deleteQueue(names.gradientQueue(selfId, peer))
            // the way back: a member that died before consuming it leaves it behind
            if (stopOptions.deleteJob === true) await ch.deleteQueue(names.gradientQueue(peer, selfId))
          }
          await ch.deleteQueue(names.controlQueue(selfId))
        })
        if (stopOptions.deleteJob === true) {
          // fails (closing only this scratch channel) while another member is still bound
          await connection.withScratchChannel(async (ch) => { await ch.deleteExchange(names.exchange, { ifUnused: true }) }).catch(() => {})
        }
      } catch (error) {
        logger.debug({ err: (error as Error).message }, 'could not delete the job queues (they go with the connection)')
      }
    },
    async releaseGradientQueues() {
      gradientsReleased = true
      const gone = [...senders]
      senders.clear()
      if (!running || !connection.connected()) return
      try {
        await connection.withScratchChannel(async (ch) => {
          for (const sender of gone) await ch.deleteQueue(names.gradientQueue(selfId, sender))
        })
      } catch (error) {
        logger.debug({ err: (error as Error).message }, 'could not delete the gradient queues (they go with the connection)')
      }
    },
    watchSender(sender) {
      if (sender === selfId || senders.has(sender) || gradientsReleased) return
      senders.add(sender)
      if (running) redeclareGradientQueue(sender)
    },
    async publishGradient(message, recipients) {
      const bytes = await sealEnvelope(key, header({ kind: 'gradient' }), encodeGradientMessage(message))
      // the broker is away (restarting, a lost connection being re-made): wait for it, so the
      // gradient goes once it is back instead of being reported missed until the sender's few
      // re-sends run out (a restart takes longer than they last) and the step going on without it
      if (!connection.connected()) await connection.ready(AbortSignal.timeout(RECONNECT_WAIT_MS)).catch(() => {})
      const missed: string[] = []
      const unroutable: string[] = []
      // a queue keeps only the latest message: a late retry of an older step would push out a
      // newer gradient the recipient has not read yet, so it is not sent (the newer one supersedes it)
      const current = recipients.filter((r) => (newestStep.get(r) ?? -1) <= message.step)
      for (const r of current) newestStep.set(r, message.step)
      await Promise.all(current.map(async (recipient) => {
        try {
          await connection.withChannel(async (ch) => { await declareRoute(ch, recipient, selfId) })
          const outcome = await connection.publish(names.exchange, gradientKey(recipient, selfId), bytes, { mandatory: true })
          if (outcome === 'unroutable') {
            missed.push(recipient)
            unroutable.push(recipient)
          } else {
            published++
            publishedBytes += bytes.byteLength
          }
        } catch (error) {
          if (!(error instanceof BrokerUnavailableError) && connection.connected()) throw error
          missed.push(recipient)
        }
      }))
      return { missed, unroutable }
    },
    async probeGone(peer) {
      const bytes = await sealEnvelope(key, header({ kind: 'probe' }))
      return await connection.publish(names.exchange, controlKey(peer), bytes, { mandatory: true }) === 'unroutable'
    },
    onGradient: (handler) => pipeline.addHandler(handler),
    onRepeat: (handler) => pipeline.addRepeatHandler(handler),
    async broadcast(message) {
      await send(BROADCAST_KEY, { kind: 'control', msg: message })
    },
    onControl(handler) {
      controlHandler = handler
    },
    async request(peer, request, schema, requestOptions = {}) {
      const id = randomBytes(8).toString('hex')
      let answer: Envelope | undefined
      const wait = answers.await(peer, id, (e) => { answer = e; return true }, { timeoutMs: requestOptions.timeoutMs ?? 10_000, signal: requestOptions.signal })
      try {
        await send(controlKey(peer), { kind: 'request', id, req: request })
      } catch (error) {
        wait.cancel()
        await wait.done.catch(() => {})
        throw error
      }
      await wait.done
      const parsed = ReplyHeaderSchema.safeParse(answer?.header)
      if (!parsed.success) throw new BrokerRequestRefusedError(`malformed reply from ${peer}`)
      if (!parsed.data.ok) throw new BrokerRequestRefusedError(`${peer} refused: ${parsed.data.error ?? 'no reason given'}`)
      return schema.parse(parsed.data.result)
    },
    onRequest(handler) {
      requestHandler = handler
    },
    async fetchSnapshot(peer, minStep, fetchOptions = {}) {
      const id = randomBytes(8).toString('hex')
      const receiver = createSnapshotReceiver(peer)
      const wait = answers.await(peer, id, (e) => receiver.accept(e), { timeoutMs: fetchOptions.idleTimeoutMs ?? 60_000, signal: fetchOptions.signal, idle: true })
      try {
        await send(controlKey(peer), { kind: 'snapshot-request', id, minStep })
      } catch (error) {
        wait.cancel()
        await wait.done.catch(() => {})
        throw error
      }
      await wait.done
      const result = receiver.result()
      if (result === undefined) throw new BrokerRequestRefusedError(`no snapshot from ${peer}`)
      return result
    },
    serveSnapshots(provider) {
      snapshotProvider = provider
    },
    onDiscovery(handler) {
      discoveryHandler = handler
    },
    stats() {
      const c = connection.stats()
      return { ...pipeline.stats(published, publishedBytes), reconnects: Math.max(0, c.connects - 1), unroutable: c.unroutable, badEnvelopes, socketBytesWritten: c.socketBytesWritten, socketBytesRead: c.socketBytesRead }
    }
  }
}
