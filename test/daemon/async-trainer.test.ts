/**
 * The asynchronous step's averaging round on either side of an even cut (split-brain guard,
 * step-quorum.ts): four members, cut a b | c d. The half holding the most senior member (a)
 * counts the other half missing, so its coordinator evicts them. The other half waits, as a sync
 * step does, until the others answer or it learns it was evicted: before, both halves counted
 * misses and evicted each other; then the other half counted nobody missing but trained on, a
 * second job that finished on its own with other parameters when the cut outlasted the job.
 * Also: a membership change that took effect at steps a member already ran is counted again.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createStepAggregation } from '../../daemon/job/aggregator-cache.js'
import { createGradientCollector } from '../../daemon/membership/gradient-collector.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { createStageRecorder } from '../../daemon/metrics/stage-metrics.js'
import { averagingTag, createAsyncTrainer, gradientTag } from '../../daemon/training/async-trainer.js'
import type { InboundGradient, SyncTrainerDeps } from '../../daemon/training/sync-trainer.js'
import { createCodec } from '../../ml/compress/index.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { allFinite } from '../../ml/params.js'

const D = 8
// averaging after every step; mean (floor 1), so each half has enough changes to average
const config = parseJobConfig({
  model: 'mlp', batchSize: 2, minPeers: 1, stepDeadlineMs: 50, mode: 'async', averageEvery: 1, maxStaleness: 2,
  optimizer: { type: 'sgd', lr: 0.1, momentum: 0 }, compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 }
})
const train: Dataset = { name: 't', sampleShape: [1], numClasses: 2, size: 64, inputs: new Float32Array(64), labels: new Int32Array(64) }

function averagingRound (selfId: string, heardFrom: string) {
  const view = new MembershipView()
  for (const m of ['a', 'b', 'c', 'd']) view.join(m, 0)
  const collector = createGradientCollector<InboundGradient>()
  const warnings: string[] = []
  const waiting: Array<[string | undefined, string | undefined]> = []
  const progress = { step: 0, epoch: 0, cursor: 0, lr: 0.1, epochLossSum: 0, epochLossCount: 0 }
  const deps: SyncTrainerDeps = {
    selfId,
    config,
    train,
    computer: { computeGradient: async () => ({ gradient: new Float32Array(D).fill(1), loss: 1, correct: 0, size: 2 }), evaluate: async () => { throw new Error('unused') }, close: async () => {} },
    params: new Float32Array(D).fill(1),
    optimizer: { step: (p, g, lr) => { for (let i = 0; i < p.length; i++) p[i] -= lr * g[i] }, gradientBuffer: () => new Float32Array(D), localGradientBuffer: () => new Float32Array(D), allFinite },
    codec: createCodec(config.compression),
    aggregation: createStepAggregation(config.aggregation),
    progress,
    membership: { membersAt: (s) => view.membersAt(s), isMemberAt: (id, s) => view.isMemberAt(id, s), coordinatorAt: (s) => view.coordinatorAt(s) },
    collector,
    stages: createStageRecorder(),
    deadline: { current: () => 50, observe: () => {} },
    send: async () => {},
    onWaiting: (reason, stall) => { waiting.push([reason, stall]) },
    log: { info: () => {}, warn: (_o, msg) => warnings.push(msg), debug: () => {} }
  }
  const change = (sender: string): void => { collector.offer({ step: averagingTag(0), sender, digest: 'd', gradient: new Float32Array(D) }) }
  /** `sender`'s gradient of a later step: it went past the round */
  const laterGradient = (sender: string): void => { collector.offer({ step: gradientTag(3), sender, digest: 'd', gradient: new Float32Array(D) }) }
  // the one member of this side sends its change for the round after step 0
  change(heardFrom)
  let settled = false
  const outcome = createAsyncTrainer(deps).runStep().finally(() => { settled = true })
  return { outcome, view, change, laterGradient, warnings, waiting, settled: () => settled, params: deps.params }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

describe('an async averaging round across an even cut', () => {
  it('the half with the most senior member counts the other half missing', async () => {
    const round = averagingRound('b', 'a')
    const outcome = await round.outcome
    expect(outcome.kind === 'completed' && outcome.report.missing).toEqual(['c', 'd'])
    // every member trained on its batch of 2 at this step, whoever's gradient this one's update used
    // (the contributors: none aggregated read as '0 samples/s')
    expect(outcome.kind === 'completed' && outcome.report.samples).toBe(8)
    expect(round.warnings).toEqual([])
    expect(round.waiting).toEqual([])
  })

  it('the other half waits, saying why, and completes the round once the others answer (a link that returns)', async () => {
    const round = averagingRound('c', 'd')
    // three deadline rounds of 50 ms
    await sleep(200)
    expect(round.settled()).toBe(false)
    expect(round.waiting.length).toBeGreaterThan(0)
    expect(round.waiting[0]).toEqual([expect.stringMatching(/^2 of 4 members heard from at this step, without the most senior \(a\): half of a job or less does not step without it/), 'cut-off'])
    expect(round.warnings[0]).toMatch(/^averaging round: heard from half of the members or fewer, without the most senior: this side of a cut waits \(split-brain guard\)$/)
    round.change('a')
    round.change('b')
    const outcome = await round.outcome
    expect(outcome.kind === 'completed' && outcome.report.missing).toEqual([])
    // the wait is over in status too
    expect(round.waiting.at(-1)).toEqual([undefined, undefined])
  })

  it('the other half stops waiting when it learns it was evicted: the runner re-joins', async () => {
    const round = averagingRound('c', 'd')
    await sleep(120)
    expect(round.settled()).toBe(false)
    const before = Float32Array.from(round.params)
    // the coordinator's announcement, adopted once the link returns: c and d left at step 1
    round.view.leave('c', 1)
    round.view.leave('d', 1)
    expect((await round.outcome).kind).toBe('not-a-member')
    // the round changed nothing
    expect(Array.from(round.params)).toEqual(Array.from(before))
  })

  it('the other half stops waiting when a member it waits on is seen past the round (not cut off: it ran no such round), counting nobody missing', async () => {
    const round = averagingRound('c', 'd')
    await sleep(120)
    expect(round.settled()).toBe(false)
    round.laterGradient('a')
    const outcome = await round.outcome
    expect(outcome.kind === 'completed' && outcome.report.missing).toEqual([])
    expect(round.waiting.at(-1)).toEqual([undefined, undefined])
  })

  it('counts the batches of steps it ran again when a membership change took effect at them (its epoch ends where the others\' does)', async () => {
    const solo = parseJobConfig({ ...config, averageEvery: 100 })
    const view = new MembershipView()
    for (const m of ['a', 'b']) view.join(m, 0)
    const progress = { step: 0, epoch: 0, cursor: 0, lr: 0.1, epochLossSum: 0, epochLossCount: 0 }
    const infos: Array<{ delta?: number }> = []
    let version = 1
    const trainer = createAsyncTrainer({
      membershipVersion: () => version,
      selfId: 'a', config: solo, train, params: new Float32Array(D).fill(1), progress,
      computer: { computeGradient: async () => ({ gradient: new Float32Array(D).fill(1), loss: 1, correct: 0, size: 2 }), evaluate: async () => { throw new Error('unused') }, close: async () => {} },
      optimizer: { step: (p, g, lr) => { for (let i = 0; i < p.length; i++) p[i] -= lr * g[i] }, gradientBuffer: () => new Float32Array(D), localGradientBuffer: () => new Float32Array(D), allFinite },
      codec: createCodec(solo.compression), aggregation: createStepAggregation(solo.aggregation),
      membership: { membersAt: (s) => view.membersAt(s), isMemberAt: (id, s) => view.isMemberAt(id, s), coordinatorAt: (s) => view.coordinatorAt(s) },
      collector: createGradientCollector<InboundGradient>(), stages: createStageRecorder(), deadline: { current: () => 50, observe: () => {} },
      send: async () => {}, log: { info: (o) => infos.push(o), warn: () => {}, debug: () => {} }
    })
    for (let i = 0; i < 3; i++) expect((await trainer.runStep()).kind).toBe('completed')
    // steps 0-2 with two members of batch 2: 12 samples
    expect(progress.cursor).toBe(12)
    // 'b' was evicted from step 1, decided by a coordinator behind this peer: steps 1 and 2 took 2 samples each, not 4
    view.leave('b', 1)
    version++
    expect((await trainer.runStep()).kind).toBe('completed')
    expect(infos).toEqual([expect.objectContaining({ delta: -4 })])
    expect(progress.cursor).toBe(10)
    // counted once
    expect((await trainer.runStep()).kind).toBe('completed')
    expect(progress.cursor).toBe(12)
    expect(infos.length).toBe(1)
  })
})
