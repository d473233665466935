/**
 * Turns a forward graph into ONNX graphs ORT can run: a training graph (inputs: batch, one-hot
 * labels, parameters; outputs: mean softmax cross-entropy loss, logits, one gradient per
 * parameter) built by reverse-mode differentiation, and an inference graph (logits only).
 */
import type { ParameterLayout } from '../core/types.js'
import { GraphEmitter, type GraphIo } from '../onnx/graph-emitter.js'
import { BatchLastTwins } from './batch-last.js'
import { gemmsBeforeBroadcast } from './broadcast-gemm.js'
import { ShapeError, type ConstantTensor, type ForwardGraph, type IrNode, type Shape } from './ir.js'
import { lowerSmallConvs } from './lower-convs.js'
import { splitPooledConvs } from './pool-split-convs.js'
import type { ForwardContext, OpDefinition } from './op-definition.js'
import { dropoutRatio } from './ops/dropout.js'
import { findOp, RECURRENT_OPS, supportedOps } from './registry.js'
import { foldShapeNode, isShapeOp } from './shape-folding.js'
import { tapSelectedParameters, type TapScatter } from './tap-selections.js'

export const TRAINING_INPUT_LABELS = 'labels_onehot'
export const TRAINING_OUTPUT_LOSS = 'loss'

/**
 * Ops that newer opsets export whole where older ones give their parts, which the autodiff
 * supports: the opset where the op appeared (torch.onnx.export emits LayerNormalization from
 * opset_version 17 on, ReduceMean / Sub / Pow / Sqrt / Div below it).
 */
const WHOLE_FROM_OPSET: Readonly<Record<string, number>> = { LayerNormalization: 17, GroupNormalization: 18 }

export class UnsupportedOpError extends Error {
  override name = 'UnsupportedOpError'
  constructor (readonly op: string, readonly nodeName: string) {
    const opset = WHOLE_FROM_OPSET[op]
    super(RECURRENT_OPS.has(op)
      ? `recurrent layer '${op}' in node '${nodeName}' is not supported (the autodiff does not unroll ${op}): replace it with attention or convolution, or train it elsewhere`
      : opset !== undefined
        ? `unsupported op '${op}' in node '${nodeName}': opset ${opset} and later export it as one op; export with opset_version=${opset - 1} or lower (torch.onnx.export(..., opset_version=13)), which writes it as ops the autodiff supports`
        : `unsupported op '${op}' in node '${nodeName}': the autodiff supports ${supportedOps().join(', ')}`)
  }
}

export interface BuiltGraph {
  readonly bytes: Uint8Array
  readonly inputName: string
  readonly logitsName: string
  /** gradient output name per parameter, in layout order (training graph only) */
  readonly gradientNames: readonly string[]
  /** extra float inputs of the training graph: one inverted-dropout mask per Dropout node */
  readonly dropoutMasks: readonly DropoutMaskInput[]
  /**
   * per parameter (layout order), where its gradient output holds only the taps the graph reads
   * (TrainingGraphOptions.compactTapGradients): how to scatter it into the parameter's slice
   */
  readonly gradientTaps?: ReadonlyArray<TapScatter | undefined>
}

/** A training-graph input holding 0 or 1/(1 - ratio) per element of a Dropout node's input. */
export interface DropoutMaskInput {
  readonly name: string
  /** [batch, ...]: the Dropout input's shape */
  readonly shape: Shape
  readonly ratio: number
}

export function gradientOutputName(index: number): string {
  return `grad_${index}`
}

/**
 * The forward graph for one concrete batch size: shape arithmetic folded into constants (see
 * shape-folding.ts), every op checked, every tensor's shape inferred.
 */
export interface SpecializedGraph {
  readonly graph: ForwardGraph
  readonly shapes: ReadonlyMap<string, Shape>
}

export function specializeGraph(graph: ForwardGraph, layout: ParameterLayout, batchSize: number): SpecializedGraph {
  const shapes = new Map<string, Shape>()
  const values = new Map<string, ConstantTensor>(graph.constants)
  shapes.set(graph.input, [batchSize, ...graph.sampleShape])
  for (const spec of layout.specs) shapes.set(spec.name, spec.shape)
  for (const [name, c] of graph.constants) shapes.set(name, c.dims)
  const kept: IrNode[] = []
  for (const node of graph.nodes) {
    const folded = foldShapeNode(node, values, shapes)
    if (folded !== undefined) {
      values.set(node.outputs[0], folded)
      shapes.set(node.outputs[0], folded.dims)
      continue
    }
    const op = requireOp(node.op, node.name)
    const inputShapes = node.inputs.map((name) => {
      const s = shapes.get(name)
      if (s === undefined) throw new ShapeError(`node '${node.name}' reads '${name}', which nothing produces before it`)
      return s
    })
    const outs = op.inferShapes(node, inputShapes, { constant: (name) => values.get(name) })
    node.outputs.forEach((name, i) => shapes.set(name, outs[i]))
    kept.push(node)
  }
  if (!shapes.has(graph.output)) throw new ShapeError(`the graph output '${graph.output}' is never produced`)
  const used = new Set(kept.flatMap((n) => n.inputs))
  const constants = new Map([...values].filter(([name]) => used.has(name)))
  return { graph: { ...graph, nodes: kept, constants }, shapes }
}

/** Check every op is supported and infer all tensor shapes for a concrete batch size. */
export function inferShapes(graph: ForwardGraph, layout: ParameterLayout, batchSize: number): Map<string, Shape> {
  return new Map(specializeGraph(graph, layout, batchSize).shapes)
}

export function firstUnsupportedOp(graph: ForwardGraph): { op: string, node: string } | undefined {
  // a recurrent layer is named even when the exporter's helper ops around it come first
  const node = graph.nodes.find((n) => RECURRENT_OPS.has(n.op)) ?? graph.nodes.find((n) => findOp(n.op, true) === undefined && !isShapeOp(n.op))
  return node === undefined ? undefined : { op: node.op, node: node.name }
}

function requireOp(type: string, nodeName: string): OpDefinition {
  const op = findOp(type)
  if (op === undefined) throw new UnsupportedOpError(type, nodeName)
  return op
}

/** Each tensor's producing node and reading nodes. */
function nodeLinks(graph: ForwardGraph): { producers: Map<string, IrNode>, consumers: Map<string, IrNode[]> } {
  const producers = new Map<string, IrNode>()
  const consumers = new Map<string, IrNode[]>()
  for (const node of graph.nodes) {
    for (const o of node.outputs) producers.set(o, node)
    for (const i of node.inputs) consumers.set(i, [...(consumers.get(i) ?? []), node])
  }
  return { producers, consumers }
}

function emitForward(graph: ForwardGraph, emit: GraphEmitter, shapes: ReadonlyMap<string, Shape>, training: boolean, masks: DropoutMaskInput[], nchwcBlock = 0, batchLast = new BatchLastTwins()): Map<string, Record<string, string>> {
  for (const name of shapes.keys()) emit.reserve(name)
  for (const [name, c] of graph.constants) emit.initializer(name, c)
  const saved = new Map<string, Record<string, string>>()
  const shapeOf = (name: string): Shape => shapes.get(name) as Shape
  const constant = (name: string): ConstantTensor | undefined => graph.constants.get(name)
  const { producers, consumers } = nodeLinks(graph)
  const ctx: ForwardContext = {
    training,
    nchwcBlock,
    batchLast,
    constant,
    producer: (name) => producers.get(name),
    consumers: (name) => consumers.get(name) ?? [],
    dropoutMask(node) {
      const name = `dropout_mask_${masks.length}`
      emit.reserve(name)
      masks.push({ name, shape: shapeOf(node.inputs[0]), ratio: dropoutRatio(node, constant) })
      return name
    }
  }
  for (const node of graph.nodes) {
    const op = requireOp(node.op, node.name)
    if (op.emitForward !== undefined) saved.set(node.name, op.emitForward(node, emit, shapeOf, ctx))
    else emit.node(node.op, node.inputs, node.attrs, node.outputs)
  }
  return saved
}

function ioList(graph: ForwardGraph, layout: ParameterLayout, shapes: ReadonlyMap<string, Shape>): GraphIo[] {
  return [
    { name: graph.input, elementType: 'float32', shape: shapes.get(graph.input) as Shape },
    ...layout.specs.map((s) => ({ name: s.name, elementType: 'float32' as const, shape: s.shape }))
  ]
}

export function buildInferenceGraph(forward: ForwardGraph, layout: ParameterLayout, batchSize: number): BuiltGraph {
  // a fully connected layer over a broadcast map as one over the map (broadcast-gemm.ts): the
  // same logits, and vgg11's evaluation reads 512 features a sample instead of 25088
  const specialized = specializeGraph(forward, layout, batchSize)
  const rewritten = gemmsBeforeBroadcast(specialized.graph, specialized.shapes)
  const { graph, shapes } = rewritten === specialized.graph ? specialized : specializeGraph(rewritten, layout, batchSize)
  const emit = new GraphEmitter()
  emitForward(graph, emit, shapes, false, [])
  const bytes = emit.serialize(ioList(graph, layout, shapes), [
    { name: graph.output, elementType: 'float32', shape: shapes.get(graph.output) as Shape }
  ], 'p2pmld-inference')
  return { bytes, inputName: graph.input, logitsName: graph.output, gradientNames: [], dropoutMasks: [] }
}

/** intra-op threads a training graph's session runs with unless told (this project's 2-core machines) */
export const DEFAULT_INTRA_OP_THREADS = 2

/** Options of a training graph that depend on the machine that runs it. */
export interface TrainingGraphOptions {
  /**
   * ONNX Runtime's NCHWc block size on the machine that will run the graph (detectNchwcBlock in
   * ml/engine; default 0: off). With a block, convolutions that fit run through the NCHWc kernels
   * (ops/nchwc.ts). Such a graph runs only where MLAS has that block size: never for a graph sent
   * to another machine (offload workers, functions).
   */
  readonly nchwcBlock?: number
  /**
   * Intra-op threads of the session that will run the graph (default 2). Some NCHWc choices
   * depend on it: with one thread ConvTranspose beats an NCHWc input gradient whose channels pad
   * to a block (ops/nchwc.ts)
   */
  readonly intraOpThreads?: number
  /**
   * A kernel read only through a constant selection of its taps (a conv with a one-pixel output,
   * lower-convs.ts) gets a gradient output of just those taps, [M C, used], described in
   * BuiltGraph.gradientTaps, for the caller to scatter (tap-selections.ts); default false: every
   * gradient output has its parameter's size
   */
  readonly compactTapGradients?: boolean
}

export function buildTrainingGraph(forward: ForwardGraph, layout: ParameterLayout, batchSize: number, options: TrainingGraphOptions = {}): BuiltGraph {
  const nchwcBlock = options.nchwcBlock ?? 0
  const specialized = specializeGraph(forward, layout, batchSize)
  // a conv of the batch input before a disjoint max pool as one strided conv per window offset
  // (pool-split-convs.ts); one-pixel-output convolutions as Gemms over the batch, small
  // depthwise ones as dense products (lower-convs.ts); a fully connected layer over a broadcast
  // map as one over the map (broadcast-gemm.ts); shapes inferred anew after each
  let current = specialized
  for (const rewrite of [splitPooledConvs, lowerSmallConvs, gemmsBeforeBroadcast]) {
    const rewritten = rewrite(current.graph, current.shapes)
    if (rewritten !== current.graph) current = specializeGraph(rewritten, layout, batchSize)
  }
  const { graph, shapes } = current
  const logitsShape = shapes.get(graph.output) as Shape
  if (logitsShape.length !== 2 || logitsShape[0] !== batchSize) {
    throw new ShapeError(`the model output '${graph.output}' must be logits of shape [batch, classes], got [${logitsShape.join(', ')}]`)
  }
  const emit = new GraphEmitter()
  emit.reserve(TRAINING_INPUT_LABELS)
  emit.reserve(TRAINING_OUTPUT_LOSS)
  const dropoutMasks: DropoutMaskInput[] = []
  const batchLast = new BatchLastTwins()
  const saved = emitForward(graph, emit, shapes, true, dropoutMasks, nchwcBlock, batchLast)

  // mean softmax cross-entropy; d(loss)/d(logits) = (softmax - onehot) / N
  const logProbs = emit.op('LogSoftmax', [graph.output], { axis: { kind: 'int', value: 1 } })
  const invBatch = emit.scalar('inv_batch', 1 / batchSize)
  const picked = emit.op('ReduceSum', [emit.op('Mul', [logProbs, TRAINING_INPUT_LABELS])], { keepdims: { kind: 'int', value: 0 } })
  emit.node('Mul', [emit.op('Neg', [picked]), invBatch], {}, [TRAINING_OUTPUT_LOSS])
  const dLogits = emit.op('Mul', [emit.op('Sub', [emit.op('Exp', [logProbs]), TRAINING_INPUT_LABELS]), invBatch])

  // which tensors depend on a parameter
  const requiresGrad = new Set<string>(layout.specs.map((s) => s.name))
  for (const node of graph.nodes) {
    if (node.inputs.some((i) => requiresGrad.has(i))) node.outputs.forEach((o) => requiresGrad.add(o))
  }

  const { producers, consumers } = nodeLinks(graph)

  const pending = new Map<string, string[]>([[graph.output, [dLogits]]])
  const gradientOf = (name: string): string | undefined => {
    const parts = pending.get(name)
    if (parts === undefined || parts.length === 0) return undefined
    if (parts.length === 1) return parts[0]
    // parts that all have batch-last twins are summed as those (batch-last.ts)
    const twins = parts.map((p) => batchLast.get(p))
    const sum = twins.every((t) => t !== undefined)
      ? batchLast.fromTwin(emit, emit.op('Sum', twins as string[]))
      : emit.op('Sum', parts)
    pending.set(name, [sum])
    return sum
  }
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]
    const outputGrads = node.outputs.map(gradientOf)
    if (outputGrads.every((g) => g === undefined)) continue
    const op = requireOp(node.op, node.name)
    const inputGrads = op.backward({
      emit,
      node,
      shape: (name) => shapes.get(name) as Shape,
      outputGrads,
      needsGrad: (index) => requiresGrad.has(node.inputs[index]),
      constant: (name) => graph.constants.get(name),
      saved: saved.get(node.name) ?? {},
      producer: (name) => producers.get(name),
      consumers: (name) => consumers.get(name) ?? [],
      nchwcBlock,
      intraOpThreads: options.intraOpThreads ?? DEFAULT_INTRA_OP_THREADS,
      batchLast
    })
    node.inputs.forEach((input, k) => {
      const g = inputGrads[k]
      if (g === undefined || !requiresGrad.has(input)) return
      const list = pending.get(input) ?? []
      list.push(g)
      pending.set(input, list)
    })
  }

  // a gradient reshaped at the end (a Gemm's dW to the kernel's shape) is output in its producer's
  // shape: the caller's buffer takes the same values, and ORT writes them there without a copy
  const gradientShapes: Array<readonly number[]> = []
  const selected = options.compactTapGradients === true ? tapSelectedParameters(graph, consumers) : new Map<string, { readonly tensor: string } & TapScatter>()
  const gradientTaps: Array<TapScatter | undefined> = []
  const gradientNames = layout.specs.map((spec, index) => {
    const out = gradientOutputName(index)
    // the gradient of the taps it is read through; its own (the same values scattered among zeros) is left unbuilt
    const taps = selected.get(spec.name)
    const tapGradient = taps === undefined ? undefined : gradientOf(taps.tensor)
    gradientTaps.push(tapGradient === undefined ? undefined : { kernelTaps: taps!.kernelTaps, columns: taps!.columns })
    if (tapGradient !== undefined) {
      const reshaped = emit.reshapeSource(tapGradient)
      emit.node('Identity', [reshaped?.source ?? tapGradient], {}, [out])
      gradientShapes.push(reshaped?.shape ?? shapes.get(taps!.tensor) as Shape)
      return out
    }
    const g = gradientOf(spec.name)
    if (g === undefined) {
      // a parameter the loss does not depend on: its gradient is zero
      emit.node('ConstantOfShape', [emit.int64s('shape', [...spec.shape])], {
        value: { kind: 'tensor', value: { dims: [1], data: Float32Array.of(0) } }
      }, [out])
      gradientShapes.push(spec.shape)
    } else {
      const reshaped = emit.reshapeSource(g)
      emit.node('Identity', [reshaped?.source ?? g], {}, [out])
      gradientShapes.push(reshaped?.shape ?? spec.shape)
    }
    return out
  })

  const inputs: GraphIo[] = [
    ...ioList(graph, layout, shapes),
    { name: TRAINING_INPUT_LABELS, elementType: 'float32', shape: logitsShape },
    ...dropoutMasks.map((m) => ({ name: m.name, elementType: 'float32' as const, shape: m.shape }))
  ]
  const outputs: GraphIo[] = [
    { name: TRAINING_OUTPUT_LOSS, elementType: 'float32', shape: [] },
    { name: graph.output, elementType: 'float32', shape: logitsShape },
    ...gradientNames.map((name, index) => ({ name, elementType: 'float32' as const, shape: gradientShapes[index] }))
  ]
  return {
    bytes: emit.serialize(inputs, outputs, 'p2pmld-training'),
    inputName: graph.input,
    logitsName: graph.output,
    gradientNames,
    dropoutMasks,
    ...(gradientTaps.some((t) => t !== undefined) ? { gradientTaps } : {})
  }
}
