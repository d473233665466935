/**
 * The reduce-scatter step's pieces (daemon/training/slice-plan.ts, reduce-scatter-step.ts),
 * played for 5 members without a network: each member's parts reach the replicas of each slice
 * as the same values, the replicas' results decode alike on every member, the medians give
 * every member one vector, and that vector is the rule over the members' decoded gradients. The
 * model's exact ranges (running statistics) travel as float32 inside the slices they fall in.
 */
import { describe, expect, it } from 'vitest'
import { AggregationConfigSchema, CompressionConfigSchema } from '../../config/job-config.js'
import { createAggregator } from '../../ml/aggregate/index.js'
import { sliceReplicas } from '../../ml/aggregate/reduce-scatter.js'
import { createRng } from '../../ml/core/rng.js'
import { aggregateRun, encodeParts, encodeResults, fitsRun, medianOfReplicas, slicesShortOf } from '../../daemon/training/reduce-scatter-step.js'
import { createSlicePlan } from '../../daemon/training/slice-plan.js'

const d = 5000
const members = 5
const f = 1
const exact = [{ offset: 1500, size: 40 }, { offset: 4990, size: 10 }]
const compression = CompressionConfigSchema.parse({ codec: 'qsgd', bits: 8, bucketSize: 256 })
const plan = createSlicePlan(d, members, f, compression, exact)
const rng = createRng(5)
const gradients = Array.from({ length: members }, () => Float32Array.from({ length: d }, () => rng.nextFloat() - 0.5))
const aggregator = createAggregator(AggregationConfigSchema.parse({ rule: 'trimmed-mean', f }))

describe('slice plan', () => {
  it('gives member i the slices whose replicas include it, 2f+1 of them', () => {
    for (let i = 0; i < members; i++) {
      const mine = plan.slicesOf(plan.replicaRun(i))
      expect(mine).toHaveLength(3)
      for (let s = 0; s < members; s++) expect(mine.includes(s)).toBe(sliceReplicas(s, members, f).includes(i))
      for (const s of mine) expect(plan.replicasOf(s)).toContain(i)
    }
    // fewer members than 2f+1 (a rule like the mean): every member replicates every slice
    const two = createSlicePlan(d, 2, f, compression, [])
    expect(two.replicas).toBe(2)
    expect(two.slicesOf(two.replicaRun(0))).toHaveLength(2)
  })

  it('refuses a payload cut for another member count, naming both', () => {
    const run = plan.replicaRun(0)
    expect(() => plan.decode(run, new Uint8Array(plan.encodedSize(run) + 4))).toThrow(/expected .* of 5/)
  })
})

describe('a reduce-scatter step among 5 members', () => {
  const own = gradients.map((g, rank) => encodeParts(plan, g, 42, 9, rank))
  // what every replica would get from every member, and what it aggregates
  const partsAt = (replica: number): Float32Array[][] => own.map((o) => {
    const { payload, slices } = o.partsFor(replica)
    expect(fitsRun(plan, slices, plan.replicaRun(replica))).toBe(true)
    return plan.decode(slices, payload)
  })

  it('every replica of a slice sees the same parts, equal to the sender\'s own decoded parts', () => {
    for (let r = 0; r < members; r++) {
      const parts = partsAt(r)
      expect(parts[r]).toEqual(own[r].parts)
    }
    // slice 0's replicas are members 0, 1, 2: member 3's part of it is the same values at each
    const at = (replica: number): Float32Array => {
      const k = plan.slicesOf(plan.replicaRun(replica)).indexOf(0)
      return partsAt(replica)[3][k]
    }
    expect(at(1)).toEqual(at(0))
    expect(at(2)).toEqual(at(0))
    // the running statistics travel exactly
    const s = plan.ranges.findIndex((r) => r.start <= 1500 && 1500 < r.end)
    const replica = plan.replicasOf(s)[0]
    const part = partsAt(replica)[2][plan.slicesOf(plan.replicaRun(replica)).indexOf(s)]
    expect(part.subarray(1500 - plan.ranges[s].start, 1540 - plan.ranges[s].start)).toEqual(gradients[2].subarray(1500, 1540))
  })

  const results = Array.from({ length: members }, (_, r) => {
    const run = plan.replicaRun(r)
    return encodeResults(plan, run, aggregateRun(plan, run, partsAt(r), aggregator), 42, 9)
  })

  it('a replica\'s aggregate of a slice is the rule over the members\' whole decoded gradients, cut to the slice', () => {
    // each member's gradient as the replicas decode it, put back together from the slices
    const whole = own.map(() => new Float32Array(d))
    for (let r = 0; r < members; r++) {
      const parts = partsAt(r)
      for (const [k, s] of plan.slicesOf(plan.replicaRun(r)).entries()) for (let m = 0; m < members; m++) whole[m].set(parts[m][k], plan.ranges[s].start)
    }
    const rule = aggregator.aggregate(whole)
    for (let r = 0; r < members; r++) {
      const run = plan.replicaRun(r)
      for (const [k, s] of plan.slicesOf(run).entries()) expect(aggregateRun(plan, run, partsAt(r), aggregator)[k]).toEqual(rule.subarray(plan.ranges[s].start, plan.ranges[s].end))
    }
  })

  it('honest replicas of a slice send the same result, and every member takes it', () => {
    const byReplica = new Map(results.map((x, r) => [r, x.decoded]))
    const combined = medianOfReplicas(plan, byReplica, new Float32Array(d))
    for (let s = 0; s < members; s++) {
      const { start, end } = plan.ranges[s]
      // the rule over the members' parts of slice s, quantized once more for the results
      const replica = plan.replicasOf(s)[0]
      const k = plan.slicesOf(plan.replicaRun(replica)).indexOf(s)
      expect(combined.subarray(start, end)).toEqual(results[replica].decoded[k])
      for (const other of plan.replicasOf(s).slice(1)) {
        const j = plan.slicesOf(plan.replicaRun(other)).indexOf(s)
        expect(results[other].decoded[j]).toEqual(results[replica].decoded[k])
      }
    }
    expect(slicesShortOf(plan, byReplica, 3)).toEqual([])
  })

  it('one corrupt replica per slice changes nothing; a missing one leaves 2 of 3', () => {
    const honest = medianOfReplicas(plan, new Map(results.map((x, r) => [r, x.decoded])), new Float32Array(d))
    const run4 = plan.replicaRun(4)
    const corrupt = encodeResults(plan, run4, aggregateRun(plan, run4, partsAt(4), aggregator, (x) => x.map((v) => -10 * v)), 42, 9)
    const attacked = new Map(results.map((x, r) => [r, r === 4 ? corrupt.decoded : x.decoded]))
    expect(medianOfReplicas(plan, attacked, new Float32Array(d))).toEqual(honest)
    const without4 = new Map(results.map((x, r) => [r, x.decoded] as const).filter(([r]) => r !== 4))
    expect(slicesShortOf(plan, without4, 3)).toEqual(plan.slicesOf(run4).sort((a, b) => a - b))
    expect(slicesShortOf(plan, without4, 2)).toEqual([])
  })
})
