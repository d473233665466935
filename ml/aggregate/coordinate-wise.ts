/**
 * Coordinate-wise rules: mean, trimmed mean, median. One small scratch array per call, no
 * allocation per coordinate. Trimmed mean and median sort each coordinate's n values and sum
 * in sorted order, so the result does not even depend on the order of the inputs.
 */
import { insertionSort } from './aggregator.js'

export function aggregateMean (gradients: readonly Float32Array[], d: number): Float32Array {
  const n = gradients.length
  const out = new Float32Array(d)
  for (let j = 0; j < d; j++) {
    let sum = 0
    for (let i = 0; i < n; i++) sum += gradients[i][j]
    out[j] = sum / n
  }
  return out
}

/** drops the f smallest and f largest values per coordinate (needs n > 2f) and averages the rest */
export function aggregateTrimmedMean (gradients: readonly Float32Array[], d: number, f: number): Float32Array {
  const n = gradients.length
  const kept = n - 2 * f
  const scratch = new Float64Array(n)
  const out = new Float32Array(d)
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < n; i++) scratch[i] = gradients[i][j]
    insertionSort(scratch, n)
    let sum = 0
    for (let i = f; i < n - f; i++) sum += scratch[i]
    out[j] = sum / kept
  }
  return out
}

export function aggregateMedian (gradients: readonly Float32Array[], d: number): Float32Array {
  const n = gradients.length
  const scratch = new Float64Array(n)
  const out = new Float32Array(d)
  const mid = n >> 1
  const odd = (n & 1) === 1
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < n; i++) scratch[i] = gradients[i][j]
    insertionSort(scratch, n)
    out[j] = odd ? scratch[mid] : (scratch[mid - 1] + scratch[mid]) / 2
  }
  return out
}
