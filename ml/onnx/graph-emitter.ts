/**
 * Accumulates ONNX nodes and constant initializers and serialises them to model bytes.
 * The autodiff emits the training graph through this; nothing else builds protobufs.
 */
import type { Attribute, ConstantTensor } from '../autodiff/ir.js'
import { onnx, type OnnxAttributeProto, type OnnxNodeProto, type OnnxTensorProto, type OnnxValueInfoProto } from './onnx-proto.js'

export const OPSET_VERSION = 17
const IR_VERSION = 8

export interface GraphIo {
  readonly name: string
  /** omitted: an output whose type ORT infers (constant folding) */
  readonly elementType?: 'float32' | 'int64'
  /** a string is a symbolic dimension (ONNX dim_param), e.g. 'batch' */
  readonly shape?: ReadonlyArray<number | string>
}

export class GraphEmitter {
  private readonly nodes: OnnxNodeProto[] = []
  private readonly initializers: OnnxTensorProto[] = []
  private readonly usedNames = new Set<string>()
  /** tensors made by reshape(): their source and its shape */
  private readonly reshaped = new Map<string, { readonly source: string, readonly shape: readonly number[] }>()
  private counter = 0
  /** operator domains other than ONNX's own that the nodes use (each imported at version 1) */
  private readonly domains = new Set<string>()

  /** A fresh tensor name derived from `hint`. */
  fresh(hint: string): string {
    let name = `${hint}__${this.counter++}`
    while (this.usedNames.has(name)) name = `${hint}__${this.counter++}`
    this.usedNames.add(name)
    return name
  }

  reserve(name: string): void {
    this.usedNames.add(name)
  }

  /**
   * Emit a node; returns its output names (fresh unless given). `op` is an ONNX operator, or
   * 'domain:Op' for another domain's (ONNX Runtime's contrib kernels, e.g.
   * 'com.microsoft.nchwc:Conv').
   */
  node(op: string, inputs: readonly string[], attrs: Readonly<Record<string, Attribute>> = {}, outputs?: readonly string[] | number): string[] {
    const split = op.lastIndexOf(':')
    const domain = split < 0 ? undefined : op.slice(0, split)
    const opType = op.slice(split + 1)
    if (domain !== undefined) this.domains.add(domain)
    const outs = Array.isArray(outputs)
      ? [...outputs]
      : Array.from({ length: typeof outputs === 'number' ? outputs : 1 }, () => this.fresh(opType.toLowerCase()))
    for (const o of outs) this.usedNames.add(o)
    this.nodes.push({
      opType,
      ...(domain === undefined ? {} : { domain }),
      name: this.fresh(`n_${opType}`),
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([key, a]) => toAttributeProto(key, a))
    })
    return outs
  }

  /** Emit a single-output node and return that output's name. */
  op(op: string, inputs: readonly string[], attrs: Readonly<Record<string, Attribute>> = {}): string {
    return this.node(op, inputs, attrs)[0]
  }

  /**
   * Reshape `source`, whose shape is `sourceShape`, to `target`, and remember where it came from
   * (reshapeSource): a graph output can then take the source itself in its own shape, so ONNX
   * Runtime writes the producer's result into the caller's buffer instead of copying it there.
   */
  reshape(source: string, sourceShape: readonly number[], target: readonly number[]): string {
    const out = this.op('Reshape', [source, this.int64s('shape', target)])
    this.reshaped.set(out, { source, shape: [...sourceShape] })
    return out
  }

  /** For a tensor made by reshape(): the source and its shape; else undefined. */
  reshapeSource(name: string): { readonly source: string, readonly shape: readonly number[] } | undefined {
    return this.reshaped.get(name)
  }

  constant(hint: string, tensor: ConstantTensor): string {
    const name = this.fresh(hint)
    this.initializer(name, tensor)
    return name
  }

  initializer(name: string, tensor: ConstantTensor): void {
    this.usedNames.add(name)
    this.initializers.push(toTensorProto(name, tensor))
  }

  int64s(hint: string, values: readonly number[]): string {
    return this.constant(hint, { dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) })
  }

  scalar(hint: string, value: number): string {
    return this.constant(hint, { dims: [], data: Float32Array.of(value) })
  }

  /**
   * The model bytes: the nodes the outputs depend on (others are dropped: liveNodes) and the
   * initializers those read.
   */
  /**
   * The model holding the nodes the outputs depend on. `about`: the model's doc_string and
   * metadata_props (ONNX's free-form key/value pairs, e.g. how inputs are normalised).
   */
  serialize(inputs: readonly GraphIo[], outputs: readonly GraphIo[], graphName: string, about: { readonly docString?: string, readonly metadata?: Readonly<Record<string, string>> } = {}): Uint8Array {
    const { nodes, read } = liveNodes(this.nodes, outputs.map((o) => o.name))
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'p2pmld',
      ...(about.docString !== undefined ? { docString: about.docString } : {}),
      metadataProps: Object.entries(about.metadata ?? {}).map(([key, value]) => ({ key, value })),
      opsetImport: [{ domain: '', version: OPSET_VERSION }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      graph: {
        name: graphName,
        node: nodes,
        initializer: this.initializers.filter((t) => read.has(t.name ?? '')),
        input: inputs.map(valueInfo),
        output: outputs.map(valueInfo)
      }
    })
    return onnx.ModelProto.encode(model).finish()
  }
}

/**
 * The nodes (in emission order, which is topological) that the graph outputs depend on, and every
 * tensor name they read. A dead node is not only wasted work: the Reshape of a gradient whose
 * output takes the Reshape's source (reshapeSource) left that source with two readers, and ONNX
 * Runtime keeps an Identity into a graph output whose source has more than one reader, so it
 * copied the gradient (resnet18 b64: 19 Identity nodes, 2.5-3.3 ms of ~65 ms of operators).
 */
function liveNodes(all: readonly OnnxNodeProto[], outputs: readonly string[]): { nodes: OnnxNodeProto[], read: Set<string> } {
  const read = new Set(outputs)
  const nodes: OnnxNodeProto[] = []
  for (let i = all.length - 1; i >= 0; i--) {
    const node = all[i]
    if (!(node.output ?? []).some((o) => read.has(o))) continue
    nodes.push(node)
    for (const input of node.input ?? []) if (input !== '') read.add(input)
  }
  return { nodes: nodes.reverse(), read }
}

function valueInfo(io: GraphIo): OnnxValueInfoProto {
  if (io.elementType === undefined || io.shape === undefined) return { name: io.name }
  return {
    name: io.name,
    type: {
      tensorType: {
        elemType: io.elementType === 'float32' ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64,
        shape: { dim: io.shape.map((d) => typeof d === 'string' ? { dimParam: d } : { dimValue: d }) }
      }
    }
  }
}

export function toTensorProto(name: string, tensor: ConstantTensor): OnnxTensorProto {
  const isFloat = tensor.data instanceof Float32Array
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)
  return {
    name,
    dims: [...tensor.dims],
    dataType: isFloat ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64,
    rawData: bytes.slice()
  }
}

function toAttributeProto(name: string, a: Attribute): OnnxAttributeProto {
  const T = onnx.AttributeProto.AttributeType
  switch (a.kind) {
    case 'int': return { name, type: T.INT, i: a.value }
    case 'float': return { name, type: T.FLOAT, f: a.value }
    case 'ints': return { name, type: T.INTS, ints: [...a.value] }
    case 'floats': return { name, type: T.FLOATS, floats: [...a.value] }
    case 'string': return { name, type: T.STRING, s: new TextEncoder().encode(a.value) }
    case 'tensor': return { name, type: T.TENSOR, t: toTensorProto(name, a.value) }
  }
}
