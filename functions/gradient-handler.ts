/**
 * The gradient function: one handler that runs in a local worker thread (the pool) and as an AWS
 * Lambda function. It reads the training graph (cached as an ONNX Runtime session per graph key,
 * so warm invocations skip the build), the parameters (cached by content hash) and its
 * micro-batch from the blob store, runs the graph once, writes the gradient back and returns
 * the summed loss and the sample count. It never imports libp2p or the daemon.
 */
import ort from 'onnxruntime-node'
import { gradientSessionOptions, runTrainingGraph } from '../ml/engine/training-run.js'
import type { BlobStore } from './blob-store.js'
import { decodeGraphBundle, decodeMicroBatch, float32Bytes, float32View, GradientEventSchema, type GradientEvent, type GradientTaskResult, type GraphManifest } from './gradient-task.js'

export interface GradientHandlerOptions {
  /** ORT intra-op threads per session (default 1) */
  readonly intraOpThreads?: number
  /** training graphs kept as sessions (default 4: a step's micro-batches differ by one sample at most, so two sizes) */
  readonly maxCachedGraphs?: number
}

export interface GradientHandler {
  /**
   * Computes one micro-batch's gradient.
   * @throws GradientEventError when the event does not parse; store and ORT errors as they are
   */
  handle(event: unknown): Promise<GradientTaskResult>
  /** releases the cached sessions */
  close(): Promise<void>
}

export class GradientEventError extends Error {
  override name = 'GradientEventError'
}

interface CachedGraph {
  readonly manifest: GraphManifest
  readonly session: ort.InferenceSession
}

/** `storeFor` picks the store for an event (the pool: always its directory; Lambda: the event's bucket). */
export function createGradientHandler(storeFor: (event: GradientEvent) => BlobStore, options: GradientHandlerOptions = {}): GradientHandler {
  const threads = options.intraOpThreads ?? 1
  const maxGraphs = options.maxCachedGraphs ?? 4
  const graphs = new Map<string, Promise<CachedGraph>>()
  let params: { key: string, values: Promise<Float32Array> } | undefined

  const graphFor = (store: BlobStore, key: string): Promise<CachedGraph> => {
    let cached = graphs.get(key)
    if (cached === undefined) {
      cached = (async () => {
        const { manifest, onnx } = decodeGraphBundle(await store.get(key))
        return { manifest, session: await ort.InferenceSession.create(onnx, gradientSessionOptions(threads)) }
      })()
      cached.catch(() => graphs.delete(key))
      graphs.set(key, cached)
      if (graphs.size > maxGraphs) {
        const [oldestKey, oldest] = graphs.entries().next().value as [string, Promise<CachedGraph>]
        graphs.delete(oldestKey)
        void oldest.then(async (g) => { await g.session.release() }, () => {})
      }
    } else {
      // least recently used goes first
      graphs.delete(key)
      graphs.set(key, cached)
    }
    return cached
  }

  const paramsFor = (store: BlobStore, key: string, length: number): Promise<Float32Array> => {
    if (params?.key !== key) {
      const values = (async () => float32View(await store.get(key), length, `parameters '${key}'`))()
      values.catch(() => { if (params?.key === key) params = undefined })
      params = { key, values }
    }
    return params.values
  }

  return {
    async handle(raw: unknown): Promise<GradientTaskResult> {
      const parsed = GradientEventSchema.safeParse(raw)
      if (!parsed.success) {
        throw new GradientEventError(`bad gradient event: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
      }
      const event = parsed.data
      const store = storeFor(event)
      const readStart = performance.now()
      const { manifest, session } = await graphFor(store, event.graph)
      const [values, batchBytes] = await Promise.all([paramsFor(store, event.params, manifest.layout.totalSize), store.get(event.batch)])
      const batch = decodeMicroBatch(batchBytes, manifest.sampleShape)
      if (batch.size !== manifest.batchSize) throw new GradientEventError(`micro-batch '${event.batch}' has ${batch.size} samples, graph '${event.graph}' was built for ${manifest.batchSize}`)
      if (event.dropout !== undefined && event.dropout.sampleIndices.length !== batch.size) {
        throw new GradientEventError(`dropout key has ${event.dropout.sampleIndices.length} sample indices for micro-batch '${event.batch}' of ${batch.size} samples`)
      }
      const runStart = performance.now()
      const result = await runTrainingGraph(session, manifest, manifest, values, event.dropout === undefined ? batch : { ...batch, dropout: event.dropout })
      const writeStart = performance.now()
      await store.put(event.gradient, float32Bytes(result.gradient))
      return {
        index: event.index,
        gradient: event.gradient,
        lossSum: result.loss * result.size,
        correct: result.correct,
        count: result.size,
        readMs: runStart - readStart,
        runMs: writeStart - runStart,
        writeMs: performance.now() - writeStart
      }
    },
    async close() {
      const all = [...graphs.values()]
      graphs.clear()
      params = undefined
      for (const g of await Promise.allSettled(all)) if (g.status === 'fulfilled') await g.value.session.release()
    }
  }
}
