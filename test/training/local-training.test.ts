/**
 * `p2pmld train` (a one-member job) applies each gradient as computed: no quantization and no
 * "aggregation" of its own gradient, whatever codec and rule the job names. The result is the
 * same, bit for bit, as the plain loop gradient -> optimizer.step over the same batches.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createJobRuntime } from '../../daemon/training/job-runtime.js'
import { runLocalTraining } from '../../daemon/training/local-training.js'
import { parameterDigest } from '../../daemon/training/training-state.js'
import { epochPermutation, gatherBatch, shardBatchIndices } from '../../ml/data/dataset.js'
import { createOptimizer } from '../../ml/optim/index.js'

const BATCH = 32
const job = (compression: object, aggregation: object) => parseJobConfig({
  model: 'mlp',
  epochs: 1,
  trainSamples: 10 * BATCH,
  batchSize: BATCH,
  minPeers: 1,
  optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 },
  compression,
  aggregation
}, 'local-training test')

/** The plain loop: the gradient of each batch of epoch 0 straight into the optimizer. */
async function plainLoop(config: ReturnType<typeof job>): Promise<string> {
  const runtime = await createJobRuntime(config)
  try {
    const params = runtime.model.initParameters(config.seed)
    const optimizer = createOptimizer(config.optimizer, params.length)
    const perm = epochPermutation(runtime.train.size, config.seed, 0)
    for (let cursor = 0; cursor + BATCH <= runtime.train.size; cursor += BATCH) {
      const batch = gatherBatch(runtime.train, shardBatchIndices(perm, cursor, 0, 1, BATCH))
      const { gradient } = await runtime.computer.computeGradient(params, batch)
      optimizer.step(params, gradient, config.optimizer.lr)
    }
    return parameterDigest(params)
  } finally {
    await runtime.close()
  }
}

describe('local training: one contributor', () => {
  it('skips compress and aggregate and matches the plain loop bit for bit, also with qsgd and a robust rule named', async () => {
    const expected = await plainLoop(job({ codec: 'none' }, { rule: 'mean', f: 0 }))
    for (const config of [job({ codec: 'none' }, { rule: 'mean', f: 0 }), job({ codec: 'qsgd', bits: 4 }, { rule: 'median', f: 0 })]) {
      const result = await runLocalTraining(config, { log: silentLogger() })
      expect(result).toBeDefined()
      expect(result?.step).toBe(10)
      expect(result?.digest).toBe(expected)
      const stages = new Map(result?.stages.map((s) => [s.stage, s.count]))
      expect(stages.get('compute')).toBe(10)
      expect(stages.get('update')).toBe(10)
      expect(stages.get('compress') ?? 0).toBe(0)
      expect(stages.get('aggregate') ?? 0).toBe(0)
    }
  }, 60_000)

  it('refuses at once, naming the field, a rule that needs more gradients than its one (it would wait for ever)', async () => {
    const config = parseJobConfig({ model: 'mlp', epochs: 1, trainSamples: 10 * BATCH, batchSize: BATCH, minPeers: 3, aggregation: { rule: 'trimmed-mean', f: 1 } }, 'local-training test')
    await expect(runLocalTraining(config, { log: silentLogger() })).rejects.toThrow(/trimmed-mean with f=1 needs 3 gradients.*set aggregation\.f to 0/)
    // krum needs 3 gradients even with f = 0: the fix is another rule
    const krum = parseJobConfig({ model: 'mlp', epochs: 1, trainSamples: 10 * BATCH, batchSize: BATCH, minPeers: 3, aggregation: { rule: 'krum', f: 0 } }, 'local-training test')
    await expect(runLocalTraining(krum, { log: silentLogger() })).rejects.toThrow(/krum with f=0 needs 3 gradients.*set aggregation\.rule to mean/)
  })

  it('runs no test-only attack that names it by its peer id (a job\'s submitter cannot make a daemon Byzantine): it trains honestly and says so', async () => {
    const expected = await plainLoop(job({ codec: 'none' }, { rule: 'mean', f: 0 }))
    const warnings: string[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(String(JSON.parse(line).msg)) } })
    // 'local' is this one-member job's peer id; a scale attack of 1e30 diverged it at step 1
    const attacked = parseJobConfig({ ...job({ codec: 'none' }, { rule: 'mean', f: 0 }), attack: { peers: ['local'], kind: 'scale', magnitude: 1e30 } }, 'local-training test')
    const result = await runLocalTraining(attacked, { log })
    expect(result?.digest).toBe(expected)
    expect(warnings).toContain('the job names this peer in a test-only attack: ignored (only the demo\'s and the tests\' in-process peers run attacks); this peer stays honest')
    expect(warnings).not.toContain('this peer runs a test-only Byzantine attack')
  }, 60_000)

  it('runs the codec and the rule on its own gradient when asked (exchangeAlone): quantized, so other parameters', async () => {
    const config = job({ codec: 'qsgd', bits: 4 }, { rule: 'median', f: 0 })
    const plain = await plainLoop(config)
    const result = await runLocalTraining(config, { log: silentLogger(), exchangeAlone: true })
    expect(result?.step).toBe(10)
    const stages = new Map(result?.stages.map((s) => [s.stage, s.count]))
    expect(stages.get('compress')).toBe(10)
    expect(stages.get('aggregate')).toBe(10)
    // 4-bit QSGD is lossy: the parameters are not the plain loop's
    expect(result?.digest).not.toBe(plain)
  }, 60_000)
})
