/**
 * The job's membership topic: heartbeat / join / leave messages on gossipsub. The author is
 * gossipsub's signed `from` and must be the peer the message speaks for. Members' heartbeats
 * carry their addresses; with `autoDial` a peer dials every member it is not connected to,
 * which turns the bootstrap star into a full mesh among the job's members.
 */
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { pino, type Logger } from 'pino'
import { decodeMembershipMessage, encodeMembershipMessage, type MembershipMessage, type MembershipMessageInput } from './messages/membership-message.js'
import { emptyRejectionCounts, type Decoded, type RejectReason } from './messages/rejection.js'
import type { PeerNode } from './node/create-peer-node.js'

export function membershipTopic (jobId: string): string {
  return `/p2pmld/job/${jobId}/membership/1.0.0`
}

export class MembershipError extends Error {
  override name = 'MembershipError'
}

export type MembershipHandler = (message: MembershipMessage, from: string) => void | Promise<void>

export interface MembershipTopicOptions {
  readonly node: PeerNode
  readonly jobId: string
  readonly logger?: Logger
  /** dial members we are not connected to when we hear from them (default true) */
  readonly autoDial?: boolean
  /** publish `heartbeat()`'s message every intervalMs while started */
  readonly heartbeat?: { readonly intervalMs: number, build(): MembershipMessageInput }
}

export interface MembershipTopic {
  start(): Promise<void>
  stop(): Promise<void>
  /** peerId must be this node's; resolves with the peers gossip sent it to directly */
  publish(message: MembershipMessageInput): Promise<{ recipients: string[] }>
  onMessage(handler: MembershipHandler): () => void
  /** peers currently subscribed to the topic (as gossipsub sees them) */
  subscribers(): string[]
  stats(): { received: number, rejected: Readonly<Record<RejectReason, number>> }
}

export function createMembershipTopic (options: MembershipTopicOptions): MembershipTopic {
  const { node, jobId } = options
  const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'membership', jobId })
  const topic = membershipTopic(jobId)
  const self = node.peerId.toString()
  const handlers = new Set<MembershipHandler>()
  const rejected = emptyRejectionCounts()
  const dialing = new Set<string>()
  let received = 0
  let running = false
  let timer: NodeJS.Timeout | undefined

  const check = (msg: Message): Decoded<MembershipMessage> => {
    if (msg.type !== 'signed') return { ok: false, reason: 'unsigned', detail: 'membership message without an author signature' }
    const decoded = decodeMembershipMessage(msg.data, jobId)
    if (!decoded.ok) return decoded
    const from = msg.from.toString()
    if (decoded.value.peerId !== from) return { ok: false, reason: 'sender-mismatch', detail: `message speaks for ${decoded.value.peerId} but was signed by ${from}` }
    return decoded
  }

  const validate = (_propagator: PeerId, msg: Message): TopicValidatorResult => {
    const result = check(msg)
    if (result.ok) return TopicValidatorResult.Accept
    rejected[result.reason]++
    logger.warn({ peer: msg.type === 'signed' ? msg.from.toString() : 'unknown', reason: result.reason, detail: result.detail }, 'rejected a membership message')
    return TopicValidatorResult.Reject
  }

  const maybeDial = (message: MembershipMessage): void => {
    if (options.autoDial === false || message.type === 'leave' || message.peerId === self || dialing.has(message.peerId)) return
    if (node.connectedPeers().includes(message.peerId)) return
    dialing.add(message.peerId)
    node.connectTo(message.peerId, message.addrs).then((ok) => {
      if (ok) logger.debug({ peer: message.peerId }, 'connected to job member')
    }, () => {}).finally(() => dialing.delete(message.peerId))
  }

  const onMessage = (event: CustomEvent<Message>): void => {
    const msg = event.detail
    if (!running || msg.topic !== topic) return
    const result = check(msg)
    if (!result.ok) return // counted by the validator
    received++
    maybeDial(result.value)
    const from = result.value.peerId
    for (const handler of handlers) {
      try {
        const r = handler(result.value, from)
        if (r instanceof Promise) r.catch((error: unknown) => logger.error({ peer: from, err: (error as Error).message }, 'membership handler failed'))
      } catch (error) {
        logger.error({ peer: from, err: (error as Error).message }, 'membership handler failed')
      }
    }
  }

  const api: MembershipTopic = {
    async start () {
      if (running) return
      running = true
      node.pubsub.topicValidators.set(topic, validate)
      node.pubsub.addEventListener('message', onMessage)
      node.pubsub.subscribe(topic)
      const hb = options.heartbeat
      if (hb !== undefined) {
        const beat = (): void => {
          // build() is the caller's code: a throw must not escape the timer
          Promise.resolve().then(async () => await api.publish(hb.build()))
            .catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'could not publish heartbeat'))
        }
        timer = setInterval(beat, hb.intervalMs)
        beat()
      }
    },
    async stop () {
      if (!running) return
      running = false
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      node.pubsub.removeEventListener('message', onMessage)
      node.pubsub.topicValidators.delete(topic)
      if (node.isStarted()) node.pubsub.unsubscribe(topic)
    },
    async publish (message) {
      if (message.peerId !== self) throw new MembershipError(`membership message for ${message.peerId} cannot be published by ${self}: receivers check the signature`)
      const result = await node.pubsub.publish(topic, encodeMembershipMessage(message))
      return { recipients: result.recipients.map((p) => p.toString()) }
    },
    onMessage (handler) {
      handlers.add(handler)
      return () => { handlers.delete(handler) }
    },
    subscribers: () => node.pubsub.getSubscribers(topic).map((p) => p.toString()),
    stats: () => ({ received, rejected: { ...rejected } })
  }
  return api
}
