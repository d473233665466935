import { attrInts, ints, ShapeError, type IrNode, type Shape } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'
import { broadcastShapes, unbroadcast } from './broadcast.js'

function swapLast(emit: Parameters<OpDefinition['backward']>[0]['emit'], name: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return emit.op('Transpose', [name], { perm: ints(perm) })
}

/** whether a Transpose node swaps only the last two axes of a rank-`rank` tensor */
function swapsLastTwo(node: IrNode, rank: number): boolean {
  if (node.op !== 'Transpose' || rank < 3) return false
  const perm = attrInts(node, 'perm', [])
  return perm.length === rank && perm.every((p, i) => p === (i === rank - 2 ? rank - 1 : i === rank - 1 ? rank - 2 : i))
}

const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i])

/**
 * MatMul over [..., m, k] x [..., k, n] with broadcast batch dims (Linear layers export 2-D,
 * attention batched). dA = dY B^T, dB = A^T dY, each summed back over broadcast batch dims.
 * 2-D operands use Gemm with transpose flags (no Transpose nodes).
 */
export const matmul: OpDefinition = {
  type: 'MatMul',
  inferShapes(node, [a, b]) {
    if (a.length < 2 || b.length < 2) throw new ShapeError(`MatMul node '${node.name}': 1-D operands are not supported, got [${a.join(', ')}] x [${b.join(', ')}]`)
    const k = a[a.length - 1]
    if (b[b.length - 2] !== k) {
      throw new ShapeError(`MatMul node '${node.name}': inner dimensions differ: [${a.join(', ')}] x [${b.join(', ')}] (${k} vs ${b[b.length - 2]})`)
    }
    const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2), `MatMul node '${node.name}' batch dims`)
    return [[...batch, a[a.length - 2], b[b.length - 1]]]
  },
  emitForward(node, emit, shape, ctx) {
    // A [m, k] times a constant column of ones [k, 1] (broadcast-gemm.ts's sum over positions) as
    // ReduceSum over k: vgg11's [2 M, 49] took 14-18 ms against the MatMul's 27-38
    const ones = ctx.constant(node.inputs[1])
    if (shape(node.inputs[0]).length === 2 && ones !== undefined && ones.dims.length === 2 && ones.dims[1] === 1 && ones.data instanceof Float32Array && ones.data.every((v) => v === 1)) {
      emit.node('ReduceSum', [node.inputs[0], emit.int64s('axes', [1])], { keepdims: { kind: 'int', value: 1 } }, node.outputs)
    } else {
      emit.node(node.op, node.inputs, node.attrs, node.outputs)
    }
    return {}
  },
  backward(ctx) {
    const { emit, node, outputGrads: [dy], needsGrad, shape } = ctx
    if (dy === undefined) return []
    const [a, b] = node.inputs
    const as: Shape = shape(a)
    const bs: Shape = shape(b)
    if (as.length === 2 && bs.length === 2) {
      const t = (ta: number, tb: number) => ({ transA: { kind: 'int', value: ta }, transB: { kind: 'int', value: tb } }) as const
      return [
        needsGrad(0) ? emit.op('Gemm', [dy, b], t(0, 1)) : undefined,
        needsGrad(1) ? emit.op('Gemm', [a, dy], t(1, 0)) : undefined
      ]
    }
    const ys = shape(node.outputs[0])
    // with only B 2-D (a Linear on [N, T, d]): dB = sum over batch of A^T dY, as one 2-D Gemm
    if (bs.length === 2 && needsGrad(1)) {
      const k = as[as.length - 1]
      const a2 = emit.op('Reshape', [a, emit.int64s('shape', [-1, k])])
      const dy2 = emit.op('Reshape', [dy, emit.int64s('shape', [-1, bs[1]])])
      const db = emit.op('Gemm', [a2, dy2], { transA: { kind: 'int', value: 1 }, transB: { kind: 'int', value: 0 } })
      return [needsGrad(0) ? emit.op('MatMul', [dy, emit.op('Transpose', [b], { perm: ints([1, 0]) })]) : undefined, db]
    }
    const da = needsGrad(0) ? unbroadcast(emit, emit.op('MatMul', [dy, swapLast(emit, b, bs.length)]), [...ys.slice(0, -2), as[as.length - 2], as[as.length - 1]], as) : undefined
    const src = ctx.producer(b)
    if (needsGrad(1) && src !== undefined && swapsLastTwo(src, bs.length) && sameShape(bs.slice(0, -2), ys.slice(0, -2))) {
      // B is a Transpose of its source's last two axes (lower-convs.ts: W as [M, taps, C]): dB =
      // A^T dY is emitted as (dY^T A)^T, so it cancels against the Transpose's own backward
      // (ONNX Runtime drops the pair) and dY^T folds into the MatMul (FusedMatMul, transA). The
      // Transpose of dB it replaces took 1.3-1.5 ms for each of resnet18's 256x9x256 kernels
      return [da, swapLast(emit, emit.op('MatMul', [swapLast(emit, dy, ys.length), a]), bs.length)]
    }
    const db = needsGrad(1) ? unbroadcast(emit, emit.op('MatMul', [swapLast(emit, a, as.length), dy]), [...ys.slice(0, -2), bs[bs.length - 2], bs[bs.length - 1]], bs) : undefined
    return [da, db]
  }
}
