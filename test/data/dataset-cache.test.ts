import { describe, expect, it } from 'vitest'
import { createCachedDatasetLoader, loadJobDatasets, UnknownDatasetError, type JobDatasetLoader } from '../../ml/data/job-datasets.js'

describe('the cached dataset loader (peers sharing one process)', () => {
  it('loads each (dataset, seed, trainSamples) once, concurrent callers included, and gives the same splits as a plain load', async () => {
    const calls: string[] = []
    const counting: JobDatasetLoader = async (name, options) => {
      calls.push(`${name}/${options.seed}/${options.trainSamples ?? 'all'}`)
      return await loadJobDatasets(name, options)
    }
    const load = createCachedDatasetLoader(counting)
    const [a, b] = await Promise.all([load('mnist', { seed: 3, trainSamples: 500 }), load('mnist', { seed: 3, trainSamples: 500 })])
    expect(b).toBe(a)
    const other = await load('mnist', { seed: 4, trainSamples: 500 })
    expect(other).not.toBe(a)
    expect(calls).toEqual(['mnist/3/500', 'mnist/4/500'])

    const plain = await loadJobDatasets('mnist', { seed: 3, trainSamples: 500 })
    expect(a.train.size).toBe(500)
    expect(a.train.inputs).toEqual(plain.train.inputs)
    expect(a.validation.labels).toEqual(plain.validation.labels)
  })

  it('does not keep a failed load: the next call tries again', async () => {
    let calls = 0
    const load = createCachedDatasetLoader(async (name, options) => {
      calls++
      return await loadJobDatasets(name, options)
    })
    await expect(load('no-such-dataset', { seed: 1 })).rejects.toBeInstanceOf(UnknownDatasetError)
    await expect(load('no-such-dataset', { seed: 1 })).rejects.toBeInstanceOf(UnknownDatasetError)
    expect(calls).toBe(2)
  })
})
