/** Issue 14: a job's dataset and model are checked against each other when the job starts. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createJobRuntime, DatasetModelMismatchError, spareOutputsWarning } from '../../daemon/training/job-runtime.js'
import { ForwardGraphBuilder } from '../../ml/models/graph-builder.js'
import { exportForwardOnnx } from '../../ml/onnx/export-forward.js'
import { idxLabelsBytes, labelOf, writeIdxDirectory } from '../data/idx-files.js'

let root: string

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'p2pmld-fit-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

describe('dataset against model at job start', () => {
  it('warns of a model with more outputs than the dataset has classes (a torchvision export without num_classes), naming both and the fix', async () => {
    const dir = join(root, 'ten-classes-wide-model')
    await mkdir(dir)
    await writeIdxDirectory(dir, { trainCount: 200, testCount: 40 })
    const g = new ForwardGraphBuilder()
    const wide = g.build('twelve-outputs', [1, 28, 28], 12, g.linear(g.flatten(g.input), 'fc', 784, 12))
    const file = join(root, 'twelve-outputs.onnx')
    await writeFile(file, exportForwardOnnx(wide, wide.initParameters(1)).bytes)
    const config = parseJobConfig({ model: file, dataset: dir, minPeers: 1, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const runtime = await createJobRuntime(config)
    try {
      expect(runtime.model.warnings).toEqual([`model '${file}' has 12 outputs but dataset '${dir}' has 10 classes: the other 2 only learn to stay low (the first loss is about ln 12 = 2.48, not ln 10 = 2.30); export the model with 10 outputs (torchvision: num_classes=10)`])
    } finally {
      await runtime.close()
    }
    // as many outputs as classes: nothing to say
    expect(spareOutputsWarning(config, 10, 10)).toBeUndefined()
  })

  it('refuses a dataset with a label the model has no output for, naming both', async () => {
    const dir = join(root, 'twelve-classes')
    await mkdir(dir)
    await writeIdxDirectory(dir, { trainCount: 200, testCount: 40 })
    // one training sample of class 11: a 10-class model would meet it mid-epoch
    const labels = Uint8Array.from({ length: 200 }, (_, i) => labelOf(i))
    labels[137] = 11
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), idxLabelsBytes(labels))
    const config = parseJobConfig({ model: 'mlp', dataset: dir, minPeers: 1, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const error = await createJobRuntime(config).then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(DatasetModelMismatchError)
    const message = (error as Error).message
    expect(message).toContain(`dataset '${dir}' has label 11`)
    expect(message).toContain("model 'mlp' has 10 classes")
  })

  it('refuses samples of another shape than the model input, naming both', async () => {
    const dir = join(root, 'small-images')
    await mkdir(dir)
    await writeIdxDirectory(dir, { trainCount: 100, testCount: 20, rows: 20, cols: 20 })
    const config = parseJobConfig({ model: 'lenet5', dataset: dir, minPeers: 1, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    await expect(createJobRuntime(config)).rejects.toThrow(new RegExp(`model 'lenet5' expects samples of shape 1x28x28 but dataset '${dir}' has 1x20x20`))
  })

  it('accepts a dataset whose labels are all model classes', async () => {
    const dir = join(root, 'ten-classes')
    await mkdir(dir)
    await writeIdxDirectory(dir, { trainCount: 100, testCount: 20 })
    const config = parseJobConfig({ model: 'mlp', dataset: dir, minPeers: 1, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const runtime = await createJobRuntime(config)
    expect(runtime.model.numClasses).toBe(10)
    await runtime.close()
  })
})
