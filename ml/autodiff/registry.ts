import type { OpDefinition } from './op-definition.js'
import { add } from './ops/add.js'
import { conv } from './ops/conv.js'
import { gemm } from './ops/gemm.js'
import { matmul } from './ops/matmul.js'
import { pad } from './ops/pad.js'
import { averagePool, globalAveragePool, maxPool } from './ops/pool.js'
import { relu } from './ops/relu.js'
import { flatten, identity, reshape } from './ops/reshape.js'

/** Every op the autodiff can differentiate. Adding one: a file in ops/ and a line here. */
const OPS: readonly OpDefinition[] = [add, conv, gemm, matmul, maxPool, averagePool, globalAveragePool, pad, relu, flatten, reshape, identity]

const registry = new Map(OPS.map((op) => [op.type, op]))

export function findOp(type: string): OpDefinition | undefined {
  return registry.get(type)
}

export function supportedOps(): string[] {
  return [...registry.keys()].sort()
}
