/**
 * Gradient exchange over gossipsub: each message is published on the job's gradient topic,
 * whole when it fits in one gossip message, else in chunks (gossipsub silently drops 4 MiB+).
 * The sender is gossipsub's signed `from` (StrictSign), which must match the header's sender.
 * A topic validator rejects structurally bad messages, so they are not forwarded either;
 * with `relay: false` it also takes the valid ones itself and stops gossip from forwarding them.
 */
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { pino } from 'pino'
import { encodeGradientMessage } from '../messages/gradient-message.js'
import { createReassembler, isChunk, parseChunk, splitIntoChunks, MIN_CHUNK_BYTES, CHUNK_HEADER_BYTES } from './chunking.js'
import { createInboundPipeline } from './inbound.js'
import { gradientTopic, resolveMaxMessageBytes } from './limits.js'
import { GradientExchangeError, type GradientExchange, type GradientExchangeOptions, type PublishReport } from './types.js'

/** gossip messages up to this size go whole; well under gossipsub's 4 MiB outbound cap */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024
const GOSSIP_HARD_LIMIT = 4 * 1024 * 1024 - 64 * 1024

export interface GossipExchangeOptions extends GradientExchangeOptions {
  readonly chunkBytes?: number
  /** incomplete chunked messages are dropped after this long (default 30 s) */
  readonly reassemblyTimeoutMs?: number
  /**
   * true (default): gossipsub forwards every message through the mesh, so members the sender
   * is not connected to still get it, at ~(P-1)x the bytes in a full mesh. false: the sender's
   * flood publish is the only copy (receivers take it in the validator and tell gossipsub to
   * ignore it), 1x the bytes, but only directly connected members receive it.
   */
  readonly relay?: boolean
}

export function createGossipExchange (options: GossipExchangeOptions): GradientExchange {
  const { node, jobId } = options
  const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'gradient-exchange', mode: 'gossip', jobId })
  const topic = gradientTopic(jobId)
  const maxMessageBytes = resolveMaxMessageBytes(options)
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES
  if (chunkBytes < MIN_CHUNK_BYTES || chunkBytes + CHUNK_HEADER_BYTES > GOSSIP_HARD_LIMIT) {
    throw new RangeError(`chunkBytes ${chunkBytes} must be in [${MIN_CHUNK_BYTES}, ${GOSSIP_HARD_LIMIT - CHUNK_HEADER_BYTES}]`)
  }
  const inbound = createInboundPipeline({ expect: { jobId, ...options.expect }, logger, faults: options.faults })
  const reassembler = createReassembler({
    maxPendingPerSender: 4,
    maxPendingBytes: Math.max(4 * maxMessageBytes, 64 * 1024 * 1024),
    timeoutMs: options.reassemblyTimeoutMs ?? 30_000,
    onIncomplete (from, received, count) {
      inbound.counters.incomplete++
      logger.warn({ peer: from, received, count }, 'dropped an incomplete chunked gradient message')
    }
  })
  const relay = options.relay ?? true
  const self = node.peerId.toString()
  let running = false
  let published = 0
  let publishedBytes = 0

  /** full processing of one gossip message; false when it was rejected */
  const receive = (data: Uint8Array, from: string): boolean => {
    try {
      if (!isChunk(data)) return inbound.accept(data, from)
      const chunk = parseChunk(data, maxMessageBytes)
      if (!chunk.ok) {
        inbound.rejectWith(chunk.reason, from, chunk.detail)
        return false
      }
      const result = reassembler.add(from, chunk.value)
      if (!result.ok) {
        inbound.rejectWith(result.reason, from, result.detail)
        return false
      }
      return result.value === undefined || inbound.accept(result.value, from)
    } catch (error) {
      logger.error({ peer: from, err: (error as Error).message }, 'unexpected error handling a gossip gradient')
      return false
    }
  }

  const validate = (_propagator: PeerId, msg: Message): TopicValidatorResult => {
    if (msg.type !== 'signed') {
      inbound.rejectWith('unsigned', 'unknown', 'gossip message without an author signature')
      return TopicValidatorResult.Reject
    }
    const from = msg.from.toString()
    if (!relay) {
      if (!running) return TopicValidatorResult.Ignore
      return receive(msg.data, from) ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
    }
    if (isChunk(msg.data)) {
      const chunk = parseChunk(msg.data, maxMessageBytes)
      if (chunk.ok) return TopicValidatorResult.Accept
      inbound.rejectWith(chunk.reason, from, chunk.detail)
      return TopicValidatorResult.Reject
    }
    if (msg.data.length > maxMessageBytes) {
      inbound.rejectWith('too-large', from, `gossip message of ${msg.data.length} bytes exceeds ${maxMessageBytes}`)
      return TopicValidatorResult.Reject
    }
    return inbound.check(msg.data, from).ok ? TopicValidatorResult.Accept : TopicValidatorResult.Reject
  }

  const onMessage = (event: CustomEvent<Message>): void => {
    const msg = event.detail
    if (!running || !relay || msg.topic !== topic || msg.type !== 'signed') return
    receive(msg.data, msg.from.toString())
  }

  return {
    mode: 'gossip',
    async start () {
      if (running) return
      running = true
      inbound.start()
      node.pubsub.topicValidators.set(topic, validate)
      node.pubsub.addEventListener('message', onMessage)
      node.pubsub.subscribe(topic)
    },
    async stop () {
      if (!running) return
      running = false
      inbound.stop()
      reassembler.clear()
      node.pubsub.removeEventListener('message', onMessage)
      node.pubsub.topicValidators.delete(topic)
      if (node.isStarted()) node.pubsub.unsubscribe(topic)
    },
    async publish (message, recipients): Promise<PublishReport> {
      if (!running) throw new GradientExchangeError('the gossip gradient exchange is stopped; start() it before publishing')
      if (message.sender !== self) throw new GradientExchangeError(`message sender ${message.sender} is not this node (${self}); receivers would reject it`)
      const bytes = encodeGradientMessage(message)
      if (bytes.length > maxMessageBytes) {
        throw new GradientExchangeError(`gradient message of ${bytes.length} bytes exceeds the ${maxMessageBytes}-byte limit peers accept; raise maxMessageBytes on every peer or compress harder`)
      }
      const parts = bytes.length <= chunkBytes ? [bytes] : splitIntoChunks(bytes, chunkBytes)
      const wanted = new Set(recipients.filter((r) => r !== self))
      const reachedAll = new Map<string, number>()
      for (const part of parts) {
        const result = await node.pubsub.publish(topic, part)
        for (const peer of result.recipients) {
          const id = peer.toString()
          reachedAll.set(id, (reachedAll.get(id) ?? 0) + 1)
        }
      }
      const reached = [...wanted].filter((r) => reachedAll.get(r) === parts.length)
      const missed = [...wanted].filter((r) => reachedAll.get(r) !== parts.length)
      published++
      publishedBytes += bytes.length
      if (missed.length > 0) {
        logger.warn({ step: message.step, missed, parts: parts.length }, 'gossip did not send the gradient directly to every recipient (not subscribed or not connected?)')
      }
      return { mode: 'gossip', bytes: bytes.length, parts: parts.length, reached, missed }
    },
    onGradient: (handler) => inbound.addHandler(handler),
    onRepeat: (handler) => inbound.addRepeatHandler(handler),
    stats: () => inbound.stats(published, publishedBytes)
  }
}
