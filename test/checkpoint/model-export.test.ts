/**
 * An exported model says how its inputs are normalised (the job's dataset's statistics, in the
 * file's metadata_props), or, when the dataset cannot be read where the export runs (a checkpoint
 * taken to another machine), says why it cannot and still writes the model.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { exportSnapshotModel } from '../../daemon/checkpoint/index.js'
import { INPUT_NORMALIZATION_KEY } from '../../ml/data/normalize.js'
import { createModel } from '../../ml/models/zoo.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'p2pmld-model-export-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

async function metadataOf(path: string): Promise<Record<string, string>> {
  return Object.fromEntries(onnx.ModelProto.decode(await readFile(path)).metadataProps.map((p) => [p.key, p.value]))
}

describe('model export: the inputs\' normalisation', () => {
  const params = createModel('mlp').initParameters(2)

  it('records the job dataset\'s statistics in the file and the result', async () => {
    const path = join(dir, 'fashion.onnx')
    const written = await exportSnapshotModel(path, { jobConfig: { model: 'mlp', dataset: 'fashion-mnist' }, params })
    expect(written).toMatchObject({ path, model: 'mlp', normalization: { mean: [0.2860], std: [0.3530] } })
    expect(written.normalizationUnknown).toBeUndefined()
    expect(JSON.parse((await metadataOf(path))[INPUT_NORMALIZATION_KEY])).toEqual({ mean: [0.2860], std: [0.3530] })
  })

  it('a dataset directory missing here: the model is written, without the statistics, and the result says why', async () => {
    const path = join(dir, 'elsewhere.onnx')
    const gone = join(dir, 'cifar-on-another-machine')
    const written = await exportSnapshotModel(path, { jobConfig: { model: 'mlp', dataset: gone }, params })
    expect(written.normalization).toBeUndefined()
    expect(written.normalizationUnknown).toContain(`the job's dataset ${gone} could not be read (dataset directory '${gone}' does not exist`)
    expect(written.bytes).toBeGreaterThan(params.length * 4)
    expect(await metadataOf(path)).toEqual({})
  })
})
