/**
 * Gradient exchange by direct push: the sender opens a `/p2pmld/gradient/1.0.0` stream to each
 * recipient and writes one length-prefixed message. No gossip announcement: the recipients come
 * from membership, which both sides already share, so an announcement would only add a gossip
 * round and more bytes. Every byte crosses each link once (gossip forwards every message to the
 * other mesh peers again), and the size limit is ours, not gossipsub's 4 MiB.
 * The sender is the stream's Noise-authenticated remote peer, which must match the header.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import * as lp from 'it-length-prefixed'
import { pino } from 'pino'
import { encodeGradientMessage } from '../messages/gradient-message.js'
import { createInboundPipeline } from './inbound.js'
import { resolveMaxMessageBytes } from './limits.js'
import { GradientExchangeError, type GradientExchange, type GradientExchangeOptions, type PublishReport } from './types.js'

export const GRADIENT_PROTOCOL = '/p2pmld/gradient/1.0.0'

export interface StreamExchangeOptions extends GradientExchangeOptions {
  /** per recipient: dial, write and close (default 30 s) */
  readonly sendTimeoutMs?: number
  /** an inbound stream must deliver its whole frame within this (default 60 s) */
  readonly readTimeoutMs?: number
  /** concurrent inbound gradient streams per connection (default 32) */
  readonly maxInboundStreams?: number
}

export function createStreamExchange (options: StreamExchangeOptions): GradientExchange {
  const { node, jobId } = options
  const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'gradient-exchange', mode: 'stream', jobId })
  const maxMessageBytes = resolveMaxMessageBytes(options)
  const inbound = createInboundPipeline({ expect: { jobId, ...options.expect }, logger, faults: options.faults })
  const self = node.peerId.toString()
  const openStreams = new Set<Stream>()
  let running = false
  let published = 0
  let publishedBytes = 0

  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    openStreams.add(stream)
    const timer = setTimeout(() => { stream.abort(new Error(`no complete gradient within ${options.readTimeoutMs ?? 60_000} ms`)) }, options.readTimeoutMs ?? 60_000)
    let got: Uint8Array | undefined
    try {
      for await (const frame of lp.decode(stream, { maxDataLength: maxMessageBytes })) {
        got = frame.subarray()
        break
      }
      if (got === undefined) inbound.rejectWith('truncated', from, 'gradient stream closed before a complete frame')
      else inbound.accept(got, from)
      await stream.close().catch(() => {})
    } catch (error) {
      const err = error as Error & { name: string }
      if (err.name === 'InvalidDataLengthError' || err.name === 'InvalidDataLengthLengthError') {
        inbound.rejectWith('too-large', from, `gradient frame over the ${maxMessageBytes}-byte limit: ${err.message}`)
      } else {
        inbound.rejectWith('truncated', from, `gradient stream failed before a complete frame: ${err.message}`)
      }
      stream.abort(err)
    } finally {
      clearTimeout(timer)
      openStreams.delete(stream)
    }
  }

  const sendTo = async (frame: Uint8Array, recipient: string): Promise<boolean> => {
    const signal = AbortSignal.timeout(options.sendTimeoutMs ?? 30_000)
    let stream: Stream | undefined
    try {
      stream = await node.libp2p.dialProtocol(peerIdFromString(recipient), GRADIENT_PROTOCOL, { signal })
      openStreams.add(stream)
      if (!stream.send(frame)) await stream.onDrain({ signal })
      await stream.close({ signal })
      return true
    } catch (error) {
      stream?.abort(error as Error)
      logger.warn({ peer: recipient, err: (error as Error).message }, 'could not push gradient to peer')
      return false
    } finally {
      if (stream !== undefined) openStreams.delete(stream)
    }
  }

  return {
    mode: 'stream',
    async start () {
      if (running) return
      running = true
      inbound.start()
      await node.libp2p.handle(GRADIENT_PROTOCOL, (stream, connection) => {
        handle(stream, connection).catch((error: unknown) => {
          logger.error({ err: (error as Error).message }, 'unexpected error in the gradient stream handler')
        })
      }, { maxInboundStreams: options.maxInboundStreams ?? 32, maxOutboundStreams: 64 })
    },
    async stop () {
      if (!running) return
      running = false
      inbound.stop()
      if (node.isStarted()) await node.libp2p.unhandle(GRADIENT_PROTOCOL)
      for (const s of openStreams) s.abort(new Error('gradient exchange stopped'))
      openStreams.clear()
    },
    async publish (message, recipients): Promise<PublishReport> {
      if (!running) throw new GradientExchangeError('the stream gradient exchange is stopped; start() it before publishing')
      if (message.sender !== self) throw new GradientExchangeError(`message sender ${message.sender} is not this node (${self}); receivers would reject it`)
      const bytes = encodeGradientMessage(message)
      if (bytes.length > maxMessageBytes) {
        throw new GradientExchangeError(`gradient message of ${bytes.length} bytes exceeds the ${maxMessageBytes}-byte limit peers accept; raise maxMessageBytes on every peer or compress harder`)
      }
      const frame = lp.encode.single(bytes, { maxDataLength: maxMessageBytes }).subarray()
      const targets = [...new Set(recipients)].filter((r) => r !== self)
      const ok = await Promise.all(targets.map(async (r) => await sendTo(frame, r)))
      published++
      publishedBytes += bytes.length
      return {
        mode: 'stream',
        bytes: bytes.length,
        parts: targets.length,
        reached: targets.filter((_, i) => ok[i]),
        missed: targets.filter((_, i) => !ok[i])
      }
    },
    onGradient: (handler) => inbound.addHandler(handler),
    stats: () => inbound.stats(published, publishedBytes)
  }
}
