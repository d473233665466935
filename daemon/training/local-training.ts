/**
 * `p2pmld train`: the same job runner as a peer, as a one-member job with no network. This is
 * the single-process baseline peer-to-peer training is compared with.
 */
import { minimumPeersFor, quorumFix, type JobConfig } from '../../config/job-config.js'
import { createJobRunner, type JobNetwork, type JobResult, type JobRunnerEvents } from '../job/job-runner.js'
import type { Logger } from '../logger.js'
import type { StageSummary } from '../metrics/stage-metrics.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import { createJobRuntime } from './job-runtime.js'

const LOCAL_PEER_ID = 'local'

const noNetwork: JobNetwork = {
  sendGradient: async () => {},
  announceMembership: async () => {},
  fetchSnapshot: async () => {
    throw new Error('a local training run has no peers to sync from')
  },
  queryDigest: async () => {
    throw new Error('a local training run has no peers to ask')
  }
}

export interface LocalTrainingOptions {
  readonly computeThreads?: number
  readonly log: Logger
  readonly events?: JobRunnerEvents
  readonly signal?: AbortSignal
  /**
   * `signal` stopped the run: called with the state it stopped at (the parameters after `step`
   * steps) before the runtime closes, e.g. to write the model trained so far
   */
  readonly onStopped?: (stopped: { readonly step: number, readonly epoch: number, readonly model: ModelDefinition, readonly params: Float32Array }) => Promise<void>
  /** quantize and aggregate this process's own gradient as a one-member job would (default: applied as computed) */
  readonly exchangeAlone?: boolean
}

export interface LocalTrainingResult extends JobResult {
  readonly stages: StageSummary[]
  readonly wallMs: number
  readonly trainSize: number
  readonly parameterCount: number
  /** the model and its final parameters (for `train --out`) */
  readonly model: ModelDefinition
  readonly params: Float32Array
}

/**
 * Trains `config` in this process. Throws, before loading anything, when the job's rule needs
 * more than one gradient a step (a one-member job would wait for the others for ever). A job
 * that fails (e.g. diverged) rejects with the runner's error, which is not logged: the caller
 * shows it. Resolves undefined when `signal` stops it first. A job config in async mode trains in
 * sync mode here (one member has nothing to wait for).
 */
export async function runLocalTraining(config: JobConfig, options: LocalTrainingOptions): Promise<LocalTrainingResult | undefined> {
  const fix = quorumFix(config.aggregation.rule, config.aggregation.f, 1)
  if (fix !== undefined) {
    throw new Error(`aggregation ${config.aggregation.rule} with f=${config.aggregation.f} needs ${minimumPeersFor(config.aggregation.rule, config.aggregation.f)} gradients a step and a local run has one: ${fix}`)
  }
  const started = performance.now()
  // one process trains synchronously: async mode (a job file's) would only run its exchange stages on one gradient
  const runtime = await createJobRuntime({ ...config, minPeers: 1, mode: 'sync' }, { computeThreads: options.computeThreads })
  try {
    for (const warning of runtime.model.warnings ?? []) options.log.warn({ model: config.model }, warning)
    if (runtime.train.size < config.batchSize) {
      throw new Error(`the training set (${runtime.train.size} samples) is smaller than one batch (${config.batchSize}): lower the batch size (--batch-size; batchSize in a job file) or use more samples (--train-samples; trainSamples)`)
    }
    const runner = createJobRunner({ selfId: LOCAL_PEER_ID, runtime, network: noNetwork, log: options.log, events: options.events, host: true, exchangeAlone: options.exchangeAlone, logFailure: false })
    const onAbort = (): void => { void runner.stop() }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    runner.start()
    const result = await runner.done()
    options.signal?.removeEventListener('abort', onAbort)
    if (result === undefined) {
      if (options.signal?.aborted === true) await options.onStopped?.({ step: runner.progress().step, epoch: runner.progress().epoch, model: runtime.model, params: runner.currentSnapshot().params })
      return undefined
    }
    return {
      ...result,
      stages: runner.stages.summary(),
      wallMs: performance.now() - started,
      trainSize: runtime.train.size,
      parameterCount: runtime.model.layout.totalSize,
      model: runtime.model,
      params: runner.currentSnapshot().params
    }
  } finally {
    await runtime.close()
  }
}
