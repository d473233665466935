/**
 * Step time of 4 peers broken into stages, per codec: `npx tsx bench/step-stages.ts [--quick]`.
 *
 * Four real peer daemons in this process on 127.0.0.1 (the demo's set-up: real libp2p, one ORT
 * thread each, the 2 cores shared) train lenet5 for one short epoch with batch 32 per peer; the
 * stages are peer-0's (Table I of the paper). The step time is the median interval between
 * peer-0's steps. The baseline, measured in the same run, is one process training the same
 * job at the same global batch (128) with both cores: what the 4 peers' synchronous step costs
 * over computing the whole batch in one place, on one machine.
 *
 * Besides wall time: the process's CPU time per sample over the same steps (summed over the 4
 * peers, who share this process) against the one process's: the overhead of peer-to-peer
 * training that does not depend on how many cores the peers share.
 *
 * On one 2-core machine the 4 peers also share one Node main thread: ORT's run() is synchronous
 * there, so one peer's compute waits for the others' (their compute and receive stages include it).
 */
import './support/launcher-env.js'
import '../polyfill.js'
import { parseJobConfig, type JobConfig } from '../config/job-config.js'
import { runDemo } from '../daemon/demo/run-demo.js'
import { silentLogger } from '../daemon/logger.js'
import type { StageSummary } from '../daemon/metrics/stage-metrics.js'
import { runLocalTraining } from '../daemon/training/local-training.js'

const quick = process.argv.includes('--quick')
const PEERS = 4
const BATCH_PER_PEER = 32
// one epoch: 32 steps of 4 x 32 (16 in --quick)
const TRAIN_SAMPLES = (quick ? 16 : 32) * PEERS * BATCH_PER_PEER

const codecs = [
  { name: 'none (fp32)', compression: { codec: 'none' as const } },
  { name: 'fp16', compression: { codec: 'fp16' as const } },
  { name: 'qsgd 8-bit', compression: { codec: 'qsgd' as const, bits: 8 as const } },
  { name: 'qsgd 4-bit', compression: { codec: 'qsgd' as const, bits: 4 as const } }
]
const SHOWN = ['compute', 'compress', 'send', 'receive', 'aggregate', 'update'] as const

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]

/**
 * Median wall time between consecutive steps, the first two (session warm-up) left out; and the
 * process's CPU time (user + system) over the same steps per sample of the global batch. All
 * peers run in this process, so that CPU time is summed over the peers: the overhead of
 * peer-to-peer training that does not depend on how many cores the peers share.
 */
function stepTimer (samplesPerStep: number): { onStep: () => void, medianMs: () => number, cpuUsPerSample: () => number } {
  const at: number[] = []
  const cpu: number[] = []
  return {
    onStep: () => {
      at.push(performance.now())
      const c = process.cpuUsage()
      cpu.push(c.user + c.system)
    },
    medianMs: () => median(at.slice(2).map((t, i) => t - at[i + 1])),
    cpuUsPerSample: () => (cpu[cpu.length - 1] - cpu[1]) / ((cpu.length - 2) * samplesPerStep)
  }
}

function job (overrides: object): JobConfig {
  return parseJobConfig({
    model: 'lenet5',
    epochs: 1,
    trainSamples: TRAIN_SAMPLES,
    batchSize: BATCH_PER_PEER,
    optimizer: { type: 'sgd', lr: 0.03, momentum: 0.9 },
    ...overrides
  }, 'step-stages bench')
}

interface Row { name: string, stepMs: number, cpuUs: number, stages: Map<string, number> }
const byStage = (stages: readonly StageSummary[]): Map<string, number> => new Map(stages.map((s) => [s.stage, s.medianMs]))

const single = stepTimer(BATCH_PER_PEER * PEERS)
const local = await runLocalTraining(
  job({ batchSize: BATCH_PER_PEER * PEERS, compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 } }),
  { computeThreads: 2, log: silentLogger(), events: { onStep: single.onStep } }
)
if (local === undefined) throw new Error('the single-process baseline did not finish')
const baseline: Row = { name: `1 process, batch ${BATCH_PER_PEER * PEERS}`, stepMs: single.medianMs(), cpuUs: single.cpuUsPerSample(), stages: byStage(local.stages) }

const rows: Row[] = []
for (const { name, compression } of codecs) {
  const timer = stepTimer(BATCH_PER_PEER * PEERS)
  const result = await runDemo({ peers: PEERS, job: job({ compression }), log: silentLogger(), events: { onStep: timer.onStep } })
  if (!result.identicalParameters) throw new Error(`${name}: the peers ended with different parameters`)
  rows.push({ name, stepMs: timer.medianMs(), cpuUs: timer.cpuUsPerSample(), stages: byStage(result.stages) })
}

console.log(`step time of ${PEERS} peers on loopback by stage (peer-0, median ms), lenet5, batch ${BATCH_PER_PEER} per peer, ${TRAIN_SAMPLES / (PEERS * BATCH_PER_PEER)} steps`)
console.log(`baseline: one process, the same global batch of ${BATCH_PER_PEER * PEERS}, 2 ORT threads\n`)
const header = ['run'.padEnd(22), 'step ms'.padStart(8), 'vs 1 process'.padStart(13), 'CPU µs/sample'.padStart(14), 'vs 1 process'.padStart(13), ...SHOWN.map((s) => s.padStart(10))].join(' ')
console.log(header)
for (const row of [baseline, ...rows]) {
  console.log([
    row.name.padEnd(22),
    row.stepMs.toFixed(1).padStart(8),
    `${(row.stepMs / baseline.stepMs).toFixed(2)}x`.padStart(13),
    row.cpuUs.toFixed(1).padStart(14),
    `${(row.cpuUs / baseline.cpuUs).toFixed(2)}x`.padStart(13),
    ...SHOWN.map((s) => (row.stages.get(s) ?? 0).toFixed(2).padStart(10))
  ].join(' '))
}
console.log('\nCPU µs/sample: process CPU time (user + system) from the 3rd to the last step over the samples of those steps; the 4 peers share this process, so it sums their CPU.')
console.log('send is not awaited by the step (it overlaps receive); receive is the wait for the other peers\' gradients.')
