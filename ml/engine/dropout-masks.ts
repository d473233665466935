/**
 * Inverted-dropout masks for the training graph's mask inputs (see autodiff/ops/dropout.ts):
 * 0 with probability `ratio`, else 1/(1 - ratio). Sample j's mask for Dropout node k is drawn
 * from a generator seeded by (job seed, step, sample index, k): the same on every peer and in
 * every worker, whichever batch the sample lands in.
 */
import type { DropoutMaskInput } from '../autodiff/training-graph.js'
import type { Batch } from '../core/types.js'
import { createRng, deriveSeed } from '../core/rng.js'

/** One Float32Array per mask input, shaped like the Dropout node's input [N, ...]. */
export function dropoutMasks(inputs: readonly DropoutMaskInput[], batch: Batch): Float32Array[] {
  const key = batch.dropout ?? { seed: 0, step: 0, sampleIndices: Array.from({ length: batch.size }, (_, i) => i) }
  if (key.sampleIndices.length !== batch.size) throw new RangeError(`dropout key has ${key.sampleIndices.length} sample indices for a batch of ${batch.size}`)
  return inputs.map((input, k) => {
    const perSample = input.shape.slice(1).reduce((a, b) => a * b, 1)
    const mask = new Float32Array(batch.size * perSample)
    const keep = 1 / (1 - input.ratio)
    for (let j = 0; j < batch.size; j++) {
      const rng = createRng(deriveSeed(key.seed, key.step, key.sampleIndices[j], k, 0xd20f))
      const row = mask.subarray(j * perSample, (j + 1) * perSample)
      for (let i = 0; i < perSample; i++) row[i] = rng.nextFloat() < input.ratio ? 0 : keep
    }
    return mask
  })
}
