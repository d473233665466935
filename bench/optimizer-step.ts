/**
 * Optimizer step time against PyTorch's `opt.step()`: `npx tsx bench/optimizer-step.ts [--quick]`.
 *
 * mlp-large's parameter count (1.86 M), fixed random gradients, SGD with momentum, SGD with
 * Nesterov and weight decay, and Adam; the parameters live in the optimizer's memory
 * (hostParameters) and the gradient in its gradient buffer, as the daemon keeps them (the
 * aggregation rule writes there). Each round times STEPS steps of ours, then STEPS of
 * PyTorch's on the same configuration (A, B, A, B, ...); the ratio is taken per round from the
 * two medians, so load that comes and goes on the shared machine hits both sides alike.
 * Printed: ns per parameter (median over rounds, range) and the ratio ours / PyTorch.
 */
import '../polyfill.js'
import { OptimizerConfigSchema } from '../config/job-config.js'
import { createRng } from '../ml/core/rng.js'
import { createOptimizer } from '../ml/optim/index.js'
import { median, spread, timeCalls } from './support/stats.js'
import { startTorchReference, type ReferenceOptimizer } from './support/torch-reference.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 7
const STEPS = quick ? 10 : 30
const THREADS = 2

const configs: ReadonlyArray<readonly [string, ReferenceOptimizer]> = [
  ['sgd momentum 0.9', { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 }],
  ['sgd nesterov + wd', { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }],
  ['adam', { type: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }]
]

const torch = startTorchReference(THREADS)
if (typeof torch === 'string') console.log(torch)
else console.log(`reference: ${torch.description}`)

console.log(`\noptimizer step, mlp-large parameter count, ${ROUNDS} rounds of ${STEPS} steps each side, interleaved`)
console.log(['optimizer'.padEnd(20), 'ours ns/param'.padStart(22), 'PyTorch ns/param'.padStart(22), 'ours / PyTorch'.padStart(22)].join(' '))
for (const [name, reference] of configs) {
  const torchCase = typeof torch === 'string' ? undefined : await torch.prepare({ what: 'optimizer', model: 'mlp-large', batch: 64, optimizer: reference })
  const n = torchCase?.params ?? 1863690
  const optimizer = createOptimizer(OptimizerConfigSchema.parse(reference), n)
  const rng = createRng(7)
  const params = optimizer.hostParameters(Float32Array.from({ length: n }, () => rng.nextFloat() - 0.5))
  const grad = optimizer.gradientBuffer()
  for (let i = 0; i < n; i++) grad[i] = rng.nextFloat() - 0.5
  const ours: number[] = []
  const theirs: number[] = []
  const ratios: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const a = median(await timeCalls(() => optimizer.step(params, grad, reference.lr), STEPS, 3))
    ours.push((a * 1e6) / n)
    if (torchCase !== undefined && typeof torch !== 'string') {
      const b = median(await torch.time(torchCase.id, STEPS, 3))
      theirs.push((b * 1e6) / n)
      ratios.push(a / b)
    }
  }
  console.log([
    name.padEnd(20), spread(ours).padStart(22),
    (theirs.length > 0 ? spread(theirs) : '-').padStart(22),
    (ratios.length > 0 ? `${spread(ratios)}x` : '-').padStart(22)
  ].join(' '))
}
if (typeof torch !== 'string') await torch.close()
console.log('\ngoal: ours / PyTorch <= 1.5 (median)')
