/**
 * Everything a job needs to compute, resolved once from its config: the model, the data
 * splits, where gradients are computed, the optimizer, the codec and the aggregation rule.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { loadJobDatasets, type JobDatasetLoader } from '../../ml/data/job-datasets.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import { createModel } from '../../ml/models/zoo.js'

export interface JobRuntime {
  readonly config: JobConfig
  readonly model: ModelDefinition
  readonly train: Dataset
  readonly validation: Dataset
  readonly test: Dataset
  readonly computer: GradientComputer
  close(): Promise<void>
}

export interface JobRuntimeOptions {
  /** ORT threads for this peer's gradient computation */
  readonly computeThreads?: number
  /** where the splits come from (default: load them; peers in one process can share a cache) */
  readonly loadDatasets?: JobDatasetLoader
}

export async function resolveModel(spec: string): Promise<ModelDefinition> {
  if (!spec.endsWith('.onnx') && !spec.includes('/')) return createModel(spec)
  const { loadOnnxModel } = await import('../../ml/onnx/load-onnx-model.js')
  return loadOnnxModel(spec)
}

export async function createJobRuntime(config: JobConfig, options: JobRuntimeOptions = {}): Promise<JobRuntime> {
  const model = await resolveModel(config.model)
  const { train, validation, test } = await (options.loadDatasets ?? loadJobDatasets)(config.dataset, { seed: config.seed, trainSamples: config.trainSamples })
  checkDatasetFitsModel(config, model, [train, validation, test])
  const computer = createOnnxGradientComputer(model, { intraOpThreads: options.computeThreads })
  return {
    config,
    model,
    train,
    validation,
    test,
    computer,
    close: () => computer.close()
  }
}

/** A job's dataset and model do not fit each other (sample shape or classes). */
export class DatasetModelMismatchError extends Error {
  override name = 'DatasetModelMismatchError'
}

/**
 * The job's dataset against its model, before any step: the sample shape must match the model's
 * input and every label (of every split) must be one of the model's classes. Throws
 * DatasetModelMismatchError naming the model, the dataset and both figures.
 */
export function checkDatasetFitsModel(config: Pick<JobConfig, 'model' | 'dataset'>, model: ModelDefinition, splits: readonly Dataset[]): void {
  const expected = model.sampleShape.join('x')
  for (const split of splits) {
    const sample = split.sampleShape.join('x')
    if (sample !== expected) {
      throw new DatasetModelMismatchError(`model '${config.model}' expects samples of shape ${expected} but dataset '${config.dataset}' has ${sample}: pick a model for this data or a dataset of ${expected} samples`)
    }
    let maxLabel = -1
    let minLabel = 0
    for (const label of split.labels) {
      if (label > maxLabel) maxLabel = label
      if (label < minLabel) minLabel = label
    }
    if (maxLabel >= model.numClasses || minLabel < 0) {
      const bad = minLabel < 0 ? minLabel : maxLabel
      throw new DatasetModelMismatchError(`dataset '${config.dataset}' has label ${bad} (classes 0..${maxLabel}) in split '${split.name}' but model '${config.model}' has ${model.numClasses} classes (0..${model.numClasses - 1}): use a model with at least ${maxLabel + 1} outputs or a dataset with at most ${model.numClasses} classes`)
    }
  }
}
