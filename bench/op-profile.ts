/**
 * Where a training step's time goes, by ONNX Runtime operator: `npx tsx bench/op-profile.ts
 * [model] [batch] [steps] [sample shape]` (default lenet5 64 50; model: a zoo name or a forward .onnx file;
 * sample shape, e.g. 3x32x32, for zoo models whose input follows the dataset; TOP=n lists n nodes;
 * NCHWC=0 profiles the portable graph, without NCHWc convolutions; THREADS=n intra-op threads, default 2). Runs the model's training graph with ORT's
 * profiler on (the engine's `profilePrefix`), then sums the trace's node events by operator type
 * over the timed steps (the first 5 are warm-up) and prints each type's ms per step and share, and
 * the slowest nodes with their input shapes. Profile before changing the graph (issue 16).
 */
import './support/launcher-env.js'
import '../polyfill.js'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRng } from '../ml/core/rng.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import { createModel } from '../ml/models/zoo.js'
import { loadOnnxModel } from '../ml/onnx/load-onnx-model.js'

const [name = 'lenet5', batchArg = '64', stepsArg = '50', shapeArg] = process.argv.slice(2)
const batch = Number(batchArg)
const steps = Number(stepsArg)
const WARMUP = 5
const threads = Number(process.env.THREADS ?? 2)
if (!Number.isInteger(threads) || threads < 1) throw new Error(`THREADS=${process.env.THREADS}: give a whole number of intra-op threads, 1 or more`)

const dir = mkdtempSync(join(tmpdir(), 'p2pmld-op-profile-'))
try {
  const model = name.endsWith('.onnx') ? await loadOnnxModel(name) : createModel(name, shapeArg?.split('x').map(Number))
  const computer = createOnnxGradientComputer(model, { intraOpThreads: threads, reuseGradientBuffer: true, nchwc: process.env.NCHWC !== '0', profilePrefix: join(dir, 'ort') })
  const params = model.initParameters(1)
  const rng = createRng(3)
  const sampleSize = model.sampleShape.reduce((a, b) => a * b, 1)
  const inputs = Float32Array.from({ length: batch * sampleSize }, () => rng.nextFloat())
  const labels = Int32Array.from({ length: batch }, () => rng.nextInt(model.numClasses))
  const started: number[] = []
  for (let i = 0; i < WARMUP + steps; i++) {
    started.push(performance.now())
    await computer.computeGradient(params, { size: batch, sampleShape: model.sampleShape, inputs, labels })
  }
  const wallMs = (performance.now() - started[WARMUP]) / steps
  await computer.close()

  interface TraceEvent { cat?: string, name?: string, dur?: number, ts?: number, args?: { op_name?: string, input_type_shape?: Array<Record<string, number[]>> } }
  const file = readdirSync(dir).find((f) => f.endsWith('.json'))
  if (file === undefined) throw new Error(`ONNX Runtime wrote no profile in ${dir}`)
  const events = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as TraceEvent[]).filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time'))
  // the runs are in order: skip the warm-up runs' share of the node events
  const perRun = Math.round(events.length / (WARMUP + steps))
  const timed = events.slice(perRun * WARMUP)
  const byOp = new Map<string, number>()
  /** node runs per operator type over the timed steps: ORT's per-node overhead scales with them */
  const runsByOp = new Map<string, number>()
  const byNode = new Map<string, number>()
  /** each node's input shapes, e.g. 64x16x8x8 3x1x3x3 */
  const shapes = new Map<string, string>()
  for (const e of timed) {
    const op = e.args?.op_name ?? '?'
    byOp.set(op, (byOp.get(op) ?? 0) + (e.dur ?? 0))
    runsByOp.set(op, (runsByOp.get(op) ?? 0) + 1)
    const node = `${op} ${e.name?.replace(/_kernel_time$/, '')}`
    byNode.set(node, (byNode.get(node) ?? 0) + (e.dur ?? 0))
    shapes.set(node, (e.args?.input_type_shape ?? []).map((t) => Object.values(t)[0]?.join('x') ?? '?').join(' '))
  }
  const total = [...byOp.values()].reduce((a, b) => a + b, 0)
  const ms = (us: number): string => (us / 1000 / steps).toFixed(3).padStart(8)
  console.log(`${name}, batch ${batch}, ${steps} steps (+${WARMUP} warm-up), ${threads} intra-op threads: wall ${wallMs.toFixed(2)} ms a step, operators ${(total / 1000 / steps).toFixed(2)} ms in ${perRun} nodes (profiling adds its own cost)`)
  console.log('\noperator type          ms/step   share   nodes')
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1])) console.log(`${op.padEnd(20)} ${ms(us)}   ${(100 * us / total).toFixed(1).padStart(5)} %   ${String(Math.round((runsByOp.get(op) ?? 0) / steps)).padStart(5)}`)
  console.log('\nslowest nodes                                      ms/step   input shapes')
  for (const [node, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 15))) console.log(`${node.slice(0, 50).padEnd(50)} ${ms(us)}   ${shapes.get(node) ?? ''}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
