/**
 * `p2pmld train` end to end against PyTorch's training loop: `npx tsx bench/train-end-to-end.ts
 * [--quick] [model:batch ...]` (rows to run, e.g. lenet5:256; default all).
 *
 * Ours: `runLocalTraining` (what `p2pmld train` runs: the job runner's whole step with its data
 * pipeline, gradient, update, stage timing and per-step digest, no peers) on MNIST, one epoch of
 * WARMUP + STEPS steps per round; the step time is the median interval between consecutive steps
 * after the first WARMUP (the epoch end's validation left out). PyTorch: the same model and SGD
 * with momentum stepping through a shuffled in-memory data set (x[perm[i:i+b]], its fastest loop),
 * WARMUP untimed steps, then STEPS timed one by one. Each row starts with one uncounted round of
 * each side (in a fresh process the first job's steps run before V8 has compiled the step's code:
 * mlp's first 20 steps at b64 took 0.6-1.0 ms, later ones 0.42-0.5; PyTorch's first steps of a
 * model are slow too). Rounds alternate ours and PyTorch's (A, B, A, B); the ratio is taken per
 * round from the two medians and printed as median (min-max) over rounds.
 */
import './support/launcher-env.js'
import '../polyfill.js'
import { parseJobConfig } from '../config/job-config.js'
import { silentLogger } from '../daemon/logger.js'
import { runLocalTraining } from '../daemon/training/local-training.js'
import { median, spread } from './support/stats.js'
import { startTorchReference, type ReferenceOptimizer } from './support/torch-reference.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 5
const STEPS = quick ? 20 : 40
/** steps each side runs untimed at the start of every round (ours: of its job) */
const WARMUP = 5
const THREADS = 2
const ALL_ROWS: ReadonlyArray<readonly ['mlp' | 'mlp-large' | 'lenet5', number]> = [
  ['mlp', 64], ['mlp', 256], ['lenet5', 64], ['lenet5', 256], ['mlp-large', 64], ['mlp-large', 256]
]
const picked = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const ROWS = picked.length === 0 ? ALL_ROWS : ALL_ROWS.filter(([m, b]) => picked.includes(`${m}:${b}`))
if (ROWS.length < picked.length) throw new Error(`rows ${picked.join(', ')}: pick from ${ALL_ROWS.map(([m, b]) => `${m}:${b}`).join(', ')}`)
const SGD = { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 } as const satisfies ReferenceOptimizer

/** median ms between consecutive steps of one `p2pmld train` epoch of WARMUP + STEPS steps, after the first WARMUP */
async function ourStepMs(model: string, batch: number): Promise<number> {
  const at: number[] = []
  const config = parseJobConfig({
    model, epochs: 1, batchSize: batch, trainSamples: batch * (WARMUP + STEPS), optimizer: { type: 'sgd', lr: SGD.lr, momentum: SGD.momentum },
    // what `p2pmld train` sets: one process has nothing to compress or be robust to
    compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 }
  }, 'train-end-to-end bench')
  const result = await runLocalTraining(config, { computeThreads: THREADS, log: silentLogger(), events: { onStep: () => at.push(performance.now()) } })
  if (result === undefined) throw new Error(`${model} b${batch}: the run did not finish`)
  return median(at.slice(WARMUP).map((t, i) => t - at[i + WARMUP - 1]))
}

const torch = startTorchReference(THREADS)
if (typeof torch === 'string') console.log(torch)
else console.log(`reference: ${torch.description}`)
console.log(`p2pmld train (one process) vs PyTorch's loop, MNIST-shaped, SGD momentum 0.9, ${THREADS} threads; ${ROUNDS} interleaved rounds of ${STEPS} steps per side after ${WARMUP} untimed, each row after one uncounted round of each side`)
console.log(['model'.padEnd(10), 'batch'.padStart(5), 'ours ms/step'.padStart(22), 'PyTorch ms/step'.padStart(22), 'ours / PyTorch'.padStart(22)].join(' '))
for (const [model, batch] of ROWS) {
  const torchCase = typeof torch === 'string' ? undefined : await torch.prepare({ what: 'train', model, batch, optimizer: SGD, samples: batch * (WARMUP + STEPS) })
  const ours: number[] = []
  const theirs: number[] = []
  const ratios: number[] = []
  await ourStepMs(model, batch)
  if (torchCase !== undefined && typeof torch !== 'string') await torch.time(torchCase.id, STEPS, WARMUP)
  for (let round = 0; round < ROUNDS; round++) {
    const a = await ourStepMs(model, batch)
    ours.push(a)
    if (torchCase !== undefined && typeof torch !== 'string') {
      const b = median(await torch.time(torchCase.id, STEPS, WARMUP))
      theirs.push(b)
      ratios.push(a / b)
    }
  }
  console.log([
    model.padEnd(10), String(batch).padStart(5), spread(ours).padStart(22),
    (theirs.length > 0 ? spread(theirs) : '-').padStart(22),
    (ratios.length > 0 ? `${spread(ratios)}x` : '-').padStart(22)
  ].join(' '))
}
if (typeof torch !== 'string') await torch.close()
console.log('\ngoal: ours / PyTorch <= 1.0 for every row (#16)')
