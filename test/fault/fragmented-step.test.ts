/**
 * Four members, f = 1, and a step after which no two of them hold the same parameters: at step 5
 * each member loses the gradient of a different sender (peer i drops peer i+1's, as a lossy link
 * or a deadline missed under load would), so each aggregates another set of three. No digest then
 * has the f+1 holders a re-sync needs, and before reconciliation the members stayed apart for the
 * rest of the job (issue 13). Now every member reconciles at the next step: all four adopt the
 * coordinate-wise trimmed mean of the four states and go on identical.
 *
 * The same from a Byzantine member that sends each member another gradient (equivocation):
 * the honest members end every such step apart, reconcile, and finish identical.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { SETTLED_MLP_JOB } from '../support/settled-job.js'
import { accuracyOf, runCluster } from './cluster.js'

const FRAGMENTED_STEP = 5

const job = parseJobConfig({
  ...SETTLED_MLP_JOB,
  id: 'fragmented-step',
  seed: 11,
  epochs: 2,
  trainSamples: 4000,
  aggregation: { rule: 'trimmed-mean', f: 1 },
  // long enough that nothing but the injected drops is ever late on a loaded machine
  stepDeadlineMs: 2_000,
  evictAfterMissedSteps: 1000
})

describe('a step that leaves every member with different parameters (f = 1)', () => {
  it('is reconciled at the next step: the four members go on, and end, identical', async () => {
    const peers = await runCluster({
      peers: 4,
      job,
      peerOptions: (i, ids) => ({ faults: { seed: i, dropFraction: 1, senders: [ids[(i + 1) % ids.length]], steps: [FRAGMENTED_STEP, FRAGMENTED_STEP + 1] } })
    })
    const at = (step: number) => peers.map((p) => p.reports.find((r) => r.step === step))
    // the drops happened: each member aggregated three gradients at step 5, a different three
    const fragmented = at(FRAGMENTED_STEP)
    for (const r of fragmented) expect(r?.contributors).toHaveLength(3)
    expect(new Set(fragmented.map((r) => r?.contributors.join(','))).size).toBe(4)
    // so after it the four held four different states, and no f+1 = 2 of them the same
    const after = at(FRAGMENTED_STEP + 1)
    expect(new Set(after.map((r) => r?.digest)).size).toBe(4)
    // reconciled before the step after: from there on one state (a re-sync from a majority could
    // not have done it, there was none)
    const reconciled = at(FRAGMENTED_STEP + 2)
    expect(reconciled.every((r) => r !== undefined)).toBe(true)
    expect(new Set(reconciled.map((r) => r?.digest)).size).toBe(1)
    for (const p of peers) expect(p.result, p.name).toBeDefined()
    expect(new Set(peers.map((p) => p.result?.digest)).size).toBe(1)
    const accuracy = accuracyOf(peers[0])
    console.log(`fragmented-step: accuracy ${accuracy}, steps ${peers[0].result?.step}`)
    expect(accuracy).toBeGreaterThan(0.85)
  }, 240_000)

  it('an equivocating member (another gradient for each member) does not keep the honest members apart', async () => {
    const peers = await runCluster({
      peers: 4,
      job: { ...job, id: 'equivocation', attack: { peers: ['peer-3'], kind: 'equivocate', magnitude: 10 } }
    })
    const honest = peers.filter((p) => p.name !== 'peer-3')
    // the attack worked: some step began with the honest members holding three different states
    const split = honest[0].reports.filter((r) => new Set(honest.map((p) => p.reports.find((q) => q.step === r.step)?.digest)).size === 3)
    expect(split.length).toBeGreaterThan(0)
    for (const p of honest) expect(p.result, p.name).toBeDefined()
    expect(new Set(honest.map((p) => p.result?.digest)).size).toBe(1)
    const accuracy = accuracyOf(honest[0])
    console.log(`equivocation: accuracy ${accuracy}, steps ${honest[0].result?.step}, steps that began split ${split.length}`)
    expect(accuracy).toBeGreaterThan(0.85)
  }, 240_000)
})
