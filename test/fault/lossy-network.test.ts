/**
 * 4 peers, each dropping a seeded 10 % of its inbound gradient messages (the exchange's fault
 * injector, after validation: as if the network lost them). Steps go on with what arrived by the
 * configured deadline, the digest check re-syncs peers whose aggregate differed, and the
 * end-of-job digest agreement repairs a difference from the last step, which no later step sees.
 *
 * The accuracy is compared on a settled job and all 2,000 held-out digits (SETTLED_MLP_JOB): on
 * the earlier 124-step job (~93 %) seven lossy runs ended -1.7 to +0.5 points from the loss-free
 * one. Measured on this one: loss-free 94.5 %, lossy 94.15-94.9 % (seven runs).
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { heldOutAccuracy, SETTLED_MLP_JOB } from '../support/settled-job.js'
import { accuracyOf, runCluster, type ClusterPeerResult } from './cluster.js'

const DEADLINE_MS = 150

const job = parseJobConfig({
  ...SETTLED_MLP_JOB,
  id: 'lossy',
  seed: 7,
  trainSamples: 8000,
  // f = 0: peers that trust each other on a lossy link, the case these timing bounds are for.
  // With f >= 1 a state is adopted only when f+1 members vouch for its digest, and at 10 % loss
  // most steps leave the four with different subsets of gradients; they then reconcile their
  // states (state-reconciliation.ts; test/fault/fragmented-step.test.ts). Measured with f = 1 on
  // this job: it finishes with one digest and the loss-free accuracy, but reconciles at about
  // every other step and a member that fell behind waited up to 56 s: outside these bounds
  aggregation: { rule: 'trimmed-mean', f: 0 },
  stepDeadlineMs: DEADLINE_MS,
  // a member whose gradients were dropped is alive: drops must not turn into evictions (evicting
  // and re-admitting live members mid-job is another test's subject)
  evictAfterMissedSteps: 1000
})

function heldOutOf (peer: ClusterPeerResult): number {
  const last = peer.result?.history.at(-1)
  if (last === undefined || last.step !== peer.result?.step) throw new Error(`${peer.name}: no validation at the final step`)
  return heldOutAccuracy(accuracyOf(peer), last.validationAccuracy)
}

describe('lossy network: 10 % of inbound gradients dropped', () => {
  it('trains to the loss-free accuracy, steps proceed with what arrived, peers end identical', async () => {
    // the reference: a deadline long enough that a loaded machine never leaves a gradient out
    const clean = await runCluster({ peers: 4, job: { ...job, stepDeadlineMs: 30_000 } })
    const lossy = await runCluster({
      peers: 4,
      job,
      peerOptions: (i) => ({ faults: { seed: 1000 + i, dropFraction: 0.1 } })
    })
    const cleanAccuracy = heldOutOf(clean[0])
    const lossyAccuracies = lossy.map(heldOutOf)
    const stepsWithMissing = lossy.map((p) => p.reports.filter((r) => r.contributors.length < r.members.length).length)
    const longestWait = Math.max(...lossy.flatMap((p) => p.reports.map((r) => r.waitedMs)))
    const digests = new Set(lossy.map((p) => p.result?.digest))
    console.log(`lossy-network: held-out accuracy clean ${cleanAccuracy}, lossy ${lossyAccuracies.join(' ')} ` +
      `(test digits: clean ${accuracyOf(clean[0])}, lossy ${lossy.map(accuracyOf).join(' ')}); ` +
      `steps with fewer contributors per peer ${stepsWithMissing.join(' ')} of ${lossy.map((p) => p.reports.length).join(" ")} steps; ` +
      `longest wait ${longestWait.toFixed(0)} ms (deadline ${DEADLINE_MS}), steps over deadline+500 ms ${lossy.flatMap((p) => p.reports.filter((r) => r.waitedMs > DEADLINE_MS + 500)).length}; final digests ${digests.size}`)

    // the loss-free run is the reference: every gradient arrived at every step
    for (const p of clean) for (const r of p.reports) expect(r.contributors).toHaveLength(4)
    expect(new Set(clean.map((p) => p.result?.digest)).size).toBe(1)

    // every peer aggregated without some gradient at some steps: the drops really happened
    for (const n of stepsWithMissing) expect(n).toBeGreaterThan(0)
    // ... yet waited past the deadline only when fewer than a quorum (2 of 4) had arrived, e.g.
    // while two members re-synced: then one more deadline round, never an open-ended wait
    const overtime = lossy.flatMap((p) => p.reports.filter((r) => r.waitedMs > DEADLINE_MS + 500))
    expect(overtime.length).toBeLessThanOrEqual(Math.ceil(0.05 * lossy.length * lossy[0].reports.length))
    expect(longestWait).toBeLessThan(2 * DEADLINE_MS + 1000)
    // accuracy within 1 point of the loss-free run (on 2,000 digits: the epsilon only absorbs float
    // rounding of the difference)
    for (const a of lossyAccuracies) expect(Math.abs(a - cleanAccuracy)).toBeLessThanOrEqual(0.01 + 1e-9)
    // differing aggregates were repaired by the digest check: one set of parameters at the end
    expect(digests.size).toBe(1)
  }, 240_000)
})
