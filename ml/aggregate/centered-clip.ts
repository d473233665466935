/**
 * Centered clipping (Karimireddy, He, Jaggi 2021): starting from a centre v (the coordinate-wise
 * median unless the caller passes one, e.g. the previous aggregate), repeat
 *   v <- v + (1/n) * sum_i clip_tau(x_i - v),   clip_tau(z) = z * min(1, tau / ||z||)
 * A Byzantine input moves v by at most tau / n per iteration, however large it is.
 */
import { aggregateMedian } from './coordinate-wise.js'

export interface CenteredClipOptions {
  readonly radius: number
  readonly iterations: number
  readonly centre?: Float32Array
}

export function aggregateCenteredClip (gradients: readonly Float32Array[], d: number, options: CenteredClipOptions): Float32Array {
  const n = gradients.length
  const start = options.centre ?? aggregateMedian(gradients, d)
  const v = Float64Array.from(start)
  const weights = new Float64Array(n)
  for (let it = 0; it < options.iterations; it++) {
    for (let i = 0; i < n; i++) {
      const g = gradients[i]
      let s = 0
      for (let j = 0; j < d; j++) {
        const diff = g[j] - v[j]
        s += diff * diff
      }
      const norm = Math.sqrt(s)
      weights[i] = (norm <= options.radius ? 1 : options.radius / norm) / n
    }
    for (let j = 0; j < d; j++) {
      const c = v[j]
      let delta = 0
      for (let i = 0; i < n; i++) delta += weights[i] * (gradients[i][j] - c)
      v[j] = c + delta
    }
  }
  return Float32Array.from(v)
}
