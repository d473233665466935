/**
 * Rewrites, for the training and evaluation graphs, a fully connected layer whose input is a
 * broadcast feature map into one over the map before the broadcast:
 *
 *   Gemm(Flatten(Expand(x [N, C, 1, .., 1] -> [N, C, s...])), W [O, C P], b, transB = 1), P = prod(s)
 *   becomes Gemm(Flatten(x) [N, C], Ws [O, C], b, transB = 1),
 *   Ws = Reshape(MatMul(Reshape(W, [O C, P]), 1 [P, 1]), [O, C]): each filter's P weights per channel summed.
 *
 * The same sums: every one of a channel's P input features holds x[n, c], so
 * y[n, o] = sum over c, p of x[n, c] W[o, c P + p] = sum over c of x[n, c] Ws[o, c] (float32 adds
 * in another order). W's gradient is dWs[o, c] at each of the P positions; the MatMul by the
 * constant ones column is a tap selection whose one column covers all P taps (tap-selections.ts),
 * so the graph outputs dWs alone, O C values, and the caller broadcasts it into W's slice. The
 * MatMul runs as a ReduceSum (ops/matmul.ts: 14-18 against 27-38 ms for vgg11's [2 M, 49]).
 *
 * Why: VGG-11 on 32x32 images (torchvision's, AdaptiveAvgPool2d(7) replicating a 1x1 map to 7x7)
 * reads 25088 features that are 512 values 49 times each. Its first classifier layer's forward,
 * input gradient and weight gradient were three Gemms over [64, 25088] x [25088, 4096]: 255 of
 * ~646 ms of operators at batch 64, and its 411 MB weight gradient was copied again by
 * onnxruntime-node after every run (training-run.ts). Exports keep the model's own nodes
 * (ml/onnx/export-forward.ts).
 */
import { attrFloat, attrInt, freshNames, product, type ConstantTensor, type ForwardGraph, type IrNode, type Shape } from './ir.js'

/** A Gemm that reads a flattened broadcast of x, and what the rewrite needs of it. */
interface BroadcastGemm {
  readonly gemm: IrNode
  /** the tensor before the broadcast, [N, C, 1, .., 1] */
  readonly x: string
  /** N, C, P: batch, channels, positions each channel is broadcast to */
  readonly dims: readonly [number, number, number]
}

function findBroadcastGemm(node: IrNode, graph: ForwardGraph, producers: ReadonlyMap<string, IrNode>, readers: ReadonlyMap<string, number>, shapes: ReadonlyMap<string, Shape>): BroadcastGemm | undefined {
  if (node.op !== 'Gemm' || attrInt(node, 'transA', 0) !== 0 || attrInt(node, 'transB', 0) !== 1 || attrFloat(node, 'alpha', 1) !== 1) return undefined
  const [a, w] = node.inputs
  // W trained here and read by this Gemm alone, so its whole gradient is the compact one
  if (!graph.parameters.includes(w) || readers.get(w) !== 1) return undefined
  const flatten = producers.get(a)
  if (flatten === undefined || flatten.op !== 'Flatten' || attrInt(flatten, 'axis', 1) !== 1) return undefined
  const expand = producers.get(flatten.inputs[0])
  if (expand === undefined || expand.op !== 'Expand') return undefined
  const x = expand.inputs[0]
  const [xs, ys] = [shapes.get(x), shapes.get(expand.outputs[0])]
  if (xs === undefined || ys === undefined || xs.length < 3 || xs.length !== ys.length) return undefined
  // only the axes after the channels broadcast, each from 1
  if (xs[0] !== ys[0] || xs[1] !== ys[1] || xs.slice(2).some((d) => d !== 1)) return undefined
  const positions = product(ys.slice(2))
  if (positions < 2) return undefined
  return { gemm: node, x, dims: [xs[0], xs[1], positions] }
}

/**
 * The forward graph with every Gemm over a flattened broadcast rewritten as in the header.
 * `shapes`: every tensor's shape for the batch size the graph is built for. Nodes the rewrite
 * leaves unread (the Expand and Flatten) are dropped. Returns the graph unchanged (the same
 * object) when no Gemm qualifies.
 */
export function gemmsBeforeBroadcast(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): ForwardGraph {
  const producers = new Map<string, IrNode>()
  const readers = new Map<string, number>()
  for (const node of graph.nodes) {
    for (const o of node.outputs) producers.set(o, node)
    for (const i of node.inputs) readers.set(i, (readers.get(i) ?? 0) + 1)
  }
  const found = new Map<IrNode, BroadcastGemm>()
  for (const node of graph.nodes) {
    const match = findBroadcastGemm(node, graph, producers, readers, shapes)
    if (match !== undefined) found.set(node, match)
  }
  if (found.size === 0) return graph

  const fresh = freshNames(graph, shapes)
  const constants = new Map<string, ConstantTensor>(graph.constants)
  const constant = (hint: string, value: ConstantTensor): string => {
    const name = fresh(hint)
    constants.set(name, value)
    return name
  }
  const int64s = (hint: string, values: readonly number[]): string => constant(hint, { dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) })
  const rewritten: IrNode[] = []
  for (const node of graph.nodes) {
    const match = found.get(node)
    if (match === undefined) {
      rewritten.push(node)
      continue
    }
    const [, w, ...bias] = node.inputs
    const [batch, channels, positions] = match.dims
    const filters = (shapes.get(w) as Shape)[0]
    const base = node.outputs[0]
    const add = (op: string, inputs: string[], hint: string, attrs: IrNode['attrs'] = {}, output?: string): string => {
      const out = output ?? fresh(`${base}__${hint}`)
      rewritten.push({ name: fresh(`${node.name}__${hint}`), op, inputs, outputs: [out], attrs })
      return out
    }
    const ones = constant(`${base}__positions_sum`, { dims: [positions, 1], data: new Float32Array(positions).fill(1) })
    const wRows = add('Reshape', [w, int64s(`${base}__w_rows_shape`, [filters * channels, positions])], 'w_rows')
    const wSums = add('Reshape', [add('MatMul', [wRows, ones], 'w_sums'), int64s(`${base}__w_summed_shape`, [filters, channels])], 'w_summed')
    const xFlat = add('Reshape', [match.x, int64s(`${base}__x_flat_shape`, [batch, channels])], 'x_flat')
    add('Gemm', [xFlat, wSums, ...bias], 'gemm', node.attrs, node.outputs[0])
  }
  // drop what no longer has a reader (the Expand and Flatten the Gemms read), last to first
  const read = new Set<string>([graph.output])
  const nodes: IrNode[] = []
  for (let i = rewritten.length - 1; i >= 0; i--) {
    const node = rewritten[i]
    if (!node.outputs.some((o) => read.has(o))) continue
    nodes.push(node)
    for (const input of node.inputs) read.add(input)
  }
  nodes.reverse()
  const used = new Set(nodes.flatMap((n) => n.inputs))
  return { ...graph, nodes, constants: new Map([...constants].filter(([name]) => used.has(name))) }
}
