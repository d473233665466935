/**
 * A job runner's network (JobNetwork) over a session's JobWire: gradients sent with their job
 * header and re-sent to the members a send missed, membership and pause/resume announcements,
 * and the digest, control and state requests a runner makes, each with its timeout.
 */
import { ControlDecisionSchema, DigestReplySchema, type MembershipState } from '../../protocols/job/job-protocol.js'
import type { CodecId } from '../../ml/compress/codec.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import { fromTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { JobNetwork } from '../job/job-types.js'
import type { Logger } from '../logger.js'
import type { JobWire } from './session-core.js'

/** pauses before re-sending a gradient to members a send missed */
const SEND_RETRY_DELAYS_MS = [250, 500, 1000, 2000]
/** one digest or control question; a member still finishing its last step answers when it gets there */
const REQUEST_TIMEOUT_MS = 30_000

export interface RunnerNetworkOptions {
  readonly jobId: string
  readonly selfId: string
  readonly log: Logger
  /** the session's transport; undefined until attached (a send then does nothing) */
  wire(): JobWire | undefined
  /** the session stopped: no more sends or re-sends */
  stopped(): boolean
  /** the codec id and the parameter count every gradient message names */
  codecId(): CodecId
  parameterCount(): number
  /** the step the runner is at: a re-send for a step more than one behind it is dropped */
  currentStep(): number
  /** what a membership announcement carries besides the membership (libp2p: the address book) */
  membershipExtras?: (membership: MembershipState) => object
}

/** Throws (from each call) when no wire is attached yet, except sendGradient, which then sends nothing. */
export function createRunnerNetwork(options: RunnerNetworkOptions): JobNetwork {
  const { jobId, selfId, log } = options
  const attached = (): JobWire => {
    const wire = options.wire()
    if (wire === undefined) throw new Error('the job session has no transport attached')
    return wire
  }
  return {
    sendGradient: async (message, recipients) => {
      const outbound: GradientMessage = {
        jobId, sender: selfId, step: message.step, epoch: message.epoch, codec: options.codecId(), parameterCount: options.parameterCount(),
        digest: Buffer.from(message.digest, 'hex'), payload: message.payload, ...(message.slices !== undefined ? { slices: message.slices } : {})
      }
      let pending: readonly string[] = recipients
      for (const delayMs of [...SEND_RETRY_DELAYS_MS, undefined]) {
        const wire = options.wire()
        if (wire === undefined || options.stopped()) return
        pending = (await wire.publishGradient(outbound, pending)).missed
        // a member this peer cannot reach yet (its address still on the way, a link being
        // re-dialed, a broker queue not declared yet) gets the gradient late rather than
        // never, as long as the step may still be waiting for it
        if (pending.length === 0 || delayMs === undefined) break
        await new Promise((resolve) => setTimeout(resolve, delayMs))
        if (options.currentStep() > message.step + 1) break
      }
      if (pending.length > 0) log.debug({ step: message.step, unreached: pending }, 'gradient not delivered to every member')
    },
    announceMembership: async (membership, step, phase) => {
      await attached().broadcast({ v: 1, type: 'membership', jobId, step, phase, membership, ...options.membershipExtras?.(membership) })
    },
    queryDigest: async (peerId, minStep, signal) => {
      return await attached().request(peerId, { v: 1, type: 'digest', jobId, step: minStep }, DigestReplySchema, { signal, timeoutMs: REQUEST_TIMEOUT_MS })
    },
    announceControl: async (decision) => {
      await attached().broadcast({ v: 1, type: 'control', jobId, decision })
    },
    requestControl: async (coordinator, action) => {
      return await attached().request(coordinator, { v: 1, type: 'control', jobId, action }, ControlDecisionSchema, { timeoutMs: REQUEST_TIMEOUT_MS })
    },
    fetchSnapshot: async (peerId, minStep) => {
      return fromTrainingSnapshot(await attached().fetchSnapshot(peerId, minStep), `peer ${peerId}`)
    }
  }
}
