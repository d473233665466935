/**
 * A runner that starts from a state (a joiner, a re-sync) keeps the gradients of the steps it is
 * about to run. In async mode the wire tags a step's gradient 2t and its averaging round 2t + 1;
 * the runner set its collector's floor to the state's step, in steps, so a state past step 136
 * (the async window: 2 x (maxStaleness + 64) tags) put the tags it was about to collect beyond
 * the window: a joiner whose first step was an averaging round dropped every member's change of
 * it ('parameter averaging skipped: ... 1 arrived'), and of the next round too, then diverged and
 * re-synced (a walk: joined at step 199, re-synced at 207).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createJobRunner, type JobNetwork, type JobRunner } from '../../daemon/job/job-runner.js'
import { averagingTag, gradientTag } from '../../daemon/training/async-trainer.js'
import { createJobRuntime, type JobRuntime } from '../../daemon/training/job-runtime.js'

const offline: JobNetwork = {
  sendGradient: async () => {},
  announceMembership: async () => {},
  fetchSnapshot: async () => { throw new Error('offline') },
  queryDigest: async () => { throw new Error('offline') }
}

describe('a runner started from a state at a late step, async mode', () => {
  const runtimes: JobRuntime[] = []
  const runners: JobRunner[] = []
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop()
    for (const rt of runtimes.splice(0)) await rt.close()
  })

  it('keeps the gradients and averaging-round changes of the steps it is about to run', async () => {
    const config = parseJobConfig({
      id: 'async-window', model: 'mlp', dataset: 'mnist', trainSamples: 256, batchSize: 32, epochs: 100, minPeers: 2,
      mode: 'async', maxStaleness: 4, averageEvery: 8, optimizer: { type: 'sgd', lr: 0.05, momentum: 0 }, aggregation: { rule: 'mean', f: 0 }
    })
    const runtime = await createJobRuntime(config)
    runtimes.push(runtime)
    const host = createJobRunner({ selfId: 'host', runtime, network: offline, log: silentLogger(), host: true })
    runners.push(host)
    const step = 199
    const joiner = createJobRunner({ selfId: 'joiner', runtime, network: offline, log: silentLogger(), host: false, snapshot: { ...host.currentSnapshot(), step } })
    runners.push(joiner)
    const from = (tag: number) => ({ step: tag, sender: 'host', digest: 'd', gradient: new Float32Array(runtime.model.layout.totalSize) })
    // the round right after its first step, and the gradients of its first steps
    expect(joiner.offerGradient(from(averagingTag(step)))).toBe(true)
    expect(joiner.offerGradient(from(gradientTag(step)))).toBe(true)
    expect(joiner.offerGradient(from(gradientTag(step + 10)))).toBe(true)
    // not those of steps before its state
    expect(joiner.offerGradient(from(gradientTag(step - 1)))).toBe(false)
  }, 60_000)
})
