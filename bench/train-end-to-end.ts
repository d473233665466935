/**
 * `p2pmld train` end to end against PyTorch's training loop: `npx tsx bench/train-end-to-end.ts
 * [--quick] [model:batch ...]` (rows to run, e.g. lenet5:256 or vgg11:64; default all).
 *
 * Ours: `runLocalTraining` (what `p2pmld train` runs: the job runner's whole step with its data
 * pipeline, gradient, update, stage timing and per-step digest, no peers), one epoch of WARMUP +
 * STEPS steps per round; the step time is the median interval between consecutive steps after
 * the first WARMUP (the epoch end's validation left out). mlp, lenet5 and mlp-large train on the
 * bundled MNIST; the paper's models (squeezenet1_1, mobilenet_v3_small, vgg11 from the zoo,
 * resnet18 as the ONNX file PyTorch exports with each BatchNorm folded, as a user's would be) on
 * a CIFAR-10-format directory of random images the bench writes (3x32x32, loaded and normalised
 * as CIFAR-10 is). PyTorch: the same model and SGD with momentum stepping through a shuffled
 * in-memory data set of that shape (x[perm[i:i+b]], its fastest loop), WARMUP untimed steps, then
 * STEPS timed one by one. Each row starts with one uncounted round of each side (in a fresh
 * process the first job's steps run before V8 has compiled the step's code: mlp's first 20 steps
 * at b64 took 0.6-1.0 ms, later ones 0.42-0.5; PyTorch's first steps of a model are slow too).
 * Rounds alternate ours and PyTorch's (A, B, A, B); the ratio is taken per round from the two
 * medians and printed as median (min-max) over rounds.
 */
import './support/launcher-env.js'
import '../polyfill.js'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseJobConfig } from '../config/job-config.js'
import { silentLogger } from '../daemon/logger.js'
import { runLocalTraining } from '../daemon/training/local-training.js'
import { CIFAR10_RECORD_BYTES, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES } from '../ml/data/cifar10.js'
import { loadJobDatasets } from '../ml/data/job-datasets.js'
import { median, spread } from './support/stats.js'
import { PAPER_MODELS, startTorchReference, type PaperModel, type ReferenceOptimizer } from './support/torch-reference.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 5
const STEPS = quick ? 20 : 40
/** steps each side runs untimed at the start of every round (ours: of its job) */
const WARMUP = 5
const THREADS = 2
type Model = 'mlp' | 'mlp-large' | 'lenet5' | PaperModel
const ALL_ROWS: ReadonlyArray<readonly [Model, number]> = [
  ['mlp', 64], ['mlp', 256], ['lenet5', 64], ['lenet5', 256], ['mlp-large', 64], ['mlp-large', 256],
  ...PAPER_MODELS.map((m) => [m, 64] as const)
]
const picked = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const ROWS = picked.length === 0 ? ALL_ROWS : ALL_ROWS.filter(([m, b]) => picked.includes(`${m}:${b}`))
if (ROWS.length < picked.length) throw new Error(`rows ${picked.join(', ')}: pick from ${ALL_ROWS.map(([m, b]) => `${m}:${b}`).join(', ')}`)
const isPaper = (model: Model): model is PaperModel => (PAPER_MODELS as readonly string[]).includes(model)

/**
 * A CIFAR-10 binary directory of random images and labels in `dir`: 5 training files of
 * `perFile` records (a tenth of them carved off for validation) and a test file of 100.
 */
async function writeRandomCifar(dir: string, perFile: number): Promise<void> {
  const file = async (name: string, records: number): Promise<void> => {
    const bytes = randomBytes(records * CIFAR10_RECORD_BYTES)
    for (let i = 0; i < records; i++) bytes[i * CIFAR10_RECORD_BYTES] %= 10
    await writeFile(join(dir, name), bytes)
  }
  for (const name of CIFAR10_TRAIN_FILES) await file(name, perFile)
  await file(CIFAR10_TEST_FILE, 100)
}

const SGD = { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 } as const satisfies ReferenceOptimizer

/**
 * median ms between consecutive steps of a `p2pmld train` job of WARMUP + STEPS steps, after the
 * first WARMUP; `model`: a zoo name or an ONNX file, `dataset`: what the job config takes. One
 * epoch when the training split holds WARMUP + STEPS batches; else as many epochs of as many whole
 * batches as it holds (the bundled MNIST's 8000 samples are 31 steps at b256), and the interval
 * that spans an epoch's end (its validation) is left out.
 */
async function ourStepMs(model: string, batch: number, dataset: string): Promise<number> {
  const steps = WARMUP + STEPS
  const available = await trainSplitSize(dataset)
  const perEpoch = Math.min(steps, Math.floor(available / batch))
  if (perEpoch <= WARMUP) throw new Error(`${dataset}'s training split (${available} samples) holds too few batches of ${batch} for this bench`)
  const at: number[] = []
  const config = parseJobConfig({
    model, dataset, epochs: Math.ceil(steps / perEpoch), batchSize: batch, trainSamples: batch * perEpoch, optimizer: { type: 'sgd', lr: SGD.lr, momentum: SGD.momentum },
    // what `p2pmld train` sets: one process has nothing to compress or be robust to
    compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 }, earlyStopping: { patience: 0 }
  }, 'train-end-to-end bench')
  const result = await runLocalTraining(config, { computeThreads: THREADS, log: silentLogger(), events: { onStep: () => at.push(performance.now()) } })
  if (result === undefined) throw new Error(`${model} b${batch}: the run did not finish`)
  const intervals: number[] = []
  // step i's interval ends at at[i]; a step that starts an epoch (i a multiple of perEpoch) waited on the last one's end
  for (let i = WARMUP; i < Math.min(at.length, steps); i++) if (i % perEpoch !== 0) intervals.push(at[i] - at[i - 1])
  return median(intervals)
}

const splitSizes = new Map<string, number>()
/** samples in `dataset`'s training split as a job with the default seed sees it */
async function trainSplitSize(dataset: string): Promise<number> {
  let size = splitSizes.get(dataset)
  if (size === undefined) {
    size = (await loadJobDatasets(dataset, { seed: parseJobConfig({ model: 'mlp', dataset }, 'bench').seed })).train.size
    splitSizes.set(dataset, size)
  }
  return size
}

const torch = startTorchReference(THREADS)
if (typeof torch === 'string') console.log(torch)
else console.log(`reference: ${torch.description}`)
console.log(`p2pmld train (one process) vs PyTorch's loop, SGD momentum 0.9, ${THREADS} threads; ${ROUNDS} interleaved rounds of ${STEPS} steps per side after ${WARMUP} untimed, each row after one uncounted round of each side; mlp, lenet5, mlp-large on MNIST (1x28x28), the paper's models on random CIFAR-10-format images (3x32x32)`)
console.log(['model'.padEnd(18), 'batch'.padStart(5), 'ours ms/step'.padStart(22), 'PyTorch ms/step'.padStart(22), 'ours / PyTorch'.padStart(22)].join(' '))
const workDir = await mkdtemp(join(tmpdir(), 'p2pmld-bench-e2e-'))
const cifarDir = join(workDir, 'cifar-10')
try {
  if (ROWS.some(([model]) => isPaper(model))) {
    await mkdir(cifarDir)
    // enough for the largest batch's epoch once a tenth is carved off for validation
    const largest = Math.max(...ROWS.filter(([m]) => isPaper(m)).map(([, b]) => b))
    await writeRandomCifar(cifarDir, Math.ceil((largest * (WARMUP + STEPS) * 10) / 9 / CIFAR10_TRAIN_FILES.length) + 1)
  }
  for (const [model, batch] of ROWS) await row(model, batch)
} finally {
  await rm(workDir, { recursive: true, force: true })
}

async function row(model: Model, batch: number): Promise<void> {
  const exportTo = model === 'resnet18' ? join(workDir, 'resnet18.onnx') : undefined
  if (exportTo !== undefined && typeof torch === 'string') {
    console.log(`${model.padEnd(18)} ${String(batch).padStart(5)}  skipped: its ONNX file comes from PyTorch's export`)
    return
  }
  const torchCase = typeof torch === 'string' ? undefined : await torch.prepare({ what: 'train', model, batch, optimizer: SGD, samples: batch * (WARMUP + STEPS), exportTo })
  const [spec, dataset] = isPaper(model) ? [exportTo ?? model, cifarDir] : [model, 'mnist']
  const ours: number[] = []
  const theirs: number[] = []
  const ratios: number[] = []
  await ourStepMs(spec, batch, dataset)
  if (torchCase !== undefined && typeof torch !== 'string') await torch.time(torchCase.id, STEPS, WARMUP)
  for (let round = 0; round < ROUNDS; round++) {
    const a = await ourStepMs(spec, batch, dataset)
    ours.push(a)
    if (torchCase !== undefined && typeof torch !== 'string') {
      const b = median(await torch.time(torchCase.id, STEPS, WARMUP))
      theirs.push(b)
      ratios.push(a / b)
    }
  }
  console.log([
    model.padEnd(18), String(batch).padStart(5), spread(ours).padStart(22),
    (theirs.length > 0 ? spread(theirs) : '-').padStart(22),
    (ratios.length > 0 ? `${spread(ratios)}x` : '-').padStart(22)
  ].join(' '))
}
if (typeof torch !== 'string') await torch.close()
console.log('\ngoal: ours / PyTorch <= 1.0 for every row (#16)')
