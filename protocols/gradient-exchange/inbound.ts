/**
 * What both exchange modes do with inbound bytes once the transport has authenticated the
 * sender: decode and check against the job, match the header's sender to the transport's,
 * drop duplicates, apply test faults, and hand the message to the handlers. Every rejection is
 * counted by reason and logged; nothing throws out of here.
 */
import type { Logger } from 'pino'
import { decodeGradientMessage, type GradientExpectations, type GradientMessage } from '../messages/gradient-message.js'
import { emptyRejectionCounts, type Decoded, type RejectReason } from '../messages/rejection.js'
import { createFaultInjector, type FaultInjection } from './fault-injector.js'
import type { ExchangeStats, GradientHandler, RepeatHandler } from './types.js'

/** (sender, step) pairs remembered for duplicate detection */
const DEDUP_WINDOW = 16_384

export interface InboundPipeline {
  /** full processing of one inbound message; false when rejected (fault drops count as accepted) */
  accept(bytes: Uint8Array, from: string): boolean
  /** decode + sender check only (e.g. for a gossip validator); counts and logs a rejection */
  check(bytes: Uint8Array, from: string): Decoded<GradientMessage>
  rejectWith(reason: RejectReason, from: string, detail: string): void
  addHandler(handler: GradientHandler): () => void
  /** told of each duplicate refused (its step and sender) */
  addRepeatHandler(handler: RepeatHandler): () => void
  counters: {
    delivered: number
    droppedByFaults: number
    delayedByFaults: number
    handlerErrors: number
    incomplete: number
    rejected: Record<RejectReason, number>
  }
  /** fault delays pending: cleared by stop */
  stop(): void
  start(): void
  stats(published: number, publishedBytes: number): ExchangeStats
}

export function createInboundPipeline (options: {
  readonly expect: GradientExpectations
  readonly logger: Logger
  readonly faults?: FaultInjection
}): InboundPipeline {
  const { logger } = options
  const handlers = new Set<GradientHandler>()
  const repeatHandlers = new Set<RepeatHandler>()
  const seen = new Set<string>()
  const timers = new Set<NodeJS.Timeout>()
  const injector = options.faults !== undefined ? createFaultInjector(options.faults) : undefined
  let running = false
  const counters = {
    delivered: 0,
    droppedByFaults: 0,
    delayedByFaults: 0,
    handlerErrors: 0,
    incomplete: 0,
    rejected: emptyRejectionCounts()
  }

  // counted every time, logged without flooding: the first few of each reason, then every
  // hundredth (a fuzzer's 10,000 frames, or 16 peers re-sending, wrote a line each). A duplicate
  // is what members' own re-sends produce when the first copy arrived after all: debug only
  const rejectWith = (reason: RejectReason, from: string, detail: string): void => {
    const n = ++counters.rejected[reason]
    if (reason === 'duplicate') logger.debug({ peer: from, reason, detail }, 'rejected an inbound gradient message')
    else if (n <= 5 || n % 100 === 0) logger.warn({ peer: from, reason, detail, rejectedSoFar: n }, 'rejected an inbound gradient message')
  }

  const check = (bytes: Uint8Array, from: string): Decoded<GradientMessage> => {
    const decoded = decodeGradientMessage(bytes, options.expect)
    if (!decoded.ok) {
      rejectWith(decoded.reason, from, decoded.detail)
      return decoded
    }
    if (decoded.value.sender !== from) {
      const detail = `header names sender ${decoded.value.sender} but the transport authenticated ${from}`
      rejectWith('sender-mismatch', from, detail)
      return { ok: false, reason: 'sender-mismatch', detail }
    }
    return decoded
  }

  const dispatch = (message: GradientMessage, from: string): void => {
    if (!running) return
    counters.delivered++
    for (const handler of handlers) {
      try {
        const result = handler(message, from)
        if (result instanceof Promise) {
          result.catch((error: unknown) => {
            counters.handlerErrors++
            logger.error({ peer: from, step: message.step, err: (error as Error).message }, 'gradient handler failed')
          })
        }
      } catch (error) {
        counters.handlerErrors++
        logger.error({ peer: from, step: message.step, err: (error as Error).message }, 'gradient handler failed')
      }
    }
  }

  return {
    counters,
    check,
    rejectWith,
    accept (bytes, from) {
      if (!running) return true
      const decoded = check(bytes, from)
      if (!decoded.ok) return false
      const message = decoded.value
      // a reduce-scatter step carries two messages per sender, its parts and its results, cut
      // again when the step's membership changes under it
      const key = `${from}/${message.step}${message.slices === undefined ? '' : `/${message.slices.phase}/${message.slices.total}`}`
      if (seen.has(key)) {
        rejectWith('duplicate', from, `second ${message.slices?.phase ?? 'gradient'} message from ${from} for step ${message.step}`)
        if (running) {
          for (const handler of repeatHandlers) {
            try {
              handler(message.step, from)
            } catch (error) {
              counters.handlerErrors++
              logger.error({ peer: from, step: message.step, err: (error as Error).message }, 'repeat handler failed')
            }
          }
        }
        return false
      }
      const decision = injector?.decide(message.step, from) ?? { kind: 'deliver' }
      if (decision.kind === 'drop') {
        // lost on the way, as a network loses it: never received, so a copy sent again is not a duplicate
        counters.droppedByFaults++
        logger.debug({ peer: from, step: message.step }, 'fault injection dropped a gradient')
        return true
      }
      seen.add(key)
      if (seen.size > DEDUP_WINDOW) seen.delete(seen.values().next().value as string)
      if (decision.kind === 'delay') {
        counters.delayedByFaults++
        const timer = setTimeout(() => {
          timers.delete(timer)
          dispatch(message, from)
        }, decision.ms)
        timers.add(timer)
        return true
      }
      dispatch(message, from)
      return true
    },
    addHandler (handler) {
      handlers.add(handler)
      return () => { handlers.delete(handler) }
    },
    addRepeatHandler (handler) {
      repeatHandlers.add(handler)
      return () => { repeatHandlers.delete(handler) }
    },
    start () {
      running = true
    },
    stop () {
      running = false
      for (const t of timers) clearTimeout(t)
      timers.clear()
    },
    stats (published, publishedBytes) {
      return {
        delivered: counters.delivered,
        rejected: { ...counters.rejected },
        droppedByFaults: counters.droppedByFaults,
        delayedByFaults: counters.delayedByFaults,
        handlerErrors: counters.handlerErrors,
        published,
        publishedBytes,
        incomplete: counters.incomplete
      }
    }
  }
}
