/**
 * What divergence detection costs per step: `npx tsx bench/digest-cost.ts [--quick]`.
 * For each zoo model at batch 64: the median time of a training step (gradient + SGD-momentum
 * update, at least ~50 ms of steps a round) and, interleaved with it, of the step digest members
 * compare every step (stepDigest) and of the full sha256 (parameterDigest, what was computed every
 * step before). Printed: each digest as a percentage of the step, and what members compute per
 * step on average with the job default digestEvery (a full sha256 every k-th step, the sample on
 * the others: exchangedDigest).
 * Goal: that average below 2 % of the step for every model.
 * A VGG-11-sized vector (133 M values) is timed too, digests only.
 */
import '../polyfill.js'
import { JobConfigSchema, OptimizerConfigSchema } from '../config/job-config.js'
import { parameterDigest, stepDigest } from '../daemon/training/training-state.js'
import { product } from '../ml/autodiff/ir.js'
import { createRng } from '../ml/core/rng.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import { createOptimizer } from '../ml/optim/index.js'
import { createModel, zooModelNames } from '../ml/models/zoo.js'
import { median, spread, timeCalls } from './support/stats.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 5
const STEPS = quick ? 5 : 15
const BATCH = 64
const EVERY = JobConfigSchema.parse({}).digestEvery

console.log(`per-step digest cost, batch ${BATCH}, ${ROUNDS} interleaved rounds (step, stepDigest, sha256); median (range) over rounds`)
console.log(['model'.padEnd(14), 'params'.padStart(10), 'step ms'.padStart(22), 'stepDigest µs'.padStart(22), '% of step'.padStart(20), 'sha256 ms'.padStart(20), '% of step'.padStart(20), `every ${EVERY}: % of step`.padStart(22)].join(' '))
/** the largest stepDigest share of a step over the models (median over rounds, %) */
let worstPct = 0
for (const name of zooModelNames()) {
  const model = createModel(name)
  const computer = createOnnxGradientComputer(model, { intraOpThreads: 2 })
  const params = model.initParameters(1)
  const optimizer = createOptimizer(OptimizerConfigSchema.parse({ type: 'sgd', lr: 0.01, momentum: 0.9 }), params.length)
  const rng = createRng(3)
  const inputs = Float32Array.from({ length: BATCH * product(model.sampleShape) }, () => rng.nextFloat())
  const labels = Int32Array.from({ length: BATCH }, () => rng.nextInt(model.numClasses))
  const batch = { size: BATCH, sampleShape: model.sampleShape, inputs, labels }
  const step = async (): Promise<void> => optimizer.step(params, (await computer.computeGradient(params, batch)).gradient, 0.01)
  // at least ~50 ms of steps a round: 15 of mlp's 0.35 ms steps swung a round's median 0.34-2.8 ms
  const steps = Math.max(STEPS, Math.ceil(50 / median(await timeCalls(step, 5, 5))))
  const stepMs: number[] = []
  const cheap: number[] = []
  const full: number[] = []
  let s = 0
  for (let round = 0; round < ROUNDS; round++) {
    stepMs.push(median(await timeCalls(step, steps, 1)))
    cheap.push(median(await timeCalls(() => stepDigest(params, s++), steps * 4, 2)))
    full.push(median(await timeCalls(() => parameterDigest(params), steps, 1)))
  }
  await computer.close()
  const pct = (xs: number[]): number[] => xs.map((x, i) => (100 * x) / stepMs[i])
  worstPct = Math.max(worstPct, median(pct(cheap)))
  console.log([
    name.padEnd(14), String(params.length).padStart(10), spread(stepMs).padStart(22), spread(cheap.map((x) => x * 1000), 1).padStart(22),
    spread(pct(cheap), 3).padStart(20), spread(full, 2).padStart(20), spread(pct(full), 1).padStart(20),
    spread(pct(full.map((f, i) => (f + (EVERY - 1) * cheap[i]) / EVERY)), 2).padStart(22)
  ].join(' '))
}
const vgg = new Float32Array(133_000_000)
const cheap = median(await timeCalls(() => stepDigest(vgg, 7), 20, 2))
const full = median(await timeCalls(() => parameterDigest(vgg), 3, 1))
console.log(`\nVGG-11-sized vector (133 M values): stepDigest ${(cheap * 1000).toFixed(1)} µs, sha256 ${full.toFixed(0)} ms (the vgg11 row above has its step)`)
console.log(`goal: stepDigest < 2 % of a step for every model (median): ${worstPct < 2 ? 'met' : 'NOT met'} (worst ${worstPct.toFixed(3)} %)`)
