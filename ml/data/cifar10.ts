/**
 * CIFAR-10 in its standard binary form (https://www.cs.toronto.edu/~kriz/cifar.html, "CIFAR-10
 * binary version"): data_batch_1.bin ... data_batch_5.bin (training) and test_batch.bin, each a
 * run of 3073-byte records: one label byte (0-9), then 1024 red, 1024 green and 1024 blue bytes
 * of a 32x32 image, rows top to bottom. Samples come out as 3x32x32 floats, normalised per channel
 * with the mean and standard deviation of the training set (pixels scaled to [0, 1] first).
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Dataset } from './dataset.js'
import { DatasetFormatError } from './idx.js'
import type { InputNormalization } from './normalize.js'

export const CIFAR10_RECORD_BYTES = 3073
const PIXELS = 1024
export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)
export const CIFAR10_TEST_FILE = 'test_batch.bin'

/** Per-channel statistics, e.g. CIFAR-10's training set: mean ~[0.491, 0.482, 0.447], std ~[0.247, 0.243, 0.262]. */
export type ChannelStats = InputNormalization

/**
 * Whether `dir` holds CIFAR-10 binary files: any one of them says so, and the loader then names a
 * missing one (a directory without data_batch_1.bin was read as IDX files, and its error spoke
 * of train-images-idx3-ubyte only).
 */
export function isCifar10Directory(dir: string): boolean {
  return [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE].some((file) => existsSync(join(dir, file)))
}

/** Records of one file: labels and the raw pixel bytes (CHW per record). */
export function parseCifar10Batch(bytes: Uint8Array, file: string): { labels: Int32Array, pixels: Uint8Array } {
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new DatasetFormatError(`${file}: ${bytes.length} bytes is not a whole number of ${CIFAR10_RECORD_BYTES}-byte CIFAR-10 records: use the "binary version" files (data_batch_N.bin), not the Python or MATLAB ones`)
  }
  const count = bytes.length / CIFAR10_RECORD_BYTES
  const labels = new Int32Array(count)
  const pixels = new Uint8Array(count * 3 * PIXELS)
  for (let i = 0; i < count; i++) {
    const record = bytes.subarray(i * CIFAR10_RECORD_BYTES, (i + 1) * CIFAR10_RECORD_BYTES)
    if (record[0] > 9) throw new DatasetFormatError(`${file}: record ${i} has label ${record[0]}, CIFAR-10 labels are 0-9`)
    labels[i] = record[0]
    pixels.set(record.subarray(1), i * 3 * PIXELS)
  }
  return { labels, pixels }
}

/** Mean and standard deviation per channel of CHW uint8 images, in [0, 1] units (float64 sums). */
export function channelStats(pixels: Uint8Array): ChannelStats {
  const count = pixels.length / (3 * PIXELS)
  const mean: number[] = []
  const std: number[] = []
  for (let c = 0; c < 3; c++) {
    let sum = 0
    let sq = 0
    for (let i = 0; i < count; i++) {
      const plane = pixels.subarray((i * 3 + c) * PIXELS, (i * 3 + c + 1) * PIXELS)
      for (let k = 0; k < PIXELS; k++) {
        const v = plane[k] / 255
        sum += v
        sq += v * v
      }
    }
    const n = count * PIXELS
    const m = sum / n
    mean.push(m)
    // a constant channel (generated test data) would divide by 0: fall back to 1
    std.push(Math.sqrt(Math.max(sq / n - m * m, 0)) || 1)
  }
  return { mean, std }
}

function toDataset(name: string, labels: Int32Array, pixels: Uint8Array, stats: ChannelStats): Dataset {
  const inputs = new Float32Array(pixels.length)
  const count = labels.length
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < 3; c++) {
      const base = (i * 3 + c) * PIXELS
      const m = stats.mean[c]
      const inv = 1 / stats.std[c]
      for (let k = 0; k < PIXELS; k++) inputs[base + k] = (pixels[base + k] / 255 - m) * inv
    }
  }
  return { name, sampleShape: [3, 32, 32], numClasses: 10, size: count, inputs, labels }
}

async function readBatches(dir: string, files: readonly string[]): Promise<{ labels: Int32Array, pixels: Uint8Array }> {
  const parts = []
  for (const file of files) {
    const path = join(dir, file)
    if (!existsSync(path)) throw new DatasetFormatError(`${path} is missing: a CIFAR-10 directory holds ${[...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE].join(', ')}`)
    parts.push(parseCifar10Batch(await readFile(path), path))
  }
  const total = parts.reduce((a, p) => a + p.labels.length, 0)
  const labels = new Int32Array(total)
  const pixels = new Uint8Array(total * 3 * PIXELS)
  let at = 0
  for (const p of parts) {
    labels.set(p.labels, at)
    pixels.set(p.pixels, at * 3 * PIXELS)
    at += p.labels.length
  }
  return { labels, pixels }
}

/**
 * The channel statistics the loader normalises `dir`'s samples with (those of its five training
 * files), without building the dataset: what a model trained on it expects (model export).
 * @throws DatasetFormatError naming a missing or malformed file
 */
export async function cifar10TrainStats(dir: string): Promise<ChannelStats> {
  return channelStats((await readBatches(dir, CIFAR10_TRAIN_FILES)).pixels)
}

/** Train (the five data batches) and test splits, both normalised with the training set's channel statistics. */
export async function loadCifar10Directory(dir: string, name = 'cifar-10'): Promise<{ train: Dataset, test: Dataset, stats: ChannelStats }> {
  const train = await readBatches(dir, CIFAR10_TRAIN_FILES)
  const test = await readBatches(dir, [CIFAR10_TEST_FILE])
  const stats = channelStats(train.pixels)
  return { train: toDataset(name, train.labels, train.pixels, stats), test: toDataset(name, test.labels, test.pixels, stats), stats }
}
