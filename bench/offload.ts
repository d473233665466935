/**
 * Gradient time per step by where it is computed:
 * `npx tsx bench/offload.ts [--quick] [--models lenet5,vgg11] [--batches 256,1024] [--rounds 3]`.
 *
 * For lenet5 (MNIST, 1x28x28) and the paper's vgg11 (CIFAR-10's 3x32x32, 128.8 M parameters)
 * at batch 256 and 1024 by default: in process (ORT, 2 threads) vs the worker pool
 * with 2 workers and with N = cores - 1 (1 ORT thread each, one micro-batch per worker) vs Step
 * Functions -> Lambda on the local stand-ins (s3rver + the stand-in endpoint running the packaged
 * handler; 2 micro-batches, 2 warm function containers). Each configuration is timed in turn
 * inside every round (interleaved), 3 rounds; ratios are against in process in the same round
 * (range over the rounds). Also: the stand-in's overhead per invocation (a 16-sample mlp
 * micro-batch through Lambda Invoke and through one state machine execution, minus the same
 * micro-batch in process) and the bytes each step moves through the blob store.
 */
import '../polyfill.js'
import { OffloadConfigSchema, type OffloadConfigInput } from '../config/offload-config.js'
import { createLambdaClient } from '../functions/aws/clients.js'
import { ensureFunction } from '../functions/aws/ensure-resources.js'
import { createGradientComputer } from '../functions/create-gradient-computer.js'
import type { OffloadComputer } from '../functions/offload/offload-computer.js'
import { buildGradientPackage } from '../functions/package.js'
import { defaultPoolWorkers } from '../functions/pool/worker-pool.js'
import type { Batch, GradientComputer } from '../ml/core/types.js'
import { createRng } from '../ml/core/rng.js'
import type { ModelDefinition } from '../ml/models/model-definition.js'
import { createModel, followsDatasetShape } from '../ml/models/zoo.js'
import { applyEnv, startAwsStandIns } from '../test/support/aws-stand-ins/index.js'

const quick = process.argv.includes('--quick')
const argument = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at < 0 ? undefined : process.argv[at + 1]
}
const ROUNDS = Number(argument('rounds') ?? 3)
const STEPS = quick ? 2 : 3
const BATCHES = (argument('batches') ?? (quick ? '256' : '256,1024')).split(',').map(Number)
const MODELS = (argument('models') ?? 'lenet5,vgg11').split(',')
const CIFAR_SHAPE = [3, 32, 32]
const ROLE = 'arn:aws:iam::000000000000:role/bench'

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const fmt = (x: number, digits = 1): string => x.toFixed(digits)

function randomBatch(model: ModelDefinition, size: number): Batch {
  const rng = createRng(size)
  const sample = model.sampleShape.reduce((a, b) => a * b, 1)
  return { size, sampleShape: model.sampleShape, inputs: new Float32Array(size * sample).map(() => rng.nextFloat()), labels: Int32Array.from({ length: size }, () => rng.nextInt(model.numClasses)) }
}

async function timeSteps(computer: GradientComputer, params: Float32Array, batch: Batch, steps: number): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < steps; i++) {
    params[0] += 1e-6 // new parameters every step, as in training (uploaded again)
    const start = performance.now()
    await computer.computeGradient(params, batch)
    times.push(performance.now() - start)
  }
  return median(times)
}

const standIns = await startAwsStandIns({ concurrency: 2 })
applyEnv(standIns.env)
process.stderr.write('building and deploying the gradient function to the stand-in...\n')
const lambda = createLambdaClient()
await ensureFunction(lambda, { name: 'p2pmld-gradient', zip: (await buildGradientPackage()).zip, roleArn: ROLE, timeoutSeconds: 300 })
lambda.destroy()

const aws = { bucket: standIns.bucket, prefix: 'bench/', minMicroBatchSize: 1, timeoutSeconds: 300 }
const nWorkers = defaultPoolWorkers()
const configs: Array<{ name: string, offload: OffloadConfigInput | undefined }> = [
  { name: 'in process (2 threads)', offload: undefined },
  { name: 'pool, 2 workers', offload: { mode: 'pool', workers: 2, minMicroBatchSize: 1 } },
  ...(nWorkers !== 2 ? [{ name: `pool, N=${nWorkers} workers`, offload: { mode: 'pool' as const, workers: nWorkers, minMicroBatchSize: 1 } }] : []),
  { name: 'stepfunctions stand-in, 2 micro-batches', offload: { mode: 'stepfunctions', ...aws, roleArn: ROLE, microBatches: 2 } }
]

process.stdout.write(`gradient time per step, median of ${STEPS} steps per round, ${ROUNDS} rounds interleaved; ratio = time / in process (range over rounds)\n`)
for (const modelName of MODELS) {
  const model = followsDatasetShape(modelName) ? createModel(modelName, CIFAR_SHAPE) : createModel(modelName)
  for (const size of BATCHES) {
    const batch = randomBatch(model, size)
    const params = model.initParameters(1)
    const computers: GradientComputer[] = []
    for (const c of configs) computers.push(await createGradientComputer(model, c.offload === undefined ? undefined : OffloadConfigSchema.parse(c.offload), { computeThreads: 2 }))
    // warm-up: sessions built, workers and function containers started
    for (const computer of computers) await timeSteps(computer, params, batch, 2)
    const times = configs.map(() => [] as number[])
    const before = computers.map((c) => 'stats' in c ? (c as OffloadComputer).stats() : undefined)
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < computers.length; i++) times[i].push(await timeSteps(computers[i], params, batch, STEPS))
    }
    process.stdout.write(`\n${modelName} (${model.layout.totalSize.toLocaleString('en')} parameters), batch ${size}\n`)
    configs.forEach((c, i) => {
      const ratios = times[i].map((t, r) => t / times[0][r])
      const stats = 'stats' in computers[i] ? (computers[i] as OffloadComputer).stats() : undefined
      const steps = stats === undefined || before[i] === undefined ? 0 : stats.steps - before[i]!.steps
      const bytes = stats === undefined || steps === 0 ? '' : `, blob store ${fmt((stats.bytesUploaded - before[i]!.bytesUploaded) / steps / 1e6, 2)} MB up + ${fmt((stats.bytesDownloaded - before[i]!.bytesDownloaded) / steps / 1e6, 2)} MB down per step`
      process.stdout.write(`  ${c.name.padEnd(42)} ${fmt(median(times[i])).padStart(8)} ms  x${fmt(median(ratios), 2)} (${fmt(Math.min(...ratios), 2)}-${fmt(Math.max(...ratios), 2)})${bytes}\n`)
    })
    for (const computer of computers) await computer.close()
  }
}

// per-invocation overhead of the stand-in path: one small micro-batch, minus its in-process time
{
  const model = createModel('mlp')
  const batch = randomBatch(model, 16)
  const params = model.initParameters(1)
  const modes: Array<{ name: string, offload: OffloadConfigInput | undefined }> = [
    { name: 'in process', offload: undefined },
    { name: 'lambda Invoke (stand-in)', offload: { mode: 'lambda', ...aws, microBatches: 1 } },
    { name: 'stepfunctions execution (stand-in)', offload: { mode: 'stepfunctions', ...aws, roleArn: ROLE, microBatches: 1 } }
  ]
  const computers: GradientComputer[] = []
  for (const m of modes) computers.push(await createGradientComputer(model, m.offload === undefined ? undefined : OffloadConfigSchema.parse(m.offload), { computeThreads: 1 }))
  for (const c of computers) await timeSteps(c, params, batch, 3)
  const times = modes.map(() => [] as number[])
  for (let round = 0; round < ROUNDS; round++) for (let i = 0; i < computers.length; i++) times[i].push(await timeSteps(computers[i], params, batch, 10))
  process.stdout.write('\noverhead per invocation (mlp, one 16-sample micro-batch; step time minus in process), median over rounds (range)\n')
  modes.forEach((m, i) => {
    if (i === 0) return process.stdout.write(`  ${m.name.padEnd(42)} ${fmt(median(times[0]), 2)} ms\n`) as unknown as void
    const over = times[i].map((t, r) => t - times[0][r])
    process.stdout.write(`  ${m.name.padEnd(42)} +${fmt(median(over), 1)} ms (${fmt(Math.min(...over), 1)}-${fmt(Math.max(...over), 1)})\n`)
  })
  for (const c of computers) await c.close()
}
await standIns.stop()
