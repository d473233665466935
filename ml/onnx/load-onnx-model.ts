/**
 * Reads a user's forward ONNX graph (e.g. exported by torch.onnx.export) into a ModelDefinition:
 * float32 initializers become trainable parameters (in file order), except those read only as an
 * op's settings (a Dropout's ratio, a Clip's bounds, a Pow's exponent: READ_AS_SETTING), other
 * initializers and Constant nodes become constants, the one graph input that is not an initializer is the batch
 * input (its batch dim may be symbolic), and the single graph output is the logits.
 */
import { readFile } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'
import { attrFloat, ShapeError, type Attribute, type ConstantTensor, type ForwardGraph, type IrNode, type Shape } from '../autodiff/ir.js'
import { batchNormBuffers } from '../autodiff/ops/batch-normalization.js'
import { firstUnsupportedOp, inferShapes, UnsupportedOpError } from '../autodiff/training-graph.js'
import type { ParameterLayout } from '../core/types.js'
import type { ModelDefinition } from '../models/model-definition.js'
import { createLayout } from '../params.js'
import { foldConstants } from './fold-constants.js'
import { onnx, type OnnxAttributeProto, type OnnxTensorProto } from './onnx-proto.js'

export class OnnxModelNotFoundError extends Error {
  override name = 'OnnxModelNotFoundError'
  /** `missing`: the path as given and where it was looked for, when the file does not exist (not when it could not be read) */
  constructor (message: string, readonly missing?: { readonly given: string, readonly resolved: string }) {
    super(message)
  }
}

export class InvalidOnnxModelError extends Error {
  override name = 'InvalidOnnxModelError'
}

/** The export baked its batch size into the graph (no dynamic_axes), so other batch sizes cannot run. */
export class FixedBatchSizeError extends Error {
  override name = 'FixedBatchSizeError'
  /** `input`, `output`: the graph's input and output names, as the re-export must name them */
  constructor (readonly batchSize: number, cause: string, input = 'input', output = 'logits') {
    super(`this model was exported for batch size ${batchSize}: re-export with dynamic_axes={'${input}': {0: 'batch'}, '${output}': {0: 'batch'}} in torch.onnx.export (${cause})`)
  }
}

interface InitializerParameter { name: string, shape: number[], data: Float32Array }

/**
 * torch.onnx.export merges initializers with equal values (the zero biases of a fresh model) into
 * one tensor that several nodes read through Identity nodes. Each such Identity output becomes
 * its own parameter again (a copy of the value), so training the file trains the user's model;
 * an initializer that nodes read directly stays one (shared) parameter, as tied weights are.
 */
export function splitIdentityInitializers(nodes: readonly IrNode[], parameters: readonly InitializerParameter[]): { nodes: IrNode[], parameters: InitializerParameter[] } {
  const byName = new Map(parameters.map((p) => [p.name, p]))
  const copies = new Map<string, InitializerParameter[]>()
  const kept: IrNode[] = []
  for (const n of nodes) {
    const source = n.op === 'Identity' ? byName.get(n.inputs[0]) : undefined
    if (source === undefined) {
      kept.push(n)
      continue
    }
    const list = copies.get(source.name) ?? []
    list.push({ name: n.outputs[0], shape: [...source.shape], data: source.data.slice() })
    copies.set(source.name, list)
  }
  if (copies.size === 0) return { nodes: [...nodes], parameters: [...parameters] }
  const readDirectly = new Set(kept.flatMap((n) => n.inputs))
  const out: InitializerParameter[] = []
  for (const p of parameters) {
    if (readDirectly.has(p.name) || !copies.has(p.name)) out.push(p)
    out.push(...(copies.get(p.name) ?? []))
  }
  return { nodes: kept, parameters: out }
}

/**
 * Infers shapes at batch sizes 1 and 2 (a batch-agnostic model runs at both); when that fails and
 * the input's batch dim is a fixed number the model runs at, the export baked the batch in.
 * Returns the logits shape at batch 1.
 */
function inferForBatchSizes(forward: ForwardGraph, layout: ParameterLayout, fixedBatch: number): Shape {
  try {
    const logits = inferShapes(forward, layout, 1).get(forward.output) ?? []
    inferShapes(forward, layout, 2)
    return logits
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err
    for (const batch of fixedBatch > 0 ? [fixedBatch] : bakedBatchCandidates(forward)) {
      try {
        inferShapes(forward, layout, batch)
      } catch {
        continue
      }
      throw new FixedBatchSizeError(batch, err.message, forward.input, forward.output)
    }
    throw err
  }
}

/**
 * Inputs that set how an op works rather than carry data to train: float tensors the ops read as
 * constants (ml/autodiff/ops: dropout.ts, clip.ts, pow.ts). Given as float32 initializers (our
 * own exports write a Dropout's ratio so, as a scalar), they are not parameters: the ops refused
 * a ratio that was one ('the ratio must be a constant float scalar')
 */
const READ_AS_SETTING: Readonly<Record<string, readonly number[]>> = { Dropout: [1], Clip: [1, 2], Pow: [1] }

/** the tensors every reader of which reads them at a READ_AS_SETTING position */
function initializersReadAsSettings(nodes: ReadonlyArray<{ readonly opType?: string | null, readonly input?: string[] | null }>): Set<string> {
  const asSetting = new Set<string>()
  const asData = new Set<string>()
  for (const n of nodes) {
    const positions = READ_AS_SETTING[n.opType ?? ''] ?? []
    for (const [i, name] of (n.input ?? []).entries()) {
      if (positions.includes(i)) asSetting.add(name)
      else asData.add(name)
    }
  }
  return new Set([...asSetting].filter((name) => !asData.has(name)))
}

/** First dims of constant Reshape targets: where an export without dynamic_axes keeps its batch. */
function bakedBatchCandidates(forward: ForwardGraph): number[] {
  const out = new Set<number>()
  for (const n of forward.nodes) {
    const target = n.op === 'Reshape' ? forward.constants.get(n.inputs[1]) : undefined
    if (target !== undefined && target.data instanceof BigInt64Array && target.data.length > 0 && target.data[0] > 1n) out.add(Number(target.data[0]))
  }
  return [...out]
}

type Int64 = number | { toNumber(): number }
const toNumber = (v: Int64 | null | undefined): number => (v === null || v === undefined ? 0 : typeof v === 'number' ? v : v.toNumber())

/** Load from a file path or from the model's bytes. */
export async function loadOnnxModel(pathOrBytes: string | Uint8Array): Promise<ModelDefinition> {
  if (typeof pathOrBytes !== 'string') return parseOnnxModel(pathOrBytes, 'the given bytes')
  let bytes: Uint8Array
  try {
    bytes = await readFile(pathOrBytes)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // a relative path is read from this process's working directory (a daemon's, for a submitted job): say which
      const where = isAbsolute(pathOrBytes) ? '' : ` (looked for ${resolve(pathOrBytes)}: a relative path is read from the working directory of the process that loads it)`
      throw new OnnxModelNotFoundError(`ONNX model file '${pathOrBytes}' does not exist${where}: check the path, or use a zoo model name`, { given: pathOrBytes, resolved: resolve(pathOrBytes) })
    }
    throw new OnnxModelNotFoundError(`cannot read ONNX model file '${pathOrBytes}': ${(err as Error).message}`)
  }
  return parseOnnxModel(bytes, `'${pathOrBytes}'`)
}

async function parseOnnxModel(bytes: Uint8Array, source: string): Promise<ModelDefinition> {
  /** `fix`: what to do; by default for bytes that are no ONNX model at all (a file that is an export says its own) */
  const invalid = (why: string, fix = 'give a .onnx file saved by torch.onnx.export or onnx.save'): InvalidOnnxModelError =>
    new InvalidOnnxModelError(`${source} is not a usable ONNX model (${why}): ${fix}`)
  let model: InstanceType<typeof onnx.ModelProto>
  try {
    model = onnx.ModelProto.decode(bytes)
  } catch (err) {
    throw invalid(`protobuf decoding failed: ${(err as Error).message}`)
  }
  const graph = model.graph
  if (toNumber(model.irVersion) <= 0 || graph === null || graph === undefined || (graph.node ?? []).length === 0) {
    throw invalid('no ir_version or no graph with nodes')
  }
  const graphNodes = graph.node ?? []
  const graphInputs = graph.input ?? []
  const graphOutputs = graph.output ?? []
  const initializers = graph.initializer ?? []
  if (graphOutputs.length !== 1) throw invalid(`the graph must have exactly one output (the logits), it has ${graphOutputs.length}`, 'export the model in eval mode (model.eval()) with its logits as the one output')

  const nodeName = (n: (typeof graphNodes)[number], index: number): string => n.name !== null && n.name !== undefined && n.name !== '' ? n.name : `${n.opType ?? 'node'}_${index}`
  /**
   * A tensor of a type the autodiff lacks (int32, bool, ...) read by an op it lacks too: the op is
   * the problem to name (a torch.cumsum export failed on its int32 axis, its message said to
   * re-export with torch.onnx.export, which it was)
   */
  const readByUnsupportedOp = <T>(tensor: string, read: () => T): T => {
    try {
      return read()
    } catch (error) {
      const readers: IrNode[] = graphNodes.flatMap((m, i) => (m.input ?? []).includes(tensor) ? [{ name: nodeName(m, i), op: m.opType ?? '', inputs: [], outputs: [], attrs: {} }] : [])
      const unsupported = firstUnsupportedOp({ input: '', sampleShape: [], parameters: [], constants: new Map(), nodes: readers, output: '' })
      if (unsupported !== undefined) throw new UnsupportedOpError(unsupported.op, unsupported.node)
      throw error
    }
  }

  const parameters: Array<{ name: string, shape: number[], data: Float32Array }> = []
  const constants = new Map<string, ConstantTensor>()
  const settings = initializersReadAsSettings(graphNodes)
  for (const init of initializers) {
    const tensor = readByUnsupportedOp(init.name ?? '', () => toConstant(init, invalid))
    const name = init.name ?? ''
    if (tensor.data instanceof Float32Array && !settings.has(name)) parameters.push({ name, shape: [...tensor.dims], data: tensor.data })
    else constants.set(name, tensor)
  }
  const initNames = new Set(initializers.map((t) => t.name ?? ''))
  const batchInputs = graphInputs.filter((i) => !initNames.has(i.name ?? ''))
  if (batchInputs.length !== 1) {
    throw invalid(`expected one non-initializer graph input (the batch), found ${batchInputs.length}`)
  }
  const dims = batchInputs[0].type?.tensorType?.shape?.dim ?? []
  const sampleShape = dims.slice(1).map((d) => toNumber(d.dimValue))
  if (dims.length < 2 || sampleShape.some((d) => d <= 0)) {
    throw invalid(`the batch input '${batchInputs[0].name ?? ''}' needs a concrete shape after its batch dim`)
  }

  const allNodes: IrNode[] = []
  graphNodes.forEach((n, index) => {
    const name = nodeName(n, index)
    const attrs: Record<string, Attribute> = {}
    for (const a of n.attribute ?? []) attrs[a.name ?? ''] = n.opType === 'Constant' ? readByUnsupportedOp(n.output?.[0] ?? '', () => toAttribute(a, invalid)) : toAttribute(a, invalid)
    if (n.opType === 'Constant') {
      const value = attrs.value
      if (value === undefined || value.kind !== 'tensor') throw invalid(`Constant node '${name}' has no tensor value`)
      constants.set(n.output?.[0] ?? '', value.value)
      return
    }
    // trailing optional inputs may be given as '' (absent): drop them
    const inputs = [...(n.input ?? [])]
    while (inputs.length > 0 && inputs[inputs.length - 1] === '') inputs.pop()
    allNodes.push({ name, op: n.opType ?? '', inputs, outputs: [...(n.output ?? [])], attrs })
  })

  const { nodes: untied, parameters: separated } = splitIdentityInitializers(allNodes, parameters)
  const nodes = await foldConstants(untied, constants)
  const buffers = new Map<string, number>()
  for (const n of nodes) {
    if (n.op !== 'BatchNormalization') continue
    // ONNX momentum weights the old value (0.9); PyTorch's (and the layout's) weights the new one
    const momentum = 1 - attrFloat(n, 'momentum', 0.9)
    for (const b of batchNormBuffers(n)) buffers.set(b, momentum)
  }
  const specs = separated.map((p) => (buffers.has(p.name) ? { ...p, kind: 'buffer' as const, momentum: buffers.get(p.name) } : p))
  const forward: ForwardGraph = {
    input: batchInputs[0].name ?? '',
    sampleShape,
    parameters: separated.map((p) => p.name),
    constants,
    nodes,
    output: graphOutputs[0].name ?? ''
  }
  const unsupported = firstUnsupportedOp(forward)
  if (unsupported !== undefined) throw new UnsupportedOpError(unsupported.op, unsupported.node)

  const layout = createLayout(specs)
  const fixedBatch = toNumber(dims[0].dimValue)
  const logits = inferForBatchSizes(forward, layout, fixedBatch)
  if (logits.length !== 2) throw invalid(`the output '${forward.output}' must be logits [batch, classes], got rank ${logits.length}`)
  const initial = new Float32Array(layout.totalSize)
  separated.forEach((p, i) => initial.set(p.data, layout.specs[i].offset))
  // the training loss takes the output as logits: probabilities in their place train poorly, silently
  const last = nodes.find((n) => n.outputs.includes(forward.output))
  const warnings = last !== undefined && ['Softmax', 'LogSoftmax', 'Sigmoid'].includes(last.op)
    ? [`the output of ${source} comes out of a ${last.op} (node '${last.name}'): training applies softmax cross-entropy to the output as logits, so the ${last.op} goes in twice and training is slow to learn; export the model without its last ${last.op}`]
    : []

  return {
    name: graph.name !== null && graph.name !== undefined && graph.name !== '' ? graph.name : 'onnx-model',
    sampleShape,
    numClasses: logits[1],
    layout,
    forward,
    // the file's own weights are the starting point; the seed does not apply
    initParameters: () => initial.slice(),
    ...(warnings.length > 0 ? { warnings } : {})
  }
}

function toConstant(t: OnnxTensorProto, invalid: (why: string, fix?: string) => Error): ConstantTensor {
  const dims = (t.dims ?? []).map(toNumber)
  const count = dims.reduce((a: number, b: number) => a * b, 1)
  const raw = t.rawData !== null && t.rawData !== undefined && t.rawData.length > 0 ? t.rawData : undefined
  const T = onnx.TensorProto.DataType
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw invalid(`tensor '${t.name ?? ''}' keeps its data in an external file; re-export the model with its weights inside the .onnx file`)
  }
  let data: Float32Array | BigInt64Array
  if (t.dataType === T.FLOAT) {
    if (raw !== undefined) {
      if (raw.length !== count * 4) throw invalid(`tensor '${t.name ?? ''}' holds ${raw.length} bytes, ${count * 4} expected`)
      data = new Float32Array(count)
      new Uint8Array(data.buffer).set(raw)
    } else {
      data = Float32Array.from(t.floatData ?? [])
    }
  } else if (t.dataType === T.INT64) {
    if (raw !== undefined) {
      if (raw.length !== count * 8) throw invalid(`tensor '${t.name ?? ''}' holds ${raw.length} bytes, ${count * 8} expected`)
      data = new BigInt64Array(count)
      new Uint8Array(data.buffer).set(raw)
    } else {
      data = BigInt64Array.from((t.int64Data ?? []).map((v: Int64) => BigInt(toNumber(v))))
    }
  } else {
    const typeName = Object.entries(T).find(([, v]) => v === t.dataType)?.[0] ?? String(t.dataType ?? 'unset')
    const what = t.name !== null && t.name !== undefined && t.name !== '' ? `tensor '${t.name}'` : 'an unnamed constant'
    // what an ordinary export does to get there, and the way back
    const fix = t.dataType === T.BOOL
      ? 'an export with training=TrainingMode.TRAINING carries bool training flags: export in eval mode, as model.eval() and the default training argument do'
      : t.dataType === T.DOUBLE ? 'a float64 model: call model.float() before exporting'
        : t.dataType === T.FLOAT16 || t.dataType === T.BFLOAT16 ? 'a half-precision model: call model.float() before exporting' : undefined
    throw invalid(`${what} has data type ${typeName}; only float32 and int64 are supported`, fix)
  }
  if (data.length !== count) throw invalid(`tensor '${t.name ?? ''}' holds ${data.length} values, ${count} expected`)
  return { dims, data }
}

function toAttribute(a: OnnxAttributeProto, invalid: (why: string) => Error): Attribute {
  const T = onnx.AttributeProto.AttributeType
  switch (a.type) {
    case T.INT: return { kind: 'int', value: toNumber(a.i) }
    case T.FLOAT: return { kind: 'float', value: a.f ?? 0 }
    case T.INTS: return { kind: 'ints', value: (a.ints ?? []).map(toNumber) }
    case T.FLOATS: return { kind: 'floats', value: [...(a.floats ?? [])] }
    case T.STRING: return { kind: 'string', value: new TextDecoder().decode(a.s ?? new Uint8Array()) }
    case T.TENSOR:
      if (a.t === null || a.t === undefined) throw invalid(`attribute '${a.name ?? ''}' has no tensor`)
      return { kind: 'tensor', value: toConstant(a.t, invalid) }
    default: throw invalid(`attribute '${a.name ?? ''}' has unsupported type ${a.type ?? 'unset'}`)
  }
}
