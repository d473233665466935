/**
 * One training-graph run: feeds (parameters as views, the batch, one-hot labels), pre-allocated
 * gradient outputs, loss and accuracy. Shared by the in-process computer and the gradient
 * function handler (functions/), so a gradient is computed by the same code wherever it runs.
 */
import ort from 'onnxruntime-node'
import { scatterTaps, type TapScatter } from '../autodiff/tap-selections.js'
import { TRAINING_INPUT_LABELS, TRAINING_OUTPUT_LOSS, type DropoutMaskInput } from '../autodiff/training-graph.js'
import type { Batch, GradientResult, ParameterLayout } from '../core/types.js'
import { dropoutMasks } from './dropout-masks.js'
import { countCorrect, oneHot } from './logits.js'

/** What a run needs to know about the model (a ModelDefinition is one). */
export interface RunnableModel {
  readonly name: string
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  readonly layout: ParameterLayout
}

/** The names a built graph reads and writes (a BuiltGraph is one). */
export interface GraphSignature {
  readonly inputName: string
  readonly logitsName: string
  /** gradient output name per parameter, in layout order (training graphs) */
  readonly gradientNames: readonly string[]
  /** Dropout mask inputs (training graphs of models with Dropout), fed from the batch's dropout key */
  readonly dropoutMasks?: readonly DropoutMaskInput[]
  /** per parameter, a gradient output holding only the taps the graph reads (BuiltGraph.gradientTaps) */
  readonly gradientTaps?: ReadonlyArray<TapScatter | undefined>
}

/**
 * A flat gradient buffer and the fetches that make ORT write each parameter's gradient into its
 * slice; a compact tap gradient goes to a buffer of its own and is scattered into its slice after
 * the run (`taps`), whose other taps hold the zeros the buffer was created with: nothing else may
 * write into the gradient
 */
export interface GradientOutputs {
  readonly gradient: Float32Array
  readonly fetches: Record<string, ort.Tensor | null>
  readonly taps: ReadonlyArray<{ readonly compact: Float32Array, readonly scatter: TapScatter, readonly offset: number }>
}

/**
 * Pre-allocated outputs for one run (or, kept by the caller, for every run of this graph), in
 * `into` when given (holding zeros where compact tap gradients go: see GradientOutputs). Each
 * gradient output gets the shape the graph declares for it, which can be its producer's (e.g. a
 * Gemm's [M, C kh kw] for a kernel [M, C, kh, kw]): the same values in the same order.
 *
 * ONNX Runtime writes the gradients into these buffers, but onnxruntime-node (1.30 and 1.31.1)
 * still copies every fetched output into a new ArrayBuffer it returns (tensor_helper's
 * OrtValueToNapiValue), which we drop: resnet18 at batch 64 ran 73-75 ms a step fetching its
 * 45 MB of gradients and 63-66 ms fetching only the loss, the same graph run in full
 * (bench/op-profile.ts shows the operators). No glibc malloc setting made that copy cheaper. So a
 * kernel read only through some of its taps is fetched as those taps (GraphSignature.gradientTaps):
 * resnet18's fetched gradients 45 -> 17 MB.
 */
export function gradientOutputs(graph: GraphSignature, model: RunnableModel, session: Pick<ort.InferenceSession, 'outputMetadata'>, into?: Float32Array): GradientOutputs {
  const declared = new Map(session.outputMetadata.map((m) => [m.name, m.isTensor ? m.shape : undefined]))
  const gradient = into ?? new Float32Array(model.layout.totalSize)
  const fetches: Record<string, ort.Tensor | null> = { [TRAINING_OUTPUT_LOSS]: null, [graph.logitsName]: null }
  const taps: Array<GradientOutputs['taps'][number]> = []
  model.layout.specs.forEach((spec, i) => {
    const shape = declared.get(graph.gradientNames[i])
    const scatter = graph.gradientTaps?.[i]
    if (scatter !== undefined) {
      const compact = new Float32Array((spec.size / scatter.kernelTaps) * scatter.columns.length)
      fetches[graph.gradientNames[i]] = new ort.Tensor('float32', compact, shape !== undefined && shape.every((d) => typeof d === 'number') ? shape as number[] : [compact.length])
      taps.push({ compact, scatter, offset: spec.offset })
      return
    }
    const dims = shape !== undefined && shape.every((d) => typeof d === 'number') && (shape as number[]).reduce((a, b) => a * b, 1) === spec.size ? shape as number[] : spec.shape
    fetches[graph.gradientNames[i]] = new ort.Tensor('float32', gradient.subarray(spec.offset, spec.offset + spec.size), [...dims])
  })
  return { gradient, fetches, taps }
}

/**
 * Checks the parameter and batch sizes and the labels, then builds the feeds.
 * @throws RangeError naming the mismatch (parameter count, input/label count, a label out of range)
 */
export function graphFeeds(model: RunnableModel, params: Float32Array, batch: Batch, inputName: string): Record<string, ort.Tensor> {
  if (params.length !== model.layout.totalSize) {
    throw new RangeError(`expected ${model.layout.totalSize} parameters for ${model.name}, got ${params.length}`)
  }
  const sampleSize = model.sampleShape.reduce((a, b) => a * b, 1)
  if (batch.inputs.length !== batch.size * sampleSize || batch.labels.length !== batch.size) {
    throw new RangeError(`a batch of ${batch.size} for ${model.name} needs ${batch.size * sampleSize} input values and ${batch.size} labels, got ${batch.inputs.length} and ${batch.labels.length}`)
  }
  for (const label of batch.labels) {
    // an out-of-range label would silently land in another sample's one-hot row
    if (!(label >= 0 && label < model.numClasses)) throw new RangeError(`label ${label} is outside [0, ${model.numClasses}) for ${model.name}`)
  }
  const result: Record<string, ort.Tensor> = {
    [inputName]: new ort.Tensor('float32', batch.inputs, [batch.size, ...model.sampleShape])
  }
  for (const spec of model.layout.specs) {
    // a view, not a copy: ORT reads the flat parameter vector in place
    result[spec.name] = new ort.Tensor('float32', params.subarray(spec.offset, spec.offset + spec.size), [...spec.shape])
  }
  return result
}

/**
 * Runs a training graph once: mean loss, the flat gradient of the mean loss, correct count.
 * `outputs`: buffers to write the gradient into (default: fresh ones; the result's gradient is
 * then owned by the caller, else it is overwritten by the next run with the same outputs).
 */
export async function runTrainingGraph(session: ort.InferenceSession, graph: GraphSignature, model: RunnableModel, params: Float32Array, batch: Batch, outputs: GradientOutputs = gradientOutputs(graph, model, session)): Promise<GradientResult> {
  const input = graphFeeds(model, params, batch, graph.inputName)
  input[TRAINING_INPUT_LABELS] = new ort.Tensor('float32', oneHot(batch.labels, model.numClasses), [batch.size, model.numClasses])
  const masks = graph.dropoutMasks ?? []
  dropoutMasks(masks, batch).forEach((mask, k) => {
    input[masks[k].name] = new ort.Tensor('float32', mask, [...masks[k].shape])
  })
  const { gradient, fetches } = outputs
  const out = await session.run(input, fetches as ort.InferenceSession.FetchesType)
  for (const t of outputs.taps) scatterTaps(t.compact, t.scatter, gradient, t.offset)
  const logits = out[graph.logitsName].data as Float32Array
  return {
    loss: (out[TRAINING_OUTPUT_LOSS].data as Float32Array)[0],
    gradient,
    correct: countCorrect(logits, batch.labels, model.numClasses),
    size: batch.size
  }
}

/**
 * Session options every gradient session uses (quiet: ORT's warnings would reach the CLI's output).
 * `memoryArena`: ORT's CPU memory arena, for a session that runs step after step in a process of
 * its own making (the in-process trainer). Without it each run's activations are malloc'd and
 * freed, and glibc returns much of them to the system between runs, so the next run page-faults
 * them in again: squeezenet1_1 at batch 64 (CIFAR shape) took 42-98 ms a step without the arena
 * (89-245 thousand page faults in 35 steps, varying run to run) and 45-49 ms with it (91 thousand
 * every run). The arena keeps a step's peak after the step, per session: vgg11 at batch 1024
 * resident between steps 5.9 GiB with it, 1.6 GiB without; so sessions that run now and then
 * (evaluation, an offload's local fallback) or of which a machine holds many (pool workers, warm
 * function containers) leave it off. The demo's peers (2-16 in one process) keep it, as the
 * daemons they stand for do: resnet18 with 4 peers peaked at 3.61 against 3.33 GB without it. `profilePrefix`: ONNX Runtime's profiler on, its JSON
 * trace written to files starting with it when the session ends (benches: bench/op-profile.ts).
 */
export function gradientSessionOptions(intraOpThreads: number, options: { memoryArena?: boolean, profilePrefix?: string } = {}): ort.InferenceSession.SessionOptions {
  const { profilePrefix } = options
  const session: ort.InferenceSession.SessionOptions = { intraOpNumThreads: intraOpThreads, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3, enableCpuMemArena: options.memoryArena === true }
  return profilePrefix === undefined ? session : { ...session, enableProfiling: true, profileFilePrefix: profilePrefix }
}
