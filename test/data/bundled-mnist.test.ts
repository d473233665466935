import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadBundledMnist, readDigitFile } from '../../ml/data/bundled-mnist.js'
import { epochPermutation, gatherBatch, shardBatchIndices, type Dataset } from '../../ml/data/dataset.js'
import { loadJobDatasets } from '../../ml/data/job-datasets.js'

const PIXELS = 784
let mnist: Dataset
/** The package's own files, read independently of the loader: values in [0, 1], one file per digit. */
let rawPerClass: number[][]
/** the same files' bytes */
let filesPerClass: Buffer[]

beforeAll(async () => {
  mnist = await loadBundledMnist()
  const digits = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits')
  filesPerClass = []
  for (let d = 0; d < 10; d++) filesPerClass.push(await readFile(join(digits, `${d}.json`)))
  rawPerClass = filesPerClass.map((bytes) => (JSON.parse(bytes.toString('utf8')) as { data: number[] }).data)
})

function classCounts(labels: Int32Array): number[] {
  const counts = new Array<number>(10).fill(0)
  for (const l of labels) counts[l]++
  return counts
}

function sameBytes(a: Float32Array | Int32Array, b: Float32Array | Int32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0
}

function sampleKeys(ds: Dataset): string[] {
  return Array.from({ length: ds.size }, (_, k) => {
    const bytes = new Uint8Array(ds.inputs.buffer, ds.inputs.byteOffset + k * PIXELS * 4, PIXELS * 4)
    return createHash('sha1').update(bytes).update(String(ds.labels[k])).digest('hex')
  })
}

describe('bundled MNIST', () => {
  it('holds the 10,000 digits of the mnist package, class by class, about 1,000 per class', () => {
    expect(mnist).toMatchObject({ name: 'mnist', size: 10000, numClasses: 10, sampleShape: [1, 28, 28] })
    expect(mnist.inputs.length).toBe(10000 * PIXELS)
    const counts = classCounts(mnist.labels)
    expect(counts).toEqual(rawPerClass.map((d) => d.length / PIXELS))
    for (const c of counts) expect(c).toBeGreaterThan(850)
    for (const c of counts) expect(c).toBeLessThan(1150)
    for (let i = 1; i < mnist.size; i++) expect(mnist.labels[i]).toBeGreaterThanOrEqual(mnist.labels[i - 1])
  })

  it('normalises with the MNIST mean and std: background at -0.4242, ink up to 2.8215, mean 0 and std 1 overall', () => {
    let min = Infinity
    let max = -Infinity
    let sum = 0
    let sumSq = 0
    for (const v of mnist.inputs) {
      min = Math.min(min, v)
      max = Math.max(max, v)
      sum += v
      sumSq += v * v
    }
    const n = mnist.inputs.length
    expect(min).toBeCloseTo(-0.1307 / 0.3081, 5)
    expect(max).toBeCloseTo((1 - 0.1307) / 0.3081, 5)
    expect(Math.abs(sum / n)).toBeLessThan(0.01)
    expect(Math.abs(Math.sqrt(sumSq / n - (sum / n) ** 2) - 1)).toBeLessThan(0.01)
    // the first "3" is the package's first "3", pixel by pixel
    const first3 = mnist.labels.indexOf(3)
    expect(first3).toBe(rawPerClass.slice(0, 3).reduce((a, d) => a + d.length / PIXELS, 0))
    const raw = rawPerClass[3].slice(0, PIXELS)
    const loaded = mnist.inputs.subarray(first3 * PIXELS, (first3 + 1) * PIXELS)
    raw.forEach((v, p) => { expect(loaded[p]).toBeCloseTo((v - 0.1307) / 0.3081, 5) })
  })

  it('reads each digit file to the same float32 values as JSON.parse, bit for bit', () => {
    rawPerClass.forEach((raw, d) => {
      const read = readDigitFile(filesPerClass[d])
      expect(read?.length).toBe(raw.length)
      expect(sameBytes(read ?? new Float32Array(0), Float32Array.from(raw))).toBe(true)
    })
    // other number forms go through JSON.parse; a file that is not a data array is refused
    const odd = readDigitFile(Buffer.from('{ "data": [0, 1.5, 2e-1, -0.25, 0.1234567890123456789] }'))
    expect(odd === undefined ? undefined : [...odd]).toEqual([0, 1.5, 0.2, -0.25, 0.1234567890123456789].map(Math.fround))
    expect(readDigitFile(Buffer.from('{ "data": [0.5, 0.25, 1] }'))).toEqual(Float32Array.of(0.5, 0.25, 1))
    expect(readDigitFile(Buffer.from('{ "data": [] }'))).toEqual(new Float32Array(0))
    expect(readDigitFile(Buffer.from('{ "data": [0.5, "x"] }'))).toBeUndefined()
    expect(readDigitFile(Buffer.from('{ "data": [0.5, 0.2'))).toBeUndefined()
    expect(readDigitFile(Buffer.from('[0.5, 0.2]'))).toBeUndefined()
  })

  it('loads the same bytes every time (no Math.random shuffle)', async () => {
    const again = await loadBundledMnist()
    expect(sameBytes(again.inputs, mnist.inputs)).toBe(true)
    expect(sameBytes(again.labels, mnist.labels)).toBe(true)
  })

  it('splits 8,000 / 1,000 / 1,000 for a job, disjoint, covering every digit, the same for every peer with the job seed', async () => {
    const a = await loadJobDatasets('mnist', { seed: 7 })
    expect([a.train.size, a.validation.size, a.test.size]).toEqual([8000, 1000, 1000])
    const all = [...sampleKeys(a.train), ...sampleKeys(a.validation), ...sampleKeys(a.test)].sort()
    // joined: a deep comparison of 10,000 strings costs seconds
    expect(all.join() === sampleKeys(mnist).sort().join()).toBe(true)
    const perSplit = [a.train, a.validation, a.test].map((s) => classCounts(s.labels))
    expect(perSplit[0].map((c, i) => c + perSplit[1][i] + perSplit[2][i])).toEqual(classCounts(mnist.labels))
    // a seeded shuffle, not class order: every class is in the test set
    for (const c of perSplit[2]) expect(c).toBeGreaterThan(50)

    const b = await loadJobDatasets('mnist', { seed: 7 })
    expect(sameBytes(b.test.inputs, a.test.inputs)).toBe(true)
    expect(sameBytes(b.train.labels, a.train.labels)).toBe(true)
    const c = await loadJobDatasets('mnist', { seed: 8 })
    expect(sameBytes(c.test.labels, a.test.labels)).toBe(false)
  })

  it('gives two peers of one step different real digits, copied exactly', () => {
    const perm = epochPermutation(mnist.size, 1, 0)
    const b0 = gatherBatch(mnist, shardBatchIndices(perm, 0, 0, 2, 32))
    const b1 = gatherBatch(mnist, shardBatchIndices(perm, 0, 1, 2, 32))
    expect(b0.inputs.length).toBe(32 * PIXELS)
    const k0 = perm[0]
    expect(b0.inputs.subarray(0, PIXELS)).toEqual(mnist.inputs.subarray(k0 * PIXELS, (k0 + 1) * PIXELS))
    expect(b1.labels[0]).toBe(mnist.labels[perm[32]])
    expect(b0.inputs).not.toEqual(b1.inputs)
  })
})
