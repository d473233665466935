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

/**
 * How a dataset's samples were normalised, per channel c: x = (v - mean[c]) / std[c], where v is
 * the pixel's intensity in [0, 1] (an 8-bit value / 255), as torchvision's ToTensor + Normalize
 * do. One entry in `mean` and `std` for single-channel images. An exported model expects its
 * inputs so (ml/onnx/export-forward.ts records it in the file).
 */
export interface InputNormalization {
  readonly mean: readonly number[]
  readonly std: readonly number[]
}

/** The per-channel form of scalar statistics (one channel). */
export function scalarNormalization(stats: NormalizationStats): InputNormalization {
  return { mean: [stats.mean], std: [stats.std] }
}

/**
 * The metadata_props key under which an exported model (ml/onnx/export-forward.ts) records how
 * its inputs are normalised: JSON `{"mean": [...], "std": [...]}` (InputNormalization).
 */
export const INPUT_NORMALIZATION_KEY = 'p2pmld.input_normalization'

/** One line saying what a model trained on such inputs expects (an export's doc_string, the CLI). */
export function describeInputNormalization(n: InputNormalization): string {
  const list = (xs: readonly number[]): string => xs.map((x) => Number(x.toPrecision(6))).join(', ')
  return `inputs normalised per channel as (v - mean) / std, v the pixel intensity in [0, 1]: mean [${list(n.mean)}], std [${list(n.std)}]`
}

/** In place: (x - mean) / std. */
export function normalizeInPlace(values: Float32Array, mean = MNIST_MEAN, std = MNIST_STD): Float32Array {
  const inv = 1 / std
  for (let i = 0; i < values.length; i++) values[i] = (values[i] - mean) * inv
  return values
}
