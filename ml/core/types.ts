/**
 * Types shared across ml/ and the layers above it. Binary data is always a typed array view.
 */

/** One named parameter tensor, a view into the flat parameter vector. */
export interface ParameterSpec {
  readonly name: string
  readonly shape: readonly number[]
  /** offset in elements into the flat vector */
  readonly offset: number
  /** number of elements (product of shape) */
  readonly size: number
  /**
   * 'parameter' (default): trained by the optimizer. 'buffer': running statistics (BatchNorm's
   * running mean/var); the training graph's gradient slot carries the batch statistic, and the
   * optimizer sets running = (1 - momentum) running + momentum stat (PyTorch's convention).
   */
  readonly kind?: 'parameter' | 'buffer'
  /** weight of the new statistic in a buffer's running average (PyTorch BatchNorm: 0.1) */
  readonly momentum?: number
}

/** Where every parameter lives in the one flat Float32Array the daemon keeps. */
export interface ParameterLayout {
  readonly specs: readonly ParameterSpec[]
  readonly totalSize: number
}

/** A batch of samples, row-major NCHW (or N x features), and integer class labels. */
export interface Batch {
  /** batch size N */
  readonly size: number
  /** shape of one sample, e.g. [1, 28, 28] or [784] */
  readonly sampleShape: readonly number[]
  /** N * prod(sampleShape) values */
  readonly inputs: Float32Array
  /** N labels in [0, numClasses) */
  readonly labels: Int32Array
  /**
   * What seeds this batch's dropout masks: each sample's mask is a function of (job seed, step,
   * its index in the training set), so every peer drops the same units for the same sample.
   * Absent: seed 0, step 0, positions 0..N-1.
   */
  readonly dropout?: DropoutKey
}

export interface DropoutKey {
  readonly seed: number
  readonly step: number
  /** N indices into the training set */
  readonly sampleIndices: ArrayLike<number>
}

export interface GradientResult {
  /** mean loss over the batch */
  readonly loss: number
  /** flat gradient of the mean loss, laid out like the parameters */
  readonly gradient: Float32Array
  /** number of correctly classified samples in the batch */
  readonly correct: number
  readonly size: number
}

export interface EvaluationResult {
  /** sum of per-sample losses (divide by count for the mean) */
  readonly lossSum: number
  readonly correct: number
  readonly count: number
}

/**
 * Sub-stages of an offloaded gradient (functions/): write the parameters and micro-batches to the
 * blob store, dispatch the micro-batches, wait for the results, read the gradients back, combine.
 */
export const OFFLOAD_STAGES = ['upload', 'invoke', 'wait', 'download', 'combine'] as const
export type OffloadStage = typeof OFFLOAD_STAGES[number]

/**
 * Optional observer of one computeGradient call: a computer that offloads times its sub-stages
 * through it (the daemon's stage recorder); an in-process computer ignores it.
 */
export interface GradientObserver {
  time<T>(stage: OffloadStage, work: () => Promise<T> | T): Promise<T>
}

/**
 * The "where gradients are computed" seam: in process (ml/engine), a local worker pool, or
 * Lambda / Step Functions -> Lambda (functions/). Same inputs give the same gradient wherever it
 * runs (within float tolerance where the batch is split into micro-batches).
 */
export interface GradientComputer {
  /**
   * `into` (paramCount values, e.g. the optimizer's localGradientBuffer()): where the caller would
   * like the gradient, so the update reads it in place. A computer that writes its gradient in
   * place (the in-process one with reuseGradientBuffer) writes it there; others may ignore it: the
   * result's gradient says where it is. Once given, `into` is the computer's to write: the caller
   * reads it and leaves it alone.
   */
  computeGradient(params: Float32Array, batch: Batch, observer?: GradientObserver, into?: Float32Array): Promise<GradientResult>
  evaluate(params: Float32Array, batch: Batch): Promise<EvaluationResult>
  close(): Promise<void>
}
