/**
 * The CIFAR-10 binary loader on generated files in the real format (3073-byte records: label,
 * then the red, green and blue 32x32 planes); neither npm nor Debian ships CIFAR-10 itself.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { CIFAR10_RECORD_BYTES, loadCifar10Directory, parseCifar10Batch } from '../../ml/data/cifar10.js'
import { DatasetFormatError } from '../../ml/data/idx.js'
import { jobDatasetNormalization, loadJobDatasets, UnknownDatasetError } from '../../ml/data/job-datasets.js'

const PER_FILE = 20

/** Records whose channel c pixels are drawn around a channel-specific level, labels cycling 0-9. */
function batchFile(seed: number): Uint8Array {
  const rng = createRng(seed)
  const bytes = new Uint8Array(PER_FILE * CIFAR10_RECORD_BYTES)
  for (let i = 0; i < PER_FILE; i++) {
    const r = i * CIFAR10_RECORD_BYTES
    bytes[r] = (seed + i) % 10
    for (let c = 0; c < 3; c++) {
      for (let k = 0; k < 1024; k++) bytes[r + 1 + c * 1024 + k] = Math.min(255, Math.floor([60, 120, 200][c] + rng.nextFloat() * 50))
    }
  }
  return bytes
}

let dir: string
const files = new Map<string, Uint8Array>()
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'p2pmld-cifar-'))
  for (const [i, name] of ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin'].entries()) {
    files.set(name, batchFile(i + 1))
    await writeFile(join(dir, name), files.get(name) as Uint8Array)
  }
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('CIFAR-10 binary files', () => {
  it('parses records: label byte then CHW planes', () => {
    const bytes = files.get('data_batch_2.bin') as Uint8Array
    const { labels, pixels } = parseCifar10Batch(bytes, 'data_batch_2.bin')
    expect(labels.length).toBe(PER_FILE)
    expect(labels[3]).toBe(bytes[3 * CIFAR10_RECORD_BYTES])
    // record 3, green plane, pixel (row 5, col 7)
    expect(pixels[3 * 3072 + 1024 + 5 * 32 + 7]).toBe(bytes[3 * CIFAR10_RECORD_BYTES + 1 + 1024 + 5 * 32 + 7])
  })

  it('normalises every channel with the training set\'s own mean and std (test split uses the training statistics)', async () => {
    const { train, test, stats } = await loadCifar10Directory(dir)
    expect(train.size).toBe(5 * PER_FILE)
    expect(test.size).toBe(PER_FILE)
    expect(train.sampleShape).toEqual([3, 32, 32])
    expect(stats.mean[0]).toBeCloseTo((60 + 24.5) / 255, 1)
    expect(stats.mean[2]).toBeCloseTo((200 + 24.5) / 255, 1)
    for (let c = 0; c < 3; c++) {
      let sum = 0
      let sq = 0
      for (let i = 0; i < train.size; i++) {
        for (const v of train.inputs.subarray((i * 3 + c) * 1024, (i * 3 + c + 1) * 1024)) {
          sum += v
          sq += v * v
        }
      }
      const n = train.size * 1024
      expect(Math.abs(sum / n)).toBeLessThan(1e-4)
      expect(Math.sqrt(sq / n - (sum / n) ** 2)).toBeCloseTo(1, 3)
    }
    // the test split: its raw pixel, scaled with the training statistics
    const raw = (files.get('test_batch.bin') as Uint8Array)[1 + 2048]
    expect(test.inputs[2048]).toBeCloseTo((raw / 255 - stats.mean[2]) / stats.std[2], 5)
  })

  it('a dataset directory holding the files is recognised as CIFAR-10', async () => {
    const splits = await loadJobDatasets(dir, { seed: 1 })
    expect(splits.train.sampleShape).toEqual([3, 32, 32])
    expect(splits.train.size + splits.validation.size).toBe(5 * PER_FILE)
    expect(splits.test.size).toBe(PER_FILE)
  })

  it('the normalisation a model trained on the directory expects is the one its samples were loaded with', async () => {
    const { stats } = await loadCifar10Directory(dir)
    const normalization = await jobDatasetNormalization(dir)
    expect(normalization).toEqual(stats)
    // applied to a raw test pixel of each channel, it gives the loaded sample's value
    const { test } = await loadJobDatasets(dir, { seed: 1 })
    const raw = files.get('test_batch.bin') as Uint8Array
    for (const c of [0, 1, 2]) {
      const k = c * 1024 + 77
      expect(test.inputs[k]).toBeCloseTo((raw[1 + k] / 255 - normalization.mean[c]) / normalization.std[c], 5)
    }
    // the fixed statistics of the named datasets, one channel each; no directory, no statistics
    expect(await jobDatasetNormalization('mnist')).toEqual({ mean: [0.1307], std: [0.3081] })
    expect(await jobDatasetNormalization('fashion-mnist')).toEqual({ mean: [0.2860], std: [0.3530] })
    await expect(jobDatasetNormalization(join(dir, 'gone'))).rejects.toThrow(UnknownDatasetError)
  })

  it('a directory with some of the files is CIFAR-10 still: the error names the file missing, the first training batch too', async () => {
    const partial = await mkdtemp(join(tmpdir(), 'p2pmld-cifar-partial-'))
    try {
      for (const name of ['data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin']) await writeFile(join(partial, name), files.get(name) as Uint8Array)
      await expect(loadJobDatasets(partial, { seed: 1 })).rejects.toThrow(/data_batch_1\.bin is missing: a CIFAR-10 directory holds/)
    } finally {
      await rm(partial, { recursive: true, force: true })
    }
  })

  it('refuses a file that is not whole records, or a label above 9, naming the file', () => {
    expect(() => parseCifar10Batch(new Uint8Array(3072), 'x.bin')).toThrow(DatasetFormatError)
    expect(() => parseCifar10Batch(new Uint8Array(3072), 'x.bin')).toThrow(/x\.bin: 3072 bytes is not a whole number of 3073-byte/)
    const bad = new Uint8Array(CIFAR10_RECORD_BYTES)
    bad[0] = 10
    expect(() => parseCifar10Batch(bad, 'y.bin')).toThrow(/y\.bin: record 0 has label 10/)
  })
})
