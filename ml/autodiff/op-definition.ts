import type { GraphEmitter } from '../onnx/graph-emitter.js'
import type { BatchLastTwins } from './batch-last.js'
import type { ConstantTensor, IrNode, Shape } from './ir.js'

export interface ShapeContext {
  /** the value of a constant input (reshape targets), if the input is a constant */
  constant(name: string): ConstantTensor | undefined
}

export interface BackwardContext {
  readonly emit: GraphEmitter
  readonly node: IrNode
  /** forward shape of any tensor */
  shape(name: string): Shape
  /** gradient of each forward output (undefined where nothing depends on it) */
  readonly outputGrads: ReadonlyArray<string | undefined>
  /** whether input i needs a gradient (a parameter or something computed from one) */
  needsGrad(index: number): boolean
  /** the value of a constant input (pads, shapes), if the input is a constant */
  constant(name: string): ConstantTensor | undefined
  /** tensors the op's emitForward saved for its backward */
  readonly saved: Readonly<Record<string, string>>
  /** the forward node that outputs `name` (undefined for graph inputs, parameters, constants) */
  producer(name: string): IrNode | undefined
  /** the forward nodes that read `name` */
  consumers(name: string): readonly IrNode[]
  /** ONNX Runtime's NCHWc block size where the graph will run (0: plain ONNX Conv only; ops/nchwc.ts) */
  readonly nchwcBlock: number
  /** intra-op threads of the session that will run the graph (TrainingGraphOptions.intraOpThreads) */
  readonly intraOpThreads: number
  /** [C, H, W, N] twins of NCHW tensors, the forward's and the backward's (batch-last.ts) */
  readonly batchLast: BatchLastTwins
}

export interface ForwardContext extends ShapeContext {
  /** true in the training graph (batch statistics, dropout masks), false for inference/export */
  readonly training: boolean
  /** ONNX Runtime's NCHWc block size where the graph will run (0: plain ONNX Conv only; ops/nchwc.ts) */
  readonly nchwcBlock: number
  /** the forward node that outputs `name` (undefined for graph inputs, parameters, constants) */
  producer(name: string): IrNode | undefined
  /** the forward nodes that read `name` */
  consumers(name: string): readonly IrNode[]
  /** graph input holding this step's dropout masks, when the model has Dropout nodes (training only) */
  dropoutMask?(node: IrNode): string
  /** [C, H, W, N] twins of NCHW tensors (batch-last.ts) */
  readonly batchLast: BatchLastTwins
}

/**
 * One differentiable op: shape inference, forward emission and backward, side by side.
 * Adding an op means adding one file under ops/ and one line in the registry.
 */
export interface OpDefinition {
  readonly type: string
  /** made only by the training graph's own rewrites, never read from a model (not listed as supported) */
  readonly internal?: boolean
  inferShapes(node: IrNode, inputShapes: readonly Shape[], ctx: ShapeContext): Shape[]
  /** emit the forward computation; default: the node itself. Returns tensors saved for backward. */
  emitForward?(node: IrNode, emit: GraphEmitter, shape: (name: string) => Shape, ctx: ForwardContext): Record<string, string>
  /** gradient names per input (undefined: no gradient flows there) */
  backward(ctx: BackwardContext): Array<string | undefined>
}
