/**
 * Everything a job needs to compute, resolved once from its config: the model, the data
 * splits, where gradients are computed, the optimizer, the codec and the aggregation rule.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { OffloadConfig } from '../../config/offload-config.js'
import { createGradientComputer } from '../../functions/create-gradient-computer.js'
import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { loadJobDatasets, type JobDatasetLoader } from '../../ml/data/job-datasets.js'
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
  /** where this peer computes gradients (the daemon's `offload` setting; absent: in process) */
  readonly offload?: OffloadConfig
  /** told when an offloaded micro-batch was computed in process because its function kept failing */
  readonly onOffloadFallback?: (info: { index: number, error: string }) => void
}

export async function resolveModel(spec: string): Promise<ModelDefinition> {
  if (!spec.endsWith('.onnx') && !spec.includes('/')) return createModel(spec)
  const { loadOnnxModel } = await import('../../ml/onnx/load-onnx-model.js')
  return loadOnnxModel(spec)
}

export async function createJobRuntime(config: JobConfig, options: JobRuntimeOptions = {}): Promise<JobRuntime> {
  const model = await resolveModel(config.model)
  const { train, validation, test } = await (options.loadDatasets ?? loadJobDatasets)(config.dataset, { seed: config.seed, trainSamples: config.trainSamples })
  const sample = train.sampleShape.join('x')
  if (sample !== model.sampleShape.join('x')) {
    throw new Error(`model '${config.model}' expects samples of shape ${model.sampleShape.join('x')} but dataset '${config.dataset}' has ${sample}`)
  }
  const computer = await createGradientComputer(model, options.offload, { computeThreads: options.computeThreads, onFallback: options.onOffloadFallback })
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
