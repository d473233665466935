/**
 * Coordinate-wise rules: mean, trimmed mean, median. Trimmed mean and median sort each
 * coordinate's n values (a sorting network over blocks of coordinates, `sorted-columns.ts`), so
 * they do not even depend on the input order; with three to five inputs they sort each coordinate in
 * locals instead, and with many peers and a small f trimmed mean moves the extremes aside. With
 * 3 to 15 inputs (the mean: 2 to 15) and WebAssembly SIMD they run as ranked-columns.ts's kernel,
 * which gives the same bits as the JS paths here (the median of three: the same values, a zero's
 * sign aside).
 */
import { aggregateRankedColumns, RANKED_MIN_LENGTH, rankedColumnsAvailable } from './ranked-columns.js'
import { forEachSortedBlock, SORTED_BLOCK } from './sorted-columns.js'

/** Each function writes into `out` (d values, not one of the inputs) and returns it; a fresh array by default. */
export function aggregateMean (gradients: readonly Float32Array[], d: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  // 2 to 15 inputs: the kernel's sum in input order, 2x the JS loop's speed (mlp-large, 4 inputs)
  if (d >= RANKED_MIN_LENGTH && rankedColumnsAvailable(n, { kind: 'mean' })) return aggregateRankedColumns(gradients, d, { kind: 'mean' }, out)
  return meanInJs(gradients, d, out)
}

/** The mean in JS, summed in input order: the reference for ranked-columns.ts's kernel and the path where it does not run. */
export function meanInJs (gradients: readonly Float32Array[], d: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  for (let j = 0; j < d; j++) {
    let sum = 0
    for (let i = 0; i < n; i++) sum += gradients[i][j]
    out[j] = sum / n
  }
  return out
}

/** drops the f smallest and f largest values per coordinate (needs n > 2f) and averages the rest */
export function aggregateTrimmedMean (gradients: readonly Float32Array[], d: number, f: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  if (d >= RANKED_MIN_LENGTH && !selectsExtremes(n, f) && rankedColumnsAvailable(n)) return aggregateRankedColumns(gradients, d, { kind: 'trimmed-mean', f }, out)
  return trimmedMeanInJs(gradients, d, f, out)
}

/** many peers and few to trim: the extremes are moved aside instead of sorting all n */
const selectsExtremes = (n: number, f: number): boolean => n >= 16 && 8 * f <= n

/**
 * The trimmed mean in JS: the reference ranked-columns.ts's kernel matches bit for bit, and the
 * path where it does not run. Same contract as aggregateTrimmedMean.
 */
export function trimmedMeanInJs (gradients: readonly Float32Array[], d: number, f: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  // many peers and few to trim: moving the 2f extremes aside beats sorting all n (measured at n = 16, 32)
  if (selectsExtremes(n, f)) return trimmedMeanBySelection(gradients, d, f, out)
  // four peers and f = 1, the default job's case: the middle two of four without sorting blocks
  if (n === 4 && f === 1) return trimmedMeanOfFour(gradients, d, out)
  if (n >= 3 && n <= 5) return sortEachOfFew(gradients, d, out, f)
  const kept = n - 2 * f
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

/**
 * The two middle values of four are the larger of the pairs' minima and the smaller of their
 * maxima. Compared as order-preserving int32 keys, branch-free (as in sorted-columns.ts), in one
 * pass over the coordinates: ~2.5x faster than sorting blocks for lenet5's 61,706 values, and
 * the same result to the bit (two values sum the same in either order, from 0 as the sorted
 * path does).
 */
function trimmedMeanOfFour (gradients: readonly Float32Array[], d: number, out: Float32Array): Float32Array {
  const [a, b, c, e] = gradients.map((g) => new Int32Array(g.buffer, g.byteOffset, d))
  const middle = new Int32Array(2)
  const middleValues = new Float32Array(middle.buffer)
  for (let j = 0; j < d; j++) {
    const x = a[j] ^ ((a[j] >> 31) & 0x7fffffff)
    const y = b[j] ^ ((b[j] >> 31) & 0x7fffffff)
    const z = c[j] ^ ((c[j] >> 31) & 0x7fffffff)
    const w = e[j] ^ ((e[j] >> 31) & 0x7fffffff)
    let swap = (x ^ y) & -(x < y)
    const low1 = y ^ swap
    const high1 = x ^ swap
    swap = (z ^ w) & -(z < w)
    const low2 = w ^ swap
    const high2 = z ^ swap
    const m1 = low1 ^ ((low1 ^ low2) & -(low1 < low2))
    const m2 = high2 ^ ((high1 ^ high2) & -(high1 < high2))
    middle[0] = m1 ^ ((m1 >> 31) & 0x7fffffff)
    middle[1] = m2 ^ ((m2 >> 31) & 0x7fffffff)
    let sum = 0
    sum += middleValues[0]
    sum += middleValues[1]
    out[j] = sum / 2
  }
  return out
}

/**
 * Three to five inputs (3 members with f = 1, 5 with f = 1 or 2, 4 with f = 0; the median of 4 or
 * 5): each coordinate's values sorted in locals by an optimal network of compare-exchanges (3, 5 or
 * 9; Knuth, TAOCP vol. 3, 5.3.4) on the order-preserving int32 keys sorted-columns.ts uses,
 * branch-free as there; then the trimmed mean (`keep` = f: ranks f..n-f-1 summed in ascending
 * order from 0) or the median, each computed as the sorted-blocks path computes it: the same bits,
 * at 3.7-4.4 instead of 6.6-8.6 ns a value for the trimmed mean and 3.6-4.8 instead of 6.4-7.7 for
 * the median (101,770 values, n = 3-5, this 2-core machine; the aggregation table of
 * bench/codec-throughput.ts times n = 3 and 5 against the plain mean).
 */
function sortEachOfFew (gradients: readonly Float32Array[], d: number, out: Float32Array, keep: number | 'median'): Float32Array {
  const n = gradients.length
  const bits = gradients.map((g) => new Int32Array(g.buffer, g.byteOffset, d))
  const ranked = new Int32Array(n)
  const values = new Float32Array(ranked.buffer)
  const key = (b: number): number => b ^ ((b >> 31) & 0x7fffffff)
  const median = keep === 'median'
  const f = median ? 0 : keep
  const kept = n - 2 * f
  const mid = n >> 1
  const odd = (n & 1) === 1
  const combine = (): number => {
    if (median) return odd ? values[mid] : (values[mid - 1] + values[mid]) / 2
    let sum = 0
    for (let r = f; r < n - f; r++) sum += values[r]
    return sum / kept
  }
  let s: number
  if (n === 3) {
    const [a, b, c] = bits
    for (let j = 0; j < d; j++) {
      let x0 = key(a[j]); let x1 = key(b[j]); let x2 = key(c[j])
      s = (x0 ^ x1) & -(x0 > x1); x0 ^= s; x1 ^= s
      s = (x1 ^ x2) & -(x1 > x2); x1 ^= s; x2 ^= s
      s = (x0 ^ x1) & -(x0 > x1); x0 ^= s; x1 ^= s
      ranked[0] = key(x0); ranked[1] = key(x1); ranked[2] = key(x2)
      out[j] = combine()
    }
  } else if (n === 4) {
    const [a, b, c, e] = bits
    for (let j = 0; j < d; j++) {
      let x0 = key(a[j]); let x1 = key(b[j]); let x2 = key(c[j]); let x3 = key(e[j])
      s = (x0 ^ x1) & -(x0 > x1); x0 ^= s; x1 ^= s
      s = (x2 ^ x3) & -(x2 > x3); x2 ^= s; x3 ^= s
      s = (x0 ^ x2) & -(x0 > x2); x0 ^= s; x2 ^= s
      s = (x1 ^ x3) & -(x1 > x3); x1 ^= s; x3 ^= s
      s = (x1 ^ x2) & -(x1 > x2); x1 ^= s; x2 ^= s
      ranked[0] = key(x0); ranked[1] = key(x1); ranked[2] = key(x2); ranked[3] = key(x3)
      out[j] = combine()
    }
  } else {
    const [a, b, c, e, h] = bits
    for (let j = 0; j < d; j++) {
      let x0 = key(a[j]); let x1 = key(b[j]); let x2 = key(c[j]); let x3 = key(e[j]); let x4 = key(h[j])
      s = (x0 ^ x1) & -(x0 > x1); x0 ^= s; x1 ^= s
      s = (x3 ^ x4) & -(x3 > x4); x3 ^= s; x4 ^= s
      s = (x2 ^ x4) & -(x2 > x4); x2 ^= s; x4 ^= s
      s = (x2 ^ x3) & -(x2 > x3); x2 ^= s; x3 ^= s
      s = (x0 ^ x3) & -(x0 > x3); x0 ^= s; x3 ^= s
      s = (x0 ^ x2) & -(x0 > x2); x0 ^= s; x2 ^= s
      s = (x1 ^ x4) & -(x1 > x4); x1 ^= s; x4 ^= s
      s = (x1 ^ x3) & -(x1 > x3); x1 ^= s; x3 ^= s
      s = (x1 ^ x2) & -(x1 > x2); x1 ^= s; x2 ^= s
      ranked[0] = key(x0); ranked[1] = key(x1); ranked[2] = key(x2); ranked[3] = key(x3); ranked[4] = key(x4)
      out[j] = combine()
    }
  }
  return out
}

function trimmedMeanBySelection (gradients: readonly Float32Array[], d: number, f: number, out: Float32Array): Float32Array {
  const n = gradients.length
  const kept = n - 2 * f
  const scratch = new Float64Array(n)
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

export function aggregateMedian (gradients: readonly Float32Array[], d: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  // three inputs too: 4-5x faster than medianOfThree's clamp, whose branches mispredict on
  // gradients (mlp-large: 6 against 31 ms); a zero's sign then follows -0 < +0, not the input order
  if (d >= RANKED_MIN_LENGTH && rankedColumnsAvailable(n)) return aggregateRankedColumns(gradients, d, { kind: 'median' }, out)
  return medianInJs(gradients, d, out)
}

/** The median in JS: the reference for ranked-columns.ts's kernel and the path where it does not run. */
export function medianInJs (gradients: readonly Float32Array[], d: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  // three inputs (2f+1 with f = 1: three peers, or a reduce-scatter slice's replicas): clamp the
  // third into the first two's range, 15x faster than sorting blocks
  if (n === 3) return medianOfThree(gradients[0], gradients[1], gradients[2], d, out)
  const mid = n >> 1
  const odd = (n & 1) === 1
  if (n === 4 || n === 5) return sortEachOfFew(gradients, d, out, 'median')
  forEachSortedBlock(gradients, d, (rows, start, length) => {
    const upper = mid * SORTED_BLOCK
    const lower = (mid - 1) * SORTED_BLOCK
    for (let j = 0; j < length; j++) {
      out[start + j] = odd ? rows[upper + j] : (rows[lower + j] + rows[upper + j]) / 2
    }
  })
  return out
}

function medianOfThree (a: Float32Array, b: Float32Array, c: Float32Array, d: number, out: Float32Array): Float32Array {
  for (let j = 0; j < d; j++) {
    const x = a[j]
    const y = b[j]
    const z = c[j]
    const lo = x < y ? x : y
    const hi = x < y ? y : x
    out[j] = z < lo ? lo : z > hi ? hi : z
  }
  return out
}
