/**
 * The step itself, one peer and two others played by the test through the collector: a step
 * aggregates only with the rule's minimum of gradients (waiting in deadline rounds, and telling
 * why), and a peer whose own gradient is not finite sends nothing that step instead of failing.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createStepAggregation } from '../../daemon/job/aggregator-cache.js'
import { createGradientCollector } from '../../daemon/membership/gradient-collector.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { createStageRecorder } from '../../daemon/metrics/stage-metrics.js'
import { createSyncTrainer, type InboundGradient, type OutboundGradient, type SyncTrainerDeps } from '../../daemon/training/sync-trainer.js'
import { createCodec } from '../../ml/compress/index.js'
import type { GradientComputer } from '../../ml/core/types.js'
import type { Dataset } from '../../ml/data/dataset.js'
import { allFinite } from '../../ml/params.js'

const D = 8
const config = parseJobConfig({ model: 'mlp', batchSize: 2, minPeers: 3, stepDeadlineMs: 50, quorum: 0.5, compression: { codec: 'fp16', bucketSize: 16 }, aggregation: { rule: 'trimmed-mean', f: 1 } })
const train: Dataset = { name: 't', sampleShape: [1], numClasses: 2, size: 64, inputs: new Float32Array(64), labels: new Int32Array(64) }

function setup (gradientAt: (step: number) => Float32Array, members = ['a', 'b', 'c'], aggregation = config.aggregation, selfId = 'a') {
  const view = new MembershipView()
  for (const m of members) view.join(m, 0)
  const collector = createGradientCollector<InboundGradient>()
  const sent: Array<{ message: OutboundGradient, recipients: readonly string[] }> = []
  const warnings: string[] = []
  const waiting: Array<string | undefined> = []
  const params = new Float32Array(D).fill(1)
  const gradientBuffer = new Float32Array(D)
  const localGradientBuffer = new Float32Array(D)
  const progress = { step: 0, epoch: 0, cursor: 0, lr: 0.1, epochLossSum: 0, epochLossCount: 0 }
  const computer: GradientComputer = {
    computeGradient: async () => ({ gradient: gradientAt(progress.step), loss: 1, correct: 0, size: 2 }),
    evaluate: async () => { throw new Error('unused') },
    close: async () => {}
  }
  const deps: SyncTrainerDeps = {
    selfId,
    config,
    train,
    computer,
    params,
    optimizer: { step: (p, g, lr) => { for (let i = 0; i < p.length; i++) p[i] -= lr * g[i] }, gradientBuffer: () => gradientBuffer, localGradientBuffer: () => localGradientBuffer, allFinite },
    codec: createCodec(config.compression),
    aggregation: createStepAggregation(aggregation),
    progress,
    membership: { membersAt: (s) => view.membersAt(s), isMemberAt: (id, s) => view.isMemberAt(id, s), coordinatorAt: (s) => view.coordinatorAt(s) },
    collector,
    stages: createStageRecorder(),
    deadline: { current: () => 50, observe: () => {} },
    send: async (message, recipients) => { sent.push({ message, recipients }) },
    onWaiting: (reason) => waiting.push(reason),
    log: { info: () => {}, warn: (_o, msg) => warnings.push(msg), debug: () => {} }
  }
  const offer = (sender: string, step: number, value: number): void => {
    collector.offer({ step, sender, digest: 'd', gradient: new Float32Array(D).fill(value) })
  }
  return { trainer: createSyncTrainer(deps), sent, warnings, waiting, params, offer, view }
}

describe('the step', () => {
  it('waits in deadline rounds until the rule has 2f+1 gradients, saying why, and aggregates them all', async () => {
    const t = setup(() => new Float32Array(D).fill(2))
    t.offer('b', 0, 4)
    // c arrives after three deadline rounds: with quorum 0.5 (2 of 3) the old code aggregated a and b alone
    setTimeout(() => t.offer('c', 0, 6), 170)
    const outcome = await t.trainer.runStep()
    expect(outcome.kind).toBe('completed')
    if (outcome.kind !== 'completed') return
    expect(outcome.report.contributors).toEqual(['a', 'b', 'c'])
    // the pace counts the batches aggregated: three of 2 samples
    expect(outcome.report.samples).toBe(6)
    // status names the member it waits on
    expect(t.waiting).toContain('trimmed-mean with f=1 needs 3 gradients, 2 arrived; waiting on c')
    expect(t.waiting.at(-1)).toBeUndefined()
    // the own gradient was re-sent to the one missing each round
    expect(t.sent.filter((s) => s.recipients.length === 1 && s.recipients[0] === 'c').length).toBeGreaterThan(0)
    // the middle of 2, 4, 6 (trimmed mean, f = 1), times lr 0.1
    expect(Array.from(t.params)).toEqual(Array.from({ length: D }, () => Math.fround(1 - 0.1 * 4)))
  })

  it('does not start a step with fewer live members than the rule needs', async () => {
    const t = setup(() => new Float32Array(D).fill(2), ['a', 'b'])
    const outcome = await t.trainer.runStep()
    expect(outcome).toEqual({ kind: 'too-few-members', step: 0, live: 2 })
    expect(t.waiting).toEqual(['trimmed-mean with f=1 needs 3 gradients, 2 live members'])
    expect(t.sent).toEqual([])
  })

  it('a non-finite own gradient is not sent: the step goes on with the others, and a later finite one is sent again', async () => {
    const nan = new Float32Array(D).fill(1)
    nan[3] = NaN
    const t = setup((step) => (step === 0 ? nan : new Float32Array(D).fill(1e30)), ['a', 'b', 'c', 'd'])
    t.offer('b', 0, 1)
    t.offer('c', 0, 2)
    t.offer('d', 0, 3)
    const first = await t.trainer.runStep()
    expect(first.kind).toBe('completed')
    if (first.kind === 'completed') expect(first.report.contributors).toEqual(['b', 'c', 'd'])
    expect(t.sent).toEqual([])
    expect(t.warnings.some((w) => /not finite: not sending/.test(w))).toBe(true)
    // 1e30 encodes under fp16's per-bucket scale (a plain half cast overflowed past 65504)
    t.offer('b', 1, 1)
    t.offer('c', 1, 2)
    t.offer('d', 1, 3)
    const second = await t.trainer.runStep()
    expect(second.kind).toBe('completed')
    expect(t.sent).toHaveLength(1)
    expect(t.sent[0].message.step).toBe(1)
  })

  it('alone, a non-finite gradient stops training as diverged (skipped, a job at lr 1e30 trained on NaN losses to its end)', async () => {
    const nan = new Float32Array(D).fill(1)
    nan[5] = NaN
    const t = setup((step) => (step === 0 ? new Float32Array(D).fill(1) : nan), ['a'], { ...config.aggregation, rule: 'mean', f: 0 })
    const first = await t.trainer.runStep()
    expect(first.kind).toBe('completed')
    expect(t.params[0]).toBeCloseTo(0.9)
    await expect(t.trainer.runStep()).rejects.toMatchObject({ name: 'TrainingDivergedError', step: 1, message: expect.stringMatching(/^the gradient of step 1 is not finite \(loss 1\) and it is the step's only gradient: training diverged \(lower the learning rate\)$/) })
    // nothing of the non-finite gradient reached the parameters
    expect(Array.from(t.params).every((p) => Math.abs(p - 0.9) < 1e-6)).toBe(true)
  })

  it('non-finite parameters stop training with the reason', async () => {
    const t = setup(() => new Float32Array(D).fill(NaN))
    t.params[0] = Infinity
    await expect(t.trainer.runStep()).rejects.toMatchObject({ name: 'TrainingDivergedError', step: 0, message: expect.stringMatching(/parameters are not finite/) })
  })

  describe('an even cut: only the half holding the most senior member steps (split-brain guard)', () => {
    // four members under mean (floor 1, quorum 0.5: 2 of 4 meet both), cut a b | c d. a joined
    // first, so it is the most senior; before the guard, both halves completed the step
    const mean = { ...config.aggregation, rule: 'mean' as const, f: 0 }

    it('the half with the most senior member completes the step on its two gradients', async () => {
      const t = setup(() => new Float32Array(D).fill(2), ['a', 'b', 'c', 'd'], mean, 'b')
      t.offer('a', 0, 4)
      const outcome = await t.trainer.runStep()
      expect(outcome.kind).toBe('completed')
      if (outcome.kind !== 'completed') return
      expect(outcome.report.contributors).toEqual(['a', 'b'])
      expect(t.waiting.filter((w) => w !== undefined)).toEqual([])
    })

    it('the other half waits, saying why, and steps once a member of the senior half is heard from', async () => {
      const t = setup(() => new Float32Array(D).fill(2), ['a', 'b', 'c', 'd'], mean, 'c')
      t.offer('d', 0, 4)
      setTimeout(() => t.offer('b', 0, 6), 170)
      const outcome = await t.trainer.runStep()
      expect(outcome.kind).toBe('completed')
      if (outcome.kind !== 'completed') return
      expect(outcome.report.contributors).toEqual(['b', 'c', 'd'])
      expect(t.waiting).toContain('2 of 4 members heard from at this step, without the most senior (a): half of a job or less does not step without it, ' +
        'so two halves cut apart by the network cannot both train on; waiting for the others to be reachable again: a cut link that returns, or a crashed member restarted (this side then catches up, or re-joins if they evicted it)')
      expect(t.warnings).toContain('heard from half of the members or fewer, without the most senior: this side of a cut waits (split-brain guard)')
      // mean of 2, 4, 6 times lr 0.1
      expect(Array.from(t.params)).toEqual(Array.from({ length: D }, () => Math.fround(1 - 0.1 * 4)))
    })
  })
})
