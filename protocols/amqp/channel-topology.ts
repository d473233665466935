/**
 * What one job peer has declared and consumes on each broker channel. A channel re-made after a
 * reconnect starts with nothing (amqplib's consumers and RabbitMQ's exclusive queues go with the
 * old one), so declarations and consumers are remembered per channel, each made once.
 */
import type { ConfirmChannel, ConsumeMessage } from 'amqplib'
import { gradientKey, type JobNames } from './names.js'

/**
 * Latest-gradient queues are declared by both ends (the sender before its first publish, so a
 * gradient never finds no queue because the receiver has not declared it yet): shared, deleted
 * when their consumer goes (auto-delete), and expired after 10 minutes without one (a receiver
 * that died before it ever consumed). x-max-length 1 with drop-head: a new gradient replaces an
 * unread one (the paper's queue design).
 */
export const GRADIENT_QUEUE_OPTIONS = {
  exclusive: false,
  durable: false,
  autoDelete: true,
  arguments: { 'x-max-length': 1, 'x-overflow': 'drop-head', 'x-expires': 600_000 }
}

export interface ChannelTopology {
  /** consume `queue` on `ch` once (noAck); `onCancelled` runs when the broker cancels it (the queue was deleted), after which it may be consumed again */
  consumeOnce(ch: ConfirmChannel, queue: string, handler: (msg: ConsumeMessage) => void, onCancelled?: () => void): Promise<void>
  /** declare and bind the queue of gradients from `sender` to `receiver` (once per channel; again after a failure or a cancel) */
  declareRoute(ch: ConfirmChannel, receiver: string, sender: string): Promise<void>
}

export function createChannelTopology(names: JobNames): ChannelTopology {
  const consuming = new WeakMap<ConfirmChannel, Set<string>>()
  const declaredOn = new WeakMap<ConfirmChannel, Map<string, Promise<void>>>()
  return {
    async consumeOnce(ch, queue, handler, onCancelled) {
      let set = consuming.get(ch)
      if (set === undefined) {
        set = new Set()
        consuming.set(ch, set)
      }
      if (set.has(queue)) return
      set.add(queue)
      try {
        await ch.consume(queue, (msg) => {
          if (msg !== null) return handler(msg)
          set.delete(queue)
          declaredOn.get(ch)?.delete(queue)
          onCancelled?.()
        }, { noAck: true })
      } catch (error) {
        set.delete(queue)
        throw error
      }
    },
    async declareRoute(ch, receiver, sender) {
      let declared = declaredOn.get(ch)
      if (declared === undefined) {
        declared = new Map()
        declaredOn.set(ch, declared)
      }
      const queue = names.gradientQueue(receiver, sender)
      let done = declared.get(queue)
      if (done === undefined) {
        done = (async () => {
          await ch.assertQueue(queue, GRADIENT_QUEUE_OPTIONS)
          await ch.bindQueue(queue, names.exchange, gradientKey(receiver, sender))
        })()
        declared.set(queue, done)
        done.catch(() => declared.delete(queue))
      }
      await done
    }
  }
}
