/**
 * In-memory labelled datasets and the batching used by data-parallel peers. Batching is
 * cursor-based: a step consumes worldSize * batchSize samples of the epoch's permutation, peer
 * `rank` taking its slice, so membership can change mid-epoch without dropping or repeating data.
 */
import { createRng, deriveSeed } from '../core/rng.js'
import type { Batch } from '../core/types.js'

export interface Dataset {
  readonly name: string
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  readonly size: number
  /** size * prod(sampleShape) normalised values */
  readonly inputs: Float32Array
  readonly labels: Int32Array
}

export interface DatasetSplits {
  readonly train: Dataset
  readonly validation: Dataset
  readonly test: Dataset
}

export function sampleLength(ds: Pick<Dataset, 'sampleShape'>): number {
  return ds.sampleShape.reduce((a, b) => a * b, 1)
}

/** A new dataset holding the samples at `indices`, in that order. */
export function subset(ds: Dataset, indices: ArrayLike<number>, name = ds.name): Dataset {
  const len = sampleLength(ds)
  const inputs = new Float32Array(indices.length * len)
  const labels = new Int32Array(indices.length)
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]
    inputs.set(ds.inputs.subarray(k * len, (k + 1) * len), i * len)
    labels[i] = ds.labels[k]
  }
  return { name, sampleShape: ds.sampleShape, numClasses: ds.numClasses, size: indices.length, inputs, labels }
}

/** Fisher-Yates permutation of 0..n-1, seeded. */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const perm = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[i] = i
  const rng = createRng(seed)
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1)
    const t = perm[i]
    perm[i] = perm[j]
    perm[j] = t
  }
  return perm
}

/** The order samples are visited in during `epoch`: the same on every peer. */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  return seededPermutation(n, deriveSeed(seed, 0xe90c, epoch))
}

/** Indices of peer `rank`'s batch for the step that starts at `cursor`. */
export function shardBatchIndices(perm: Uint32Array, cursor: number, rank: number, worldSize: number, batchSize: number): Uint32Array {
  checkStepShape(cursor, worldSize, batchSize)
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank ${rank} is outside a world of ${worldSize}`)
  const start = cursor + rank * batchSize
  // every rank checks the whole step, so either all members of a step get a batch or none does
  if (cursor + worldSize * batchSize > perm.length) throw new RangeError(`the step at cursor ${cursor} needs ${worldSize * batchSize} samples; the epoch has ${perm.length - cursor} left`)
  return perm.subarray(start, start + batchSize)
}

/**
 * Whole steps of worldSize * batchSize samples still left in an epoch of `epochSize` samples
 * from `cursor` on. The remainder (fewer than one step's samples) is skipped for that epoch.
 */
export function stepsRemainingInEpoch(epochSize: number, cursor: number, worldSize: number, batchSize: number): number {
  checkStepShape(cursor, worldSize, batchSize)
  return Math.max(0, Math.floor((epochSize - cursor) / (worldSize * batchSize)))
}

// a negative cursor would make subarray() count from the end: reject it rather than wrap around
function checkStepShape(cursor: number, worldSize: number, batchSize: number): void {
  if (!Number.isInteger(cursor) || cursor < 0) throw new RangeError(`cursor ${cursor} must be a non-negative integer`)
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize ${worldSize} must be a positive integer`)
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize ${batchSize} must be a positive integer`)
}

/** Copy the samples at `indices` into a Batch: into new arrays, or into `into`'s (sized for exactly these samples: batchBuffers). */
export function gatherBatch(ds: Dataset, indices: ArrayLike<number>, into?: BatchBuffers): Batch {
  if (into === undefined) {
    const { size, sampleShape, inputs, labels } = subset(ds, indices)
    return { size, sampleShape, inputs, labels }
  }
  const len = sampleLength(ds)
  if (into.inputs.length !== indices.length * len || into.labels.length !== indices.length) {
    throw new RangeError(`batch buffers of ${into.labels.length} samples (${into.inputs.length} values) cannot hold ${indices.length} samples of ${len} values`)
  }
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]
    into.inputs.set(ds.inputs.subarray(k * len, (k + 1) * len), i * len)
    into.labels[i] = ds.labels[k]
  }
  return { size: indices.length, sampleShape: ds.sampleShape, inputs: into.inputs, labels: into.labels }
}

/**
 * Arrays a caller keeps to gather every batch of one size into (gatherBatch): a fresh batch a step
 * allocated (and page-faulted) its inputs anew, 20 against 8 us at 64 MNIST samples, 62 against
 * 35 at 256. A batch gathered into them is valid until the next gather.
 */
export interface BatchBuffers {
  readonly inputs: Float32Array
  readonly labels: Int32Array
}

/** Buffers for batches of `size` samples of `ds`. */
export function batchBuffers(ds: Dataset, size: number): BatchBuffers {
  return { inputs: new Float32Array(size * sampleLength(ds)), labels: new Int32Array(size) }
}

/** The whole dataset in order, in batches of at most `batchSize` (views, no copies). */
export function * evaluationBatches(ds: Dataset, batchSize: number): Generator<Batch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`evaluation batchSize ${batchSize} must be a positive integer`)
  const len = sampleLength(ds)
  for (let start = 0; start < ds.size; start += batchSize) {
    const end = Math.min(ds.size, start + batchSize)
    yield {
      size: end - start,
      sampleShape: ds.sampleShape,
      inputs: ds.inputs.subarray(start * len, end * len),
      labels: ds.labels.subarray(start, end)
    }
  }
}

/** Deterministic split into train / validation / test by a seeded shuffle. */
export function splitDataset(ds: Dataset, sizes: { validation: number, test: number }, seed: number): DatasetSplits {
  if (sizes.validation + sizes.test >= ds.size) {
    throw new RangeError(`cannot hold out ${sizes.validation + sizes.test} of ${ds.size} samples`)
  }
  const perm = seededPermutation(ds.size, deriveSeed(seed, 0x5b17))
  const testIdx = perm.subarray(0, sizes.test)
  const valIdx = perm.subarray(sizes.test, sizes.test + sizes.validation)
  const trainIdx = perm.subarray(sizes.test + sizes.validation)
  return {
    train: subset(ds, trainIdx, `${ds.name}/train`),
    validation: subset(ds, valIdx, `${ds.name}/validation`),
    test: subset(ds, testIdx, `${ds.name}/test`)
  }
}
