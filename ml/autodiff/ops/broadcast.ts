import type { GraphEmitter } from '../../onnx/graph-emitter.js'
import { ShapeError, type Shape } from '../ir.js'

/** NumPy-style broadcast of two shapes; `where` (e.g. the node) prefixes the error. */
export function broadcastShapes(a: Shape, b: Shape, where = 'broadcast'): Shape {
  const rank = Math.max(a.length, b.length)
  const out: number[] = []
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1
    const db = b[b.length - rank + i] ?? 1
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`${where}: cannot broadcast [${a.join(', ')}] with [${b.join(', ')}] (axis ${i - rank} has ${da} and ${db})`)
    out.push(Math.max(da, db))
  }
  return out
}

/** Sum a gradient of shape `from` down to the shape `to` it was broadcast from. */
export function unbroadcast(emit: GraphEmitter, grad: string, from: Shape, to: Shape): string {
  const offset = from.length - to.length
  const axes: number[] = []
  for (let i = 0; i < from.length; i++) {
    const target = i < offset ? 1 : to[i - offset]
    if (target === 1 && from[i] !== 1) axes.push(i)
  }
  let out = grad
  if (axes.length > 0) {
    out = emit.op('ReduceSum', [out, emit.int64s('axes', axes)], { keepdims: { kind: 'int', value: 1 } })
  }
  if (offset > 0 || axes.length > 0) out = emit.op('Reshape', [out, emit.int64s('shape', [...to])])
  return out
}
