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

/**
 * stepDigest samples this many blocks of STEP_DIGEST_BLOCK values (4 KiB in all). Divergence shows
 * in any one sampled value, so the sample's size sets only how soon a difference confined to a few
 * parameters is swept (every ceil(n / 1024) steps); the anchors bound that by `digestEvery` for
 * every model over 32 K parameters anyway. 128 blocks cost mlp's 0.5 ms step 0.2 % more
 */
export const STEP_DIGEST_BLOCKS = 64
/** one block is 16 float32 values: one 64-byte cache line when aligned */
export const STEP_DIGEST_BLOCK = 16

/**
 * The digest a member sends with its gradient at `step` between anchor steps (hex, 32 bytes, the
 * wire's digest field), which the members compare every step to detect divergence. It hashes
 * the parameter count, the step and STEP_DIGEST_BLOCKS blocks of the parameters spread evenly
 * over the vector, shifted by one block each step so every parameter is covered every
 * ceil(n / (BLOCKS * BLOCK)) steps; up to BLOCKS * BLOCK parameters, all of them.
 *
 * The hash is not cryptographic: eight 32-bit lanes, each a chain over every eighth sampled
 * value's bits of FxHash's step h = (rotl(h, 5) ^ value) * 0x9e3779b9 (rustc's FxHasher, 32-bit),
 * finished by two rounds that add each lane into the next and MurmurHash3's fmix32 (Appleby,
 * MurmurHash3_x86_32). Each chain step is a bijection of the lane for a fixed value and of the
 * value for a fixed lane, and the finish is a bijection of the 256 bits, so parameters that
 * differ in one sampled value (one ulp, or -0 against 0) always give different digests; the
 * rotation carries a difference's high bits into the low ones before the next value, and several
 * differences collide with probability ~2^-32. 2-3 us at any model size on the 2-core machine
 * (issue 16's goal: divergence detection under 2 % of a step; the anchors' sha256 every 32 steps
 * alone was 1.5-2.1 % of mlp's 0.31-0.55 ms step at batch 64, hence digestEvery 64). Before:
 * MurmurHash3's block mix over 128 blocks, ~3-4 us; a sha256 of a copied 8 KiB sample, 11-16 us; a
 * full sha256 costs ~5 ms for mlp-large.
 *
 * Why a sample detects divergence: members that disagree at a step (another aggregate, a lost
 * gradient, a damaged state) apply different updates, and since each gradient depends on every
 * parameter, nearly every parameter differs from the next step on. A difference that stays
 * confined (a dead unit's weights) is still caught by the rotation within one sweep and by the
 * end-of-job agreement, which compares the full parameterDigest. Every member computes the same
 * function of (parameters, step), so equal parameters give equal digests on every peer. It is
 * not an integrity check of a state, nor proof against a peer crafting collisions: snapshots are
 * checked against parameterDigest (sha256), and members vouch for a state only by full digests
 * (exchangedDigest's anchors, or asked at the current step).
 */
export function stepDigest(params: Float32Array, step: number): string {
  const n = params.length
  const bits = new Int32Array(params.buffer, params.byteOffset, n)
  const lanes = new Int32Array(8)
  for (let l = 0; l < 8; l++) lanes[l] = laneMix(laneMix(Math.imul(l + 1, 0x9e3779b1), n), step)
  if (n <= STEP_DIGEST_BLOCKS * STEP_DIGEST_BLOCK) mixRange(lanes, bits, 0, n)
  else {
    // block k starts at k * stride + shift; the shift walks [0, stride) one block per step
    const stride = Math.ceil(n / STEP_DIGEST_BLOCKS)
    const blocksPerStride = Math.ceil(stride / STEP_DIGEST_BLOCK)
    const shift = (step % blocksPerStride) * STEP_DIGEST_BLOCK
    // the blocks are whole (16 values) but where a stride's end or the vector's cuts them: the
    // whole ones first, the lanes in locals (mixBlocks), then any cut ones
    const lastWhole = (STEP_DIGEST_BLOCKS - 1) * stride + shift + STEP_DIGEST_BLOCK <= n
    const whole = shift + STEP_DIGEST_BLOCK > stride ? 0 : lastWhole ? STEP_DIGEST_BLOCKS : STEP_DIGEST_BLOCKS - 1
    mixBlocks(lanes, bits, shift, stride, whole)
    for (let k = whole; k < STEP_DIGEST_BLOCKS; k++) {
      const start = k * stride + shift
      mixRange(lanes, bits, start, Math.min(n, start + STEP_DIGEST_BLOCK, (k + 1) * stride))
    }
  }
  for (let round = 0; round < 2; round++) {
    for (let l = 0; l < 8; l++) lanes[l] = (lanes[l] + lanes[(l + 1) & 7]) | 0
    for (let l = 0; l < 8; l++) lanes[l] = fmix32(lanes[l])
  }
  // the lanes' bytes, little-endian as the parameters' bytes are read (2 us faster than 8 toString(16)s)
  return Buffer.from(lanes.buffer).toString('hex')
}

/** values start..end-1 into the lanes, value start + j into lane j % 8; eight chains in locals, so they run side by side */
function mixRange(lanes: Int32Array, bits: Int32Array, start: number, end: number): void {
  let h0 = lanes[0]; let h1 = lanes[1]; let h2 = lanes[2]; let h3 = lanes[3]
  let h4 = lanes[4]; let h5 = lanes[5]; let h6 = lanes[6]; let h7 = lanes[7]
  let i = start
  for (; i + 8 <= end; i += 8) {
    h0 = laneMix(h0, bits[i]); h1 = laneMix(h1, bits[i + 1]); h2 = laneMix(h2, bits[i + 2]); h3 = laneMix(h3, bits[i + 3])
    h4 = laneMix(h4, bits[i + 4]); h5 = laneMix(h5, bits[i + 5]); h6 = laneMix(h6, bits[i + 6]); h7 = laneMix(h7, bits[i + 7])
  }
  lanes[0] = h0; lanes[1] = h1; lanes[2] = h2; lanes[3] = h3; lanes[4] = h4; lanes[5] = h5; lanes[6] = h6; lanes[7] = h7
  for (let l = 0; i < end; i++, l++) lanes[l] = laneMix(lanes[l], bits[i])
}

/** `count` whole blocks of STEP_DIGEST_BLOCK (16) values, `stride` apart from `start`, as mixRange mixes each */
function mixBlocks(lanes: Int32Array, bits: Int32Array, start: number, stride: number, count: number): void {
  let h0 = lanes[0]; let h1 = lanes[1]; let h2 = lanes[2]; let h3 = lanes[3]
  let h4 = lanes[4]; let h5 = lanes[5]; let h6 = lanes[6]; let h7 = lanes[7]
  // two rounds of eight per block, not sixteen calls written out: V8 stops inlining laneMix past
  // its budget, and the calls it left made a 4,096-value sample take 8 us against 4.6
  for (let b = 0; b < count; b++) {
    for (let i = start + b * stride, end = i + STEP_DIGEST_BLOCK; i < end; i += 8) {
      h0 = laneMix(h0, bits[i]); h1 = laneMix(h1, bits[i + 1]); h2 = laneMix(h2, bits[i + 2]); h3 = laneMix(h3, bits[i + 3])
      h4 = laneMix(h4, bits[i + 4]); h5 = laneMix(h5, bits[i + 5]); h6 = laneMix(h6, bits[i + 6]); h7 = laneMix(h7, bits[i + 7])
    }
  }
  lanes[0] = h0; lanes[1] = h1; lanes[2] = h2; lanes[3] = h3; lanes[4] = h4; lanes[5] = h5; lanes[6] = h6; lanes[7] = h7
}

/** one chain step, FxHash's (rustc's FxHasher, 32-bit): `value` mixed into the lane `h` (both int32) */
function laneMix(h: number, value: number): number {
  return Math.imul(((h << 5) | (h >>> 27)) ^ value, 0x9e3779b9)
}

/** MurmurHash3's finalizer: a bijection of int32 that spreads every input bit over the output */
function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) | 0
}
