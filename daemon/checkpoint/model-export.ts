/**
 * Writing the trained model out for inference: the forward ONNX graph with the parameters as
 * initializers and how its inputs are normalised (ml/onnx/export-forward.ts), written atomically
 * (temp file, fsync, rename) so a reader never sees half a model.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { jobDatasetNormalization } from '../../ml/data/job-datasets.js'
import type { InputNormalization } from '../../ml/data/normalize.js'
import { exportForwardOnnx } from '../../ml/onnx/export-forward.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import type { TrainingSnapshot } from '../../protocols/snapshot/index.js'
import { resolveModel } from '../training/job-runtime.js'
import { readCheckpointFile } from './checkpoint.js'
import { checkModelPath, ModelExportError } from './model-path.js'

export { EXPORT_FORMATS, type ExportFormat } from './export-formats.js'

export { checkModelPath, ModelExportError }

export interface WrittenExport {
  readonly path: string
  readonly bytes: number
  /** how the file says its inputs are normalised; absent when the job's dataset could not be read */
  readonly normalization?: InputNormalization
  /** why the file does not say how its inputs are normalised */
  readonly normalizationUnknown?: string
}

/**
 * How the job's dataset normalised its inputs, or why that is unknown here: a CIFAR-10 directory
 * is read for its statistics, and a checkpoint exported on another machine may not find it.
 */
export async function datasetNormalization(dataset: string): Promise<Pick<WrittenExport, 'normalization' | 'normalizationUnknown'>> {
  try {
    return { normalization: await jobDatasetNormalization(dataset) }
  } catch (error) {
    return { normalizationUnknown: `the job's dataset ${dataset} could not be read (${(error as Error).message})` }
  }
}

/**
 * Write `model` with `params` as a forward ONNX file at `path` (parent directories created),
 * recording the normalisation of `dataset` (the job config's name for it) in the file.
 * Throws a ModelExportError when `path` cannot be written (checkModelPath's message first).
 */
export async function writeModelExport(path: string, model: ModelDefinition, params: Float32Array, dataset: string): Promise<WrittenExport> {
  // its write follows at once: no probe file first
  await checkModelPath(path, 'the export path', { probe: false })
  const normalization = await datasetNormalization(dataset)
  const { bytes } = exportForwardOnnx(model, params, normalization.normalization)
  const dir = dirname(path)
  const temp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`)
  try {
    await mkdir(dir, { recursive: true })
    const handle = await open(temp, 'wx', 0o644)
    try {
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, path)
  } catch (error) {
    await rm(temp, { force: true })
    throw new ModelExportError(`cannot write ${path}: ${(error as Error).message}; check the directory exists and is writable`, { cause: error })
  }
  return { path, bytes: bytes.byteLength, ...normalization }
}

/** The model a job config names, with a snapshot's parameters, written as a forward ONNX file. */
export async function exportSnapshotModel(path: string, snapshot: Pick<TrainingSnapshot, 'jobConfig' | 'params'>): Promise<WrittenExport & { model: string }> {
  const spec = (snapshot.jobConfig as { model?: unknown }).model
  if (typeof spec !== 'string') throw new ModelExportError('the checkpoint\'s job config names no model')
  const dataset = (snapshot.jobConfig as { dataset?: unknown }).dataset
  const model = await resolveModel(spec)
  return { ...await writeModelExport(path, model, snapshot.params, typeof dataset === 'string' ? dataset : 'mnist'), model: spec }
}

/** `p2pmld export --checkpoint FILE`: read the checkpoint (a file, or a data dir's checkpoint directory) and export its model. */
export async function exportCheckpointModel(checkpoint: string, path: string): Promise<WrittenExport & { model: string, step: number }> {
  const snapshot = await readCheckpointFile(checkpoint)
  return { ...await exportSnapshotModel(path, snapshot), step: snapshot.step }
}
