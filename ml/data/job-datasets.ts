/**
 * Resolve a job's dataset name to train / validation / test splits, deterministically from the
 * job seed, so every peer of a job holds the very same splits.
 */
import { existsSync, statSync } from 'node:fs'
import { loadBundledMnist } from './bundled-mnist.js'
import { cifar10TrainStats, isCifar10Directory, loadCifar10Directory } from './cifar10.js'
import { seededPermutation, splitDataset, subset, type DatasetSplits } from './dataset.js'
import { loadIdxDirectory } from './idx.js'
import { FASHION_MNIST_STATS, MNIST_STATS, scalarNormalization, type InputNormalization } from './normalize.js'
import { deriveSeed } from '../core/rng.js'

export class UnknownDatasetError extends Error {
  override name = 'UnknownDatasetError'
}

/** A job asked for more training samples (`trainSamples`) than its dataset's training split holds. */
export class TrainSamplesError extends Error {
  override name = 'TrainSamplesError'
}

/** Where Debian's dataset-fashion-mnist package puts the IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'

export interface JobDatasetOptions {
  readonly seed: number
  /** keep only this many training samples (short jobs) */
  readonly trainSamples?: number
}

/**
 * The job's splits of dataset `name` (see loadSplits), its training split cut to a seeded random
 * `trainSamples` of its samples when that is given.
 * @throws UnknownDatasetError for a name that is no dataset here; TrainSamplesError when
 * `trainSamples` is more than the training split holds
 */
export async function loadJobDatasets(name: string, options: JobDatasetOptions): Promise<DatasetSplits> {
  const splits = await loadSplits(name, options.seed)
  if (options.trainSamples === undefined || options.trainSamples === splits.train.size) return splits
  if (options.trainSamples > splits.train.size) {
    throw new TrainSamplesError(`trainSamples ${options.trainSamples} is more than the training split of ${name} holds (${splits.train.size} samples; the validation samples are set apart first): use at most ${splits.train.size}, or leave out trainSamples (--train-samples) to train on all of them`)
  }
  const keep = seededPermutation(splits.train.size, deriveSeed(options.seed, 0x7a11)).subarray(0, options.trainSamples)
  return { ...splits, train: subset(splits.train, keep) }
}

export type JobDatasetLoader = (name: string, options: JobDatasetOptions) => Promise<DatasetSplits>

/**
 * A loader that loads each (dataset, seed, trainSamples) once. Peers sharing one process (the
 * demo, the multi-peer tests) then share the read-only arrays instead of each parsing the same
 * files again (the bundled MNIST is 21 MB of JSON, ~0.6 s per peer). A failed load is not kept.
 */
export function createCachedDatasetLoader(load: JobDatasetLoader = loadJobDatasets): JobDatasetLoader {
  const cache = new Map<string, Promise<DatasetSplits>>()
  return async (name, options) => {
    const key = JSON.stringify([name, options.seed, options.trainSamples ?? null])
    let splits = cache.get(key)
    if (splits === undefined) {
      splits = load(name, options)
      cache.set(key, splits)
      splits.catch(() => cache.delete(key))
    }
    return await splits
  }
}

/**
 * How loadJobDatasets normalises the samples of dataset `name` (what a model trained on it
 * expects of its inputs): MNIST's and Fashion-MNIST's fixed statistics, an IDX directory MNIST's,
 * a CIFAR-10 directory its training set's channel statistics (its five training files are read:
 * ~1 s for the real CIFAR-10).
 * @throws UnknownDatasetError as loadJobDatasets does; DatasetFormatError for a damaged CIFAR-10 file
 */
export async function jobDatasetNormalization(name: string): Promise<InputNormalization> {
  if (name === 'mnist') return scalarNormalization(MNIST_STATS)
  if (name === 'fashion-mnist') return scalarNormalization(FASHION_MNIST_STATS)
  return isCifar10Directory(datasetDirectory(name)) ? await cifar10TrainStats(name) : scalarNormalization(MNIST_STATS)
}

/**
 * Whether `name` names a dataset loadJobDatasets can read, without reading it: 'mnist', or an
 * existing directory ('fashion-mnist' its install directory). Checks the name and path only.
 * @throws UnknownDatasetError as loadJobDatasets does for a name it does not know
 */
export function checkDatasetName(name: string): void {
  if (name !== 'mnist') datasetDirectory(name)
}

/** The directory dataset `name` is read from (checked to exist). */
function datasetDirectory(name: string): string {
  const dir = name === 'fashion-mnist' ? FASHION_MNIST_DIR : name
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    if (name === 'fashion-mnist') {
      throw new UnknownDatasetError(`Fashion-MNIST is not installed at ${FASHION_MNIST_DIR}: run 'apt-get install dataset-fashion-mnist', or pass a directory of IDX files`)
    }
    // a path (it holds a '/'): the directory is what is missing, not a name misspelt
    if (name.includes('/')) throw new UnknownDatasetError(`dataset directory '${name}' ${existsSync(dir) ? 'is not a directory' : 'does not exist'}: check the path, or use 'mnist' (bundled) or 'fashion-mnist'`)
    throw new UnknownDatasetError(`unknown dataset '${name}': use 'mnist' (bundled), 'fashion-mnist', or a directory holding the four IDX files or the CIFAR-10 binary files (data_batch_1.bin ... test_batch.bin)`)
  }
  return dir
}

async function loadSplits(name: string, seed: number): Promise<DatasetSplits> {
  if (name === 'mnist') {
    // 10,000 bundled digits: 8,000 train, 1,000 validation, 1,000 test
    return splitDataset(await loadBundledMnist(), { validation: 1000, test: 1000 }, seed)
  }
  const dir = datasetDirectory(name)
  const { train, test } = name === 'fashion-mnist'
    ? await loadIdxDirectory(dir, 'fashion-mnist', FASHION_MNIST_STATS)
    : isCifar10Directory(dir) ? await loadCifar10Directory(dir, dir) : await loadIdxDirectory(dir, dir)
  // at least one validation sample: an empty validation set would give the schedule a NaN loss
  const validationSize = Math.max(1, Math.min(5000, Math.floor(train.size / 10)))
  const carved = splitDataset(train, { validation: validationSize, test: 0 }, seed)
  return { train: carved.train, validation: carved.validation, test }
}
