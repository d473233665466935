/**
 * A gradient message that passed the transport's wire checks, decoded for the runner: a whole
 * vector, or the slices of a reduce-scatter message. A message of the other exchange kind, a
 * payload the codec refuses, or a cut into more slices than the job has had members is refused
 * (counted in the session's rejection log, reason 'payload' or 'slices') instead.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { GradientCodec } from '../../ml/compress/index.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import type { SlicePlan } from '../training/slice-plan.js'
import type { InboundGradient } from '../training/sync-trainer.js'
import type { RejectionLog } from './rejection-log.js'

const EMPTY = new Float32Array(0)
/** the largest reduce-scatter cut accepted while this peer has no membership yet (joining) */
const MAX_SLICES_BEFORE_MEMBERSHIP = 1024

export interface InboundDecoderOptions {
  readonly exchange: JobConfig['exchange']
  readonly rejections: RejectionLog
  /** the runtime's codec and parameter count (set once the model is known) */
  codec(): GradientCodec
  parameterCount(): number
  /** the job's slice plans (reduce-scatter); undefined for a whole-vector exchange or before the runtime is up */
  slicePlan(): ((members: number) => SlicePlan) | undefined
  /** how many members the job has had, as this peer knows it; undefined before it has a membership */
  membersKnown(): number | undefined
}

/** Returns decode(message, from): the InboundGradient, or undefined when refused. */
export function createInboundDecoder(options: InboundDecoderOptions): (message: GradientMessage, from: string) => InboundGradient | undefined {
  const { rejections } = options
  return (message, from) => {
    const head = { step: message.step, sender: from, digest: Buffer.from(message.digest).toString('hex') }
    const refuse = (detail: string, reason = 'payload'): undefined => {
      rejections.reject(reason, { from, step: message.step }, detail)
      return undefined
    }
    const slicePlan = options.slicePlan()
    if ((message.slices !== undefined) !== (slicePlan !== undefined)) {
      return refuse(message.slices !== undefined
        ? `a sliced (reduce-scatter) gradient message, but this job's exchange is ${options.exchange}`
        : 'a whole-vector gradient message, but this job\'s exchange is reduce-scatter (the sender runs another job config)')
    }
    try {
      if (message.slices === undefined || slicePlan === undefined) return { ...head, gradient: options.codec().decode(message.payload, options.parameterCount()) }
      // a slice plan costs a codec per slice: a cut for far more members than the job has had is
      // refused before one is built (a forged total would otherwise cost up to 65,535 of them);
      // the slack covers joiners admitted before this peer heard of them
      const known = options.membersKnown()
      const most = known === undefined ? MAX_SLICES_BEFORE_MEMBERSHIP : 2 * known + 16
      if (message.slices.total > most) {
        return refuse(`cut into ${message.slices.total} slices, but this job has had ${known ?? 'no known'} members (at most ${most} accepted)`, 'slices')
      }
      return { ...head, gradient: EMPTY, sliced: { header: message.slices, parts: slicePlan(message.slices.total).decode(message.slices, message.payload) } }
    } catch (error) {
      return refuse((error as Error).message)
    }
  }
}
