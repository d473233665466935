/**
 * Coordinate-wise sorting of n gradients, a block of coordinates at a time, for the rules that
 * need each coordinate's values in order (trimmed mean, median).
 *
 * Sorting each coordinate's n values on its own (insertion sort) branches on data and
 * mispredicts about half the time. Here a block of coordinates is copied into n rows and
 * Batcher's odd-even merge network (a fixed list of compare-exchanges) runs over whole rows,
 * branch-free on integer keys: sequential memory, no data-dependent branches. After it, row r
 * holds every coordinate's r-th smallest value, exactly the values a full sort gives.
 */

/** coordinates per block: n rows of this many values stay in L1 for small n */
export const SORTED_BLOCK = 256

/** Batcher's odd-even merge sort for n inputs: pairs (i, j), i < j, min goes to i and max to j. */
export function oddEvenMergeNetwork (n: number): Int32Array {
  const pairs: number[] = []
  for (let p = 1; p < n; p *= 2) {
    for (let k = p; k >= 1; k = Math.floor(k / 2)) {
      for (let j = k % p; j <= n - 1 - k; j += 2 * k) {
        for (let i = 0; i <= Math.min(k - 1, n - j - k - 1); i++) {
          if (Math.floor((i + j) / (2 * p)) === Math.floor((i + j + k) / (2 * p))) pairs.push(i + j, i + j + k)
        }
      }
    }
  }
  return Int32Array.from(pairs)
}

/**
 * Calls `visit(rows, start, length)` for consecutive blocks of coordinates; `rows` holds n rows of
 * SORTED_BLOCK values, row r (at offset r * SORTED_BLOCK) being the r-th smallest of each
 * coordinate start..start+length-1. `rows` is reused between calls. Inputs must be finite.
 */
export function forEachSortedBlock (
  gradients: readonly Float32Array[],
  d: number,
  visit: (rows: Float32Array, start: number, length: number) => void
): void {
  const n = gradients.length
  const network = oddEvenMergeNetwork(n)
  // float32 bits -> an int32 key with the same order (negatives: magnitude bits flipped), sorted
  // as integers, then mapped back (the map is its own inverse) and read as floats again
  const keys = new Int32Array(n * SORTED_BLOCK)
  const rows = new Float32Array(keys.buffer)
  // each gradient's float bits, viewed once (not once per block)
  const bits = gradients.map((g) => new Int32Array(g.buffer, g.byteOffset, d))
  for (let start = 0; start < d; start += SORTED_BLOCK) {
    const length = Math.min(SORTED_BLOCK, d - start)
    for (let r = 0; r < n; r++) {
      const source = bits[r]
      const row = r * SORTED_BLOCK
      for (let j = 0; j < length; j++) {
        const b = source[start + j]
        keys[row + j] = b ^ ((b >> 31) & 0x7fffffff)
      }
    }
    for (let c = 0; c < network.length; c += 2) {
      const lo = network[c] * SORTED_BLOCK
      const hi = network[c + 1] * SORTED_BLOCK
      for (let j = 0; j < length; j++) {
        const x = keys[lo + j]
        const y = keys[hi + j]
        // branch-free compare-exchange: float Math.min/max and branches both mispredict on gradients
        const swap = (x ^ y) & -(x < y)
        keys[lo + j] = y ^ swap
        keys[hi + j] = x ^ swap
      }
    }
    for (let i = 0; i < n * SORTED_BLOCK; i++) {
      const k = keys[i]
      keys[i] = k ^ ((k >> 31) & 0x7fffffff)
    }
    visit(rows, start, length)
  }
}
