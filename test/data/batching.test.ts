import { describe, expect, it } from 'vitest'
import {
  batchBuffers, epochPermutation, evaluationBatches, gatherBatch, seededPermutation, shardBatchIndices, splitDataset,
  stepsRemainingInEpoch, subset, type Dataset
} from '../../ml/data/dataset.js'

/** A dataset whose sample i holds the values i, i + 0.25, i + 0.5 and label i % 7, so samples can be identified. */
function taggedDataset(size: number): Dataset {
  const inputs = new Float32Array(size * 3)
  const labels = new Int32Array(size)
  for (let i = 0; i < size; i++) {
    inputs.set([i, i + 0.25, i + 0.5], i * 3)
    labels[i] = i % 7
  }
  return { name: 'tagged', sampleShape: [3], numClasses: 7, size, inputs, labels }
}

function idsOf(ds: Dataset): number[] {
  return Array.from({ length: ds.size }, (_, k) => ds.inputs[k * 3])
}

function isPermutation(perm: Uint32Array, n: number): boolean {
  return perm.length === n && new Set(perm).size === n && Math.max(...perm) === n - 1
}

describe('epochPermutation', () => {
  it('is a seeded permutation: the same for a (seed, epoch) on every call, different across epochs and seeds', () => {
    const a = epochPermutation(1000, 5, 0)
    expect(isPermutation(a, 1000)).toBe(true)
    expect(epochPermutation(1000, 5, 0)).toEqual(a)
    expect(epochPermutation(1000, 5, 1)).not.toEqual(a)
    expect(epochPermutation(1000, 6, 0)).not.toEqual(a)
    // shuffled, not the identity or a rotation: few fixed points, as for a random permutation
    let fixed = 0
    a.forEach((v, i) => { if (v === i) fixed++ })
    expect(fixed).toBeLessThan(10)
    expect(isPermutation(epochPermutation(1, 5, 0), 1)).toBe(true)
  })

  it('places every index at every position about equally often', () => {
    // 4 items, 8000 permutations: each (index, position) pair expects 2000
    const counts = new Array<number>(16).fill(0)
    for (let s = 0; s < 8000; s++) {
      const p = seededPermutation(4, s)
      for (let pos = 0; pos < 4; pos++) counts[p[pos] * 4 + pos]++
    }
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200)
  })
})

describe('shardBatchIndices', () => {
  it('gives the ranks of one step disjoint batches covering worldSize * batchSize samples from the cursor', () => {
    const perm = epochPermutation(100, 1, 0)
    const worldSize = 3
    const batchSize = 8
    const cursor = 24
    const shards = Array.from({ length: worldSize }, (_, r) => shardBatchIndices(perm, cursor, r, worldSize, batchSize))
    const all = shards.flatMap((s) => Array.from(s))
    expect(shards.every((s) => s.length === batchSize)).toBe(true)
    expect(new Set(all).size).toBe(worldSize * batchSize)
    expect(all).toEqual(Array.from(perm.subarray(cursor, cursor + worldSize * batchSize)))
  })

  it('neither drops nor repeats samples when the world size changes mid-epoch', () => {
    const n = 1000
    const batchSize = 10
    const perm = epochPermutation(n, 9, 2)
    // membership changes between steps: peers join and leave
    const worlds = [4, 4, 2, 2, 2, 5, 1, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    const seen: number[] = []
    let cursor = 0
    let step = 0
    while (stepsRemainingInEpoch(n, cursor, worlds[step % worlds.length], batchSize) > 0) {
      const worldSize = worlds[step % worlds.length]
      for (let rank = 0; rank < worldSize; rank++) seen.push(...shardBatchIndices(perm, cursor, rank, worldSize, batchSize))
      cursor += worldSize * batchSize
      step++
    }
    expect(new Set(seen).size).toBe(seen.length)
    // what is left is less than one step of the next world: that is all the epoch skips
    const left = n - seen.length
    expect(left).toBeLessThan(worlds[step % worlds.length] * batchSize)
    expect(seen.length + left).toBe(n)
    expect(seen).toEqual(Array.from(perm.subarray(0, seen.length)))
  })

  it('refuses a step the epoch cannot fill for every rank, and nonsense arguments', () => {
    const perm = epochPermutation(50, 1, 0)
    // 40 + 2*8 = 56 > 50: no rank gets a batch, not even rank 0 whose slice would fit
    expect(() => shardBatchIndices(perm, 40, 0, 2, 8)).toThrow(/needs 16 samples; the epoch has 10 left/)
    expect(shardBatchIndices(perm, 34, 1, 2, 8).length).toBe(8)
    expect(() => shardBatchIndices(perm, 0, 2, 2, 8)).toThrow(/rank 2 is outside a world of 2/)
    expect(() => shardBatchIndices(perm, -8, 0, 1, 8)).toThrow(/cursor -8/)
    expect(() => shardBatchIndices(perm, 0, 0, 0, 8)).toThrow(/worldSize 0/)
    expect(() => shardBatchIndices(perm, 0, 0, 1, 0)).toThrow(/batchSize 0/)
  })

  it('counts the whole steps left in an epoch', () => {
    expect(stepsRemainingInEpoch(100, 0, 3, 8)).toBe(4)
    expect(stepsRemainingInEpoch(100, 96, 1, 4)).toBe(1)
    expect(stepsRemainingInEpoch(100, 97, 1, 4)).toBe(0)
    expect(stepsRemainingInEpoch(100, 120, 1, 4)).toBe(0)
  })
})

describe('gatherBatch and evaluationBatches', () => {
  it('copies the chosen samples and their labels, in order', () => {
    const ds = taggedDataset(20)
    const batch = gatherBatch(ds, Uint32Array.from([7, 3, 19]))
    expect(batch.size).toBe(3)
    expect(batch.sampleShape).toEqual([3])
    expect(Array.from(batch.inputs)).toEqual([7, 7.25, 7.5, 3, 3.25, 3.5, 19, 19.25, 19.5])
    expect(Array.from(batch.labels)).toEqual([0, 3, 5])
    batch.inputs[0] = -1
    expect(ds.inputs[21]).toBe(7)
  })

  it('gathers into buffers it is given, the same values, every batch into the same arrays; buffers of another size are refused', () => {
    const ds = taggedDataset(20)
    const buffers = batchBuffers(ds, 3)
    const first = gatherBatch(ds, Uint32Array.from([7, 3, 19]), buffers)
    expect(first.inputs).toBe(buffers.inputs)
    expect(first.labels).toBe(buffers.labels)
    expect(first).toEqual(gatherBatch(ds, Uint32Array.from([7, 3, 19])))
    const second = gatherBatch(ds, Uint32Array.from([1, 2, 4]), buffers)
    expect(second.inputs).toBe(first.inputs)
    expect(Array.from(second.inputs)).toEqual([1, 1.25, 1.5, 2, 2.25, 2.5, 4, 4.25, 4.5])
    expect(() => gatherBatch(ds, Uint32Array.from([1, 2]), buffers)).toThrow(/batch buffers of 3 samples \(9 values\) cannot hold 2 samples of 3 values/)
  })

  it('visits the whole dataset once, in order, with a short last batch', () => {
    const ds = taggedDataset(23)
    const batches = [...evaluationBatches(ds, 10)]
    expect(batches.map((b) => b.size)).toEqual([10, 10, 3])
    const ids = batches.flatMap((b) => Array.from({ length: b.size }, (_, k) => b.inputs[k * 3]))
    expect(ids).toEqual(Array.from({ length: 23 }, (_, i) => i))
    expect(batches.flatMap((b) => Array.from(b.labels))).toEqual(Array.from(ds.labels))
    expect([...evaluationBatches(ds, 100)].map((b) => b.size)).toEqual([23])
    expect([...evaluationBatches(taggedDataset(0), 4)]).toEqual([])
    expect(() => [...evaluationBatches(ds, 0)]).toThrow(/batchSize 0/)
  })
})

describe('splitDataset', () => {
  it('splits into disjoint sets covering every sample, deterministically from the seed', () => {
    const ds = taggedDataset(500)
    const a = splitDataset(ds, { validation: 60, test: 40 }, 3)
    expect([a.train.size, a.validation.size, a.test.size]).toEqual([400, 60, 40])
    const ids = [...idsOf(a.train), ...idsOf(a.validation), ...idsOf(a.test)]
    expect(new Set(ids).size).toBe(500)
    for (const part of [a.train, a.validation, a.test]) {
      idsOf(part).forEach((id, k) => { expect(part.labels[k]).toBe(id % 7) })
    }
    expect(a.validation.name).toBe('tagged/validation')
    const b = splitDataset(ds, { validation: 60, test: 40 }, 3)
    expect(idsOf(b.test)).toEqual(idsOf(a.test))
    expect(idsOf(b.train)).toEqual(idsOf(a.train))
    const c = splitDataset(ds, { validation: 60, test: 40 }, 4)
    expect(idsOf(c.test)).not.toEqual(idsOf(a.test))
    expect(() => splitDataset(ds, { validation: 300, test: 200 }, 1)).toThrow(/cannot hold out 500 of 500/)
  })

  it('subset copies the chosen samples', () => {
    const ds = taggedDataset(10)
    const s = subset(ds, [9, 0])
    expect(Array.from(s.inputs)).toEqual([9, 9.25, 9.5, 0, 0.25, 0.5])
    expect(s.size).toBe(2)
  })
})
