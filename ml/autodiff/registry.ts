import type { OpDefinition } from './op-definition.js'
import { add } from './ops/add.js'
import { batchNormalization } from './ops/batch-normalization.js'
import { clip } from './ops/clip.js'
import { concat } from './ops/concat.js'
import { conv } from './ops/conv.js'
import { div } from './ops/div.js'
import { dropout } from './ops/dropout.js'
import { erf } from './ops/erf.js'
import { expand } from './ops/expand.js'
import { gemm } from './ops/gemm.js'
import { hardSigmoid } from './ops/hard-sigmoid.js'
import { hardSwish } from './ops/hard-swish.js'
import { matmul } from './ops/matmul.js'
import { poolWindowMax } from './ops/pool-window-max.js'
import { mul } from './ops/mul.js'
import { pad } from './ops/pad.js'
import { averagePool, globalAveragePool, maxPool } from './ops/pool.js'
import { pow } from './ops/pow.js'
import { reduceMean } from './ops/reduce-mean.js'
import { relu } from './ops/relu.js'
import { flatten, identity, reshape } from './ops/reshape.js'
import { sigmoid } from './ops/sigmoid.js'
import { slice } from './ops/slice.js'
import { softmax } from './ops/softmax.js'
import { split } from './ops/split.js'
import { sqrt } from './ops/sqrt.js'
import { squeeze, unsqueeze } from './ops/squeeze.js'
import { sub } from './ops/sub.js'
import { tanh } from './ops/tanh.js'
import { transpose } from './ops/transpose.js'

/** Every op the autodiff can differentiate. Adding one: a file in ops/ and a line here. */
const OPS: readonly OpDefinition[] = [
  add, sub, mul, div, pow, poolWindowMax, conv, gemm, matmul, maxPool, averagePool, globalAveragePool, pad, relu, flatten, reshape, identity,
  batchNormalization, dropout, clip, concat, split, slice, sigmoid, tanh, hardSigmoid, hardSwish, sqrt, erf, softmax,
  reduceMean, transpose, squeeze, unsqueeze, expand
]

const registry = new Map(OPS.map((op) => [op.type, op]))

/** The op a graph node of this type is, or undefined; `fromModel`: a model's own node, which no internal op can be. */
export function findOp(type: string, fromModel = false): OpDefinition | undefined {
  const op = registry.get(type)
  return op?.internal === true && fromModel ? undefined : op
}

/** The ops a model may hold (the internal ones left out). */
export function supportedOps(): string[] {
  return [...registry.values()].filter((op) => op.internal !== true).map((op) => op.type).sort()
}

/** Recurrent layers the autodiff does not unroll: refused by name rather than by a helper op. */
export const RECURRENT_OPS: ReadonlySet<string> = new Set(['LSTM', 'GRU', 'RNN'])
