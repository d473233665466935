/**
 * Kernels the training graph reads only through a constant selection of their taps: lower-convs.ts
 * turns a conv with a one-pixel output into a Gemm over the taps its window meets, W [M C, kh kw]
 * times a 0/1 matrix S [kh kw, used] whose columns each pick one tap. The gradient of such a
 * kernel is zero outside those taps, so the graph can output the used taps' gradient alone
 * ([M C, used]) and the caller scatter it into the full [M, C, kh, kw] slice, whose other taps stay
 * 0. resnet18 on 32x32 images: three of layer4's 512x512 3x3 kernels meet one pixel, so 8/9 of
 * their 9.4 MB gradients were zeros that ONNX Runtime wrote (an outer product) and onnxruntime-node
 * copied again into a new buffer every step (see training-run.ts gradientOutputs).
 */
import type { ForwardGraph, IrNode } from './ir.js'

/** How a compact gradient [rows, taps.length] fills a kernel's slice [rows, kernelTaps]. */
export interface TapScatter {
  /** kh kw: the kernel's taps per row (a row is one filter's one input channel) */
  readonly kernelTaps: number
  /** for each column of the compact gradient, the tap (r kw + s) it belongs to; distinct, ascending not required */
  readonly taps: readonly number[]
}

/**
 * For each parameter used only as Reshape -> MatMul(., S) with S a constant [kh kw, used] whose
 * columns each hold one 1 (and whose rows hold at most one, so each tap is picked once), the
 * MatMul's output (its gradient is the compact one) and where its columns go. Parameters used any
 * other way are not listed.
 */
export function tapSelectedParameters(graph: ForwardGraph, consumers: ReadonlyMap<string, readonly IrNode[]>): Map<string, { readonly tensor: string } & TapScatter> {
  const found = new Map<string, { readonly tensor: string } & TapScatter>()
  for (const param of graph.parameters) {
    const [reshape, ...otherUses] = consumers.get(param) ?? []
    if (reshape === undefined || otherUses.length > 0 || reshape.op !== 'Reshape' || reshape.inputs[0] !== param) continue
    const [matmul, ...otherReads] = consumers.get(reshape.outputs[0]) ?? []
    if (matmul === undefined || otherReads.length > 0 || matmul.op !== 'MatMul' || matmul.inputs[0] !== reshape.outputs[0]) continue
    const selection = graph.constants.get(matmul.inputs[1])
    if (selection === undefined || !(selection.data instanceof Float32Array) || selection.dims.length !== 2) continue
    const taps = selectedTaps(selection.data, selection.dims[0], selection.dims[1])
    if (taps !== undefined) found.set(param, { tensor: matmul.outputs[0], kernelTaps: selection.dims[0], taps })
  }
  return found
}

/** The row of the single 1 in each column of a 0/1 matrix [rows, cols], or undefined if it is not a selection of distinct rows. */
function selectedTaps(data: Float32Array, rows: number, cols: number): number[] | undefined {
  const taps: number[] = []
  const picked = new Set<number>()
  for (let c = 0; c < cols; c++) {
    let row = -1
    for (let r = 0; r < rows; r++) {
      const v = data[r * cols + c]
      if (v === 0) continue
      if (v !== 1 || row >= 0) return undefined
      row = r
    }
    if (row < 0 || picked.has(row)) return undefined
    picked.add(row)
    taps.push(row)
  }
  return taps
}

/**
 * Writes a compact tap gradient into its kernel's slice of `gradient` starting at `offset`:
 * gradient[offset + i kernelTaps + taps[j]] = compact[i used + j] for every row i. The slice's other
 * taps are not written (they hold 0: the caller zeroed them once).
 */
export function scatterTaps(compact: Float32Array, scatter: TapScatter, gradient: Float32Array, offset: number): void {
  const { kernelTaps, taps } = scatter
  const used = taps.length
  const rows = compact.length / used
  if (used === 1) {
    const tap = taps[0]
    for (let i = 0, at = offset + tap; i < rows; i++, at += kernelTaps) gradient[at] = compact[i]
    return
  }
  for (let i = 0; i < rows; i++) {
    const base = offset + i * kernelTaps
    for (let j = 0; j < used; j++) gradient[base + taps[j]] = compact[i * used + j]
  }
}
