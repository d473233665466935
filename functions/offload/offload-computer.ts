/**
 * A GradientComputer that offloads: it splits the batch into micro-batches, writes the training
 * graph (once per micro-batch size), the parameters (once per step, under their content hash) and
 * the micro-batches to a blob store, dispatches one gradient function per micro-batch (pool,
 * Lambda or Step Functions), reads the gradients back and combines them weighted by sample count.
 * A micro-batch whose function failed after its retries is computed in process, so the step is
 * never lost. Evaluation runs in process. The step's keys are deleted after the step, the
 * parameters when they change, graphs at close().
 */
import { randomBytes } from 'node:crypto'
import type { Batch, EvaluationResult, GradientComputer, GradientObserver, GradientResult } from '../../ml/core/types.js'
import type { ModelDefinition } from '../../ml/models/model-definition.js'
import { buildTrainingGraph } from '../../ml/autodiff/training-graph.js'
import { contentHash, type BlobStore } from '../blob-store.js'
import { encodeGraphBundle, encodeMicroBatch, float32Bytes, float32View, type GradientEvent } from '../gradient-task.js'
import type { GradientDispatcher } from './dispatcher.js'
import { combineGradients, splitBatch, type PartialGradient } from './micro-batches.js'

export interface OffloadComputerOptions {
  readonly model: ModelDefinition
  readonly store: BlobStore
  readonly dispatcher: GradientDispatcher
  /** in-process computer: evaluation and the fallback for failed micro-batches */
  readonly local: GradientComputer
  /** micro-batches per step (fewer when the batch is smaller) */
  readonly microBatches: number
  /** no micro-batch smaller than this (default 1) */
  readonly minMicroBatchSize?: number
  /** copied into every event (Lambda: the S3 bucket and key prefix the function reads) */
  readonly eventStore?: { readonly bucket?: string, readonly prefix?: string }
  /** key namespace (default: a random id, so peers sharing a bucket never collide) */
  readonly namespace?: string
  /** told about micro-batches computed locally after their function failed */
  readonly onFallback?: (info: { index: number, error: string }) => void
}

/** Counters over the computer's life (the bench reads bytes per step from them). */
export interface OffloadStats {
  readonly steps: number
  readonly microBatches: number
  /** micro-batches computed in process after their function failed */
  readonly fallbacks: number
  /** bytes the peer wrote to / read from the blob store */
  readonly bytesUploaded: number
  readonly bytesDownloaded: number
  readonly invocations: number
}

export interface OffloadComputer extends GradientComputer {
  readonly dispatcher: GradientDispatcher
  stats(): OffloadStats
}

const IGNORE: GradientObserver = { time: async (_stage, work) => await work() }

export function createOffloadComputer(options: OffloadComputerOptions): OffloadComputer {
  const { model, store, dispatcher, local } = options
  const namespace = options.namespace ?? `run-${randomBytes(6).toString('hex')}`
  const graphKeys = new Map<number, Promise<string>>()
  let paramsKey: string | undefined
  let sequence = 0
  let cleanup: Promise<void> = Promise.resolve()
  let closed = false
  const counters = { steps: 0, microBatches: 0, fallbacks: 0, bytesUploaded: 0, bytesDownloaded: 0 }

  const put = async (key: string, bytes: Uint8Array): Promise<void> => {
    await store.put(key, bytes)
    counters.bytesUploaded += bytes.byteLength
  }

  const graphKeyFor = (size: number): Promise<string> => {
    let key = graphKeys.get(size)
    if (key === undefined) {
      key = (async () => {
        const built = buildTrainingGraph(model.forward, model.layout, size)
        const bundle = encodeGraphBundle({
          version: 1, name: model.name, batchSize: size, sampleShape: [...model.sampleShape], numClasses: model.numClasses,
          inputName: built.inputName, logitsName: built.logitsName, gradientNames: [...built.gradientNames],
          dropoutMasks: built.dropoutMasks.map((m) => ({ name: m.name, shape: [...m.shape], ratio: m.ratio })),
          layout: { totalSize: model.layout.totalSize, specs: model.layout.specs.map((s) => ({ ...s, shape: [...s.shape] })) }
        }, built.bytes)
        const graphKey = `${namespace}/graphs/${contentHash(bundle)}`
        await put(graphKey, bundle)
        return graphKey
      })()
      key.catch(() => graphKeys.delete(size))
      graphKeys.set(size, key)
    }
    return key
  }

  const uploadParams = async (params: Float32Array): Promise<string> => {
    const bytes = float32Bytes(params)
    const key = `${namespace}/params/${contentHash(bytes)}`
    if (key !== paramsKey) {
      await put(key, bytes)
      if (paramsKey !== undefined) await store.delete([paramsKey])
      paramsKey = key
    }
    return key
  }

  async function computeGradient(params: Float32Array, batch: Batch, observer: GradientObserver): Promise<GradientResult> {
    if (params.length !== model.layout.totalSize) throw new RangeError(`expected ${model.layout.totalSize} parameters for ${model.name}, got ${params.length}`)
    const parts = splitBatch(batch, options.microBatches, options.minMicroBatchSize)
    const step = sequence++
    const stepKey = `${namespace}/steps/${step}`
    await cleanup
    const events = await observer.time('upload', async (): Promise<GradientEvent[]> => {
      const [paramKey, graphs] = await Promise.all([uploadParams(params), Promise.all(parts.map(async (p) => await graphKeyFor(p.size)))])
      return await Promise.all(parts.map(async (part, index) => {
        const batchKey = `${stepKey}/batch-${index}`
        await put(batchKey, encodeMicroBatch(part))
        const dropout = part.dropout === undefined ? {} : { dropout: { seed: part.dropout.seed, step: part.dropout.step, sampleIndices: Array.from(part.dropout.sampleIndices) } }
        return { version: 1 as const, ...options.eventStore, graph: graphs[index], params: paramKey, batch: batchKey, gradient: `${stepKey}/gradient-${index}`, index, ...dropout }
      }))
    })
    const outcomes = await dispatcher.dispatch(events, observer)
    const results: Array<PartialGradient | undefined> = []
    const failed: number[] = []
    await observer.time('download', async () => {
      await Promise.all(outcomes.map(async (outcome, index) => {
        if (!outcome.ok) {
          failed.push(index)
          return
        }
        const bytes = await store.get(outcome.result.gradient)
        counters.bytesDownloaded += bytes.byteLength
        results[index] = { gradient: float32View(bytes, model.layout.totalSize, `gradient of micro-batch ${index}`), lossSum: outcome.result.lossSum, correct: outcome.result.correct, count: outcome.result.count }
      }))
    })
    if (failed.length > 0) {
      // the function kept failing (its retries are spent): this peer computes the micro-batch itself
      await observer.time('wait', async () => {
        for (const index of failed) {
          const outcome = outcomes[index]
          options.onFallback?.({ index, error: outcome.ok ? '' : outcome.error })
          const own = await local.computeGradient(params, parts[index])
          results[index] = { gradient: own.gradient, lossSum: own.loss * own.size, correct: own.correct, count: own.size }
        }
      })
    }
    const combined = await observer.time('combine', () => combineGradients(results as PartialGradient[]))
    counters.steps++
    counters.microBatches += parts.length
    counters.fallbacks += failed.length
    const stepKeys = events.flatMap((e) => [e.batch, e.gradient])
    cleanup = store.delete(stepKeys).catch(() => {})
    return combined
  }

  return {
    dispatcher,
    async computeGradient(params: Float32Array, batch: Batch, observer?: GradientObserver): Promise<GradientResult> {
      if (closed) throw new Error('the offload gradient computer is closed: create a new one to compute again')
      return await computeGradient(params, batch, observer ?? IGNORE)
    },
    async evaluate(params: Float32Array, batch: Batch): Promise<EvaluationResult> {
      return await local.evaluate(params, batch)
    },
    stats: () => ({ ...counters, invocations: dispatcher.invocations() }),
    async close() {
      if (closed) return
      closed = true
      await cleanup
      const keys = [...(await Promise.allSettled(graphKeys.values())).flatMap((k) => k.status === 'fulfilled' ? [k.value] : [])]
      if (paramsKey !== undefined) keys.push(paramsKey)
      await store.delete(keys).catch(() => {})
      await dispatcher.close()
      await local.close()
      await store.close()
    }
  }
}
