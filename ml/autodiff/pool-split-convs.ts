/**
 * Rewrites, for the training graph only, a convolution of the batch input that feeds (through a
 * ReLU or not) a max pool with disjoint windows into one convolution per window offset, whose
 * elementwise Max is the pool:
 *
 *   Conv(x, W, b) [-> Relu] -> MaxPool(kernel = stride = s)
 *   becomes, for each offset (di, dj) of the s_h x s_w window in row-major order,
 *   y_k = Conv(x, W, b) with stride s * the conv's own, its begin pads moved back by the offset,
 *         i.e. the outputs at rows s i + di and columns s j + dj of the original convolution
 *   then Max(y_0, ..., y_last) [-> Relu] in the pool's place.
 *
 * The same values as the pool's: each y_k element is the same sum of products as the original
 * output it stands for (computed by another kernel call, so float32 rounding may differ), and the
 * Max sends its gradient to the first offset holding the maximum, as MaxPool's Indices name the
 * first maximum of a window (ops/pool-window-max.ts: an internal op, emitted as ONNX Max). A ReLU
 * moves after the Max: max(relu(a), relu(b)) = relu(max(a, b)), and where the maximum is positive
 * the first offset holding it is the same in both; where it is not, the ReLU's gradient is 0
 * either way.
 *
 * Why: ONNX Runtime's MaxPool with its Indices output (what the pool's backward routes by) runs a
 * scalar loop: lenet5's first pool took 2.2 ms of a ~15 ms step at batch 256, and the MaxUnpool
 * of its backward 0.5 ms more, where the Max over four quarter-size tensors and its backward's
 * masks are elementwise. Only for a convolution whose input needs no gradient (the batch input):
 * a strided convolution's input gradient would need the scatter the pool's backward did.
 */
import { attrInt, attrInts, freshNames, ints, type ForwardGraph, type IrNode, type Shape } from './ir.js'
import { convGeometry } from './ops/conv.js'

interface PooledConv {
  readonly conv: IrNode
  readonly relu: IrNode | undefined
  readonly pool: IrNode
  /** the pool's window = stride, rows and columns */
  readonly window: readonly [number, number]
}

/** The window of a MaxPool whose windows tile its input exactly (stride = kernel, no pads, no dilation, no ceil_mode, no Indices output), else undefined. */
function tilingWindow(pool: IrNode, input: Shape): readonly [number, number] | undefined {
  if (pool.op !== 'MaxPool' || pool.outputs.length !== 1 || input.length !== 4) return undefined
  const kernel = attrInts(pool, 'kernel_shape', [])
  if (kernel.length !== 2) return undefined
  const g = convGeometry(pool, kernel)
  if (g.pads.some((p) => p !== 0) || g.dilations.some((d) => d !== 1) || attrInt(pool, 'ceil_mode', 0) !== 0) return undefined
  if (kernel.some((k, i) => g.strides[i] !== k || input[2 + i] % k !== 0)) return undefined
  return [kernel[0], kernel[1]]
}

function findPooledConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): PooledConv[] {
  const readers = new Map<string, IrNode[]>()
  for (const node of graph.nodes) for (const input of node.inputs) readers.set(input, [...(readers.get(input) ?? []), node])
  const onlyReader = (tensor: string): IrNode | undefined => {
    const list = readers.get(tensor) ?? []
    return list.length === 1 && tensor !== graph.output ? list[0] : undefined
  }
  const found: PooledConv[] = []
  for (const conv of graph.nodes) {
    if (conv.op !== 'Conv' || conv.inputs[0] !== graph.input || attrInt(conv, 'group', 1) !== 1) continue
    const ws = shapes.get(conv.inputs[1])
    const ys = shapes.get(conv.outputs[0])
    if (ws === undefined || ys === undefined) continue
    const g = convGeometry(conv, ws.slice(2))
    if (g.dilations.some((d) => d !== 1)) continue
    let next = onlyReader(conv.outputs[0])
    const relu = next?.op === 'Relu' ? next : undefined
    if (relu !== undefined) next = onlyReader(relu.outputs[0])
    if (next === undefined) continue
    const window = tilingWindow(next, ys)
    if (window !== undefined) found.push({ conv, relu, pool: next, window })
  }
  return found
}

/**
 * The forward graph with each such Conv [-> Relu] -> MaxPool split by window offset (see the
 * header). `shapes`: every tensor's shape at the graph's batch size. Returns the graph itself
 * when nothing qualifies.
 */
export function splitPooledConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): ForwardGraph {
  const found = findPooledConvs(graph, shapes)
  if (found.length === 0) return graph
  const fresh = freshNames(graph, shapes)
  const constants = new Map(graph.constants)
  const replaced = new Map<IrNode, IrNode[]>()
  const dropped = new Set<IrNode>()
  for (const { conv, relu, pool, window } of found) {
    const xs = shapes.get(conv.inputs[0]) as Shape
    const ws = shapes.get(conv.inputs[1]) as Shape
    const ys = shapes.get(conv.outputs[0]) as Shape
    const g = convGeometry(conv, ws.slice(2))
    const strides = [0, 1].map((i) => window[i] * g.strides[i])
    const outputs = [0, 1].map((i) => ys[2 + i] / window[i])
    const parts: IrNode[] = []
    const offsets: string[] = []
    for (let di = 0; di < window[0]; di++) {
      for (let dj = 0; dj < window[1]; dj++) {
        const tag = `offset${di}${dj}`
        // the offset's first window starts di conv strides lower: its begin pads lose that many
        // rows; below zero, the input's first rows are cut instead
        const shift = [di * g.strides[0], dj * g.strides[1]]
        const cut = [0, 1].map((i) => Math.max(0, shift[i] - g.pads[i]))
        const begin = [0, 1].map((i) => Math.max(0, g.pads[i] - shift[i]))
        const size = [0, 1].map((i) => xs[2 + i] - cut[i])
        // end pads: enough for the last window (reads past the input are the padding's zeros)
        const end = [0, 1].map((i) => Math.max(0, (outputs[i] - 1) * strides[i] + g.kernel[i] - size[i] - begin[i]))
        let input = conv.inputs[0]
        if (cut[0] > 0 || cut[1] > 0) {
          const starts = fresh(`${conv.name}__${tag}_starts`)
          const ends = fresh(`${conv.name}__${tag}_ends`)
          const axes = fresh(`${conv.name}__${tag}_axes`)
          constants.set(starts, { dims: [2], data: BigInt64Array.from(cut.map(BigInt)) })
          constants.set(ends, { dims: [2], data: BigInt64Array.from([xs[2], xs[3]].map(BigInt)) })
          constants.set(axes, { dims: [2], data: BigInt64Array.of(2n, 3n) })
          input = fresh(`${conv.inputs[0]}__${tag}`)
          parts.push({ name: fresh(`${conv.name}__${tag}_cut`), op: 'Slice', inputs: [conv.inputs[0], starts, ends, axes], outputs: [input], attrs: {} })
        }
        const out = fresh(`${conv.outputs[0]}__${tag}`)
        offsets.push(out)
        parts.push({
          name: fresh(`${conv.name}__${tag}`),
          op: 'Conv',
          inputs: [input, ...conv.inputs.slice(1)],
          outputs: [out],
          attrs: { ...conv.attrs, strides: ints(strides), pads: ints([begin[0], begin[1], end[0], end[1]]) }
        })
      }
    }
    const pooled = relu === undefined ? pool.outputs[0] : fresh(`${pool.outputs[0]}__max`)
    parts.push({ name: fresh(`${pool.name}__max`), op: 'PoolWindowMax', inputs: offsets, outputs: [pooled], attrs: {} })
    if (relu !== undefined) parts.push({ name: relu.name, op: 'Relu', inputs: [pooled], outputs: [pool.outputs[0]], attrs: {} })
    replaced.set(conv, parts)
    if (relu !== undefined) dropped.add(relu)
    dropped.add(pool)
  }
  const nodes = graph.nodes.flatMap((n) => replaced.get(n) ?? (dropped.has(n) ? [] : [n]))
  return { ...graph, nodes, constants }
}

/** For tests: the Conv nodes a graph would split at these shapes. */
export function pooledConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): string[] {
  return findPooledConvs(graph, shapes).map((f) => f.conv.name)
}
