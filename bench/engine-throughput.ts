/**
 * Training throughput of the ONNX engine: `npx tsx bench/engine-throughput.ts [--quick]`.
 * For each zoo model and batch size: median time of one computeGradient (forward, loss and
 * every gradient in one run()), samples/s and GFLOP/s (fwd + bwd counted as 3x the forward's
 * Gemm/Conv FLOPs). The baseline, measured in the same run, is ONNX Runtime's own rate on one
 * large float32 MatMul (1024^3) with the same threads. If /usr/bin/python3 has torch, the same
 * models are timed there too (fwd + bwd) and printed as a ratio.
 */
import '../polyfill.js'
import { spawnSync } from 'node:child_process'
import ort from 'onnxruntime-node'
import { inferShapes } from '../ml/autodiff/training-graph.js'
import { attrInt, product } from '../ml/autodiff/ir.js'
import { createRng } from '../ml/core/rng.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import type { ModelDefinition } from '../ml/models/model-definition.js'
import { createModel } from '../ml/models/zoo.js'
import { GraphEmitter } from '../ml/onnx/graph-emitter.js'

const THREADS = 2
const quick = process.argv.includes('--quick')
const STEPS = quick ? 10 : 30
const WARMUP = quick ? 2 : 5
const MODELS = ['mlp', 'lenet5', 'mlp-large']
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

interface Row { model: string, batch: number, ms: number, samplesPerSecond: number, gflops: number, baseline: number }

async function engineRow(name: string, batch: number, baseline: number): Promise<Row> {
  const model = createModel(name)
  const computer = createOnnxGradientComputer(model, { intraOpThreads: THREADS })
  const rng = createRng(batch)
  const params = model.initParameters(1)
  const inputs = new Float32Array(batch * product(model.sampleShape)).map(() => rng.nextFloat())
  const labels = Int32Array.from({ length: batch }, () => rng.nextInt(model.numClasses))
  const ms = await timeMs(() => computer.computeGradient(params, { size: batch, sampleShape: model.sampleShape, inputs, labels }))
  await computer.close()
  return { model: name, batch, ms, samplesPerSecond: (batch * 1000) / ms, gflops: (3 * forwardFlops(model, batch)) / (ms * 1e6), baseline }
}

const TORCH_SCRIPT = `
import json, os, statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(${THREADS})
torch.manual_seed(0)
def mlp(h):
    layers, w = [nn.Flatten()], 784
    for x in h: layers += [nn.Linear(w, x), nn.ReLU()]; w = x
    return nn.Sequential(*layers, nn.Linear(w, 10))
def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
models = {'mlp': lambda: mlp([128]), 'lenet5': lenet5, 'mlp-large': lambda: mlp([1024, 1024])}
for name in ${JSON.stringify(MODELS)}:
    for batch in ${JSON.stringify(BATCHES)}:
        m = models[name]()
        x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
        def step():
            m.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y).backward()
        for _ in range(${WARMUP}): step()
        ts = []
        for _ in range(${STEPS}):
            t0 = time.perf_counter(); step(); ts.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({'model': name, 'batch': batch, 'ms': statistics.median(ts)}), flush=True)
`

function torchTimes(): Map<string, number> | string {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' })
  if (probe.status !== 0) return 'PyTorch is not installed for /usr/bin/python3: no PyTorch comparison'
  const blas = spawnSync('update-alternatives', ['--query', 'libblas.so.3-x86_64-linux-gnu'], { encoding: 'utf8' }).stdout ?? ''
  const active = /^Value: (.*)$/m.exec(blas)?.[1] ?? 'unknown'
  console.log(`PyTorch ${probe.stdout.trim()} found; system BLAS (used by its Linear layers): ${active}`)
  if (active.includes('/blas/')) console.log('  note: that is the slow reference BLAS; `apt-get install libopenblas0-pthread` gives the fair reference')
  const run = spawnSync('/usr/bin/python3', ['-c', TORCH_SCRIPT], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(THREADS) }, timeout: 600_000 })
  if (run.status !== 0) return `PyTorch run failed: ${run.stderr.slice(-500)}`
  const times = new Map<string, number>()
  for (const line of run.stdout.trim().split('\n')) {
    const r = JSON.parse(line) as { model: string, batch: number, ms: number }
    times.set(`${r.model}/${r.batch}`, r.ms)
  }
  return times
}

// the machine is shared and noisy: the MatMul baseline is re-measured right before each row
const probe = await createMatmulProbe(1024)
const rows: Row[] = []
for (const name of MODELS) {
  for (const batch of BATCHES) {
    const before = await probe.gflops()
    rows.push(await engineRow(name, batch, before))
  }
}
await probe.close()
const baselines = rows.map((r) => r.baseline)
console.log(`baseline: ORT MatMul 1024^3 float32, ${THREADS} threads: ${median(baselines).toFixed(1)} GFLOP/s median (${Math.min(...baselines).toFixed(0)}-${Math.max(...baselines).toFixed(0)} over the rows)`)
const torch = torchTimes()
if (typeof torch === 'string') console.log(torch)
console.log('\nmodel       batch   ms/step   samples/s   GFLOP/s   MatMul GFLOP/s   vs MatMul   PyTorch ms   ORT speed-up over PyTorch')
for (const r of rows) {
  const t = typeof torch === 'string' ? undefined : torch.get(`${r.model}/${r.batch}`)
  console.log([
    r.model.padEnd(11), String(r.batch).padStart(5), r.ms.toFixed(2).padStart(9), r.samplesPerSecond.toFixed(0).padStart(11),
    r.gflops.toFixed(1).padStart(9), r.baseline.toFixed(1).padStart(16), `${((100 * r.gflops) / r.baseline).toFixed(0)}%`.padStart(11),
    (t === undefined ? '-' : t.toFixed(2)).padStart(12), (t === undefined ? '-' : `${(t / r.ms).toFixed(2)}x`).padStart(27)
  ].join(' '))
}
const large = rows.filter((r) => r.model === 'mlp-large').map((r) => r.gflops / r.baseline)
console.log(`\ngoal: mlp-large step at >= 50% of the MatMul rate: ${large.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')} (batch ${BATCHES.join(', ')})`)
