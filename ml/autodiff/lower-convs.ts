/**
 * Rewrites, for the training graph only, each 2-D Conv whose output is one pixel (1x1) into a
 * Gemm over the part of the input its window covers: y[n, m] = sum over c, r, s of
 * x[n, c, r0 + r, c0 + s] * W[m, c, i0 + r, j0 + s] (+ b[m]), where [r0, r1] x [c0, c1] is the
 * input the kernel overlaps and (i0, j0) the kernel position over (r0, c0); kernel taps over the
 * padding multiply zeros and are left out (their weights' gradient is exactly 0, as a
 * convolution gives them).
 *
 * Why: ONNX Runtime's CPU Conv computes each sample's output with its own GEMM, of width
 * H_out x W_out, so a 1x1 output makes one matrix-vector product per sample, and backward the
 * same (resnet18 on 32x32 images ends at 1x1 with 512 channels: its layer4 convolutions took
 * ~40 of a ~185 ms step at batch 64 here, mostly on padding). As one Gemm the batch is the
 * GEMM's rows. Slice, Reshape and Gemm have backwards of their own, so the rewrite needs none.
 * The inference graph and exports keep the Conv.
 */
import { attrInt, type ConstantTensor, type ForwardGraph, type IrNode, type Shape } from './ir.js'
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
 * The forward graph with every one-pixel-output Conv as Slice + Reshape + Gemm (see the header).
 * `shapes`: every tensor's shape for the batch size the graph is built for. Returns the graph
 * unchanged (the same object) when no Conv qualifies.
 */
export function lowerOnePixelConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): ForwardGraph {
  const taken = new Set<string>([...shapes.keys(), ...graph.constants.keys(), ...graph.nodes.map((n) => n.name)])
  const fresh = (hint: string): string => {
    let name = hint
    for (let k = 1; taken.has(name); k++) name = `${hint}_${k}`
    taken.add(name)
    return name
  }
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
    const overlap = xs === undefined || ws === undefined || ys === undefined ? undefined : onePixelOverlap(node, xs, ws, ys)
    if (overlap === undefined || xs === undefined || ws === undefined) {
      nodes.push(node)
      continue
    }
    lowered++
    const base = node.outputs[0]
    const rows = overlap.rows[1] - overlap.rows[0] + 1
    const cols = overlap.cols[1] - overlap.cols[0] + 1
    const features = xs[1] * rows * cols
    const add = (op: string, inputs: string[], hint: string, attrs: IrNode['attrs'] = {}, output?: string): string => {
      const out = output ?? fresh(`${base}__${hint}`)
      nodes.push({ name: fresh(`${node.name}__${hint}`), op, inputs, outputs: [out], attrs })
      return out
    }
    const region = (tensor: string, starts: readonly number[], hint: string): string =>
      add('Slice', [tensor, int64s(`${base}__${hint}_starts`, starts), int64s(`${base}__${hint}_ends`, [starts[0] + rows, starts[1] + cols]), int64s(`${base}__${hint}_axes`, [2, 3])], hint)
    const xCols = add('Reshape', [region(x, [overlap.rows[0], overlap.cols[0]], 'x_window'), int64s(`${base}__x_shape`, [xs[0], features])], 'x_cols')
    const wRows = add('Reshape', [region(w, overlap.kernelStart, 'w_taps'), int64s(`${base}__w_shape`, [ws[0], features])], 'w_rows')
    const gemm = add('Gemm', b === undefined || b === '' ? [xCols, wRows] : [xCols, wRows, b], 'gemm', { transB: { kind: 'int', value: 1 } })
    add('Reshape', [gemm, int64s(`${base}__y_shape`, [xs[0], ws[0], 1, 1])], 'y', {}, node.outputs[0])
  }
  if (lowered === 0) return graph
  return { ...graph, nodes, constants }
}

/** For tests: which Conv nodes a graph would lower at these shapes. */
export function onePixelConvs(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): string[] {
  return graph.nodes.filter((n) => {
    const [xs, ws, ys] = [shapes.get(n.inputs[0]), shapes.get(n.inputs[1]), shapes.get(n.outputs[0])]
    return xs !== undefined && ws !== undefined && ys !== undefined && onePixelOverlap(n, xs, ws, ys) !== undefined
  }).map((n) => n.name)
}
