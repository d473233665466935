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
 * For an input of one channel the offsets' convolutions are one Conv with their filters side by
 * side, split after (emitOffsetsAsOneConv): its weight gradient reads each sample once.
 *
 * Why: ONNX Runtime's MaxPool with its Indices output (what the pool's backward routes by) runs a
 * scalar loop: lenet5's first pool took 2.2 ms of a ~15 ms step at batch 256, and the MaxUnpool
 * of its backward 0.5 ms more, where the Max over four quarter-size tensors and its backward's
 * masks are elementwise. Only for a convolution whose input needs no gradient (the batch input):
 * a strided convolution's input gradient would need the scatter the pool's backward did.
 */
import { attrInt, attrInts, freshNames, ints, type ConstantTensor, type ForwardGraph, type IrNode, type Shape } from './ir.js'
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

interface OffsetConvs {
  readonly conv: IrNode
  readonly window: readonly [number, number]
  /** the input's, the weight's shape; the pooled output's rows and columns; the offset convs' strides (window x the conv's) */
  readonly xs: Shape
  readonly ws: Shape
  readonly outputs: readonly number[]
  readonly strides: readonly number[]
  readonly fresh: (hint: string) => string
  readonly constants: Map<string, ConstantTensor>
  /** where the nodes go */
  readonly parts: IrNode[]
}

/**
 * The offsets' convolutions as one Conv with K M filters (K window offsets, M filters), followed
 * by a Split into the K outputs y_k [N, M, h, w]. Filter (k, m) is W[m] placed at row di s_h and
 * column dj s_w of an A x B kernel of zeros, A = (window_h - 1) s_h + kh (B alike), s the conv's
 * strides: Wbig = W [M C, kh kw] x P, P the constant 0/1 placement [kh kw, K A B], transposed to
 * [K M, C, A, B]; the bias b tiled K times (ones [K, 1] x b [1, M]); the input padded as the
 * conv's at the top and left and as far as the last window reads at the bottom and right. Each
 * y_k element is the same sum of products as before plus products of zeros.
 *
 * For an input of one channel (a first layer on grey images): its weight gradient is conv.ts's
 * per-sample grouped convolution, which as one conv reads each sample once for all K M filters,
 * where the K offset convs did K grouped convolutions of M filters each: lenet5's conv1 at batch
 * 256, 4 x 0.8 ms of grouped convs. Through NCHWc the forward's 24 filters pad to 32, where the
 * four offsets' 6 padded to 16 each, and one output is reordered, not four.
 */
function emitOffsetsAsOneConv({ conv, window, xs, ws, outputs, strides, fresh, constants, parts }: OffsetConvs): string[] {
  const g = convGeometry(conv, ws.slice(2))
  const [m, c, kh, kw] = ws
  const k = window[0] * window[1]
  const big = [0, 1].map((i) => (window[i] - 1) * g.strides[i] + g.kernel[i])
  const add = (op: string, inputs: string[], hint: string, attrs: IrNode['attrs'] = {}, outputCount = 1): string[] => {
    const outs = Array.from({ length: outputCount }, (_, i) => fresh(`${conv.outputs[0]}__${hint}${outputCount > 1 ? i : ''}`))
    parts.push({ name: fresh(`${conv.name}__${hint}`), op, inputs, outputs: outs, attrs })
    return outs
  }
  const constant = (hint: string, tensor: ConstantTensor): string => {
    const name = fresh(`${conv.name}__${hint}`)
    constants.set(name, tensor)
    return name
  }
  const int64s = (hint: string, values: readonly number[]): string => constant(hint, { dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) })
  const placement = new Float32Array(kh * kw * k * big[0] * big[1])
  for (let di = 0; di < window[0]; di++) {
    for (let dj = 0; dj < window[1]; dj++) {
      const offset = di * window[1] + dj
      for (let r = 0; r < kh; r++) {
        for (let s = 0; s < kw; s++) {
          placement[(r * kw + s) * k * big[0] * big[1] + offset * big[0] * big[1] + (di * g.strides[0] + r) * big[1] + dj * g.strides[1] + s] = 1
        }
      }
    }
  }
  const [wFlat] = add('Reshape', [conv.inputs[1], int64s('w_flat_shape', [m * c, kh * kw])], 'w_flat')
  const [placed] = add('MatMul', [wFlat, constant('offset_placement', { dims: [kh * kw, k * big[0] * big[1]], data: placement })], 'w_placed')
  const [byOffset] = add('Transpose', [add('Reshape', [placed, int64s('w_placed_shape', [m, c, k, big[0], big[1]])], 'w_placed_5d')[0]], 'w_by_offset', { perm: ints([2, 0, 1, 3, 4]) })
  const [wBig] = add('Reshape', [byOffset, int64s('w_offsets_shape', [k * m, c, big[0], big[1]])], 'w_offsets')
  const bias = conv.inputs[2] !== undefined && conv.inputs[2] !== ''
    ? add('Reshape', [add('MatMul', [
      constant('offset_ones', { dims: [k, 1], data: new Float32Array(k).fill(1) }),
      add('Reshape', [conv.inputs[2], int64s('b_row_shape', [1, m])], 'b_row')[0]
    ], 'b_tiled')[0], int64s('b_offsets_shape', [k * m])], 'b_offsets')
    : []
  // bottom and right: as far as the last window's last row and column read, past the input
  const end = [0, 1].map((i) => Math.max(0, (outputs[i] - 1) * strides[i] + big[i] - xs[2 + i] - g.pads[i]))
  const [all] = add('Conv', [conv.inputs[0], wBig, ...bias], 'offsets', {
    kernel_shape: ints(big), strides: ints(strides), pads: ints([g.pads[0], g.pads[1], end[0], end[1]])
  })
  return add('Split', [all, int64s('split_sizes', new Array<number>(k).fill(m))], 'offset', { axis: { kind: 'int', value: 1 } }, k)
}

/** One strided Conv per window offset (see the header), its input's first rows and columns cut where its begin pads would go below zero. */
function emitOffsetConvs({ conv, window, xs, ws, outputs, strides, fresh, constants, parts }: OffsetConvs): string[] {
  const g = convGeometry(conv, ws.slice(2))
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
  return offsets
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
    const args = { conv, window, xs, ws, outputs, strides, fresh, constants, parts }
    const offsets = xs[1] === 1 ? emitOffsetsAsOneConv(args) : emitOffsetConvs(args)
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
