import type { Logger } from 'pino'
import type { GradientExpectations, GradientMessage } from '../messages/gradient-message.js'
import type { RejectReason } from '../messages/rejection.js'
import type { PeerNode } from '../node/create-peer-node.js'
import type { FaultInjection } from './fault-injector.js'

export type ExchangeMode = 'gossip' | 'stream'

/** called once per accepted gradient; `from` is the transport-authenticated sender */
export type GradientHandler = (message: GradientMessage, from: string) => void | Promise<void>
/**
 * A second copy of a (sender, step) gradient already handed on arrived (refused as a duplicate):
 * the sender is at that step. A member restarted after a crash computes a step again, or a
 * sender re-sends one it thinks was lost; a peer past that step may send it its own gradient of
 * that step again.
 */
export type RepeatHandler = (step: number, from: string) => void

export interface PublishReport {
  readonly mode: ExchangeMode
  /** encoded message size (before chunking, framing and encryption) */
  readonly bytes: number
  /** gossip messages (chunks) or streams used */
  readonly parts: number
  /**
   * recipients the message was handed to: for streams, queued on an open stream (no receipt:
   * a connection that dies before the bytes leave loses it, which the step deadline covers);
   * for gossip, sent every part directly (a missed one may still get it forwarded by another member)
   */
  readonly reached: string[]
  readonly missed: string[]
  /**
   * of `missed`, those whose dial every address refused (ECONNREFUSED: the host is up and nothing
   * listens on the port, a member whose process died); a cut link or a host that is down times
   * out instead and is not listed. Streams only (absent: gossip)
   */
  readonly refused?: string[]
}

export interface ExchangeStats {
  readonly delivered: number
  readonly rejected: Readonly<Record<RejectReason, number>>
  readonly droppedByFaults: number
  readonly delayedByFaults: number
  readonly handlerErrors: number
  readonly published: number
  readonly publishedBytes: number
  /** chunked gossip messages abandoned before all chunks arrived */
  readonly incomplete: number
}

export interface GradientExchange {
  readonly mode: ExchangeMode
  /** idempotent: subscribes / registers the stream protocol */
  start(): Promise<void>
  /** idempotent: leaves no subscription, handler, timer or pending buffer behind */
  stop(): Promise<void>
  /** message.sender must be this node's peer id; throws GradientExchangeError otherwise or when too large */
  publish(message: GradientMessage, recipients: readonly string[]): Promise<PublishReport>
  /** returns a function that removes the handler */
  onGradient(handler: GradientHandler): () => void
  /** duplicates, refused, still say where their sender is (RepeatHandler) */
  onRepeat(handler: RepeatHandler): () => void
  stats(): ExchangeStats
}

export interface GradientExchangeOptions {
  readonly node: PeerNode
  readonly jobId: string
  /** checked on every inbound message when given */
  readonly expect?: Omit<GradientExpectations, 'jobId'>
  /** largest encoded message sent or accepted; default: fits fp32 for expect.parameterCount, else 64 MiB */
  readonly maxMessageBytes?: number
  readonly logger?: Logger
  /** test-only: drop / delay a seeded fraction of inbound gradients (after validation) */
  readonly faults?: FaultInjection
}

export class GradientExchangeError extends Error {
  override name = 'GradientExchangeError'
}
