/**
 * Training throughput of the ONNX engine: `npx tsx bench/engine-throughput.ts [--quick]`.
 * For each zoo model and batch size, a training step = one computeGradient (forward, loss and
 * every gradient in one run()) + the SGD-momentum update; printed: median ms, samples/s and
 * GFLOP/s (fwd + bwd counted as 3x the forward's Gemm/Conv FLOPs; parameters in the optimizer's
 * memory, the gradient computed into it too, as the daemon runs them) against ONNX Runtime's own
 * rate on one float32 MatMul (1024^3, same threads) re-measured before each row.
 *
 * If /usr/bin/python3 has torch, PyTorch's step (zero_grad, forward, cross-entropy, backward,
 * opt.step() with the same SGD) is timed beside each row, interleaved: ROUNDS x (STEPS of ours,
 * STEPS of PyTorch's), the ratio taken per round from the two medians; printed as median
 * (min-max) over rounds. Without torch the PyTorch columns say so and the bench goes on.
 */
import './support/launcher-env.js'
import '../polyfill.js'
import ort from 'onnxruntime-node'
import { inferShapes } from '../ml/autodiff/training-graph.js'
import { attrInt, product } from '../ml/autodiff/ir.js'
import { createRng } from '../ml/core/rng.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import { OptimizerConfigSchema } from '../config/job-config.js'
import { createOptimizer } from '../ml/optim/index.js'
import { spread } from './support/stats.js'
import { startTorchReference, type ReferenceOptimizer } from './support/torch-reference.js'
import type { ModelDefinition } from '../ml/models/model-definition.js'
import { createModel } from '../ml/models/zoo.js'
import { GraphEmitter } from '../ml/onnx/graph-emitter.js'

const THREADS = 2
const quick = process.argv.includes('--quick')
const STEPS = quick ? 10 : 30
const ROUNDS = quick ? 3 : 5
const WARMUP = quick ? 2 : 5
const MODELS = ['mlp', 'lenet5', 'mlp-large'] as const
const BATCHES = [64, 256]

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Warm-up also runs for WARMUP_MS: ORT's first ~100 ms in a process (and right after another session's run) are several times slower. */
const WARMUP_MS = 300

async function timeMs(fn: () => Promise<unknown>, steps = STEPS, warmup = WARMUP): Promise<number> {
  const warmupStart = performance.now()
  for (let i = 0; i < warmup || performance.now() - warmupStart < WARMUP_MS; i++) await fn()
  const samples: number[] = []
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now()
    await fn()
    samples.push(performance.now() - t0)
  }
  return median(samples)
}

/** Forward FLOPs of the Gemm/MatMul/Conv nodes (2 per multiply-add); the rest is negligible. */
function forwardFlops(model: ModelDefinition, batch: number): number {
  const shapes = inferShapes(model.forward, model.layout, batch)
  let flops = 0
  for (const node of model.forward.nodes) {
    const out = shapes.get(node.outputs[0]) ?? []
    if (node.op === 'Gemm' || node.op === 'MatMul') {
      const a = shapes.get(node.inputs[0]) ?? []
      const k = attrInt(node, 'transA', 0) === 1 ? a[0] : a[1]
      flops += 2 * product(out) * k
    } else if (node.op === 'Conv') {
      const w = shapes.get(node.inputs[1]) ?? []
      flops += 2 * product(out) * product(w.slice(1))
    }
  }
  return flops
}

/** ORT's rate on one n^3 MatMul; the session is kept so the rate can be re-measured next to each row. */
async function createMatmulProbe(n: number): Promise<{ gflops(): Promise<number>, close(): Promise<void> }> {
  const emit = new GraphEmitter()
  emit.node('MatMul', ['a', 'b'], {}, ['c'])
  const io = (name: string) => ({ name, elementType: 'float32' as const, shape: [n, n] })
  const session = await ort.InferenceSession.create(emit.serialize([io('a'), io('b')], [io('c')], 'matmul'), {
    intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3
  })
  const rng = createRng(1)
  const a = new ort.Tensor('float32', new Float32Array(n * n).map(() => rng.nextFloat()), [n, n])
  const b = new ort.Tensor('float32', new Float32Array(n * n).map(() => rng.nextFloat()), [n, n])
  return {
    gflops: async () => (2 * n ** 3) / ((await timeMs(() => session.run({ a, b }), Math.max(10, STEPS / 2), 2)) * 1e6),
    close: () => session.release()
  }
}

const SGD: ReferenceOptimizer = { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 }

interface Row { model: string, batch: number, ours: number[], theirs: number[], ratios: number[], gflops: number, baseline: number }

/** One row: ROUNDS x (STEPS of our step, STEPS of PyTorch's), medians per round. */
async function row(name: typeof MODELS[number], batch: number, baseline: number, torch: ReturnType<typeof startTorchReference>): Promise<Row> {
  const model = createModel(name)
  const computer = createOnnxGradientComputer(model, { intraOpThreads: THREADS, reuseGradientBuffer: true })
  const optimizer = createOptimizer(OptimizerConfigSchema.parse(SGD), model.layout.totalSize)
  const rng = createRng(batch)
  // as the daemon keeps them: parameters and the computed gradient in the optimizer's memory
  const params = optimizer.hostParameters(model.initParameters(1))
  const into = optimizer.localGradientBuffer()
  const inputs = new Float32Array(batch * product(model.sampleShape)).map(() => rng.nextFloat())
  const labels = Int32Array.from({ length: batch }, () => rng.nextInt(model.numClasses))
  const step = async (): Promise<void> => {
    const { gradient } = await computer.computeGradient(params, { size: batch, sampleShape: model.sampleShape, inputs, labels }, undefined, into)
    optimizer.step(params, gradient, SGD.lr)
  }
  const reference = typeof torch === 'string' ? undefined : await torch.prepare({ what: 'step', model: name, batch, optimizer: SGD })
  const ours: number[] = []
  const theirs: number[] = []
  const ratios: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const a = await timeMs(step, STEPS, round === 0 ? WARMUP : 2)
    ours.push(a)
    if (reference !== undefined && typeof torch !== 'string') {
      const b = median(await torch.time(reference.id, STEPS, round === 0 ? WARMUP : 2))
      theirs.push(b)
      ratios.push(a / b)
    }
  }
  await computer.close()
  return { model: name, batch, ours, theirs, ratios, gflops: (3 * forwardFlops(model, batch)) / (median(ours) * 1e6), baseline }
}

const torch = startTorchReference(THREADS)
console.log(typeof torch === 'string' ? torch : `reference: ${torch.description}`)
// the machine is shared and noisy: the MatMul baseline is re-measured right before each row
const probe = await createMatmulProbe(1024)
const rows: Row[] = []
for (const name of MODELS) {
  for (const batch of BATCHES) rows.push(await row(name, batch, await probe.gflops(), torch))
}
await probe.close()
if (typeof torch !== 'string') await torch.close()
const baselines = rows.map((r) => r.baseline)
console.log(`baseline: ORT MatMul 1024^3 float32, ${THREADS} threads: ${median(baselines).toFixed(1)} GFLOP/s median (${Math.min(...baselines).toFixed(0)}-${Math.max(...baselines).toFixed(0)} over the rows)`)
console.log(`step = gradient + SGD-momentum update; ${ROUNDS} interleaved rounds of ${STEPS} steps per side; median (min-max) over rounds\n`)
console.log(['model'.padEnd(10), 'batch'.padStart(5), 'ours ms/step'.padStart(24), 'samples/s'.padStart(10), 'GFLOP/s'.padStart(8), 'vs MatMul'.padStart(10), 'PyTorch ms/step'.padStart(24), 'ours / PyTorch'.padStart(22)].join(' '))
for (const r of rows) {
  console.log([
    r.model.padEnd(10), String(r.batch).padStart(5), spread(r.ours).padStart(24), ((r.batch * 1000) / median(r.ours)).toFixed(0).padStart(10),
    r.gflops.toFixed(1).padStart(8), `${((100 * r.gflops) / r.baseline).toFixed(0)}%`.padStart(10),
    (r.theirs.length > 0 ? spread(r.theirs) : '-').padStart(24), (r.ratios.length > 0 ? `${spread(r.ratios)}x` : '-').padStart(22)
  ].join(' '))
}
console.log('\ngoal: ours / PyTorch <= 1.0 for every row')
