/**
 * Computes batch gradients in process with ONNX Runtime: one run() per step evaluates the
 * training graph (loss, logits and every gradient at once). Graphs and sessions are built once
 * per batch size and reused.
 */
import ort from 'onnxruntime-node'
import { buildInferenceGraph, buildTrainingGraph, DEFAULT_INTRA_OP_THREADS, type BuiltGraph } from '../autodiff/training-graph.js'
import type { Batch, EvaluationResult, GradientComputer, GradientObserver, GradientResult } from '../core/types.js'
import type { ModelDefinition } from '../models/model-definition.js'
import { countCorrect, crossEntropySum } from './logits.js'
import { detectNchwcBlock } from './nchwc-block.js'
import { gradientOutputs, gradientSessionOptions, graphFeeds, runTrainingGraph, type GradientOutputs } from './training-run.js'

export interface OnnxGradientComputerOptions {
  /** ORT intra-op threads (default 2: the machine's cores) */
  readonly intraOpThreads?: number
  /**
   * Write every step's gradient into one buffer (per batch size, or the caller's `into` of
   * computeGradient) instead of a new array (default false): a GradientResult's gradient is then
   * valid only until the next computeGradient, and read-only (the taps of a compact tap gradient,
   * training-run.ts, keep the zeros the buffer was created or zeroed with). For a caller that
   * consumes each gradient before the next step (the sync trainer): allocating and page-faulting a
   * fresh array every step costs ~1 ms per 7.5 MB.
   */
  readonly reuseGradientBuffer?: boolean
  /**
   * ORT's CPU memory arena for the training sessions (default true): activations are not
   * page-faulted in again every step (squeezenet1_1 b64: 45-49 ms a step with it, 42-98 ms
   * without), at the cost of keeping a step's peak memory between steps (see
   * gradientSessionOptions). Off for a computer that computes now and then (an offload's local
   * fallback); pool workers and function containers use the handler's sessions, which keep it off.
   */
  readonly memoryArena?: boolean
  /** ONNX Runtime's per-operator profile: trace files starting with this prefix, written by close() */
  readonly profilePrefix?: string
  /**
   * Convolutions of the training graphs through ONNX Runtime's NCHWc kernels where they fit
   * (default true; ml/autodiff/ops/nchwc.ts): lenet5 at batch 256 ~11 % faster a step here. The
   * graphs then hold this machine's block size, so they are never sent elsewhere
   * (trainingGraphBytes builds the portable graph). The gradients are the same sums in another
   * order (float32 rounding apart).
   */
  readonly nchwc?: boolean
}

interface CompiledGraph {
  readonly graph: BuiltGraph
  readonly session: ort.InferenceSession
  /** with reuseGradientBuffer: the gradient buffer and the fetches that write into it */
  reused?: GradientOutputs
  /** the same for the caller's buffer (computeGradient's `into`) last given */
  into?: GradientOutputs
}

/**
 * The outputs `compiled` writes its gradient through: into `into` when given, else a buffer of its
 * own, kept while `into` stays the same. A graph with compact tap gradients leaves the other taps
 * of their kernels as it found them (training-run.ts), so a caller's buffer that another graph (of
 * another batch size) or nobody wrote last is zeroed first: `writers` remembers each one's last.
 */
function reusedOutputs(compiled: CompiledGraph, model: ModelDefinition, into: Float32Array | undefined, writers: WeakMap<Float32Array, CompiledGraph>): GradientOutputs {
  if (into === undefined) return (compiled.reused ??= gradientOutputs(compiled.graph, model, compiled.session))
  if (into.length !== model.layout.totalSize) {
    throw new RangeError(`a gradient of ${model.name} has ${model.layout.totalSize} values; the buffer given for it holds ${into.length}`)
  }
  if (compiled.into?.gradient !== into) compiled.into = gradientOutputs(compiled.graph, model, compiled.session, into)
  if (writers.get(into) !== compiled) {
    if (compiled.into.taps.length > 0) into.fill(0)
    writers.set(into, compiled)
  }
  return compiled.into
}

export class GradientComputerClosedError extends Error {
  override name = 'GradientComputerClosedError'
}

export function createOnnxGradientComputer(model: ModelDefinition, options: OnnxGradientComputerOptions = {}): GradientComputer {
  const threads = options.intraOpThreads ?? DEFAULT_INTRA_OP_THREADS
  const reuseGradient = options.reuseGradientBuffer === true
  const training = new Map<number, Promise<CompiledGraph>>()
  const inference = new Map<number, Promise<CompiledGraph>>()
  // detected once, when the first training graph is built
  let nchwcBlock: Promise<number> | undefined
  let closed = false
  // runs still executing: close() waits for them before releasing their sessions
  const inFlight = new Set<Promise<unknown>>()
  const track = <T>(run: Promise<T>): Promise<T> => {
    inFlight.add(run)
    run.then(() => inFlight.delete(run), () => inFlight.delete(run))
    return run
  }

  const compile = (cache: Map<number, Promise<CompiledGraph>>, batchSize: number, build: () => BuiltGraph | Promise<BuiltGraph>, memoryArena: boolean): Promise<CompiledGraph> => {
    let compiled = cache.get(batchSize)
    if (compiled === undefined) {
      compiled = (async () => {
        const graph = await build()
        const session = await ort.InferenceSession.create(graph.bytes, gradientSessionOptions(threads, { memoryArena, profilePrefix: options.profilePrefix }))
        return { graph, session }
      })()
      cache.set(batchSize, compiled)
    }
    return compiled
  }

  // the graph that last wrote each caller's gradient buffer (reusedOutputs)
  const writers = new WeakMap<Float32Array, CompiledGraph>()

  const ensureOpen = (): void => {
    if (closed) throw new GradientComputerClosedError('the gradient computer is closed: create a new one to compute again')
  }

  async function computeGradient(params: Float32Array, batch: Batch, into: Float32Array | undefined): Promise<GradientResult> {
    const compiled = await compile(training, batch.size, async () => {
      const block = options.nchwc === false ? 0 : await (nchwcBlock ??= detectNchwcBlock())
      // this process scatters the compact tap gradients (training-run.ts); graphs for elsewhere do not have them
      return buildTrainingGraph(model.forward, model.layout, batch.size, { nchwcBlock: block, intraOpThreads: threads, compactTapGradients: true })
    }, options.memoryArena ?? true)
    const { graph, session } = compiled
    return await runTrainingGraph(session, graph, model, params, batch, reuseGradient ? reusedOutputs(compiled, model, into, writers) : undefined)
  }

  async function evaluate(params: Float32Array, batch: Batch): Promise<EvaluationResult> {
    const { graph, session } = await compile(inference, batch.size, () => buildInferenceGraph(model.forward, model.layout, batch.size), false)
    const out = await session.run(graphFeeds(model, params, batch, graph.inputName))
    const logits = out[graph.logitsName].data as Float32Array
    return {
      lossSum: crossEntropySum(logits, batch.labels, model.numClasses),
      correct: countCorrect(logits, batch.labels, model.numClasses),
      count: batch.size
    }
  }

  return {
    async computeGradient(params: Float32Array, batch: Batch, _observer?: GradientObserver, into?: Float32Array): Promise<GradientResult> {
      ensureOpen()
      return await track(computeGradient(params, batch, into))
    },

    async evaluate(params: Float32Array, batch: Batch): Promise<EvaluationResult> {
      ensureOpen()
      return await track(evaluate(params, batch))
    },

    async close(): Promise<void> {
      if (closed) return
      closed = true
      await Promise.allSettled([...inFlight])
      const all = [...training.values(), ...inference.values()]
      training.clear()
      inference.clear()
      for (const compiled of await Promise.allSettled(all)) {
        // a graph that failed to build has no session to release
        if (compiled.status !== 'fulfilled') continue
        if (options.profilePrefix !== undefined) compiled.value.session.endProfiling()
        await compiled.value.session.release()
      }
    }
  }
}

/**
 * The serialized training graph for (model, batch size): what a remote worker runs. Portable:
 * plain ONNX convolutions (no NCHWc block of this machine), so on a worker it gives the gradients
 * of a computer created with `nchwc: false`, bit for bit.
 */
export function trainingGraphBytes(model: ModelDefinition, batchSize: number): Uint8Array {
  return buildTrainingGraph(model.forward, model.layout, batchSize).bytes
}
