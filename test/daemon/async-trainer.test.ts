/**
 * The asynchronous step's averaging round on either side of an even cut (split-brain guard,
 * step-quorum.ts): four members, cut a b | c d. The half holding the most senior member (a)
 * counts the other half missing, so its coordinator evicts them; the other half counts nobody
 * missing (before, both halves did, each evicted the other and trained on as a second job).
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createStepAggregation } from '../../daemon/job/aggregator-cache.js'
import { createGradientCollector } from '../../daemon/membership/gradient-collector.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { createStageRecorder } from '../../daemon/metrics/stage-metrics.js'
import { averagingTag, createAsyncTrainer } from '../../daemon/training/async-trainer.js'
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

async function averagingRound (selfId: string, heardFrom: string) {
  const view = new MembershipView()
  for (const m of ['a', 'b', 'c', 'd']) view.join(m, 0)
  const collector = createGradientCollector<InboundGradient>()
  const warnings: string[] = []
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
    log: { warn: (_o, msg) => warnings.push(msg), debug: () => {} }
  }
  // the one member of this side sends its change for the round after step 0
  collector.offer({ step: averagingTag(0), sender: heardFrom, digest: 'd', gradient: new Float32Array(D) })
  const outcome = await createAsyncTrainer(deps).runStep()
  if (outcome.kind !== 'completed') throw new Error(`step ended ${outcome.kind}`)
  return { report: outcome.report, warnings }
}

describe('an async averaging round across an even cut', () => {
  it('the half with the most senior member counts the other half missing', async () => {
    const { report, warnings } = await averagingRound('b', 'a')
    expect(report.missing).toEqual(['c', 'd'])
    expect(warnings).toEqual([])
  })

  it('the other half counts nobody missing, and says why', async () => {
    const { report, warnings } = await averagingRound('c', 'd')
    expect(report.missing).toEqual([])
    expect(warnings).toEqual(['averaging round heard from half of the members or fewer, without the most senior: this side of a cut counts nobody missing (split-brain guard)'])
  })
})
