/**
 * Kernels the training graph reads only through a constant selection of their taps: lower-convs.ts
 * turns a conv with a one-pixel output into a Gemm over the taps its window meets, W [M C, kh kw]
 * times a 0/1 matrix S [kh kw, used] whose columns each pick one tap. The gradient of such a
 * kernel is zero outside those taps, so the graph can output the used taps' gradient alone
 * ([M C, used]) and the caller scatter it into the full [M, C, kh, kw] slice, whose other taps stay
 * 0. resnet18 on 32x32 images: three of layer4's 512x512 3x3 kernels meet one pixel, so 8/9 of
 * their 9.4 MB gradients were zeros that ONNX Runtime wrote (an outer product) and onnxruntime-node
 * copied again into a new buffer every step (see training-run.ts gradientOutputs). A column may
 * also cover several taps (S summing them, broadcast-gemm.ts): its gradient is then each of those
 * taps' gradient.
 */
import type { ForwardGraph, IrNode } from './ir.js'

/** How a compact gradient [rows, columns.length] fills a kernel's slice [rows, kernelTaps]. */
export interface TapScatter {
  /** kh kw: the kernel's taps per row (a row is one filter's one input channel) */
  readonly kernelTaps: number
  /**
   * for each column of the compact gradient, the taps (r kw + s) it fills: one each for a selection
   * of taps (lower-convs.ts), all of them for a sum over the taps (broadcast-gemm.ts); no tap in two
   */
  readonly columns: ReadonlyArray<readonly number[]>
}

/**
 * For each parameter used only as Reshape -> MatMul(., S) with S a constant 0/1 [kh kw, used] whose
 * columns each hold a 1 and whose rows hold at most one (each tap read through one column at
 * most), the MatMul's output (its gradient is the compact one) and which taps each of its columns
 * fills: dW[i, t] = dCompact[i, c] for the column c holding t's 1, else 0. Parameters used any
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
    const columns = selectedTaps(selection.data, selection.dims[0], selection.dims[1])
    if (columns !== undefined) found.set(param, { tensor: matmul.outputs[0], kernelTaps: selection.dims[0], columns })
  }
  return found
}

/** The rows holding each column's 1s in a 0/1 matrix [rows, cols], or undefined unless every column has one and no row has two. */
function selectedTaps(data: Float32Array, rows: number, cols: number): number[][] | undefined {
  const columns: number[][] = Array.from({ length: cols }, () => [])
  for (let r = 0; r < rows; r++) {
    let picked = -1
    for (let c = 0; c < cols; c++) {
      const v = data[r * cols + c]
      if (v === 0) continue
      if (v !== 1 || picked >= 0) return undefined
      picked = c
      columns[c].push(r)
    }
  }
  return columns.every((taps) => taps.length > 0) ? columns : undefined
}

/**
 * Writes a compact tap gradient into its kernel's slice of `gradient` starting at `offset`:
 * gradient[offset + i kernelTaps + t] = compact[i columns + c] for every row i and every tap t of
 * column c. The slice's other taps are not written (they hold 0: the caller zeroed them once).
 */
export function scatterTaps(compact: Float32Array, scatter: TapScatter, gradient: Float32Array, offset: number): void {
  const { kernelTaps, columns } = scatter
  const used = columns.length
  const rows = compact.length / used
  if (used === 1 && columns[0].length === kernelTaps) {
    // one value per row for all its taps (a sum over the taps): 49 values a row for vgg11's
    // first classifier layer, where fill ran ~6x faster than a loop over them
    for (let i = 0, at = offset; i < rows; i++, at += kernelTaps) gradient.fill(compact[i], at, at + kernelTaps)
    return
  }
  if (columns.every((taps) => taps.length === 1)) {
    // a selection of taps, one per column: a flat index array, without a loop over each column's
    // taps (which ran 3.3 against 1.1 ms for resnet18's 4 of 9 taps over 131 K rows)
    const taps = columns.map((c) => c[0])
    if (used === 1) {
      for (let i = 0, at = offset + taps[0]; i < rows; i++, at += kernelTaps) gradient[at] = compact[i]
      return
    }
    for (let i = 0; i < rows; i++) {
      const base = offset + i * kernelTaps
      for (let j = 0; j < used; j++) gradient[base + taps[j]] = compact[i * used + j]
    }
    return
  }
  for (let i = 0; i < rows; i++) {
    const base = offset + i * kernelTaps
    for (let c = 0; c < used; c++) {
      const v = compact[i * used + c]
      for (const t of columns[c]) gradient[base + t] = v
    }
  }
}
