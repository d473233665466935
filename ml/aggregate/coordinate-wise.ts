/**
 * Coordinate-wise rules: mean, trimmed mean, median. Trimmed mean and median sort each
 * coordinate's n values (a sorting network over blocks of coordinates, `sorted-columns.ts`), so
 * they do not even depend on the input order; with many peers and a small f, trimmed mean
 * instead moves the extremes aside.
 */
import { forEachSortedBlock, SORTED_BLOCK } from './sorted-columns.js'

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
  // many peers and few to trim: moving the 2f extremes aside beats sorting all n (measured at n = 16, 32)
  if (n >= 16 && 8 * f <= n) return trimmedMeanBySelection(gradients, d, f)
  const kept = n - 2 * f
  const out = new Float32Array(d)
  forEachSortedBlock(gradients, d, (rows, start, length) => {
    for (let j = 0; j < length; j++) {
      // summed in ascending order, as a sorted list would be
      let sum = 0
      for (let r = f; r < n - f; r++) sum += rows[r * SORTED_BLOCK + j]
      out[start + j] = sum / kept
    }
  })
  return out
}

function trimmedMeanBySelection (gradients: readonly Float32Array[], d: number, f: number): Float32Array {
  const n = gradients.length
  const kept = n - 2 * f
  const scratch = new Float64Array(n)
  const out = new Float32Array(d)
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < n; i++) scratch[i] = gradients[i][j]
    moveExtremesAside(scratch, n, f)
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
  const out = new Float32Array(d)
  const mid = n >> 1
  const odd = (n & 1) === 1
  forEachSortedBlock(gradients, d, (rows, start, length) => {
    const upper = mid * SORTED_BLOCK
    const lower = (mid - 1) * SORTED_BLOCK
    for (let j = 0; j < length; j++) {
      out[start + j] = odd ? rows[upper + j] : (rows[lower + j] + rows[upper + j]) / 2
    }
  })
  return out
}
