/**
 * Gradient exchange by direct push: the sender opens a stream to each member and writes one
 * length-prefixed message. Every byte crosses each link once (gossip would forward every
 * message to every mesh peer again), and there is no size limit short of maxMessageBytes.
 * The sender's identity is the stream's authenticated remote peer, never a header field.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import * as lp from 'it-length-prefixed'
import { createRng, type Rng } from '../../ml/core/rng.js'

export const GRADIENT_PROTOCOL = '/p2pmld/gradient/1.0.0'
const SEND_ATTEMPTS = 4

/** Test-only: lose or delay a fraction of inbound gradient messages. */
export interface FaultInjection {
  readonly dropFraction: number
  readonly delayMs?: number
  readonly delayFraction?: number
  readonly seed?: number
}

export interface ExchangeCounters {
  bytesSent: number
  messagesSent: number
  sendFailures: number
  bytesReceived: number
  messagesReceived: number
  droppedByFaultInjection: number
}

export interface GradientStreamsOptions {
  readonly node: Libp2p
  readonly maxMessageBytes: number
  onMessage(bytes: Uint8Array, from: string): void
  readonly log: { debug(obj: object, msg: string): void, warn(obj: object, msg: string): void }
  readonly faults?: FaultInjection
  readonly sendTimeoutMs?: number
}

export interface GradientStreams {
  start(): Promise<void>
  stop(): Promise<void>
  /** push to every recipient; resolves with the ids that received it */
  send(bytes: Uint8Array, recipients: readonly string[]): Promise<string[]>
  readonly counters: Readonly<ExchangeCounters>
}

export function createGradientStreams(options: GradientStreamsOptions): GradientStreams {
  const { node, log } = options
  const counters: ExchangeCounters = { bytesSent: 0, messagesSent: 0, sendFailures: 0, bytesReceived: 0, messagesReceived: 0, droppedByFaultInjection: 0 }
  const faultRng: Rng | undefined = options.faults === undefined ? undefined : createRng(options.faults.seed ?? 1)
  const timers = new Set<NodeJS.Timeout>()
  let running = false

  const deliver = (bytes: Uint8Array, from: string): void => {
    const faults = options.faults
    if (faults !== undefined && faultRng !== undefined) {
      if (faultRng.nextFloat() < faults.dropFraction) {
        counters.droppedByFaultInjection++
        return
      }
      if (faults.delayMs !== undefined && faultRng.nextFloat() < (faults.delayFraction ?? 0)) {
        const timer = setTimeout(() => {
          timers.delete(timer)
          if (running) options.onMessage(bytes, from)
        }, faults.delayMs)
        timers.add(timer)
        return
      }
    }
    options.onMessage(bytes, from)
  }

  /** a peer met moments ago may not be dialable yet (its addresses still on their way): retry briefly */
  const sendTo = async (bytes: Uint8Array, recipient: string): Promise<boolean> => {
    for (let attempt = 0; attempt < SEND_ATTEMPTS; attempt++) {
      if (await sendOnce(bytes, recipient, attempt === SEND_ATTEMPTS - 1)) return true
      if (!running) return false
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt))
    }
    return false
  }

  const sendOnce = async (bytes: Uint8Array, recipient: string, last: boolean): Promise<boolean> => {
    const signal = AbortSignal.timeout(options.sendTimeoutMs ?? 30_000)
    try {
      const stream = await node.dialProtocol(peerIdFromString(recipient), GRADIENT_PROTOCOL, { signal })
      const frame = lp.encode.single(bytes)
      if (!stream.send(frame)) await stream.onDrain({ signal })
      // the receiver closes once it has read the frame; not waiting for that handshake keeps
      // the send stage from paying a round trip per peer
      stream.close({ signal }).catch(() => {})
      counters.bytesSent += frame.byteLength
      counters.messagesSent++
      return true
    } catch (error) {
      if (last) {
        counters.sendFailures++
        log.debug({ peer: recipient, err: (error as Error).message }, 'could not send gradient')
      }
      return false
    }
  }

  return {
    counters,
    async start() {
      if (running) return
      running = true
      await node.handle(GRADIENT_PROTOCOL, async (stream, connection) => {
        const from = connection.remotePeer.toString()
        try {
          for await (const frame of lp.decode(stream, { maxDataLength: options.maxMessageBytes })) {
            const bytes = frame.subarray()
            counters.bytesReceived += bytes.byteLength
            counters.messagesReceived++
            if (running) deliver(bytes, from)
            break
          }
          await stream.close()
        } catch (error) {
          log.warn({ peer: from, err: (error as Error).message }, 'rejected a gradient stream')
          stream.abort(error as Error)
        }
      }, { maxInboundStreams: 256, maxOutboundStreams: 256 })
    },
    async stop() {
      if (!running) return
      running = false
      for (const t of timers) clearTimeout(t)
      timers.clear()
      await node.unhandle(GRADIENT_PROTOCOL).catch(() => {})
    },
    async send(bytes, recipients) {
      const results = await Promise.all(recipients.map(async (r) => ((await sendTo(bytes, r)) ? r : undefined)))
      return results.filter((r): r is string => r !== undefined)
    }
  }
}
