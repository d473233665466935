/**
 * A short calibration run for `p2pmld estimate`: the model's training graph computes gradients
 * of a batch of the asked size a few times on this machine, timed like a training step's
 * 'compute' stage (wall, process CPU, resident memory).
 */
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { createRng } from '../../ml/core/rng.js'
import type { Batch } from '../../ml/core/types.js'
import { createStageRecorder, type StageSummary } from '../metrics/stage-metrics.js'
import { resolveModel } from '../training/job-runtime.js'

export interface CalibrationOptions {
  readonly model: string
  readonly batchSize: number
  /** timed runs after one warm-up run (default 3) */
  readonly runs?: number
  /** stop early once the timed runs took this long (default 20 s) */
  readonly budgetMs?: number
  readonly computeThreads?: number
  /** called after each run (progress display) */
  readonly onRun?: (run: number, of: number, ms: number) => void
}

export interface Calibration {
  readonly model: string
  readonly batchSize: number
  readonly parameterCount: number
  /** the 'compute' stage over the timed runs */
  readonly compute: StageSummary
  /** highest resident set size seen, MiB */
  readonly peakRssMiB: number
}

export async function calibrateCompute(options: CalibrationOptions): Promise<Calibration> {
  const model = await resolveModel(options.model)
  const computer = createOnnxGradientComputer(model, { intraOpThreads: options.computeThreads ?? 2 })
  const runs = options.runs ?? 3
  const budgetMs = options.budgetMs ?? 20_000
  try {
    const params = model.initParameters(1)
    const batch = syntheticBatch(model.sampleShape, model.numClasses, options.batchSize)
    let peak = process.memoryUsage.rss()
    // the first run builds and loads the graph: not a step's time
    await computer.computeGradient(params, batch)
    peak = Math.max(peak, process.memoryUsage.rss())
    // a few timed runs: CPU time read on each of them
    const stages = createStageRecorder({ cpuSampleEvery: 1 })
    // each run's time as the stage recorded it, so the printed runs are the ones whose median the
    // estimate uses (timed around stages.time(), they included its CPU and memory reads)
    let lastMs = 0
    const unsubscribe = stages.onRecord((_stage, wallMs) => { lastMs = wallMs })
    const started = performance.now()
    for (let i = 0; i < runs; i++) {
      await stages.time('compute', () => computer.computeGradient(params, batch))
      peak = Math.max(peak, process.memoryUsage.rss())
      options.onRun?.(i + 1, runs, lastMs)
      if (performance.now() - started > budgetMs) break
    }
    unsubscribe()
    const compute = stages.summary().find((s) => s.stage === 'compute')
    if (compute === undefined) throw new Error('calibration recorded no compute time')
    return { model: options.model, batchSize: options.batchSize, parameterCount: model.layout.totalSize, compute, peakRssMiB: peak / (1024 * 1024) }
  } finally {
    await computer.close()
  }
}

/** Random inputs in [0, 1) and labels: the time of a gradient does not depend on the values. */
function syntheticBatch(sampleShape: readonly number[], numClasses: number, size: number): Batch {
  const rng = createRng(7)
  const length = sampleShape.reduce((a, b) => a * b, 1)
  const inputs = new Float32Array(size * length)
  for (let i = 0; i < inputs.length; i++) inputs[i] = rng.nextFloat()
  const labels = new Int32Array(size)
  for (let i = 0; i < size; i++) labels[i] = rng.nextInt(numClasses)
  return { size, sampleShape, inputs, labels }
}
