import { readdir } from 'node:fs/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { createGradientComputer } from '../../functions/create-gradient-computer.js'
import { createLocalFileBlobStore } from '../../functions/local-file-blob-store.js'
import { createOffloadComputer, type OffloadComputer } from '../../functions/offload/offload-computer.js'
import { createWorkerPool } from '../../functions/pool/worker-pool.js'
import type { Batch, GradientComputer, GradientObserver, OffloadStage } from '../../ml/core/types.js'
import { createOnnxGradientComputer, trainingGraphBytes } from '../../ml/engine/onnx-gradient-computer.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import { ForwardGraphBuilder } from '../../ml/models/graph-builder.js'
import { createModel } from '../../ml/models/zoo.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'
import { readDigits } from '../engine/mnist-digits.js'
import { maxRelativeError, removeScratchDirs, scratchDir } from './support.js'

function digitBatch(model: ModelDefinition, size: number): Batch {
  const { inputs, labels } = readDigits(size)
  return { size, sampleShape: model.sampleShape, inputs, labels }
}

const opened: GradientComputer[] = []
afterAll(async () => {
  for (const c of opened) await c.close()
  await removeScratchDirs()
})

function recordingObserver(): { observer: GradientObserver, seen: OffloadStage[] } {
  const seen: OffloadStage[] = []
  return { seen, observer: { time: async (stage, work) => { seen.push(stage); return await work() } } }
}

/** An offload computer over one pool worker with one micro-batch, beside an in-process computer of the same model. */
async function oneWorker(model: ModelDefinition, prefix: string): Promise<{ root: string, inProcess: GradientComputer, computer: OffloadComputer }> {
  const root = await scratchDir(prefix)
  const inProcess = createOnnxGradientComputer(model, { intraOpThreads: 1 })
  const computer = createOffloadComputer({
    model,
    store: createLocalFileBlobStore(root),
    dispatcher: createWorkerPool({ root, workers: 1 }),
    local: createOnnxGradientComputer(model, { intraOpThreads: 1 }),
    microBatches: 1,
    namespace: 'ns'
  })
  opened.push(inProcess, computer)
  return { root, inProcess, computer }
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

describe('offload: pool', () => {
  it('gives the in-process gradient of the whole batch (lenet5, 250 samples in 3 micro-batches on 2 workers), and times its sub-stages', async () => {
    const model = createModel('lenet5')
    const params = model.initParameters(7)
    const batch = digitBatch(model, 250)
    const inProcess = createOnnxGradientComputer(model, { intraOpThreads: 1 })
    opened.push(inProcess)
    const pool = await createGradientComputer(model, { mode: 'pool', workers: 2, threadsPerWorker: 1, microBatches: 3, minMicroBatchSize: 16 }, { computeThreads: 1 })
    opened.push(pool)

    const expected = await inProcess.computeGradient(params, batch)
    const { observer, seen } = recordingObserver()
    const actual = await pool.computeGradient(params, batch, observer)

    expect(actual.size).toBe(250)
    expect(actual.correct).toBe(expected.correct)
    expect(Math.abs(actual.loss - expected.loss)).toBeLessThan(1e-5 * Math.max(1, expected.loss))
    expect(actual.gradient.length).toBe(model.layout.totalSize)
    for (const spec of model.layout.specs) {
      const err = maxRelativeError(actual.gradient.subarray(spec.offset, spec.offset + spec.size), expected.gradient.subarray(spec.offset, spec.offset + spec.size))
      expect(err, spec.name).toBeLessThan(1e-4)
    }
    expect(new Set(seen)).toEqual(new Set(['upload', 'invoke', 'wait', 'download', 'combine']))
    expect((pool as OffloadComputer).stats()).toMatchObject({ steps: 1, microBatches: 3, fallbacks: 0, invocations: 3 })

    // a second step with new parameters: same agreement, the old parameters' key replaced
    params[0] += 0.01
    const again = await pool.computeGradient(params, batch)
    const direct = await inProcess.computeGradient(params, batch)
    expect(maxRelativeError(again.gradient, direct.gradient)).toBeLessThan(1e-4)
  })

  it('with one micro-batch the gradient is bit-identical to in process, and a step leaves only the graph and the parameters behind', async () => {
    const model = createModel('mlp')
    const params = model.initParameters(3)
    const batch = digitBatch(model, 64)
    const { root, inProcess, computer } = await oneWorker(model, 'pool-store-')
    const a = await computer.computeGradient(params, batch)
    const b = await inProcess.computeGradient(params, batch)
    expect(sameBits(a.gradient, b.gradient)).toBe(true)
    expect(a.loss).toBe(b.loss)
    // the step's micro-batch and gradient are deleted in the background after the step
    await computer.computeGradient(params, batch)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect((await readdir(`${root}/ns`)).sort()).toEqual(['graphs', 'params', 'steps'])
    expect(await readdir(`${root}/ns/steps/0`)).toEqual([])
    expect(await readdir(`${root}/ns/params`)).toHaveLength(1)
    await computer.close()
    expect(await readdir(`${root}/ns/graphs`)).toEqual([])
    expect(await readdir(`${root}/ns/params`)).toEqual([])
  })

  it('a conv on a small map (a Gemm over the batch, its weight gradient an output shaped [M, C kh kw]) gives a worker the in-process gradient to the bit', async () => {
    // conv2 (3x3 on 5x5) runs on the Gemm path (maps up to 32 pixels): the gradient outputs are
    // sized from the session's output metadata, in the worker as in process
    const g = new ForwardGraphBuilder()
    const x = g.relu(g.conv(g.input, 'conv1', 1, 4, 5, { stride: 5 }))
    const model = g.build('small-map-convs', [1, 28, 28], 10, g.linear(g.flatten(g.relu(g.conv(x, 'conv2', 4, 6, 3, { pad: 1 }))), 'fc', 150, 10))
    const params = model.initParameters(5)
    const batch = digitBatch(model, 32)
    const { inProcess, computer } = await oneWorker(model, 'pool-gemm-conv-')
    const a = await computer.computeGradient(params, batch)
    const b = await inProcess.computeGradient(params, batch)
    expect(computer.stats()).toMatchObject({ fallbacks: 0, invocations: 1 })
    expect(sameBits(a.gradient, b.gradient)).toBe(true)
    const index = model.layout.specs.findIndex((spec) => spec.name === 'conv2.weight')
    const conv2 = model.layout.specs[index]
    expect(conv2.shape).toEqual([6, 4, 3, 3])
    expect(a.gradient.subarray(conv2.offset, conv2.offset + conv2.size).some((v) => v !== 0)).toBe(true)
    // the graph hands that gradient out as the Gemm made it
    const output = onnx.ModelProto.decode(trainingGraphBytes(model, 32)).graph!.output!.find((o) => o.name === `grad_${index}`)
    expect(output?.type?.tensorType?.shape?.dim?.map((d) => Number(d.dimValue))).toEqual([6, 36])
  })

  it('draws the dropout masks the peer would: each micro-batch carries its samples\' dropout key', async () => {
    const g = new ForwardGraphBuilder()
    const model = g.build('drop', [784], 10, g.linear(g.dropout(g.relu(g.linear(g.input, 'fc1', 784, 64)), 0.5), 'fc2', 64, 10))
    const params = model.initParameters(5)
    const digits = readDigits(60)
    const keyed = (step: number): Batch => ({ size: 60, sampleShape: [784], inputs: digits.inputs, labels: digits.labels, dropout: { seed: 11, step, sampleIndices: Array.from({ length: 60 }, (_, i) => 1000 + 7 * i) } })
    const inProcess = createOnnxGradientComputer(model, { intraOpThreads: 1 })
    const pool = await createGradientComputer(model, { mode: 'pool', workers: 2, threadsPerWorker: 1, microBatches: 3, minMicroBatchSize: 8 }, { computeThreads: 1 })
    opened.push(inProcess, pool)
    const expected = await inProcess.computeGradient(params, keyed(4))
    const actual = await pool.computeGradient(params, keyed(4))
    expect(maxRelativeError(actual.gradient, expected.gradient)).toBeLessThan(1e-4)
    expect(Math.abs(actual.loss - expected.loss)).toBeLessThan(1e-5 * Math.max(1, expected.loss))
    // the masks did act: another step's masks give another gradient
    const other = await inProcess.computeGradient(params, keyed(5))
    expect(maxRelativeError(other.gradient, expected.gradient)).toBeGreaterThan(1e-2)
    expect((pool as OffloadComputer).stats()).toMatchObject({ fallbacks: 0, microBatches: 3 })
  })
})
