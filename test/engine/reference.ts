/**
 * A float64 reference for the engine: interprets a forward-graph IR directly in TypeScript
 * (dense, conv with stride/padding/groups, relu, max/avg pooling, flatten/reshape, add) and
 * differentiates mean softmax cross-entropy by hand-written loops. It shares nothing with the
 * autodiff or ONNX Runtime except the IR it reads.
 */
import { attrInt, attrInts, product, type ForwardGraph, type IrNode } from '../../ml/autodiff/ir.js'
import type { ParameterLayout } from '../../ml/core/types.js'

interface T64 { shape: number[], data: Float64Array }

export interface ReferenceResult {
  readonly loss: number
  readonly logits: Float64Array
  /** gradient of the mean loss, laid out like the parameters */
  readonly gradient: Float64Array
}

const zeros = (shape: number[]): T64 => ({ shape, data: new Float64Array(product(shape)) })

export function referenceGradient(graph: ForwardGraph, layout: ParameterLayout, params: Float32Array, inputs: Float32Array, labels: Int32Array): ReferenceResult {
  const n = labels.length
  const values = new Map<string, T64>()
  values.set(graph.input, { shape: [n, ...graph.sampleShape], data: Float64Array.from(inputs) })
  for (const s of layout.specs) values.set(s.name, { shape: [...s.shape], data: Float64Array.from(params.subarray(s.offset, s.offset + s.size)) })
  for (const [name, c] of graph.constants) values.set(name, { shape: [...c.dims], data: Float64Array.from(c.data, Number) })
  const get = (name: string): T64 => values.get(name) as T64
  const argmax = new Map<string, Int32Array>()
  for (const node of graph.nodes) {
    const [y, idx] = forward(node, node.inputs.map(get))
    values.set(node.outputs[0], y)
    if (idx !== undefined) argmax.set(node.name, idx)
  }

  const logits = get(graph.output)
  const classes = logits.shape[1]
  const dLogits = zeros([...logits.shape])
  let loss = 0
  for (let i = 0; i < n; i++) {
    const row = logits.data.subarray(i * classes, (i + 1) * classes)
    const max = Math.max(...row)
    let z = 0
    for (const v of row) z += Math.exp(v - max)
    loss += Math.log(z) + max - row[labels[i]]
    for (let c = 0; c < classes; c++) dLogits.data[i * classes + c] = (Math.exp(row[c] - max) / z - (c === labels[i] ? 1 : 0)) / n
  }

  const grads = new Map<string, T64>([[graph.output, dLogits]])
  const accumulate = (name: string, g: T64): void => {
    const prev = grads.get(name)
    if (prev === undefined) grads.set(name, g)
    else for (let i = 0; i < g.data.length; i++) prev.data[i] += g.data[i]
  }
  for (let k = graph.nodes.length - 1; k >= 0; k--) {
    const node = graph.nodes[k]
    const dy = grads.get(node.outputs[0])
    if (dy === undefined) continue
    const ins = node.inputs.map(get)
    backward(node, ins, get(node.outputs[0]), dy, argmax.get(node.name)).forEach((g, i) => {
      if (g !== undefined) accumulate(node.inputs[i], g)
    })
  }

  const gradient = new Float64Array(layout.totalSize)
  for (const s of layout.specs) {
    const g = grads.get(s.name)
    if (g !== undefined) gradient.set(g.data, s.offset)
  }
  return { loss: loss / n, logits: logits.data, gradient }
}

interface Window { kh: number, kw: number, sh: number, sw: number, pt: number, pl: number, oh: number, ow: number }

function window(node: IrNode, h: number, w: number, kernel: readonly number[]): Window {
  const [sh, sw] = attrInts(node, 'strides', [1, 1])
  const [pt, pl, pb, pr] = attrInts(node, 'pads', [0, 0, 0, 0])
  const [kh, kw] = kernel
  // ceil_mode (pools): a last window may pass the input's end, but not start in its end padding
  const ceil = attrInt(node, 'ceil_mode', 0) === 1
  const size = (input: number, begin: number, end: number, k: number, stride: number): number => {
    if (!ceil) return Math.floor((input + begin + end - k) / stride) + 1
    const out = Math.ceil((input + begin + end - k) / stride) + 1
    return (out - 1) * stride >= input + begin ? out - 1 : out
  }
  return { kh, kw, sh, sw, pt, pl, oh: size(h, pt, pb, kh, sh), ow: size(w, pl, pr, kw, sw) }
}

/** Visit every (output position, input position inside the image) pair of a sliding window. */
function slide(g: Window, h: number, w: number, visit: (o: number, i: number, k: number) => void): void {
  for (let oy = 0; oy < g.oh; oy++) {
    for (let ox = 0; ox < g.ow; ox++) {
      for (let ky = 0; ky < g.kh; ky++) {
        const iy = oy * g.sh - g.pt + ky
        if (iy < 0 || iy >= h) continue
        for (let kx = 0; kx < g.kw; kx++) {
          const ix = ox * g.sw - g.pl + kx
          if (ix >= 0 && ix < w) visit(oy * g.ow + ox, iy * w + ix, ky * g.kw + kx)
        }
      }
    }
  }
}

/** Zero padding of a 4-D tensor: where each input element lands in the padded output. */
function padMap(shape: number[], pads: Float64Array): { outShape: number[], map: Float64Array } {
  const outShape = shape.map((d, i) => d + pads[i] + pads[i + 4])
  const map = new Float64Array(product(shape))
  let i = 0
  for (let a = 0; a < shape[0]; a++) {
    for (let b = 0; b < shape[1]; b++) {
      for (let c = 0; c < shape[2]; c++) {
        for (let d = 0; d < shape[3]; d++) {
          map[i++] = (((a + pads[0]) * outShape[1] + b + pads[1]) * outShape[2] + c + pads[2]) * outShape[3] + d + pads[3]
        }
      }
    }
  }
  return { outShape, map }
}

function gemmDims(node: IrNode, a: T64, b: T64): { m: number, k: number, n: number, ai: (r: number, c: number) => number, bi: (r: number, c: number) => number } {
  const ta = attrInt(node, 'transA', 0) === 1
  const tb = attrInt(node, 'transB', 0) === 1
  const m = ta ? a.shape[1] : a.shape[0]
  const k = ta ? a.shape[0] : a.shape[1]
  const n = tb ? b.shape[0] : b.shape[1]
  return {
    m, k, n,
    ai: ta ? (r, c) => c * m + r : (r, c) => r * k + c,
    bi: tb ? (r, c) => c * k + r : (r, c) => r * n + c
  }
}

function forward(node: IrNode, ins: T64[]): [T64, Int32Array?] {
  const [x] = ins
  switch (node.op) {
    case 'Gemm':
    case 'MatMul': {
      const [a, b, c] = ins
      const { m, k, n, ai, bi } = gemmDims(node, a, b)
      const y = zeros([m, n])
      for (let r = 0; r < m; r++) {
        for (let j = 0; j < n; j++) {
          let s = c === undefined ? 0 : c.data[c.data.length === n ? j : r * n + j]
          for (let q = 0; q < k; q++) s += a.data[ai(r, q)] * b.data[bi(q, j)]
          y.data[r * n + j] = s
        }
      }
      return [y]
    }
    case 'Add': {
      const [a, b] = ins
      const y = zeros([...a.shape])
      for (let i = 0; i < a.data.length; i++) y.data[i] = a.data[i] + b.data[i % b.data.length]
      return [y]
    }
    case 'Relu':
      return [{ shape: [...x.shape], data: x.data.map((v) => Math.max(v, 0)) }]
    case 'Flatten':
      return [{ shape: [x.shape[0], product(x.shape.slice(1))], data: x.data }]
    case 'Reshape': {
      const dims = Array.from(ins[1].data, (d, i) => (d === 0 ? x.shape[i] : d))
      const known = product(dims.filter((d) => d !== -1))
      return [{ shape: dims.map((d) => (d === -1 ? x.data.length / known : d)), data: x.data }]
    }
    case 'Pad': {
      const { outShape, map } = padMap(x.shape, ins[1].data)
      const y = zeros(outShape)
      map.forEach((o, i) => { y.data[o] = x.data[i] })
      return [y]
    }
    case 'Conv': {
      const [, w, b] = ins
      const [nb, c, h, wd] = x.shape
      const m = w.shape[0]
      const g = window(node, h, wd, w.shape.slice(2))
      const y = zeros([nb, m, g.oh, g.ow])
      const ksz = g.kh * g.kw
      const cg = w.shape[1] // input channels per group
      const mg = m / (c / cg)
      for (let i = 0; i < nb; i++) {
        for (let o = 0; o < m; o++) {
          const out = y.data.subarray((i * m + o) * g.oh * g.ow, (i * m + o + 1) * g.oh * g.ow)
          if (b !== undefined) out.fill(b.data[o])
          for (let j = 0; j < cg; j++) {
            const ch = Math.floor(o / mg) * cg + j
            const xo = (i * c + ch) * h * wd
            const wo = (o * cg + j) * ksz
            slide(g, h, wd, (p, q, kk) => { out[p] += x.data[xo + q] * w.data[wo + kk] })
          }
        }
      }
      return [y]
    }
    case 'MaxPool':
    case 'AveragePool': {
      const [nb, c, h, wd] = x.shape
      const g = window(node, h, wd, attrInts(node, 'kernel_shape', []))
      const y = zeros([nb, c, g.oh, g.ow])
      const idx = new Int32Array(y.data.length)
      const isMax = node.op === 'MaxPool'
      if (isMax) y.data.fill(-Infinity)
      for (let plane = 0; plane < nb * c; plane++) {
        const base = plane * g.oh * g.ow
        slide(g, h, wd, (p, q) => {
          const v = x.data[plane * h * wd + q]
          if (!isMax) y.data[base + p] += v / (g.kh * g.kw)
          else if (v > y.data[base + p]) { y.data[base + p] = v; idx[base + p] = plane * h * wd + q }
        })
      }
      return [y, isMax ? idx : undefined]
    }
    case 'Expand': {
      // [N, C, 1, .., 1] to [N, C, ...]: each (n, c) value repeated over the map (all this reference needs)
      const shape = Array.from(ins[1].data, (d, i) => Math.max(d, x.shape[i]))
      const positions = product(shape.slice(2))
      if (x.data.length !== shape[0] * shape[1]) throw new Error('reference Expand only broadcasts the axes after the channels, from 1')
      const y = zeros(shape)
      for (let i = 0; i < y.data.length; i++) y.data[i] = x.data[Math.floor(i / positions)]
      return [y]
    }
    case 'GlobalAveragePool': {
      const [nb, c, h, wd] = x.shape
      const y = zeros([nb, c, 1, 1])
      for (let p = 0; p < nb * c; p++) {
        let s = 0
        for (let q = 0; q < h * wd; q++) s += x.data[p * h * wd + q]
        y.data[p] = s / (h * wd)
      }
      return [y]
    }
    default:
      throw new Error(`reference has no op ${node.op}`)
  }
}

function backward(node: IrNode, ins: T64[], y: T64, dy: T64, idx: Int32Array | undefined): Array<T64 | undefined> {
  const [x] = ins
  switch (node.op) {
    case 'Gemm':
    case 'MatMul': {
      const [a, b, c] = ins
      const { m, k, n, ai, bi } = gemmDims(node, a, b)
      const da = zeros([...a.shape])
      const db = zeros([...b.shape])
      const dc = c === undefined ? undefined : zeros([...c.shape])
      for (let r = 0; r < m; r++) {
        for (let j = 0; j < n; j++) {
          const g = dy.data[r * n + j]
          if (dc !== undefined) dc.data[dc.data.length === n ? j : r * n + j] += g
          for (let q = 0; q < k; q++) {
            da.data[ai(r, q)] += g * b.data[bi(q, j)]
            db.data[bi(q, j)] += g * a.data[ai(r, q)]
          }
        }
      }
      return [da, db, dc]
    }
    case 'Add': {
      const [, b] = ins
      const db = zeros([...b.shape])
      for (let i = 0; i < dy.data.length; i++) db.data[i % b.data.length] += dy.data[i]
      return [{ shape: [...dy.shape], data: dy.data.slice() }, db]
    }
    case 'Relu':
      return [{ shape: [...x.shape], data: dy.data.map((g, i) => (y.data[i] > 0 ? g : 0)) }]
    case 'Flatten':
    case 'Reshape':
      return [{ shape: [...x.shape], data: dy.data.slice() }]
    case 'Pad':
      return [{ shape: [...x.shape], data: padMap(x.shape, ins[1].data).map.map((o) => dy.data[o]) }]
    case 'Conv': {
      const [, w, b] = ins
      const [nb, c, h, wd] = x.shape
      const m = w.shape[0]
      const g = window(node, h, wd, w.shape.slice(2))
      const ksz = g.kh * g.kw
      const dx = zeros([...x.shape])
      const dw = zeros([...w.shape])
      const dbias = b === undefined ? undefined : zeros([...b.shape])
      const cg = w.shape[1]
      const mg = m / (c / cg)
      for (let i = 0; i < nb; i++) {
        for (let o = 0; o < m; o++) {
          const go = dy.data.subarray((i * m + o) * g.oh * g.ow, (i * m + o + 1) * g.oh * g.ow)
          if (dbias !== undefined) for (const v of go) dbias.data[o] += v
          for (let j = 0; j < cg; j++) {
            const ch = Math.floor(o / mg) * cg + j
            const xo = (i * c + ch) * h * wd
            const wo = (o * cg + j) * ksz
            slide(g, h, wd, (p, q, kk) => {
              dx.data[xo + q] += go[p] * w.data[wo + kk]
              dw.data[wo + kk] += go[p] * x.data[xo + q]
            })
          }
        }
      }
      return [dx, dw, dbias]
    }
    case 'MaxPool': {
      const dx = zeros([...x.shape])
      for (let p = 0; p < dy.data.length; p++) dx.data[(idx as Int32Array)[p]] += dy.data[p]
      return [dx]
    }
    case 'AveragePool': {
      const [nb, c, h, wd] = x.shape
      const g = window(node, h, wd, attrInts(node, 'kernel_shape', []))
      const dx = zeros([...x.shape])
      for (let plane = 0; plane < nb * c; plane++) {
        slide(g, h, wd, (p, q) => { dx.data[plane * h * wd + q] += dy.data[plane * g.oh * g.ow + p] / (g.kh * g.kw) })
      }
      return [dx]
    }
    case 'Expand': {
      const positions = dy.data.length / x.data.length
      const dx = zeros([...x.shape])
      for (let i = 0; i < dy.data.length; i++) dx.data[Math.floor(i / positions)] += dy.data[i]
      return [dx]
    }
    case 'GlobalAveragePool': {
      const [, , h, wd] = x.shape
      const dx = zeros([...x.shape])
      for (let q = 0; q < dx.data.length; q++) dx.data[q] = dy.data[Math.floor(q / (h * wd))] / (h * wd)
      return [dx]
    }
    default:
      throw new Error(`reference has no op ${node.op}`)
  }
}

/** Largest |a - b| over a tensor, relative to the largest |b| in it (plus a floor for all-zero tensors). */
export function relativeError(actual: Float32Array, expected: Float64Array): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]))
    scale = Math.max(scale, Math.abs(expected[i]))
  }
  return diff / Math.max(scale, 1e-6)
}
