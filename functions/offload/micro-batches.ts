/**
 * Splitting a batch into micro-batches and combining their gradients. A micro-batch's gradient is
 * the gradient of its mean loss, so the batch's is the sample-count-weighted mean of them
 * (sum_i n_i g_i / sum_i n_i), accumulated in float64.
 */
import type { Batch, GradientResult } from '../../ml/core/types.js'

/**
 * Contiguous slices (views, no copy; the dropout key's indices are copied) of as equal sizes as possible: `parts` of them, fewer when
 * the batch has fewer samples, none smaller than `minSize` unless the batch itself is.
 */
export function splitBatch(batch: Batch, parts: number, minSize = 1): Batch[] {
  const count = Math.max(1, Math.min(parts, Math.floor(batch.size / Math.max(1, minSize)), batch.size))
  const sampleSize = batch.inputs.length / batch.size
  const base = Math.floor(batch.size / count)
  const extra = batch.size % count
  const out: Batch[] = []
  let start = 0
  const key = batch.dropout
  for (let i = 0; i < count; i++) {
    const size = base + (i < extra ? 1 : 0)
    const from = start
    out.push({
      size,
      sampleShape: batch.sampleShape,
      inputs: batch.inputs.subarray(start * sampleSize, (start + size) * sampleSize),
      labels: batch.labels.subarray(start, start + size),
      // each micro-batch keeps its samples' dropout key, so its masks are the whole batch's rows
      ...(key === undefined ? {} : { dropout: { seed: key.seed, step: key.step, sampleIndices: Array.from({ length: size }, (_, j) => key.sampleIndices[from + j]) } })
    })
    start += size
  }
  return out
}

/** One micro-batch's share: its gradient, summed loss and counts. */
export interface PartialGradient {
  readonly gradient: Float32Array
  readonly lossSum: number
  readonly correct: number
  readonly count: number
}

/**
 * The whole batch's result from its micro-batches' (weighted by sample count). One part is
 * returned as it is (bit-identical to computing the batch at once).
 * @throws RangeError on no parts or gradients of different lengths
 */
export function combineGradients(parts: readonly PartialGradient[]): GradientResult {
  if (parts.length === 0) throw new RangeError('combineGradients needs at least one micro-batch result')
  const total = parts.reduce((n, p) => n + p.count, 0)
  const lossSum = parts.reduce((s, p) => s + p.lossSum, 0)
  const correct = parts.reduce((s, p) => s + p.correct, 0)
  if (parts.length === 1) return { gradient: parts[0].gradient, loss: lossSum / total, correct, size: total }
  const length = parts[0].gradient.length
  const sum = new Float64Array(length)
  for (const part of parts) {
    if (part.gradient.length !== length) throw new RangeError(`micro-batch gradients differ in length: ${part.gradient.length} vs ${length}`)
    const g = part.gradient
    const w = part.count
    for (let j = 0; j < length; j++) sum[j] += w * g[j]
  }
  const gradient = new Float32Array(length)
  for (let j = 0; j < length; j++) gradient[j] = sum[j] / total
  return { gradient, loss: lossSum / total, correct, size: total }
}
