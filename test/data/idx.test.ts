import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DatasetFormatError, loadIdxDirectory, loadIdxPair, parseIdxImages, parseIdxLabels } from '../../ml/data/idx.js'
import { FASHION_MNIST_DIR, loadJobDatasets, UnknownDatasetError } from '../../ml/data/job-datasets.js'
import { FASHION_MNIST_STATS, MNIST_MEAN, MNIST_STD } from '../../ml/data/normalize.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { idxImagesBytes, idxLabelsBytes, labelOf, pixelOf, syntheticImages, writeIdxDirectory } from './idx-files.js'

let root: string
beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'p2pmld-idx-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

async function freshDir(name: string): Promise<string> {
  const dir = join(root, name)
  await mkdir(dir)
  return dir
}

/** Which synthetic image a normalised sample is: pixel 0 of image i is 7i mod 256 (unique for i < 256). */
function imageIndexOf(ds: Dataset, k: number, flipped = false): number {
  const len = ds.sampleShape.reduce((a, b) => a * b, 1)
  const raw = Math.round((ds.inputs[k * len] * MNIST_STD + MNIST_MEAN) * 255)
  const p0 = flipped ? 255 - raw : raw
  for (let i = 0; i < 256; i++) if ((i * 7) % 256 === p0) return i
  throw new Error(`no image has pixel 0 = ${p0}`)
}

describe('IDX parsing', () => {
  it('reads the header and data of image and label files', () => {
    const { pixels, labels } = syntheticImages(3, 4, 5)
    const images = parseIdxImages(idxImagesBytes(3, 4, 5, pixels), 'imgs')
    expect(images).toMatchObject({ count: 3, rows: 4, cols: 5 })
    expect(Array.from(images.pixels)).toEqual(Array.from(pixels))
    expect(Array.from(parseIdxLabels(idxLabelsBytes(labels), 'lbls'))).toEqual([0, 3, 6])
  })

  it('rejects wrong magic numbers, short headers and lengths that disagree with the header, naming the file', () => {
    const { pixels, labels } = syntheticImages(3, 4, 5)
    const imgs = idxImagesBytes(3, 4, 5, pixels)
    const lbls = idxLabelsBytes(labels)
    expect(() => parseIdxImages(lbls, 'a.idx')).toThrow(DatasetFormatError)
    expect(() => parseIdxImages(lbls, 'a.idx')).toThrow(/a\.idx: magic 0x801 is not an IDX image file/)
    expect(() => parseIdxLabels(imgs, 'b.idx')).toThrow(/b\.idx: magic 0x803 is not an IDX label file/)
    expect(() => parseIdxImages(imgs.subarray(0, 10), 'c.idx')).toThrow(/c\.idx: too short for an IDX image header \(10 bytes\)/)
    expect(() => parseIdxImages(imgs.subarray(0, 2), 'c2.idx')).toThrow(/c2\.idx: too short/)
    expect(() => parseIdxLabels(lbls.subarray(0, 7), 'd.idx')).toThrow(/d\.idx: too short/)
    expect(() => parseIdxImages(imgs.subarray(0, imgs.length - 1), 'e.idx')).toThrow(/e\.idx: header says 3 images of 4x5 \(76 bytes\) but the file has 75/)
    const longer = new Uint8Array(lbls.length + 1)
    longer.set(lbls)
    expect(() => parseIdxLabels(longer, 'f.idx')).toThrow(/f\.idx: header says 3 labels but the file has 4/)
    // a view into a larger buffer at an offset parses the same as a copy
    const padded = new Uint8Array(imgs.length + 8)
    padded.set(imgs, 8)
    expect(parseIdxImages(padded.subarray(8), 'g.idx').count).toBe(3)
  })
})

describe('loading IDX files', () => {
  it('normalises pixels with the MNIST statistics, from raw and gzipped files alike', async () => {
    const dir = await freshDir('pair')
    const { pixels, labels } = syntheticImages(20, 28, 28)
    await writeFile(join(dir, 'imgs'), idxImagesBytes(20, 28, 28, pixels))
    await writeFile(join(dir, 'lbls'), idxLabelsBytes(labels))
    await writeFile(join(dir, 'imgs.gz'), gzipSync(idxImagesBytes(20, 28, 28, pixels)))
    await writeFile(join(dir, 'lbls.gz'), gzipSync(idxLabelsBytes(labels)))
    const raw = await loadIdxPair(join(dir, 'imgs'), join(dir, 'lbls'), 'raw')
    const gz = await loadIdxPair(join(dir, 'imgs.gz'), join(dir, 'lbls.gz'), 'gz')
    expect(raw).toMatchObject({ name: 'raw', size: 20, sampleShape: [1, 28, 28], numClasses: 10 })
    expect(raw.inputs.length).toBe(20 * 784)
    expect(Array.from(raw.labels)).toEqual(Array.from({ length: 20 }, (_, i) => labelOf(i)))
    for (const k of [0, 1, 783, 784, 5000, 20 * 784 - 1]) {
      const expected = (pixelOf(Math.floor(k / 784), k % 784) / 255 - 0.1307) / 0.3081
      expect(raw.inputs[k]).toBeCloseTo(expected, 5)
    }
    expect(gz.inputs).toEqual(raw.inputs)
    expect(gz.labels).toEqual(raw.labels)
    const custom = await loadIdxPair(join(dir, 'imgs'), join(dir, 'lbls'), 'c', { mean: 0.5, std: 0.25 })
    expect(custom.inputs[1]).toBeCloseTo((pixelOf(0, 1) / 255 - 0.5) / 0.25, 5)
  })

  it('says which files disagree, which are damaged and which are missing', async () => {
    const dir = await freshDir('bad')
    const { pixels, labels } = syntheticImages(5, 2, 2)
    await writeFile(join(dir, 'imgs'), idxImagesBytes(5, 2, 2, pixels))
    await writeFile(join(dir, 'lbls4'), idxLabelsBytes(labels.subarray(0, 4)))
    await expect(loadIdxPair(join(dir, 'imgs'), join(dir, 'lbls4'), 'x')).rejects.toThrow(/imgs has 5 images but .*lbls4 has 4 labels/)
    const gz = gzipSync(idxImagesBytes(5, 2, 2, pixels))
    await writeFile(join(dir, 'cut.gz'), gz.subarray(0, gz.length - 12))
    const damaged = loadIdxPair(join(dir, 'cut.gz'), join(dir, 'lbls4'), 'x')
    await expect(damaged).rejects.toBeInstanceOf(DatasetFormatError)
    await expect(loadIdxPair(join(dir, 'cut.gz'), join(dir, 'lbls4'), 'x')).rejects.toThrow(/cut\.gz: damaged gzip data/)
    await expect(loadIdxDirectory(dir, 'x')).rejects.toThrow(/no train-images-idx3-ubyte\(\.gz\) file in .*bad/)
  })

  it('finds the four files of a directory under both naming styles', async () => {
    const dash = await freshDir('dash')
    const dot = await freshDir('dot')
    await writeIdxDirectory(dash, { trainCount: 30, testCount: 10, gzip: true })
    await writeIdxDirectory(dot, { trainCount: 30, testCount: 10, naming: 'dot' })
    const a = await loadIdxDirectory(dash, 'a')
    const b = await loadIdxDirectory(dot, 'b')
    expect([a.train.size, a.test.size, a.train.name, a.test.name]).toEqual([30, 10, 'a/train', 'a/test'])
    expect(b.train.inputs).toEqual(a.train.inputs)
    expect(b.test.labels).toEqual(a.test.labels)
    expect(imageIndexOf(a.test, 3, true)).toBe(3)
  })
})

describe('loadJobDatasets on an IDX directory', () => {
  it('uses t10k as the test set and carves a seeded validation set out of train', async () => {
    const dir = await freshDir('job')
    await writeIdxDirectory(dir, { trainCount: 200, testCount: 50, gzip: true })
    const a = await loadJobDatasets(dir, { seed: 11 })
    expect([a.train.size, a.validation.size, a.test.size]).toEqual([180, 20, 50])
    const trainIds = Array.from({ length: a.train.size }, (_, k) => imageIndexOf(a.train, k))
    const valIds = Array.from({ length: a.validation.size }, (_, k) => imageIndexOf(a.validation, k))
    expect(new Set([...trainIds, ...valIds]).size).toBe(200)
    expect(Array.from({ length: 50 }, (_, k) => imageIndexOf(a.test, k, true))).toEqual(Array.from({ length: 50 }, (_, i) => i))
    // labels travel with their images
    trainIds.forEach((id, k) => { expect(a.train.labels[k]).toBe(labelOf(id)) })

    const again = await loadJobDatasets(dir, { seed: 11 })
    expect(again.validation.inputs).toEqual(a.validation.inputs)
    const other = await loadJobDatasets(dir, { seed: 12 })
    const otherVal = Array.from({ length: 20 }, (_, k) => imageIndexOf(other.validation, k))
    expect(otherVal).not.toEqual(valIds)

    const short = await loadJobDatasets(dir, { seed: 11, trainSamples: 64 })
    expect(short.train.size).toBe(64)
    const shortIds = Array.from({ length: 64 }, (_, k) => imageIndexOf(short.train, k))
    expect(new Set(shortIds).size).toBe(64)
    for (const id of shortIds) expect(trainIds).toContain(id)
    expect(short.validation.inputs).toEqual(a.validation.inputs)
  })

  it('rejects unknown names with the choices, and a file that is not a directory', async () => {
    await expect(loadJobDatasets('cifar-10', { seed: 1 })).rejects.toBeInstanceOf(UnknownDatasetError)
    await expect(loadJobDatasets('cifar-10', { seed: 1 })).rejects.toThrow(/unknown dataset 'cifar-10': use 'mnist' \(bundled\), 'fashion-mnist', or a directory/)
    const file = join(root, 'plain-file')
    await writeFile(file, 'x')
    await expect(loadJobDatasets(file, { seed: 1 })).rejects.toThrow(`dataset directory '${file}' is not a directory: check the path, or use 'mnist' (bundled) or 'fashion-mnist'`)
    // a path that is not there: said so (it read 'unknown dataset', as if a name were misspelt)
    await expect(loadJobDatasets(join(root, 'gone'), { seed: 1 })).rejects.toThrow(`dataset directory '${join(root, 'gone')}' does not exist: check the path`)
  })
})

// Debian's dataset-fashion-mnist. .ci/run installs it and sets P2PMLD_REQUIRE_FASHION_MNIST, so there
// a missing package fails here with the loader's install hint instead of skipping; on a machine
// without it the test above covers the error path.
const fashionInstalled = existsSync(FASHION_MNIST_DIR)
if (!fashionInstalled && process.env.P2PMLD_REQUIRE_FASHION_MNIST === undefined) {
  console.warn(`test/data/idx: Fashion-MNIST tests skipped: ${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`)
}
describe.runIf(fashionInstalled || process.env.P2PMLD_REQUIRE_FASHION_MNIST !== undefined)('Fashion-MNIST from Debian', () => {
  it('has 60,000 + 10,000 balanced images, normalised to mean 0 and std 1', async () => {
    // the real files are gzipped IDX
    expect((await readFile(join(FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'))).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]))
    const splits = await loadJobDatasets('fashion-mnist', { seed: 3 })
    expect([splits.train.size, splits.validation.size, splits.test.size]).toEqual([55000, 5000, 10000])
    expect(splits.test.name).toBe('fashion-mnist/test')
    expect(splits.train.sampleShape).toEqual([1, 28, 28])
    const perClass = (ds: Dataset): number[] => {
      const counts = new Array<number>(10).fill(0)
      for (const l of ds.labels) counts[l]++
      return counts
    }
    expect(perClass(splits.test)).toEqual(new Array(10).fill(1000))
    const trainPlusVal = perClass(splits.train).map((c, i) => c + perClass(splits.validation)[i])
    expect(trainPlusVal).toEqual(new Array(10).fill(6000))
    let sum = 0
    let sumSq = 0
    for (const v of splits.train.inputs) { sum += v; sumSq += v * v }
    const n = splits.train.inputs.length
    const mean = sum / n
    expect(Math.abs(mean)).toBeLessThan(0.01)
    expect(Math.abs(Math.sqrt(sumSq / n - mean * mean) - 1)).toBeLessThan(0.01)
    expect(Math.min(...splits.test.inputs.subarray(0, 784))).toBeCloseTo(-FASHION_MNIST_STATS.mean / FASHION_MNIST_STATS.std, 5)
  })
})
