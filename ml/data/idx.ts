/**
 * The IDX format of MNIST and Fashion-MNIST (optionally gzipped): a big-endian header
 * (magic 0x00000803 for images, 0x00000801 for labels, then the dimensions) and raw uint8 data.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import type { Dataset } from './dataset.js'
import { MNIST_STATS, normalizeInPlace, type NormalizationStats } from './normalize.js'

export class DatasetFormatError extends Error {
  override name = 'DatasetFormatError'
}

const IMAGES_MAGIC = 0x00000803
const LABELS_MAGIC = 0x00000801

async function readMaybeGzipped(path: string): Promise<Uint8Array> {
  const bytes = await readFile(path)
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes
  try {
    return gunzipSync(bytes)
  } catch (err) {
    throw new DatasetFormatError(`${path}: damaged gzip data (${(err as Error).message}): download or install the file again`)
  }
}

export function parseIdxImages(bytes: Uint8Array, file: string): { count: number, rows: number, cols: number, pixels: Uint8Array } {
  // the magic number first: a label file passed as images is named as such, not as "too short"
  if (bytes.length < 4) throw new DatasetFormatError(`${file}: too short for an IDX image header (${bytes.length} bytes)`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = view.getUint32(0)
  if (magic !== IMAGES_MAGIC) throw new DatasetFormatError(`${file}: magic 0x${magic.toString(16)} is not an IDX image file (expected 0x803)`)
  if (bytes.length < 16) throw new DatasetFormatError(`${file}: too short for an IDX image header (${bytes.length} bytes)`)
  const count = view.getUint32(4)
  const rows = view.getUint32(8)
  const cols = view.getUint32(12)
  const expected = 16 + count * rows * cols
  if (bytes.length !== expected) throw new DatasetFormatError(`${file}: header says ${count} images of ${rows}x${cols} (${expected} bytes) but the file has ${bytes.length}`)
  return { count, rows, cols, pixels: bytes.subarray(16) }
}

export function parseIdxLabels(bytes: Uint8Array, file: string): Uint8Array {
  if (bytes.length < 4) throw new DatasetFormatError(`${file}: too short for an IDX label header (${bytes.length} bytes)`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = view.getUint32(0)
  if (magic !== LABELS_MAGIC) throw new DatasetFormatError(`${file}: magic 0x${magic.toString(16)} is not an IDX label file (expected 0x801)`)
  if (bytes.length < 8) throw new DatasetFormatError(`${file}: too short for an IDX label header (${bytes.length} bytes)`)
  const count = view.getUint32(4)
  if (bytes.length !== 8 + count) throw new DatasetFormatError(`${file}: header says ${count} labels but the file has ${bytes.length - 8}`)
  return bytes.subarray(8)
}

function findFile(dir: string, prefix: string): string {
  for (const name of [`${prefix}-ubyte`, `${prefix}-ubyte.gz`, `${prefix.replace('-idx', '.idx')}-ubyte`, `${prefix.replace('-idx', '.idx')}-ubyte.gz`]) {
    const path = join(dir, name)
    if (existsSync(path)) return path
  }
  throw new DatasetFormatError(`no ${prefix}-ubyte(.gz) file in ${dir}: an IDX dataset directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte`)
}

export async function loadIdxPair(imagesPath: string, labelsPath: string, name: string, stats: NormalizationStats = MNIST_STATS): Promise<Dataset> {
  const images = parseIdxImages(await readMaybeGzipped(imagesPath), imagesPath)
  const labels = parseIdxLabels(await readMaybeGzipped(labelsPath), labelsPath)
  if (labels.length !== images.count) {
    throw new DatasetFormatError(`${imagesPath} has ${images.count} images but ${labelsPath} has ${labels.length} labels`)
  }
  const inputs = new Float32Array(images.pixels.length)
  for (let i = 0; i < inputs.length; i++) inputs[i] = images.pixels[i] / 255
  normalizeInPlace(inputs, stats.mean, stats.std)
  let maxLabel = 0
  for (const l of labels) maxLabel = Math.max(maxLabel, l)
  return { name, sampleShape: [1, images.rows, images.cols], numClasses: Math.max(10, maxLabel + 1), size: images.count, inputs, labels: Int32Array.from(labels) }
}

/** Train and test sets from a directory of the four standard IDX files. */
export async function loadIdxDirectory(dir: string, name: string, stats: NormalizationStats = MNIST_STATS): Promise<{ train: Dataset, test: Dataset }> {
  const train = await loadIdxPair(findFile(dir, 'train-images-idx3'), findFile(dir, 'train-labels-idx1'), `${name}/train`, stats)
  const test = await loadIdxPair(findFile(dir, 't10k-images-idx3'), findFile(dir, 't10k-labels-idx1'), `${name}/test`, stats)
  return { train, test }
}
