/**
 * Rewrites, for the training graph only, convolutions that ONNX Runtime's CPU Conv runs far below
 * its speed into ops that keep the batch in one kernel. Its Conv computes each sample (and each
 * group) with its own GEMM of width H_out x W_out, and its backward the same, so on the small maps
 * at the end of a network for 32x32 images the work is mostly call overhead and padding.
 *
 * - A Conv with a one-pixel (1x1) output becomes a Gemm over the part of the input its window
 *   covers: y[n, m] = sum over c, r, s of x[n, c, r0 + r, c0 + s] * W[m, c, i0 + r, j0 + s] (+ b[m]),
 *   where [r0, r1] x [c0, c1] is the input the kernel overlaps and (i0, j0) the kernel position
 *   over (r0, c0); taps over the padding multiply zeros and are left out (their weights' gradient
 *   is exactly 0, as a convolution gives them). resnet18 on 32x32 images ends at 1x1 with 512
 *   channels: its layer4 convolutions took ~40 of a ~185 ms step at batch 64 here.
 * - A depthwise Conv (group = channels, one filter each) on a small map becomes one batched
 *   MatMul over the channels: y[n, c, o] = sum over i of x[n, c, i] * Wd[c, i, o] (+ b[c]), with
 *   Wd = W[c, taps] x S, S the constant 0/1 matrix [taps, inputs x outputs] that says which tap
 *   joins input pixel i to output pixel o (pairs the kernel does not join, or joins only over
 *   padding, get 0); one pixel in and out is a Mul by the one tap that meets it. MobileNetV3's
 *   5x5 depthwise convs on 1x1 and 2x2 maps took ~30 of ~115 profiled ms at batch 64 here.
 * - An ungrouped Conv that reads fewer input pixels than its kernel has taps (3x3 on a 2x2 map)
 *   becomes one Gemm over the batch with a dense weight matrix: y[n, m o] = sum over i, c of
 *   x[n, i c] * Wd[m o, i c], Wd[m, o, i, c] = W[m, c, the tap joining i to o] = S [O I, taps] x W
 *   as [M, taps, C] per filter (S constant 0/1). im2col (conv-gemm.ts) would multiply 9 taps for
 *   each of the O outputs where 4 pixels exist: resnet18's layer3 on 32x32 inputs (256 channels,
 *   2x2) did 36 multiplies per filter and channel, 20 with the padding's zeros; dense it does 16.
 *   One thread, CPU time of resnet18's gradient at batch 64, interleaved: 102-105 ms against 107-111.
 *
 * Slice, Reshape, Gemm, MatMul, Transpose, Mul and Add have backwards of their own, so the rewrites
 * need none. The inference graph and exports keep the Conv.
 */
import { attrInt, freshNames, ints, type ConstantTensor, type ForwardGraph, type IrNode, type Shape } from './ir.js'
import { convGeometry } from './ops/conv.js'

/** The window's overlap with the input for a one-pixel output: input rows/cols and kernel offsets. */
interface Overlap { readonly rows: readonly [number, number], readonly cols: readonly [number, number], readonly kernelStart: readonly [number, number] }

function onePixelOverlap(node: IrNode, x: Shape, w: Shape, y: Shape): Overlap | undefined {
  if (node.op !== 'Conv' || x.length !== 4 || y.length !== 4 || y[2] !== 1 || y[3] !== 1) return undefined
  if (attrInt(node, 'group', 1) !== 1) return undefined
  const g = convGeometry(node, w.slice(2))
  if (g.dilations.some((d) => d !== 1)) return undefined
  // the one window starts at padded (0, 0): input row r meets kernel row r + pad_top
  const axis = (i: 0 | 1): { from: number, to: number, k0: number } => {
    const from = Math.max(0, -g.pads[i])
    const to = Math.min(x[2 + i], g.kernel[i] - g.pads[i]) - 1
    return { from, to, k0: from + g.pads[i] }
  }
  const r = axis(0)
  const c = axis(1)
  if (r.to < r.from || c.to < c.from) return undefined
  return { rows: [r.from, r.to], cols: [c.from, c.to], kernelStart: [r.k0, c.k0] }
}

/**
 * the largest output pixels x input pixels of a depthwise conv made dense: 4x4 maps (256); at
 * 8x8 the dense product does 4096 multiplies per channel and sample where a 3x3 kernel needs 576
 */
const DENSE_DEPTHWISE_LIMIT = 256

/** Whether a Conv is depthwise (one filter per input channel) and small enough to make dense. */
function denseDepthwise(node: IrNode, x: Shape, w: Shape, y: Shape): boolean {
  if (node.op !== 'Conv' || x.length !== 4 || y.length !== 4 || x[1] === 1) return false
  if (attrInt(node, 'group', 1) !== x[1] || w[0] !== x[1] || w[1] !== 1) return false
  return y[2] * y[3] * x[2] * x[3] <= DENSE_DEPTHWISE_LIMIT
}

/**
 * a one-pixel-output conv's window of the input is picked by a 0/1 MatMul, not a Slice, on maps
 * up to 8x8 (the selection is [H W, window pixels])
 */
const MAX_SELECTED_PIXELS = 64

/** above this many values in a dense conv's weight matrix [M O, C I] (64 MiB), it stays a Conv */
const DENSE_CONV_WEIGHT_LIMIT = 2 ** 24

/**
 * Whether an ungrouped Conv with more than one output pixel reads fewer input pixels than its
 * kernel has taps (a 3x3 kernel on a 2x2 map): as a dense product [M O, I C] it does fewer
 * multiplies than im2col's [M, C kh kw] x [C kh kw, O] (on a 2x2 map with padding 1, 16 per filter
 * and channel where im2col does 36, 20 of them with the padding's zeros) and gathers no columns.
 */
function denseSmallInput(node: IrNode, x: Shape, w: Shape, y: Shape): boolean {
  if (node.op !== 'Conv' || x.length !== 4 || y.length !== 4 || attrInt(node, 'group', 1) !== 1) return false
  const inputs = x[2] * x[3]
  const outputs = y[2] * y[3]
  return outputs > 1 && inputs < w[2] * w[3] && w[0] * outputs * x[1] * inputs <= DENSE_CONV_WEIGHT_LIMIT
}

/**
 * S for a conv made dense: [taps, inputs x outputs], S[r kw + s, i O + o] = 1 where tap (r, s) of
 * output pixel o reads input pixel i (row-major pixels, O output pixels); `pairsFirst`: its
 * transpose ordered by output pixel, [outputs x inputs, taps], S[o I + i, r kw + s] (I input pixels).
 */
function tapSelection(node: IrNode, x: Shape, w: Shape, y: Shape, pairsFirst = false): ConstantTensor {
  const g = convGeometry(node, w.slice(2))
  const [kh, kw] = g.kernel
  const inputs = x[2] * x[3]
  const outputs = y[2] * y[3]
  const data = new Float32Array(kh * kw * outputs * inputs)
  for (let oh = 0; oh < y[2]; oh++) {
    for (let ow = 0; ow < y[3]; ow++) {
      for (let r = 0; r < kh; r++) {
        const ih = oh * g.strides[0] - g.pads[0] + r * g.dilations[0]
        if (ih < 0 || ih >= x[2]) continue
        for (let s = 0; s < kw; s++) {
          const iw = ow * g.strides[1] - g.pads[1] + s * g.dilations[1]
          if (iw < 0 || iw >= x[3]) continue
          const [i, o] = [ih * x[3] + iw, oh * y[3] + ow]
          data[pairsFirst ? (o * inputs + i) * kh * kw + r * kw + s : (r * kw + s) * inputs * outputs + i * outputs + o] = 1
        }
      }
    }
  }
  return { dims: pairsFirst ? [outputs * inputs, kh * kw] : [kh * kw, outputs * inputs], data }
}

/**
 * The forward graph with every one-pixel-output Conv as a Gemm over the input's covered window and
 * the kernel's matching taps, and every small depthwise Conv as a batched MatMul (see the header). `shapes`: every tensor's shape for the
 * batch size the graph is built for. Returns the graph unchanged (the same object) when no Conv
 * qualifies.
 */
export function lowerSmallConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): ForwardGraph {
  const fresh = freshNames(graph, shapes)
  const constants = new Map<string, ConstantTensor>(graph.constants)
  const int64s = (hint: string, values: readonly number[]): string => {
    const name = fresh(hint)
    constants.set(name, { dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) })
    return name
  }
  const nodes: IrNode[] = []
  let lowered = 0
  for (const node of graph.nodes) {
    const [x, w, b] = node.inputs
    const xs = shapes.get(x)
    const ws = shapes.get(w)
    const ys = shapes.get(node.outputs[0])
    if (xs === undefined || ws === undefined || ys === undefined) {
      nodes.push(node)
      continue
    }
    const base = node.outputs[0]
    const bias = b === undefined || b === '' ? undefined : b
    const add = (op: string, inputs: string[], hint: string, attrs: IrNode['attrs'] = {}, output?: string): string => {
      const out = output ?? fresh(`${base}__${hint}`)
      nodes.push({ name: fresh(`${node.name}__${hint}`), op, inputs, outputs: [out], attrs })
      return out
    }
    if (denseDepthwise(node, xs, ws, ys)) {
      lowered++
      const [batch, channels] = xs
      const inputs = xs[2] * xs[3]
      const outputs = ys[2] * ys[3]
      const selection = fresh(`${base}__taps`)
      constants.set(selection, tapSelection(node, xs, ws, ys))
      const wFlat = add('Reshape', [w, int64s(`${base}__w_flat_shape`, [channels, ws[2] * ws[3]])], 'w_flat')
      const wPairs = add('MatMul', [wFlat, selection], 'w_pairs')
      let sums: string
      if (inputs * outputs === 1) {
        // one pixel in and out: y[n, c] = x[n, c] * W[c, the one tap that meets it]
        sums = add('Mul', [x, add('Reshape', [wPairs, int64s(`${base}__w_dense_shape`, [1, channels, 1, 1])], 'w_dense')], 'products')
        sums = add('Reshape', [sums, int64s(`${base}__sums_shape`, [batch, channels, 1])], 'sums')
      } else {
        // per channel, [N, I] x [I, O]: one batched MatMul over the channels
        const wDense = add('Reshape', [wPairs, int64s(`${base}__w_dense_shape`, [channels, inputs, outputs])], 'w_dense')
        const xRows = add('Transpose', [add('Reshape', [x, int64s(`${base}__x_rows_shape`, [batch, channels, inputs])], 'x_rows')], 'x_by_channel', { perm: ints([1, 0, 2]) })
        sums = add('Transpose', [add('MatMul', [xRows, wDense], 'products')], 'sums', { perm: ints([1, 0, 2]) })
      }
      if (bias !== undefined) sums = add('Add', [sums, add('Reshape', [bias, int64s(`${base}__b_shape`, [1, channels, 1])], 'b_column')], 'biased')
      add('Reshape', [sums, int64s(`${base}__y_shape`, [...ys])], 'y', {}, node.outputs[0])
      continue
    }
    const overlap = onePixelOverlap(node, xs, ws, ys)
    if (overlap === undefined && denseSmallInput(node, xs, ws, ys)) {
      // y[n, m o] = sum over i, c of x[n, i c] * Wd[m o, i c], Wd[m, o, i, c] = W[m, c, the tap
      // joining input pixel i to output pixel o] (0 where none does): Wd = S [O I, taps] times
      // W as [M, taps, C], one product per filter; the Transposes move the small operands (W's
      // M C taps and x's N C I values), not Wd's M O C I (each took 2-5 ms for resnet18's layer3)
      lowered++
      const [batch, channels] = xs
      const filters = ws[0]
      const taps = ws[2] * ws[3]
      const inputs = xs[2] * xs[3]
      const outputs = ys[2] * ys[3]
      const selection = fresh(`${base}__taps`)
      constants.set(selection, tapSelection(node, xs, ws, ys, true))
      const wByTap = add('Transpose', [add('Reshape', [w, int64s(`${base}__w_3d_shape`, [filters, channels, taps])], 'w_3d')], 'w_by_tap', { perm: ints([0, 2, 1]) })
      // [O I, taps] x [M, taps, C] -> [M, O I, C] = [M O, I C]
      const wDense = add('Reshape', [add('MatMul', [selection, wByTap], 'w_pairs'), int64s(`${base}__w_dense_shape`, [filters * outputs, inputs * channels])], 'w_dense')
      const xRows = add('Reshape', [add('Transpose', [add('Reshape', [x, int64s(`${base}__x_3d_shape`, [batch, channels, inputs])], 'x_3d')], 'x_by_pixel', { perm: ints([0, 2, 1]) }), int64s(`${base}__x_rows_shape`, [batch, inputs * channels])], 'x_rows')
      // the bias as the Gemm's C, one value per column (m, o): b [M, 1] x ones [1, O]. An Add of
      // b [1, M, 1] to [N, M, O] broadcast over the O inner values one span at a time, 0.3-0.8 ms
      // each for resnet18's 64x256x4 at batch 64; C is copied into the output rows at once
      let biasColumns: string[] = []
      if (bias !== undefined) {
        const ones = fresh(`${base}__b_ones`)
        constants.set(ones, { dims: [1, outputs], data: new Float32Array(outputs).fill(1) })
        const perColumn = add('MatMul', [add('Reshape', [bias, int64s(`${base}__b_shape`, [filters, 1])], 'b_column'), ones], 'b_per_output')
        biasColumns = [add('Reshape', [perColumn, int64s(`${base}__b_columns_shape`, [filters * outputs])], 'b_columns')]
      }
      const sums = add('Gemm', [xRows, wDense, ...biasColumns], 'gemm', { transB: { kind: 'int', value: 1 } })
      add('Reshape', [sums, int64s(`${base}__y_shape`, [...ys])], 'y', {}, node.outputs[0])
      continue
    }
    if (overlap === undefined) {
      nodes.push(node)
      continue
    }
    lowered++
    const rows = overlap.rows[1] - overlap.rows[0] + 1
    const cols = overlap.cols[1] - overlap.cols[0] + 1
    const features = xs[1] * rows * cols
    /**
     * x's window [r0, r0 + rows) x [c0, c0 + cols) as [N, C rows cols]: all of x, a Slice, or on a
     * map of at most MAX_SELECTED_PIXELS x as [N C, H W] times a constant 0/1 selection [H W, rows
     * cols]. The Slice's backward Pad of a 1x1 window ran one value at a time (0.83 ms for
     * resnet18's 64x256x1x1 downsample at batch 64, its Slice 0.22), where the MatMul's is one Gemm
     */
    const xWindow = (): string => {
      const [r0, c0] = [overlap.rows[0], overlap.cols[0]]
      const [height, width] = [xs[2], xs[3]]
      if (rows === height && cols === width) return add('Reshape', [x, int64s(`${base}__x_shape`, [xs[0], features])], 'x_cols')
      if (height * width <= MAX_SELECTED_PIXELS) {
        const selection = new Float32Array(height * width * rows * cols)
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) selection[((r0 + r) * width + c0 + c) * rows * cols + r * cols + c] = 1
        const name = fresh(`${base}__x_pixel_selection`)
        constants.set(name, { dims: [height * width, rows * cols], data: selection })
        const pixels = add('Reshape', [x, int64s(`${base}__x_pixels_shape`, [xs[0] * xs[1], height * width])], 'x_pixels')
        return add('Reshape', [add('MatMul', [pixels, name], 'x_window'), int64s(`${base}__x_shape`, [xs[0], features])], 'x_cols')
      }
      const window = add('Slice', [x, int64s(`${base}__x_window_starts`, [r0, c0]), int64s(`${base}__x_window_ends`, [r0 + rows, c0 + cols]), int64s(`${base}__x_window_axes`, [2, 3])], 'x_window')
      return add('Reshape', [window, int64s(`${base}__x_shape`, [xs[0], features])], 'x_cols')
    }
    /**
     * the kernel taps [r0, r0 + rows) x [c0, c0 + cols) of every filter: all of W, or W [M C, kh kw]
     * times a constant 0/1 selection [kh kw, rows cols]. Not a Slice: its backward, a Pad of the
     * inner axes, ran at ~2 ns an element (5.4 ms for resnet18's 512x512 centre taps), where the
     * MatMul's backward is one Gemm
     */
    const kernelTaps = (weights: string, shape: Shape, start: readonly number[], rows: number, cols: number): string => {
      const [kh, kw] = [shape[2], shape[3]]
      if (rows === kh && cols === kw) return weights
      const selection = new Float32Array(kh * kw * rows * cols)
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) selection[((start[0] + r) * kw + start[1] + c) * rows * cols + r * cols + c] = 1
      const name = fresh(`${base}__w_tap_selection`)
      constants.set(name, { dims: [kh * kw, rows * cols], data: selection })
      const flat = add('Reshape', [weights, int64s(`${base}__w_flat_shape`, [shape[0] * shape[1], kh * kw])], 'w_flat')
      return add('MatMul', [flat, name], 'w_taps')
    }
    const xCols = xWindow()
    const wRows = add('Reshape', [kernelTaps(w, ws, overlap.kernelStart, rows, cols), int64s(`${base}__w_shape`, [ws[0], features])], 'w_rows')
    const gemm = add('Gemm', bias === undefined ? [xCols, wRows] : [xCols, wRows, bias], 'gemm', { transB: { kind: 'int', value: 1 } })
    add('Reshape', [gemm, int64s(`${base}__y_shape`, [xs[0], ws[0], 1, 1])], 'y', {}, node.outputs[0])
  }
  if (lowered === 0) return graph
  return { ...graph, nodes, constants }
}

/** For tests: which Conv nodes a graph would lower at these shapes. */
export function onePixelConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): string[] {
  return graph.nodes.filter((n) => {
    const [xs, ws, ys] = [shapes.get(n.inputs[0]), shapes.get(n.inputs[1]), shapes.get(n.outputs[0])]
    return xs !== undefined && ws !== undefined && ys !== undefined && onePixelOverlap(n, xs, ws, ys) !== undefined && !denseDepthwise(n, xs, ws, ys)
  }).map((n) => n.name)
}

/** For tests: which depthwise Conv nodes a graph would make dense at these shapes. */
export function denseDepthwiseConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): string[] {
  return graph.nodes.filter((n) => {
    const [xs, ws, ys] = [shapes.get(n.inputs[0]), shapes.get(n.inputs[1]), shapes.get(n.outputs[0])]
    return xs !== undefined && ws !== undefined && ys !== undefined && denseDepthwise(n, xs, ws, ys)
  }).map((n) => n.name)
}

/** For tests: which ungrouped Conv nodes a graph would make one dense Gemm at these shapes. */
export function denseSmallInputConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): string[] {
  return graph.nodes.filter((n) => {
    const [xs, ws, ys] = [shapes.get(n.inputs[0]), shapes.get(n.inputs[1]), shapes.get(n.outputs[0])]
    return xs !== undefined && ws !== undefined && ys !== undefined && onePixelOverlap(n, xs, ws, ys) === undefined && denseSmallInput(n, xs, ws, ys)
  }).map((n) => n.name)
}
