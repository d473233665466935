/**
 * The arithmetic of a robust reduce-scatter (issue #20): the coordinates are split into slices;
 * slice s is aggregated by 2f+1 replicas (members (s + j) mod P, j = 0..2f, in the sorted member
 * order), each applying the job's coordinate-wise rule to every member's part of the slice; every
 * member then takes the coordinate-wise median of the replicas' results, so up to f Byzantine
 * replicas of a slice cannot move it outside the honest replicas' range (with the honest ones
 * agreeing, not at all). Each member sends (2f+1) x its payload in parts and, as a replica of
 * 2f+1 slices, (2f+1) x a payload of results: bytes per member do not grow with P. Pure compute,
 * all members at once: the daemon's step (one member, over the wire) is
 * daemon/training/reduce-scatter-step.ts; `bench/scale-sim.ts` replays this one to measure it.
 */
import type { Aggregator } from './aggregator.js'
import { aggregateMedian } from './coordinate-wise.js'

/** one slice of the coordinates: [start, end) */
export interface SliceRange {
  readonly start: number
  readonly end: number
}

/**
 * `count` coordinates in `slices` contiguous slices of whole `align`-value blocks (a codec
 * bucket, so each part encodes on its own), as even as the blocks allow; the last may be short,
 * and a slice is empty when there are fewer blocks than slices.
 */
export function sliceRanges(count: number, slices: number, align = 1): SliceRange[] {
  if (!Number.isInteger(slices) || slices < 1) throw new RangeError(`slices must be a whole number >= 1, got ${slices}`)
  const blocks = Math.ceil(count / align)
  const ranges: SliceRange[] = []
  for (let s = 0; s < slices; s++) {
    const start = Math.min(count, Math.floor((s * blocks) / slices) * align)
    const end = Math.min(count, Math.floor(((s + 1) * blocks) / slices) * align)
    ranges.push({ start, end })
  }
  return ranges
}

/** the members (indices into the sorted member list) that aggregate slice `slice`: 2f+1 of P */
export function sliceReplicas(slice: number, members: number, f: number): number[] {
  const replicas = 2 * f + 1
  if (replicas > members) throw new RangeError(`2f+1 = ${replicas} replicas need at least that many members, got ${members}`)
  return Array.from({ length: replicas }, (_, j) => (slice + j) % members)
}

export interface ReduceScatterOptions {
  readonly aggregator: Aggregator
  readonly f: number
  /** number of slices (default: one per member) */
  readonly slices?: number
  /** slice boundaries fall on multiples of this (default 1) */
  readonly align?: number
  /**
   * what a replica sends for a slice instead of the honest result (a Byzantine replica); absent
   * or undefined returned: the honest result
   */
  readonly corrupt?: (replica: number, slice: SliceRange, honest: Float32Array) => Float32Array | undefined
}

/**
 * What every member holds after the reduce-scatter of `gradients` (one per member, in the sorted
 * member order, all the same length): per slice, the median of its replicas' results. Honest
 * replicas see the same parts and compute the same result, so it is computed once per slice here.
 */
export function reduceScatterAggregate(gradients: readonly Float32Array[], options: ReduceScatterOptions): Float32Array {
  const members = gradients.length
  const d = gradients[0].length
  const out = new Float32Array(d)
  for (const [s, slice] of sliceRanges(d, options.slices ?? members, options.align).entries()) {
    const length = slice.end - slice.start
    if (length === 0) continue
    const parts = gradients.map((g) => g.subarray(slice.start, slice.end))
    const honest = options.aggregator.aggregate(parts)
    const results = sliceReplicas(s, members, options.f).map((r) => options.corrupt?.(r, slice, honest) ?? honest)
    aggregateMedian(results, length, out.subarray(slice.start, slice.end))
  }
  return out
}
