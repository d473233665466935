/** Standard MNIST statistics (also used for IDX directories of unknown origin). */
export const MNIST_MEAN = 0.1307
export const MNIST_STD = 0.3081

export interface NormalizationStats {
  readonly mean: number
  readonly std: number
}

export const MNIST_STATS: NormalizationStats = { mean: MNIST_MEAN, std: MNIST_STD }
/** Fashion-MNIST's training-set pixel statistics (its values in [0, 1]). */
export const FASHION_MNIST_STATS: NormalizationStats = { mean: 0.2860, std: 0.3530 }

/** In place: (x - mean) / std. */
export function normalizeInPlace(values: Float32Array, mean = MNIST_MEAN, std = MNIST_STD): Float32Array {
  const inv = 1 / std
  for (let i = 0; i < values.length; i++) values[i] = (values[i] - mean) * inv
  return values
}
