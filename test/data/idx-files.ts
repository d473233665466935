/** Writes real IDX files (the MNIST binary format) for the data tests. */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

export function idxImagesBytes(count: number, rows: number, cols: number, pixels: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(16 + pixels.length)
  const view = new DataView(bytes.buffer)
  view.setUint32(0, 0x00000803)
  view.setUint32(4, count)
  view.setUint32(8, rows)
  view.setUint32(12, cols)
  bytes.set(pixels, 16)
  return bytes
}

export function idxLabelsBytes(labels: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(8 + labels.length)
  const view = new DataView(bytes.buffer)
  view.setUint32(0, 0x00000801)
  view.setUint32(4, labels.length)
  bytes.set(labels, 8)
  return bytes
}

/** Pixel value of pixel `p` of image `i`: every image differs, so tests can tell them apart. */
export function pixelOf(i: number, p: number): number {
  return (i * 7 + p * 3) % 256
}

export function labelOf(i: number): number {
  return (i * 3) % 10
}

export function syntheticImages(count: number, rows: number, cols: number): { pixels: Uint8Array, labels: Uint8Array } {
  const len = rows * cols
  const pixels = new Uint8Array(count * len)
  const labels = new Uint8Array(count)
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < len; p++) pixels[i * len + p] = pixelOf(i, p)
    labels[i] = labelOf(i)
  }
  return { pixels, labels }
}

export interface IdxDirOptions {
  readonly trainCount: number
  readonly testCount: number
  readonly rows?: number
  readonly cols?: number
  readonly gzip?: boolean
  /** 'dash': train-images-idx3-ubyte (MNIST site), 'dot': train-images.idx3-ubyte (some mirrors) */
  readonly naming?: 'dash' | 'dot'
}

/** The four standard files of an IDX dataset directory. */
export async function writeIdxDirectory(dir: string, options: IdxDirOptions): Promise<void> {
  const rows = options.rows ?? 28
  const cols = options.cols ?? 28
  const suffix = options.gzip === true ? '.gz' : ''
  const sep = options.naming === 'dot' ? '.' : '-'
  const write = async (name: string, bytes: Uint8Array): Promise<void> => {
    await writeFile(join(dir, name + suffix), options.gzip === true ? gzipSync(bytes) : bytes)
  }
  for (const [prefix, count] of [['train', options.trainCount], ['t10k', options.testCount]] as const) {
    const { pixels, labels } = syntheticImages(count, rows, cols)
    // the test set gets different pixels from the training set so the two can be told apart
    if (prefix === 't10k') for (let k = 0; k < pixels.length; k++) pixels[k] = 255 - pixels[k]
    await write(`${prefix}-images${sep}idx3-ubyte`, idxImagesBytes(count, rows, cols, pixels))
    await write(`${prefix}-labels${sep}idx1-ubyte`, idxLabelsBytes(labels))
  }
}
