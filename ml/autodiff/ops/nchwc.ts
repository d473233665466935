/**
 * Convolutions through ONNX Runtime's NCHWc kernels (the contrib domain com.microsoft.nchwc:
 * ReorderInput, Conv, ReorderOutput), with weights that are graph inputs or computed in the graph.
 *
 * ONNX Runtime's own NchwcTransformer rewrites a Conv to these kernels only when its weights are
 * constant initializers, which a training graph's are not (they are fed every step), so its Convs
 * run as one im2col + GEMM per sample. MLAS's NCHWc kernels are direct convolutions over channel
 * blocks of `block` values (16 with AVX-512, 8 with AVX2; MlasNchwcGetBlockSize):
 *   activations [N, C, H, W] as [N, C/block, H, W, block] (ReorderInput / ReorderOutput), except an
 *     input with fewer than `block` channels, which the kernel reads as NCHW;
 *   weights [M, C, kh, kw], M padded with zero filters to a multiple of `block`, as
 *     [M/block, C/block, kh, kw, block_in, block_out] (OIHWBiBo), or [M/block, C, kh, kw, block_out]
 *     (OIHWBo) when the input is read as NCHW: here one Transpose in the graph (the transformer
 *     reorders constants on the host instead).
 * The declared shapes stay the logical [N, C_padded, H, W] and [M_padded, C, kh, kw].
 * Each output value is the same sum of products as Conv's, in another order.
 */
import { ints, type Attribute } from '../ir.js'
import type { GraphEmitter } from '../../onnx/graph-emitter.js'

export const NCHWC_DOMAIN = 'com.microsoft.nchwc'

/** Stride, pads and dilations of a 2-D convolution (ONNX attribute order). */
export interface ConvAttributes {
  readonly kernel: readonly number[]
  readonly strides: readonly number[]
  readonly pads: readonly number[]
  readonly dilations: readonly number[]
}

/** Whether an NCHWc Conv takes `channels` input channels with this block size (0: NCHWc off). */
function nchwcInputFits(channels: number, block: number): boolean {
  return block > 1 && (channels < block || channels % block === 0)
}

function roundUp(n: number, block: number): number {
  return Math.ceil(n / block) * block
}

/**
 * W [M, C, kh, kw] as the NCHWc Conv's filters: [M_padded, C, kh, kw] holding OIHWBo (C < block)
 * or OIHWBiBo. For small weights; a large computed one (dY as dW's kernel) has nchwcFiltersOfBatch.
 */
function nchwcFilters(emit: GraphEmitter, w: string, wShape: readonly number[], block: number): string {
  const [m, c, kh, kw] = wShape
  const mp = roundUp(m, block)
  const filters = mp === m ? w : emit.op('Pad', [w, emit.int64s('pads', [0, 0, 0, 0, mp - m, 0, 0, 0])])
  const reordered = c < block
    ? emit.op('Transpose', [emit.op('Reshape', [filters, emit.int64s('oihwbo', [mp / block, block, c, kh, kw])])], { perm: ints([0, 2, 3, 4, 1]) })
    : emit.op('Transpose', [emit.op('Reshape', [filters, emit.int64s('oihwbibo', [mp / block, block, c / block, block, kh, kw])])], { perm: ints([0, 2, 4, 5, 3, 1]) })
  return emit.op('Reshape', [reordered, emit.int64s('filters', [mp, c, kh, kw])])
}

/**
 * dY [N, M, h, w] as the filters of the weight gradient's convolution, i.e. dY^T [M, N, h, w] in
 * OIHWBiBo (N a multiple of block): ReorderInput blocks M innermost, then a Transpose that moves
 * whole blocks (ONNX Runtime's general Transpose moving single values ran 1.85 ms on lenet5's
 * 409,600 at batch 256).
 */
function nchwcFiltersOfBatch(emit: GraphEmitter, dy: string, dyShape: readonly number[], block: number): string {
  const [n, m, h, w] = dyShape
  const mp = roundUp(m, block)
  const blocked = emit.op(`${NCHWC_DOMAIN}:ReorderInput`, [m % 4 === 0 ? dy : emit.op('Pad', [dy, emit.int64s('pads', [0, 0, 0, 0, 0, roundUp(m, 4) - m, 0, 0])])])
  // [N/B, B_in, M/B, h w, B_out] -> [M/B, N/B, h w, B_in, B_out]
  const moved = emit.op('Transpose', [emit.op('Reshape', [blocked, emit.int64s('by_block', [n / block, block, mp / block, h * w, block])])], { perm: ints([2, 0, 3, 1, 4]) })
  return emit.op('Reshape', [moved, emit.int64s('filters', [mp, n, h, w])])
}

/**
 * X [N, C, H, W] as the input of the weight gradient's convolution, i.e. X^T [C, N, H, W] in
 * NCHWc (N a multiple of block), by ReorderInput over X read as [1, N, C, H W] and a Transpose of
 * whole blocks, then zero-padded by `pads` (ONNX order: top, left, bottom, right) so the
 * convolution pads nothing: [C, N, H + top + bottom, W + left + right].
 */
function nchwcInputOfBatch(emit: GraphEmitter, x: string, xShape: readonly number[], block: number, pads: readonly number[]): string {
  const [n, c, h, w] = xShape
  const blocked = emit.op(`${NCHWC_DOMAIN}:ReorderInput`, [emit.op('Reshape', [x, emit.int64s('as_channels', [1, n, c, h * w])])])
  // [N/B, C, H W, B] -> [C, N/B, H W, B]
  const moved = emit.op('Transpose', [emit.op('Reshape', [blocked, emit.int64s('by_block', [n / block, c, h * w, block])])], { perm: ints([1, 0, 2, 3]) })
  if (pads.every((p) => p === 0)) return emit.op('Reshape', [moved, emit.int64s('input', [c, n, h, w])])
  const [top, left, bottom, right] = pads
  const padded = emit.op('Pad', [emit.op('Reshape', [moved, emit.int64s('spatial', [c, n / block, h, w, block])]), emit.int64s('pads', [0, 0, top, left, 0, 0, 0, bottom, right, 0])])
  return emit.op('Reshape', [padded, emit.int64s('input', [c, n, h + top + bottom, w + left + right])])
}

/**
 * Y = conv(X, W) + B as NCHWc Conv, in NCHW out: `input` X [N, C, H, W] (NCHW, or NCHWc when
 * `inputBlocked`), `filters` from nchwcFilters or nchwcFiltersOfBatch, `m` the real output
 * channels, bias [M_padded] or undefined; returns Y [N, m, H', W'] (into `output` when given),
 * ReLU(Y) with `relu`.
 * Requires nchwcInputFits(C, block); ungrouped.
 */
function emitNchwcConv(emit: GraphEmitter, input: NchwcInput, filters: string, m: number, bias: string | undefined, conv: ConvAttributes, block: number, output?: string, relu = false): string {
  const blocked = emitBlockedConv(emit, input, filters, bias, conv, block, relu)
  return emit.node(`${NCHWC_DOMAIN}:ReorderOutput`, [blocked], { channels: { kind: 'int', value: m } }, output === undefined ? 1 : [output])[0]
}

interface NchwcInput {
  readonly name: string
  /** already NCHWc (another NCHWc Conv's output, or reordered) */
  readonly blocked: boolean
  /** C; a blocked input's is padded to the block */
  readonly channels: number
}

/** emitNchwcConv without the ReorderOutput: Y [N, M_padded, H', W'] in NCHWc, for another NCHWc Conv to read. */
function emitBlockedConv(emit: GraphEmitter, input: NchwcInput, filters: string, bias: string | undefined, conv: ConvAttributes, block: number, relu = false): string {
  const x = input.blocked || input.channels < block ? input.name : emit.op(`${NCHWC_DOMAIN}:ReorderInput`, [input.name])
  const attrs: Record<string, Attribute> = {
    kernel_shape: ints(conv.kernel),
    strides: ints(conv.strides),
    pads: ints(conv.pads),
    dilations: ints(conv.dilations),
    ...(relu ? { activation: { kind: 'string', value: 'Relu' } } : {})
  }
  return emit.op(`${NCHWC_DOMAIN}:Conv`, bias === undefined ? [x, filters] : [x, filters, bias], attrs)
}

/** A bias [M] padded with zeros to the NCHWc Conv's output channels. */
function nchwcBias(emit: GraphEmitter, bias: string, m: number, block: number): string {
  const mp = roundUp(m, block)
  return mp === m ? bias : emit.op('Pad', [bias, emit.int64s('pads', [0, mp - m])])
}

/**
 * Where a training graph's Conv runs through NCHWc (measured with bench/op-profile.ts and
 * interleaved A/B steps, lenet5 at batch 256 on this 2-core AVX-512 machine, 13.7 -> 12.2 ms a
 * step; squeezenet1_1 at b64 (3x32x32) 2-10 % faster):
 * - forward: ungrouped, C < block or a multiple of it (conv1 0.78 against 1.36 ms, conv2 0.63
 *   against 1.23, plus ~0.45 ms of ReorderOutput for conv1's 6 of 16 channels);
 * - dX: ungrouped, stride 1, no dilation, pads <= k - 1, M fitting like C above: the full
 *   convolution of dY with the flipped filters (lenet5's conv2 2.2-2.5 ms with its reorders, against
 *   ConvTranspose's 3.4-3.5; the same full convolution as ONNX Conv took 5.0). With one intra-op
 *   thread, only where C is a multiple of the block: ConvTranspose runs lenet5's conv2 (C = 6, the
 *   full convolution's filters padded to 16) in 1.6 ms on one thread against the NCHWc 4.6;
 * - dW: ungrouped, more than one input channel, a batch that is a multiple of block: the
 *   batch-as-channels convolution, dilated by the forward's stride (lenet5's conv2 1.0 ms against
 *   1.6-1.8; vgg11's 64 -> 128 on 16x16 25-32 against 60-88), over its input padded beforehand
 *   (emitNchwcWeightGradient). Its output is the kernel's few pixels, all of which a padded conv
 *   would compute in MLAS's border path: resnet18's layer1 dW (8x8 maps, pad 1) 2.1-2.7 ms
 *   against 1.2-1.4 + 0.2 for the Pad; the 7x7 stride-2 stem's 3.4 (plain conv; through padded
 *   NCHWc it was 3.4 + 1.1 of reorders on a Xeon) against 1.5; the gradient step at batch 64 on a
 *   Zen 5, separate processes alternated, 69 -> 65 ms. One input channel keeps conv.ts's
 *   per-sample grouped conv: through NCHWc its 6 filters pad to 16 and the step took 18 against
 *   13.7 ms.
 */
export const nchwcConvolutions = {
  forward: (group: number, channels: number, block: number): boolean => group === 1 && nchwcInputFits(channels, block),
  /** `outputChannels`: M, dY's; `inputChannels`: C, dX's; `threads`: the session's intra-op threads */
  inputGradient: (group: number, outputChannels: number, inputChannels: number, conv: ConvAttributes, block: number, threads: number): boolean =>
    group === 1 && nchwcInputFits(outputChannels, block) && conv.strides.every((s) => s === 1) && conv.dilations.every((d) => d === 1) &&
    conv.pads.every((p, k) => p <= conv.kernel[k % 2] - 1) && (threads >= 2 || inputChannels % block === 0),
  /**
   * dX by kernel rows (emitNchwcInputGradient), where it takes under 3/4 of the full convolution's
   * block-taps: C < block, so the full one pads C to a block, and kh C channels fill theirs better
   * (lenet5's conv2: C = 6, 2 blocks x 5 taps x 18 rows against 1 block x 25 taps x 14 rows). On
   * a 2-core AVX-512 Xeon at b256: the full convolution 2.5-2.7 ms, by rows 0.73-0.77 + 1.19-1.29
   * (the kh x 1 sum, one output block from two, runs at half the first conv's rate); the step,
   * separate processes alternated, 10.9-12.2 -> 10.2-11.3 ms (b64 3.18-3.49 -> 2.98-3.36). Only
   * where the full one runs (two threads or more): on one, ConvTranspose stays faster (15.3-16.1
   * against 17.1-18.0 ms a step).
   */
  inputGradientByRows: (inputChannels: number, kh: number, inputRows: number, block: number): boolean =>
    inputChannels < block && kh > 1 &&
    roundUp(kh * inputChannels, block) * (inputRows + kh - 1) < 0.75 * roundUp(inputChannels, block) * kh * inputRows,
  weightGradient: (group: number, channels: number, batch: number, conv: ConvAttributes, block: number): boolean =>
    group === 1 && channels > 1 && block > 1 && batch % block === 0
}

/**
 * The forward Conv of x [N, C, H, W] and w [M, C, kh, kw] (+ bias [M]) into `output` [N, M, H', W'];
 * with `relu`, ReLU(conv) (the kernel's fused activation, as ONNX Runtime's FusedConv).
 */
export function emitNchwcForward(emit: GraphEmitter, x: string, w: string, wShape: readonly number[], bias: string | undefined, conv: ConvAttributes, block: number, output: string, relu: boolean): void {
  const padded = bias === undefined ? undefined : nchwcBias(emit, bias, wShape[0], block)
  emitNchwcConv(emit, { name: x, blocked: false, channels: wShape[1] }, nchwcFilters(emit, w, wShape, block), wShape[0], padded, conv, block, output, relu)
}

/**
 * dX [N, C, H, W] of a stride-1 conv: the full convolution of dY [N, M, h, w] with w [M, C, kh, kw]
 * flipped in space and its channel axes swapped, padded by k - 1 - p. `inputRows`: H.
 *
 * Where C fills a block poorly (inputGradientByRows: lenet5's conv2, C = 6 of 16) that convolution's
 * C output channels would be padded to a block; it runs by kernel rows instead: one NCHWc conv
 * with a 1 x kw kernel computes each kernel row a's partial sums over dY's rows (padded by
 * kh - 1 - p), kh C output channels that fill the blocks better, and dX is their sum, each row's
 * shifted up by a:
 *   Z[n, (a, c), r, j] = sum_{m, b} F[c, m, a, b] dYp[n, m, r, j + b]
 *   dX[n, c, i, j]     = sum_a Z[n, (a, c), i + a, j]
 * with F the flipped, swapped filters and dYp dY padded. The same products, summed in another
 * order.
 */
export function emitNchwcInputGradient(emit: GraphEmitter, dy: string, w: string, wShape: readonly number[], conv: ConvAttributes, block: number, inputRows: number): string {
  const [m, c, kh, kw] = wShape
  const pads = [0, 1, 0, 1].map((axis, k) => conv.kernel[axis] - 1 - conv.pads[k])
  const full = { kernel: conv.kernel, strides: [1, 1], dilations: [1, 1], pads }
  if (!nchwcConvolutions.inputGradientByRows(c, kh, inputRows, block)) {
    const swapped = emit.op('Transpose', [w], { perm: ints([1, 0, 2, 3]) })
    const flipped = emit.op('Slice', [swapped, emit.int64s('starts', [-1, -1]), emit.int64s('ends', [-(kh + 1), -(kw + 1)]), emit.int64s('axes', [2, 3]), emit.int64s('steps', [-1, -1])])
    return emitNchwcConv(emit, { name: dy, blocked: false, channels: m }, nchwcFilters(emit, flipped, [c, m, kh, kw], block), c, undefined, full, block)
  }
  // [M, C, kh, kw] -> [kh, C, M, kw], rows and columns flipped: F by row, [(a, c), m, 1, b]
  const byRow = emit.op('Slice', [emit.op('Transpose', [w], { perm: ints([2, 1, 0, 3]) }), emit.int64s('starts', [-1, -1]), emit.int64s('ends', [-(kh + 1), -(kw + 1)]), emit.int64s('axes', [0, 3]), emit.int64s('steps', [-1, -1])])
  const filters = nchwcFilters(emit, emit.op('Reshape', [byRow, emit.int64s('by_row', [kh * c, m, 1, kw])]), [kh * c, m, 1, kw], block)
  const rows = emitBlockedConv(emit, { name: dy, blocked: false, channels: m }, filters, undefined, { ...full, kernel: [1, kw] }, block)
  // the shifted sum, as an NCHWc conv over Z's channels (still blocked) with 0/1 filters
  // S[c', (a, c), a', 0] = [c' = c][a' = a]: kh taps down the rows, no padding
  const zc = roundUp(kh * c, block)
  const sum = new Float32Array(c * zc * kh)
  for (let a = 0; a < kh; a++) for (let ci = 0; ci < c; ci++) sum[(ci * zc + a * c + ci) * kh + a] = 1
  const sumFilters = nchwcFilters(emit, emit.constant('row_sum', { dims: [c, zc, kh, 1], data: sum }), [c, zc, kh, 1], block)
  return emitNchwcConv(emit, { name: rows, blocked: true, channels: zc }, sumFilters, c, undefined, { kernel: [kh, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1] }, block)
}

/**
 * The weight gradient's convolution before cropping to the kernel: X^T [C, N, H, W] (*) dY^T
 * [M, N, h, w], the conv's stride as dilation -> [C, M, H + pads - (h-1) stride, ...]. The
 * padding is applied to X^T beforehand (a Pad of the blocked tensor) rather than by the conv: the
 * same products (plus zeros, which change no sum), but MLAS's NCHWc kernel takes a slower path for
 * every output pixel whose window reaches into padding, and here that was every pixel.
 */
export function emitNchwcWeightGradient(emit: GraphEmitter, x: string, xShape: readonly number[], dy: string, dyShape: readonly number[], conv: ConvAttributes, block: number): string {
  return emitNchwcConv(emit, { name: nchwcInputOfBatch(emit, x, xShape, block, conv.pads), blocked: true, channels: xShape[0] }, nchwcFiltersOfBatch(emit, dy, dyShape, block), dyShape[1], undefined, {
    kernel: [dyShape[2], dyShape[3]],
    pads: [0, 0, 0, 0],
    strides: [1, 1],
    dilations: conv.strides
  }, block)
}
