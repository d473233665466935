/**
 * The arithmetic of one reduce-scatter step on one member (job config `exchange: reduce-scatter`,
 * issue #20; the plan in slice-plan.ts, the pure version in ml/aggregate/reduce-scatter.ts):
 *
 * 1. parts: the member encodes each slice of its gradient once (seeded by step, rank and slice,
 *    so every replica of a slice decodes the same values) and sends each member the run of
 *    slices that member aggregates;
 * 2. as a replica, it aggregates each of its 2f+1 slices with the job's coordinate-wise rule over
 *    the parts it collected (sorted by sender, as the stream exchange does) and sends the results
 *    to every member, encoded with a seed of (step, slice): honest replicas that aggregated the
 *    same parts send the same bytes;
 * 3. every member takes, per slice, the coordinate-wise median of the replicas' results, so up to
 *    f Byzantine replicas of a slice cannot move it outside the honest replicas' range.
 *
 * Bytes per member per step: (2f+1)(P-1)/P payloads of parts and as much of results, whatever P.
 * The collection loops (deadline, quorum, eviction) stay in sync-trainer.ts.
 */
import { aggregateMedian } from '../../ml/aggregate/coordinate-wise.js'
import { createRng, deriveSeed } from '../../ml/core/rng.js'
import type { SliceHeader } from '../../protocols/messages/index.js'
import type { SlicePlan, SliceRun } from './slice-plan.js'

/** what one member sends and keeps of its own gradient at one step */
export interface OwnParts {
  /** the run of slices this member aggregates */
  readonly run: SliceRun
  /** its own parts of those slices, decoded as the replicas decode them (run order) */
  readonly parts: Float32Array[]
  /** the parts message's payload and slice header for the member at `index` in the step's member list */
  partsFor(index: number): { readonly payload: Uint8Array, readonly slices: SliceHeader }
}

/**
 * Encode `gradient` slice by slice (each slice once, seeded by (seed, step, rank, slice)) for the
 * step's `plan`; `rank` is this member's index in the sorted member list.
 */
export function encodeParts(plan: SlicePlan, gradient: Float32Array, seed: number, step: number, rank: number): OwnParts {
  const encoded = plan.ranges.map((r, s) => plan.encodeSlice(s, gradient.subarray(r.start, r.end), createRng(deriveSeed(seed, step, rank, 0x5eed, s))))
  const run = plan.replicaRun(rank)
  return {
    run,
    parts: plan.decode(run, plan.join(run, encoded)),
    partsFor(index) {
      const theirs = plan.replicaRun(index)
      return { payload: plan.join(theirs, encoded), slices: { phase: 'parts', total: plan.total, ...theirs } }
    }
  }
}

/**
 * A replica's results for its run: per slice, `aggregator` over the contributors' parts
 * (`contributions`: sorted by sender, each the parts of this run in run order). `corrupt` is a
 * test-only Byzantine replica (it changes what it aggregates before sending).
 */
export function aggregateRun(plan: SlicePlan, run: SliceRun, contributions: readonly (readonly Float32Array[])[], aggregator: { aggregate(gradients: readonly Float32Array[]): Float32Array },
  corrupt?: (result: Float32Array) => Float32Array): Float32Array[] {
  return plan.slicesOf(run).map((_, k) => {
    const result = aggregator.aggregate(contributions.map((parts) => parts[k]))
    return corrupt === undefined ? result : corrupt(result)
  })
}

/**
 * The results message for `run` (seeded by (seed, step, slice): identical inputs give identical
 * bytes on every honest replica) and the results as every member decodes them.
 */
export function encodeResults(plan: SlicePlan, run: SliceRun, results: readonly Float32Array[], seed: number, step: number):
{ readonly payload: Uint8Array, readonly slices: SliceHeader, readonly decoded: Float32Array[] } {
  const encoded: Uint8Array[] = []
  for (const [k, s] of plan.slicesOf(run).entries()) encoded[s] = plan.encodeSlice(s, results[k], createRng(deriveSeed(seed, step, 0x7e50, s)))
  const payload = plan.join(run, encoded)
  return { payload, slices: { phase: 'results', total: plan.total, ...run }, decoded: plan.decode(run, payload) }
}

/** slices that have fewer than `needed` replica results in `byReplica` (member index -> results of its run) */
export function slicesShortOf(plan: SlicePlan, byReplica: ReadonlyMap<number, readonly Float32Array[]>, needed: number): number[] {
  const short: number[] = []
  for (let s = 0; s < plan.total; s++) {
    if (plan.ranges[s].end === plan.ranges[s].start) continue
    if (plan.replicasOf(s).filter((r) => byReplica.has(r)).length < needed) short.push(s)
  }
  return short
}

/**
 * The step's gradient: per slice, the coordinate-wise median of the results its replicas sent
 * (`byReplica`: member index -> the results of that member's run, in run order), written into `out`.
 */
export function medianOfReplicas(plan: SlicePlan, byReplica: ReadonlyMap<number, readonly Float32Array[]>, out: Float32Array): Float32Array {
  for (let s = 0; s < plan.total; s++) {
    const { start, end } = plan.ranges[s]
    if (end === start) continue
    const results: Float32Array[] = []
    for (const r of plan.replicasOf(s)) {
      const theirs = byReplica.get(r)
      if (theirs === undefined) continue
      const run = plan.replicaRun(r)
      results.push(theirs[(s - run.first + plan.total) % plan.total])
    }
    if (results.length === 0) throw new Error(`no replica result for slice ${s}`)
    if (results.length === 1) out.set(results[0], start)
    else aggregateMedian(results, end - start, out.subarray(start, end))
  }
  return out
}

/** a sliced message's header names exactly `run` of `plan` (the sender cut for the same membership) */
export function fitsRun(plan: SlicePlan, header: SliceHeader, run: SliceRun): boolean {
  return header.total === plan.total && header.first === run.first && header.count === run.count
}
