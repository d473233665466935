/**
 * The state every member holds identically: parameters, optimizer state and where the job is.
 * It is what a checkpoint stores and what a joining peer receives.
 */
import { createHash } from 'node:crypto'

export interface TrainingProgress {
  /** global step: the next step to run */
  step: number
  epoch: number
  /** samples of this epoch's permutation already consumed */
  cursor: number
  /** learning rate in force */
  lr: number
  /** sum and count of this peer's batch losses in the current epoch (for reporting) */
  epochLossSum: number
  epochLossCount: number
}

export interface EpochRecord {
  readonly epoch: number
  readonly step: number
  readonly trainLoss: number
  readonly validationLoss: number
  readonly validationAccuracy: number
  readonly lr: number
  readonly durationMs: number
}

export type StopReason = 'epochs' | 'early-stopping' | 'stopped'

/**
 * The model's shape as members compare it before a join: its parameter count and a sha256 (hex,
 * 16 digits) of its tensors' shapes in layout order. Names are left out: two exports of one network
 * may name its tensors differently and still hold interchangeable states.
 */
export function layoutFingerprint(specs: ReadonlyArray<{ readonly shape: readonly number[] }>): string {
  return createHash('sha256').update(JSON.stringify(specs.map((s) => s.shape))).digest('hex').slice(0, 16)
}

/**
 * sha256 of all parameters (hex): the digest trusted across peers, where a state is checked
 * (a fetched snapshot against the majority's digest, the end-of-job agreement, the result).
 * Costs ~0.6 s/GB: members send it with their gradients at anchor steps only (exchangedDigest).
 */
export function parameterDigest(params: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)).digest('hex')
}

/** The digest a member sends with its gradient at `step`, and whether it is the full one. */
export interface ExchangedDigest {
  readonly digest: string
  /** true at anchor steps: the full parameterDigest, which members remember and vouch by */
  readonly full: boolean
}

/**
 * What members compare at `step` (job config `digestEvery`): the full parameterDigest at anchor
 * steps (`step % every === 0`), the sampled stepDigest between. Every member uses the same kind
 * at a step, so equal parameters give equal digests. Divergence (another aggregate, a lost
 * gradient) changes nearly every parameter and shows in the next sample; a difference confined to
 * parameters outside the samples shows at the next anchor, at most `every` steps later. Only full
 * digests vouch for a state: a member answers a digest question about a past step only for an
 * anchor (state-at-step.ts), and about its current step with a full digest computed then.
 */
export function exchangedDigest(params: Float32Array, step: number, every: number): ExchangedDigest {
  return step % every === 0 ? { digest: parameterDigest(params), full: true } : { digest: stepDigest(params, step), full: false }
}

/** stepDigest samples this many blocks of STEP_DIGEST_BLOCK values (8 KiB in all) */
export const STEP_DIGEST_BLOCKS = 128
/** one block is 16 float32 values: one 64-byte cache line when aligned */
export const STEP_DIGEST_BLOCK = 16

/**
 * The digest a member sends with its gradient at `step` (hex sha256, 32 bytes), which the
 * members compare every step to detect divergence. It hashes the parameter count, the step and
 * STEP_DIGEST_BLOCKS blocks of the parameters spread evenly over the vector, shifted by one
 * block each step so every parameter is covered every ceil(n / (BLOCKS * BLOCK)) steps; up to
 * BLOCKS * BLOCK parameters, all of them. Cost: a few microseconds at any model size, where a
 * full sha256 costs ~5 ms a step for mlp-large (40 % of its step) and ~0.3 s for VGG-11.
 *
 * Why a sample detects divergence: members that disagree at a step (another aggregate, a lost
 * gradient, a damaged state) apply different updates, and since each gradient depends on every
 * parameter, nearly every parameter differs from the next step on. A difference that stays
 * confined (a dead unit's weights) is still caught by the rotation within one sweep and by the
 * end-of-job agreement, which compares the full parameterDigest. Every member computes the same
 * function of (parameters, step), so equal parameters give equal digests on every peer. It is
 * not an integrity check of a state: snapshots are checked against parameterDigest, and members
 * vouch for a state only by full digests (exchangedDigest's anchors, or asked at the current step).
 */
export function stepDigest(params: Float32Array, step: number): string {
  const n = params.length
  const hash = createHash('sha256')
  const header = new Float64Array([n, step])
  hash.update(new Uint8Array(header.buffer))
  if (n <= STEP_DIGEST_BLOCKS * STEP_DIGEST_BLOCK) {
    hash.update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength))
    return hash.digest('hex')
  }
  // block k starts at k * stride + shift; the shift walks [0, stride) one block per step
  const stride = Math.ceil(n / STEP_DIGEST_BLOCKS)
  const blocksPerStride = Math.ceil(stride / STEP_DIGEST_BLOCK)
  const shift = (step % blocksPerStride) * STEP_DIGEST_BLOCK
  const sample = new Float32Array(STEP_DIGEST_BLOCKS * STEP_DIGEST_BLOCK)
  let filled = 0
  for (let k = 0; k < STEP_DIGEST_BLOCKS; k++) {
    const start = k * stride + shift
    const end = Math.min(n, start + STEP_DIGEST_BLOCK, (k + 1) * stride)
    for (let i = start; i < end; i++) sample[filled++] = params[i]
  }
  hash.update(new Uint8Array(sample.buffer, 0, filled * 4))
  return hash.digest('hex')
}
