/**
 * Everything a job needs to compute, resolved once from its config: the model, the data
 * splits, where gradients are computed, the optimizer, the codec and the aggregation rule.
 */
import { access, constants } from 'node:fs/promises'
import { nearest } from '../../config/config-errors.js'
import type { JobConfig } from '../../config/job-config.js'
import type { OffloadConfig } from '../../config/offload-config.js'
import { createGradientComputer } from '../../functions/create-gradient-computer.js'
import { createCodec, type ExactRangesCodec } from '../../ml/compress/index.js'
import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { checkDatasetName, loadJobDatasets, UnknownDatasetError, type JobDatasetLoader } from '../../ml/data/job-datasets.js'
import { UnknownModelError, type ModelDefinition } from '../../ml/models/model-definition.js'
import { createModel, followsDatasetShape, zooModelNames } from '../../ml/models/zoo.js'
import { bufferSpecs } from '../../ml/params.js'
import { createSlicePlanCache, type SlicePlan } from './slice-plan.js'

/** the datasets named rather than given as a directory (ml/data/job-datasets.ts) */
const DATASET_NAMES = ['mnist', 'fashion-mnist']

export interface JobRuntime {
  readonly config: JobConfig
  readonly model: ModelDefinition
  readonly train: Dataset
  readonly validation: Dataset
  readonly test: Dataset
  readonly computer: GradientComputer
  /** the job's codec; the model's running statistics travel exactly, outside its lossy buckets */
  readonly codec: ExactRangesCodec
  /** exchange reduce-scatter: how a step with that many members cuts the vector (slice-plan.ts) */
  readonly slicePlan?: (members: number) => SlicePlan
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

/** Whether a job's `model` is an ONNX file's path (it ends in .onnx or holds a '/'), not a zoo name. */
const isModelFile = (spec: string): boolean => spec.endsWith('.onnx') || spec.includes('/')

/**
 * The zoo model `name`; @throws UnknownModelError naming the zoo's models, and the nearest
 * names when `name` is a typo of one (lenett5: did you mean lenet5?)
 */
function zooModel(name: string, sampleShape?: readonly number[]): ModelDefinition {
  try {
    return createModel(name, sampleShape)
  } catch (error) {
    if (!(error instanceof UnknownModelError)) throw error
    const near = nearest(name, zooModelNames())
    const guess = near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : ''
    throw new UnknownModelError(`unknown model '${name}'${guess}: choose one of ${zooModelNames().join(', ')}, or give the path of a forward .onnx file`)
  }
}

/** A zoo name (sized by `sampleShape` where the model follows the dataset) or an .onnx path. */
export async function resolveModel(spec: string, sampleShape?: readonly number[]): Promise<ModelDefinition> {
  if (!isModelFile(spec)) return zooModel(spec, sampleShape)
  const { loadOnnxModel } = await import('../../ml/onnx/load-onnx-model.js')
  return loadOnnxModel(spec)
}

/**
 * Fails as resolveModel would for a model it cannot find, without reading a model file: a zoo
 * name no model has, an ONNX file that does not exist. `p2pmld start` checks its job's model so
 * before the daemon starts (it printed the peer's and the control socket's start-up first).
 * @throws UnknownModelError; OnnxModelNotFoundError (resolveModel's own, naming the path)
 */
export async function checkModelSpec(spec: string): Promise<void> {
  if (!isModelFile(spec)) {
    zooModel(spec)
    return
  }
  // not there: the loader's own error, which names the path and the fix
  await access(spec, constants.R_OK).catch(async () => await resolveModel(spec))
}

/** a misspelt name ('fashion-mnis'): `error` with the nearest dataset name, as for models */
function withNearestDataset(error: unknown, name: string): unknown {
  const near = error instanceof UnknownDatasetError && !name.includes('/') ? nearest(name, DATASET_NAMES) : []
  return near.length > 0 ? new UnknownDatasetError((error as Error).message.replace(`'${name}'`, `'${name}' (did you mean ${near.join(' or ')}?)`)) : error
}

/**
 * Checks that dataset `name` can be found (a known name, an existing directory), without
 * loading it: a command fails on it before printing that it starts.
 * @throws UnknownDatasetError naming the nearest dataset name where one is close
 */
export function checkDatasetSpec(name: string): void {
  try {
    checkDatasetName(name)
  } catch (error) {
    throw withNearestDataset(error, name)
  }
}

export async function createJobRuntime(config: JobConfig, options: JobRuntimeOptions = {}): Promise<JobRuntime> {
  // resolved before the data so a bad model name or file fails fast (a zoo layout allocates no weights)
  let model = await resolveModel(config.model)
  const { train, validation, test } = await (options.loadDatasets ?? loadJobDatasets)(config.dataset, { seed: config.seed, trainSamples: config.trainSamples }).catch((error: unknown) => {
    throw withNearestDataset(error, config.dataset)
  })
  // the paper's zoo models take their input shape from the dataset (1x28x28 MNIST, 3x32x32 CIFAR-10)
  if (followsDatasetShape(config.model) && model.sampleShape.join('x') !== train.sampleShape.join('x')) model = await resolveModel(config.model, train.sampleShape)
  checkDatasetFitsModel(config, model, [train, validation, test])
  const spare = spareOutputsWarning(config, model.numClasses, train.numClasses)
  if (spare !== undefined) model = { ...model, warnings: [...(model.warnings ?? []), spare] }
  // the sync trainer consumes each gradient before the next step: one buffer serves every step
  const computer = await createGradientComputer(model, options.offload, { computeThreads: options.computeThreads, onFallback: options.onOffloadFallback, reuseGradientBuffer: true })
  return {
    config,
    model,
    train,
    validation,
    test,
    computer,
    codec: createCodec(config.compression, bufferSpecs(model.layout)),
    ...(config.exchange === 'reduce-scatter'
      ? { slicePlan: createSlicePlanCache(model.layout.totalSize, config.aggregation.f, config.compression, bufferSpecs(model.layout)) }
      : {}),
    close: () => computer.close()
  }
}

/** A job's dataset and model do not fit each other (sample shape or classes). */
export class DatasetModelMismatchError extends Error {
  override name = 'DatasetModelMismatchError'
}

/**
 * A model with more outputs than the dataset has classes (a torchvision export without
 * num_classes: 1000 outputs for 10 labels) trains, but its spare outputs only learn to stay low
 * and its first loss reads ln(outputs): a warning naming both counts and the fix, else undefined.
 */
export function spareOutputsWarning(config: Pick<JobConfig, 'model' | 'dataset'>, outputs: number, classes: number): string | undefined {
  if (outputs <= classes) return undefined
  return `model '${config.model}' has ${outputs} outputs but dataset '${config.dataset}' has ${classes} classes: the other ${outputs - classes} only learn to stay low (the first loss is about ln ${outputs} = ${Math.log(outputs).toFixed(2)}, not ln ${classes} = ${Math.log(classes).toFixed(2)}); export the model with ${classes} outputs (torchvision: num_classes=${classes})`
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
