/**
 * Mean around the median ("mean-around-median", Xie, Koyejo, Gupta 2018, "Generalized
 * Byzantine-tolerant SGD", arXiv:1802.10116, their "mean around median"): for each coordinate,
 * the mean of the n - f values nearest the coordinate-wise median. Unlike the trimmed mean it
 * does not drop one honest value per side when the f attackers all sit at one extreme (as a
 * sign-flip attacker does): it drops the f values farthest from the median, whichever side they
 * are on. Needs n > 2f, like the median.
 *
 * Per coordinate the kept values are a contiguous run of the sorted column: starting from the
 * whole column, the end farther from the median is dropped, f times (on a tie the upper end,
 * so every peer keeps the same values), and the rest is summed in ascending order.
 */
import { aggregateRankedColumns, RANKED_MIN_LENGTH, rankedColumnsAvailable } from './ranked-columns.js'
import { forEachSortedBlock, SORTED_BLOCK } from './sorted-columns.js'

/**
 * gradients: n vectors of length d (n > 2f); writes into `out` (a fresh vector by default) and
 * returns it. 3 to 15 inputs with WebAssembly SIMD: ranked-columns.ts's kernel, the same bits.
 */
export function aggregateMeanAroundMedian (gradients: readonly Float32Array[], d: number, f: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const combine = { kind: 'mean-around-median', f } as const
  if (d >= RANKED_MIN_LENGTH && rankedColumnsAvailable(gradients.length, combine)) return aggregateRankedColumns(gradients, d, combine, out)
  return meanAroundMedianInJs(gradients, d, f, out)
}

/** The rule in JS over sorted blocks: the reference for the kernel, and the path where it does not run. */
export function meanAroundMedianInJs (gradients: readonly Float32Array[], d: number, f: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const n = gradients.length
  const kept = n - f
  const mid = n >> 1
  const odd = (n & 1) === 1
  forEachSortedBlock(gradients, d, (rows, start, length) => {
    for (let j = 0; j < length; j++) {
      const at = (r: number): number => rows[r * SORTED_BLOCK + j]
      const median = odd ? at(mid) : (at(mid - 1) + at(mid)) / 2
      let lo = 0
      let hi = n - 1
      for (let k = 0; k < f; k++) {
        if (median - at(lo) > at(hi) - median) lo++
        else hi--
      }
      let sum = 0
      for (let r = lo; r <= hi; r++) sum += at(r)
      out[start + j] = sum / kept
    }
  })
  return out
}
