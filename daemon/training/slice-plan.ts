/**
 * How a reduce-scatter step cuts the vector (issue #20, ml/aggregate/reduce-scatter.ts): one
 * slice per member of the step, slice boundaries on whole codec buckets, slice s aggregated by
 * the 2f+1 members (s + j) mod P in the sorted member order, so member i replicates slices
 * i - 2f .. i (mod P). Each slice is encoded on its own, by the job's codec with the model's
 * exact ranges (running statistics) that fall inside it, so a message can carry any run of
 * slices and every member decodes them alike.
 */
import type { CompressionConfig } from '../../config/job-config.js'
import { sliceRanges, type SliceRange } from '../../ml/aggregate/reduce-scatter.js'
import { CodecError, type GradientCodec } from '../../ml/compress/codec.js'
import { createCodec } from '../../ml/compress/create-codec.js'
import type { ExactRange } from '../../ml/compress/exact-ranges.js'
import type { Rng } from '../../ml/core/rng.js'

/** a run of slices: first, first + 1, ... modulo the plan's total */
export interface SliceRun {
  readonly first: number
  readonly count: number
}

export interface SlicePlan {
  /** slices (= members at the step) */
  readonly total: number
  readonly ranges: readonly SliceRange[]
  /** replicas per slice: 2f+1, or every member when there are fewer */
  readonly replicas: number
  /** the slices member `index` (in the sorted member list) aggregates: `replicas` of them */
  replicaRun(index: number): SliceRun
  /** the member indices that aggregate `slice` */
  replicasOf(slice: number): number[]
  /** the slice indices of a run, in order */
  slicesOf(run: SliceRun): number[]
  /** the encoded size of a run's payload */
  encodedSize(run: SliceRun): number
  /** Encode slice `slice` (its values), with rng: the same bytes whoever it is sent to. */
  encodeSlice(slice: number, values: Float32Array, rng: Rng): Uint8Array
  /** A run's payload: the slices' encodings (`encoded[s]` for slice s) concatenated in run order. */
  join(run: SliceRun, encoded: readonly (Uint8Array | undefined)[]): Uint8Array
  /** Decode a run's payload into one vector per slice; throws CodecError on a wrong length or a malformed slice. */
  decode(run: SliceRun, payload: Uint8Array): Float32Array[]
}

/** the exact ranges inside [start, end), relative to start */
function rangesWithin(exact: readonly ExactRange[], start: number, end: number): ExactRange[] {
  const inside: ExactRange[] = []
  for (const r of exact) {
    const from = Math.max(r.offset, start)
    const to = Math.min(r.offset + r.size, end)
    if (to > from) inside.push({ offset: from - start, size: to - from })
  }
  return inside
}

/**
 * The plan for a vector of `count` values cut among `members` members tolerating `f` faulty
 * ones: 2f+1 replicas per slice, or every member when there are fewer (a rule such as the mean
 * runs with fewer members than 2f+1). Throws RangeError for fewer than one member.
 */
export function createSlicePlan(count: number, members: number, f: number, compression: CompressionConfig, exact: readonly ExactRange[]): SlicePlan {
  if (!Number.isInteger(members) || members < 1) throw new RangeError(`a reduce-scatter step needs at least one member, got ${members}`)
  const replicas = Math.min(2 * f + 1, members)
  const align = compression.codec === 'none' ? 1 : compression.bucketSize
  const ranges = sliceRanges(count, members, align)
  const codecs: GradientCodec[] = ranges.map((r) => createCodec(compression, rangesWithin(exact, r.start, r.end)))
  const sizes = ranges.map((r, s) => codecs[s].encodedSize(r.end - r.start))
  const slicesOf = (run: SliceRun): number[] => Array.from({ length: run.count }, (_, k) => (run.first + k) % members)
  const encodedSize = (run: SliceRun): number => slicesOf(run).reduce((sum, s) => sum + sizes[s], 0)
  return {
    total: members,
    replicas,
    ranges,
    replicaRun: (index) => ({ first: (index - (replicas - 1) + members) % members, count: replicas }),
    replicasOf: (slice) => Array.from({ length: replicas }, (_, j) => (slice + j) % members),
    slicesOf,
    encodedSize,
    encodeSlice(slice, values, rng) {
      const length = ranges[slice].end - ranges[slice].start
      if (values.length !== length) throw new RangeError(`slice ${slice} has ${length} values, got ${values.length}`)
      return codecs[slice].encode(values, rng)
    },
    join(run, encoded) {
      const out = new Uint8Array(encodedSize(run))
      let at = 0
      for (const s of slicesOf(run)) {
        const bytes = encoded[s]
        if (bytes === undefined) throw new RangeError(`slice ${s} of the run is not encoded`)
        out.set(bytes, at)
        at += bytes.length
      }
      return out
    },
    decode(run, payload) {
      const expected = encodedSize(run)
      if (payload.length !== expected) {
        throw new CodecError('length', `sliced payload of ${payload.length} bytes, expected ${expected} for slices ${slicesOf(run).join(', ')} of ${members} (the sender cut the vector for another member count)`)
      }
      let at = 0
      return slicesOf(run).map((s) => {
        const part = codecs[s].decode(payload.subarray(at, at + sizes[s]), ranges[s].end - ranges[s].start)
        at += sizes[s]
        return part
      })
    }
  }
}

/** Plans by member count, built once each (a plan holds a codec per slice). */
export function createSlicePlanCache(count: number, f: number, compression: CompressionConfig, exact: readonly ExactRange[]): (members: number) => SlicePlan {
  const plans = new Map<number, SlicePlan>()
  return (members) => {
    let plan = plans.get(members)
    if (plan === undefined) {
      plan = createSlicePlan(count, members, f, compression, exact)
      if (plans.size >= 16) plans.delete(plans.keys().next().value as number)
      plans.set(members, plan)
    }
    return plan
  }
}
