/**
 * Batch-last twins (ml/autodiff/batch-last.ts): a resnet's chain of gemm convolutions runs in
 * [C, H, W, N] from its first conv to its last, without a Transpose to NCHW and back between
 * them, forward or backward. The gradients themselves are checked against PyTorch's by
 * torchvision-fixtures.test.ts (the same resnet18 fixture).
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { FROM_BATCH_LAST, TO_BATCH_LAST } from '../../ml/autodiff/batch-last.js'
import { buildTrainingGraph } from '../../ml/autodiff/training-graph.js'
import { loadOnnxModel } from '../../ml/onnx/load-onnx-model.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'
import { expandFixture } from '../fixtures/generated-tensor.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/resnet18-w16.onnx', import.meta.url))

describe('batch-last twins', () => {
  it('resnet18 (32x32 inputs) changes layout only where its chain of gemm convolutions starts and ends', async () => {
    const model = await loadOnnxModel(expandFixture(await readFile(FIXTURE)))
    const nodes = onnx.ModelProto.decode(buildTrainingGraph(model.forward, model.layout, 4).bytes).graph?.node ?? []
    const permOf = (n: (typeof nodes)[number]): string => (n.attribute ?? []).find((a) => a.name === 'perm')?.ints?.map(Number).join(',') ?? ''
    const transposes = nodes.filter((n) => n.opType === 'Transpose')
    const toBatchLast = transposes.filter((n) => permOf(n) === TO_BATCH_LAST.join(','))
    const fromBatchLast = transposes.filter((n) => permOf(n) === FROM_BATCH_LAST.join(','))
    // the gemm convolutions (layers 1-3 on 8x8 to 2x2 maps, with two downsamples, when they all
    // were: 15) took 44 layout Transposes before the twins; layer1's 8x8 maps now run ORT's NCHWc
    // Conv (conv-gemm.ts). Left: into the chain, where it starts forward and dY of where it ends
    // backward; out of it, where it ends forward (the dense convs of layer3's
    // 2x2 maps read NCHW) and dX at the stem pool backward; and the gradients' sums at its ends
    expect(toBatchLast.length + fromBatchLast.length).toBeLessThanOrEqual(6)
    expect(toBatchLast.length).toBeGreaterThanOrEqual(1)
    expect(fromBatchLast.length).toBeGreaterThanOrEqual(1)
  })
})
