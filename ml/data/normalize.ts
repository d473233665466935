/** Standard MNIST statistics (also used for Fashion-MNIST unless given others). */
export const MNIST_MEAN = 0.1307
export const MNIST_STD = 0.3081

/** In place: (x - mean) / std. */
export function normalizeInPlace(values: Float32Array, mean = MNIST_MEAN, std = MNIST_STD): Float32Array {
  const inv = 1 / std
  for (let i = 0; i < values.length; i++) values[i] = (values[i] - mean) * inv
  return values
}
