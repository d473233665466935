import { ShapeError, type ConstantTensor } from '../ir.js'
import type { OpDefinition } from '../op-definition.js'

function bound(value: ConstantTensor | undefined, present: boolean, nodeName: string, which: string): void {
  if (present && (value === undefined || !(value.data instanceof Float32Array) || value.data.length !== 1)) {
    throw new ShapeError(`Clip node '${nodeName}': the ${which} bound must be a constant float scalar`)
  }
}

/** Y = min(max(X, lo), hi) (ReLU6 exports as Clip(0, 6)); dX = dY where lo < X < hi, as PyTorch's hardtanh. */
export const clip: OpDefinition = {
  type: 'Clip',
  inferShapes(node, [x], ctx) {
    const [, lo, hi] = node.inputs
    bound(lo === undefined || lo === '' ? undefined : ctx.constant(lo), lo !== undefined && lo !== '', node.name, 'min')
    bound(hi === undefined || hi === '' ? undefined : ctx.constant(hi), hi !== undefined && hi !== '', node.name, 'max')
    return [x]
  },
  backward({ emit, node, outputGrads: [dy] }) {
    if (dy === undefined) return []
    const [x, lo, hi] = node.inputs
    const tests: string[] = []
    if (lo !== undefined && lo !== '') tests.push(emit.op('Greater', [x, lo]))
    if (hi !== undefined && hi !== '') tests.push(emit.op('Less', [x, hi]))
    if (tests.length === 0) return [dy]
    const inside = tests.length === 1 ? tests[0] : emit.op('And', tests)
    return [emit.op('Mul', [dy, emit.op('Cast', [inside], { to: { kind: 'int', value: 1 } })])]
  }
}
