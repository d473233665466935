/**
 * Gradient exchange by direct push: the sender keeps a `/p2pmld/gradient/1.0.0` stream open to
 * each recipient and writes one length-prefixed frame per message. No gossip announcement: the recipients come
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
import { dialRefused } from '../node/errors.js'
import { createInboundPipeline } from './inbound.js'
import { resolveMaxMessageBytes } from './limits.js'
import { GradientExchangeError, type GradientExchange, type GradientExchangeOptions, type PublishReport } from './types.js'

export const GRADIENT_PROTOCOL = '/p2pmld/gradient/1.0.0'

export interface StreamExchangeOptions extends GradientExchangeOptions {
  /** per recipient: dial, write and close (default 30 s) */
  readonly sendTimeoutMs?: number
  /** an inbound stream idle this long is closed (default 5 min) */
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

  /** inbound: a stream carries any number of frames; each is one message */
  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const idleMs = options.readTimeoutMs ?? 300_000
    openStreams.add(stream)
    let timer: NodeJS.Timeout | undefined
    const touch = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => { stream.abort(new Error(`gradient stream idle for ${idleMs} ms`)) }, idleMs)
    }
    // every chunk of bytes counts as activity: a stalled half-sent frame still times out
    async function * watched () {
      for await (const chunk of stream) {
        touch()
        yield chunk
      }
    }
    touch()
    try {
      for await (const frame of lp.decode(watched(), { maxDataLength: maxMessageBytes })) {
        if (!running) break
        inbound.accept(frame.subarray(), from)
      }
      await stream.close().catch(() => {})
    } catch (error) {
      const err = error as Error & { name: string }
      if (!running) return
      if (err.name === 'InvalidDataLengthError' || err.name === 'InvalidDataLengthLengthError') {
        inbound.rejectWith('too-large', from, `gradient frame over the ${maxMessageBytes}-byte limit: ${err.message}`)
      } else {
        inbound.rejectWith('truncated', from, `gradient stream failed inside a frame: ${err.message}`)
      }
      stream.abort(err)
    } finally {
      clearTimeout(timer)
      openStreams.delete(stream)
    }
  }

  /**
   * outbound: one long-lived stream per recipient, reused for every step (a new stream per
   * message costs a multistream-select round trip); writes to one peer are serialized.
   */
  /** per recipient: its stream, the write queue, and failed pushes in a row (logged at warn on the first and every 100th) */
  const outbound = new Map<string, { stream?: Stream, tail: Promise<unknown>, failing: number }>()

  const openTo = async (recipient: string, signal: AbortSignal): Promise<Stream> => {
    const stream = await node.libp2p.dialProtocol(peerIdFromString(recipient), GRADIENT_PROTOCOL, { signal })
    openStreams.add(stream)
    stream.addEventListener('close', () => { openStreams.delete(stream) }, { once: true })
    return stream
  }

  /** 'refused': the last attempt's dial was refused on every address (see PublishReport.refused) */
  const writeTo = async (frame: Uint8Array, recipient: string): Promise<boolean | 'refused'> => {
    const signal = AbortSignal.timeout(options.sendTimeoutMs ?? 30_000)
    let entry = outbound.get(recipient)
    if (entry === undefined) {
      entry = { tail: Promise.resolve(), failing: 0 }
      outbound.set(recipient, entry)
    }
    const slot = entry
    const run = async (): Promise<boolean | 'refused'> => {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          if (slot.stream === undefined || slot.stream.writeStatus !== 'writable') slot.stream = await openTo(recipient, signal)
          const stream = slot.stream
          if (!stream.send(frame)) await stream.onDrain({ signal })
          if (slot.failing > 0) logger.info({ peer: recipient, failedBefore: slot.failing }, 'pushing gradients to peer works again')
          slot.failing = 0
          return true
        } catch (error) {
          slot.stream?.abort(error as Error)
          slot.stream = undefined
          // a stream that died since the last step gets one fresh retry; a timeout does not
          if (signal.aborted || !running || attempt === 1) {
            // a crashed member is pushed to every step (and re-send) until it is evicted: one
            // line, not one per push
            slot.failing++
            const line = { peer: recipient, err: (error as Error).message, failedInARow: slot.failing }
            if (slot.failing === 1 || slot.failing % 100 === 0) logger.warn(line, 'could not push gradient to peer')
            else logger.debug(line, 'could not push gradient to peer')
            return dialRefused(error) ? 'refused' : false
          }
        }
      }
      return false
    }
    const result = slot.tail.then(run, run)
    slot.tail = result.catch(() => false)
    return await result
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
      // let writes already under way finish, but never wait out a send timeout on a dead peer
      let grace: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.all([...outbound.values()].map(async (o) => { await o.tail })),
        new Promise((resolve) => { grace = setTimeout(resolve, 2_000) })
      ])
      clearTimeout(grace)
      await Promise.all([...outbound.values()].map(async (o) => { await o.stream?.close({ signal: AbortSignal.timeout(2_000) }).catch(() => {}) }))
      outbound.clear()
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
      const ok = await Promise.all(targets.map(async (r) => await writeTo(frame, r)))
      published++
      publishedBytes += bytes.length
      return {
        mode: 'stream',
        bytes: bytes.length,
        parts: targets.length,
        reached: targets.filter((_, i) => ok[i] === true),
        missed: targets.filter((_, i) => ok[i] !== true),
        refused: targets.filter((_, i) => ok[i] === 'refused')
      }
    },
    onGradient: (handler) => inbound.addHandler(handler),
    onRepeat: (handler) => inbound.addRepeatHandler(handler),
    stats: () => inbound.stats(published, publishedBytes)
  }
}

