/**
 * A training graph's convolution on a small map as Gemms over the whole batch (im2col): the
 * forward, the weights' gradient and the input's gradient are one Gemm each.
 *
 * ONNX Runtime's CPU Conv multiplies each sample with its own GEMM, [M, C kh kw] x [C kh kw,
 * H_out W_out], and our backward's ConvTranspose (dX) and batch-as-channels Conv (dW) the same:
 * on resnet18's 2x2-8x8 maps (32x32 inputs) those GEMMs are a few columns wide. With every
 * sample's columns side by side (batch innermost, so each gathered value is a row of N floats):
 *   cols  [C kh kw, H_out W_out N]: for each tap and output pixel, the input pixel it reads (one
 *         Gather with constant indices from the input as [C, H W + 1, N], the extra row zeros
 *         for padding)
 *   Y     = W [M, C kh kw] x cols, reshaped and transposed to [N, M, H_out, W_out]
 *   dW    = dY [M, H_out W_out N] x cols^T (cols kept from the forward)
 *   dX    = W [C, M kh kw] x dcols, dcols [M kh kw, H W N] gathering for each tap and input pixel
 *         dY at the output pixel that read it through the tap (0 where none did): the transposed
 *         convolution without the scatter-add a col2im would need.
 *         Where those columns would be more than twice the forward's (a conv that widens the
 *         channels, or a strided one), col2im instead: W^T [C kh kw, M] x dY [M, H_out W_out N],
 *         then for each input pixel the values of its taps gathered ([C, kh kw, H W, N]) and
 *         summed over the taps, so the gather holds C, not M, rows per tap
 * Each output value is the same sum of products as the convolution's, in another order.
 * bench/op-profile.ts at batch 64 (operator ms a step, Conv path -> Gemm path): resnet18
 * (torchvision export, 32x32) 194 -> 76, squeezenet1_1 38 -> 24, vgg11 741 -> 460. col2im in place
 * of those convs' ConvTranspose, interleaved A/B of the gradient step at batch 64: resnet18 98 ->
 * 83 ms (b256: 346 -> 324), squeezenet1_1 24.2 -> 20.7-22.7 ms (its expand convs widen 16 -> 64).
 */
import type { BatchLastTwins } from '../batch-last.js'
import { attrInt, ints, type IrNode, type Shape } from '../ir.js'
import type { BackwardContext } from '../op-definition.js'
import type { GraphEmitter } from '../../onnx/graph-emitter.js'
import { convGeometry } from './conv.js'
import { nchwcConvolutions } from './nchwc.js'

/**
 * output maps up to 64 pixels (resnet18's layer1 on 32x32 inputs, 8x8): against ONNX Conv, in a
 * graph without NCHWc (a portable one, for the offload's workers) or for a conv NCHWc cannot run.
 * Measured with bench/op-profile.ts at batch 64, with other Gemm paths: resnet18 76 ms of
 * operators with 64, 77 with 256, 80 with 1024; lenet5's 10x10 conv (100 pixels) 4.3 ms with 64,
 * 5.6 with 128
 */
const MAX_OUTPUT_PIXELS = 64
/**
 * Where ORT's NCHWc Conv can run the forward (ops/nchwc.ts), output maps up to 32 pixels only
 * (resnet18's layer2 on 32x32 inputs, 4x4). Its layer1's 8x8 maps run NCHWc, whose forward reached
 * the machine's FMA peak on an AVX-512 Xeon: 0.82 ms a conv at batch 64, against 2.6 ms for the
 * gathered columns and their Gemm, whose packing of the 9.4 MB of columns costs about as much as
 * the products. resnet18's gradient step at batch 64, separate processes alternated: 86-91 ms
 * with 64 pixels, 80-81 with 32 on that Xeon, 93-94 against 84-86 with 8 (layer2's 4x4 maps
 * through NCHWc too, where the Gemm wins); on a Zen 4 (AVX-512 at half width) paper-models read
 * 0.89-1.05 with 64 and 0.96-1.08 with 32, within its noise. squeezenet1_1's 7x7 fire convs and
 * vgg11's 8x8 ones read alike either way on the Xeon.
 */
const MAX_OUTPUT_PIXELS_BESIDE_NCHWC = 32
/**
 * the forward's columns [C kh kw, H_out W_out N] and, where dX is a Gemm too, dY's [M kh kw, H W N]:
 * above 2^26 values (256 MiB) either way, ORT's kernels run instead
 */
const MAX_COLUMN_VALUES = 2 ** 26
/**
 * dX by gathered columns only while dY's columns are at most this many times the forward's: a
 * strided conv that widens the channels (64 -> 256, stride 2) gathers 16x as many, mostly zeros,
 * and its ConvTranspose is faster (a reviewer measured 1.9 against 0.41 s a step at batch 256)
 */
const MAX_INPUT_COLUMNS_RATIO = 2

/** values in the forward's columns and in dY's columns (the input gradient's) */
function columnValues(x: Shape, w: Shape, y: Shape): { forward: number, input: number } {
  const taps = w[2] * w[3]
  return { forward: w[1] * taps * y[2] * y[3] * x[0], input: w[0] * taps * x[2] * x[3] * x[0] }
}

/**
 * Whether a training-graph Conv runs as im2col + Gemm: ungrouped, with a small output map (not one
 * pixel: lower-convs.ts), smaller where NCHWc could run it (`nchwcBlock`: the graph's, 0 for none).
 */
export function gemmConv(node: IrNode, x: Shape, w: Shape, y: Shape, nchwcBlock: number): boolean {
  const pixels = y[2] * y[3]
  const group = attrInt(node, 'group', 1)
  const maxPixels = nchwcConvolutions.forward(group, w[1], nchwcBlock) ? MAX_OUTPUT_PIXELS_BESIDE_NCHWC : MAX_OUTPUT_PIXELS
  return group === 1 && x.length === 4 && pixels > 1 && pixels <= maxPixels && columnValues(x, w, y).forward <= MAX_COLUMN_VALUES
}

/**
 * How a gemmConv's input gradient is computed: 'dy-columns' (a Gemm over dY's gathered columns),
 * 'col2im' (a Gemm to the columns' gradient, then each input pixel's taps gathered and summed),
 * or undefined (conv.ts's ConvTranspose).
 */
export function gemmConvInputGradient(x: Shape, w: Shape, y: Shape): 'dy-columns' | 'col2im' | undefined {
  const { forward, input } = columnValues(x, w, y)
  if (input <= MAX_COLUMN_VALUES && input <= MAX_INPUT_COLUMNS_RATIO * forward) return 'dy-columns'
  const scattered = w[1] * w[2] * w[3] * x[2] * x[3] * x[0]
  return scattered <= MAX_COLUMN_VALUES ? 'col2im' : undefined
}

/** A 1x1 kernel with stride 1 and no padding: the columns are the input's pixels themselves. */
function pointwise(node: IrNode, w: Shape): boolean {
  const g = convGeometry(node, w.slice(2))
  return w[2] === 1 && w[3] === 1 && g.strides.every((v) => v === 1) && g.pads.every((p) => p === 0)
}

/** [kh kw, rows cols] int64: `pick(r, s, a, b)` for each kernel tap (r, s) and pixel (a, b) of a rows x cols map. */
function tapTable(kh: number, kw: number, rows: number, cols: number, pick: (r: number, s: number, a: number, b: number) => number): BigInt64Array {
  const out = new BigInt64Array(kh * kw * rows * cols)
  let i = 0
  for (let r = 0; r < kh; r++) for (let s = 0; s < kw; s++) for (let a = 0; a < rows; a++) for (let b = 0; b < cols; b++) out[i++] = BigInt(pick(r, s, a, b))
  return out
}

/**
 * For each kernel tap and output pixel, the input pixel it reads (row-major over H x W), or
 * H W (a zero row appended to the input) where it reads padding: [kh kw, H_out W_out].
 */
function tapIndices(node: IrNode, x: Shape, w: Shape, y: Shape): BigInt64Array {
  const g = convGeometry(node, w.slice(2))
  const [h, wd] = [x[2], x[3]]
  return tapTable(w[2], w[3], y[2], y[3], (r, s, oh, ow) => {
    const ih = oh * g.strides[0] - g.pads[0] + r
    const iw = ow * g.strides[1] - g.pads[1] + s
    return ih >= 0 && ih < h && iw >= 0 && iw < wd ? ih * wd + iw : h * wd
  })
}

/**
 * Columns [R taps, P N] from `source` [R, pixels, N]: for each of R rows, tap and target pixel, the
 * source pixel `indices` [taps, P] names (its value `pixels`: a zero row appended here), by one
 * Gather of rows of N values; without indices (a pointwise conv) the source itself.
 */
function gatherColumns(emit: GraphEmitter, source: string, [rows, pixels, n]: readonly number[], indices: BigInt64Array | undefined, taps: number, targets: number): string {
  if (indices === undefined) return emit.op('Reshape', [source, emit.int64s('cols_shape', [rows, pixels * n])])
  const zeroRow = emit.constant('zero_row', { dims: [rows, 1, n], data: new Float32Array(rows * n) })
  const padded = emit.op('Concat', [source, zeroRow], { axis: { kind: 'int', value: 1 } })
  const gathered = emit.op('Gather', [padded, emit.constant('tap_indices', { dims: [taps, targets], data: indices })], { axis: { kind: 'int', value: 1 } })
  return emit.op('Reshape', [gathered, emit.int64s('cols_shape', [rows * taps, targets * n])])
}

/**
 * Emits the forward of a gemmConv; returns the columns [C kh kw, H_out W_out N] saved for dW.
 * The input goes to [C, H W, N] (batch innermost: its batch-last twin, batch-last.ts) with a zero
 * row after the pixels, so one Gather over the pixel axis with constant indices picks every tap's
 * input (padding: the zero row) in rows of N contiguous values. The output [M, H_out, W_out, N]
 * is the NCHW output's twin.
 */
export function emitGemmConv(node: IrNode, emit: GraphEmitter, shape: (name: string) => Shape, batchLast: BatchLastTwins): { cols: string } {
  const [x, w, b] = node.inputs
  const xs = shape(x)
  const ws = shape(w)
  const ys = shape(node.outputs[0])
  const [n, c, h, wd] = xs
  const [m, , kh, kw] = ws
  const [ho, wo] = [ys[2], ys[3]]
  const pixels = emit.op('Reshape', [batchLast.of(emit, x), emit.int64s('pixels_shape', [c, h * wd, n])])
  const cols = gatherColumns(emit, pixels, [c, h * wd, n], pointwise(node, ws) ? undefined : tapIndices(node, xs, ws, ys), kh * kw, ho * wo)
  const wRows = emit.op('Reshape', [w, emit.int64s('w_rows_shape', [m, c * kh * kw])])
  const gemmInputs = [wRows, cols]
  if (b !== undefined && b !== '') gemmInputs.push(emit.op('Reshape', [b, emit.int64s('b_column_shape', [m, 1])]))
  const product = emit.op('Gemm', gemmInputs)
  batchLast.fromTwin(emit, emit.op('Reshape', [product, emit.int64s('y_pixels_shape', [m, ho, wo, n])]), node.outputs[0])
  return { cols }
}

/**
 * For each kernel tap and input pixel, the output pixel whose window reads it through that tap
 * (row-major over H_out x W_out), or H_out W_out (a zero row) where none does: [kh kw, H W].
 */
function transposedTapIndices(node: IrNode, x: Shape, w: Shape, y: Shape): BigInt64Array {
  const g = convGeometry(node, w.slice(2))
  return tapTable(w[2], w[3], x[2], x[3], (r, s, ih, iw) => {
    const dh = ih + g.pads[0] - r
    const dw = iw + g.pads[1] - s
    const oh = dh / g.strides[0]
    const ow = dw / g.strides[1]
    const reads = dh >= 0 && dw >= 0 && Number.isInteger(oh) && Number.isInteger(ow) && oh < y[2] && ow < y[3]
    return reads ? oh * y[3] + ow : y[2] * y[3]
  })
}

/**
 * Gradients of a gemmConv's input [N, C, H, W] and weights [M, C, kh, kw] (see the header); each
 * only if asked for. dY is read through its batch-last twin; dX is emitted with one.
 */
export function gemmConvBackward(ctx: Pick<BackwardContext, 'emit' | 'shape' | 'node' | 'saved' | 'batchLast'>, dy: string, inputGrad: 'dy-columns' | 'col2im' | undefined, weightGrad: boolean): { dx?: string, dw?: string } {
  const { emit, node, shape, saved, batchLast } = ctx
  const xs = shape(node.inputs[0])
  const ws = shape(node.inputs[1])
  const ys = shape(node.outputs[0])
  const [n, c, h, wd] = xs
  const [m, , kh, kw] = ws
  const outputs = ys[2] * ys[3]
  const dyPixels = emit.op('Reshape', [batchLast.of(emit, dy), emit.int64s('dy_pixels_shape', [m, outputs, n])])
  const result: { dx?: string, dw?: string } = {}
  if (weightGrad) {
    const dw = emit.op('Gemm', [emit.op('Reshape', [dyPixels, emit.int64s('dy_rows_shape', [m, outputs * n])]), saved.cols], { transB: { kind: 'int', value: 1 } })
    result.dw = emit.reshape(dw, [m, c * kh * kw], ws)
  }
  if (inputGrad === 'col2im') {
    // dcols [C kh kw, (H_out W_out + 1) N] = W^T dY, dY with a zero pixel appended (cheaper to
    // copy than dcols), then dX[c, q] = sum over taps t of dcols[c t, the output pixel reading q
    // through t, or the zero pixel]: [C, taps (H_out W_out + 1), N] gathered to [C, taps, H W, N]
    const taps = kh * kw
    // values per tap in dcols' rows: the output pixels, and the zero pixel unless pointwise
    const block = pointwise(node, ws) ? outputs : outputs + 1
    const dySource = block === outputs
      ? dyPixels
      : emit.op('Concat', [dyPixels, emit.constant('zero_pixel', { dims: [m, 1, n], data: new Float32Array(m * n) })], { axis: { kind: 'int', value: 1 } })
    const dyRows = emit.op('Reshape', [dySource, emit.int64s('dy_rows_shape', [m, block * n])])
    const wRows = emit.op('Reshape', [node.inputs[1], emit.int64s('w_rows_shape', [m, c * taps])])
    const dcols = emit.op('Gemm', [wRows, dyRows], { transA: { kind: 'int', value: 1 } })
    let summed = dcols
    if (block !== outputs) {
      const byChannel = emit.op('Reshape', [dcols, emit.int64s('dcols_by_channel', [c, taps * block, n])])
      // transposedTapIndices names the zero pixel as H_out W_out: each tap's own copy of it
      const indices = transposedTapIndices(node, xs, ws, ys).map((p, i) => BigInt(Math.floor(i / (h * wd)) * block) + p)
      const gathered = emit.op('Gather', [byChannel, emit.constant('col2im_indices', { dims: [taps, h * wd], data: indices })], { axis: { kind: 'int', value: 1 } })
      summed = emit.op('ReduceSum', [gathered, emit.int64s('tap_axis', [1])], { keepdims: { kind: 'int', value: 0 } })
    }
    result.dx = batchLast.fromTwin(emit, emit.op('Reshape', [summed, emit.int64s('dx_pixels_shape', [c, h, wd, n])]))
  } else if (inputGrad === 'dy-columns') {
    const dcols = gatherColumns(emit, dyPixels, [m, outputs, n], pointwise(node, ws) ? undefined : transposedTapIndices(node, xs, ws, ys), kh * kw, h * wd)
    // W [M, C, kh, kw] -> [C, M kh kw]
    const wByInput = emit.op('Reshape', [emit.op('Transpose', [emit.op('Reshape', [node.inputs[1], emit.int64s('w_3d', [m, c, kh * kw])])], { perm: ints([1, 0, 2]) }), emit.int64s('w_by_input', [c, m * kh * kw])])
    const dx = emit.op('Gemm', [wByInput, dcols])
    result.dx = batchLast.fromTwin(emit, emit.op('Reshape', [dx, emit.int64s('dx_pixels_shape', [c, h, wd, n])]))
  }
  return result
}
