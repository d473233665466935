/**
 * Asynchronous training (issue 18): four peers never wait for each other's gradients, use the
 * newest each member published within maxStaleness steps, average their parameters robustly
 * every averageEvery steps and at each epoch's end, and end with identical parameters, on both
 * transports.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig, type JobConfigInput } from '../../config/job-config.js'
import { runDemo } from '../../daemon/demo/run-demo.js'
import { silentLogger } from '../../daemon/logger.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { brokerNames } from '../amqp/broker-names.js'

const JOB: JobConfigInput = {
  model: 'lenet5', epochs: 3, batchSize: 32, trainSamples: 4096, mode: 'async', maxStaleness: 4, averageEvery: 8,
  optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 }, compression: { codec: 'qsgd', bits: 8 }, aggregation: { rule: 'trimmed-mean', f: 1 }
}

describe.each(['libp2p', 'amqp'] as const)('async mode over %s', (transport) => {
  it('four peers run every step without barriers but the averaging rounds, and end identical', async () => {
    const reports: StepReport[] = []
    const job = parseJobConfig({ ...JOB, transport, id: `async-${transport}-${process.pid}` })
    const result = await runDemo({ peers: 4, job, log: silentLogger(), events: { onStep: (r) => reports.push(r) } })
    expect(result.peers.every((p) => p.result !== undefined)).toBe(true)
    expect(result.identicalParameters).toBe(true)
    // Accuracy is NOT asserted: async on this job is unstable (test accuracy 26-56 % after 2-3
    // epochs in some runs, 0.8+ in others; see bench/transport.ts and the issue-18 report). Open
    // defect: the sync threshold is not reached reliably in async mode.
    for (const p of result.peers) expect(p.result!.test.accuracy).toBeGreaterThan(0.1)
    const stepsPerEpoch = Math.floor(4096 / (4 * 32))
    expect(reports.length).toBe(3 * stepsPerEpoch)
    // averaging rounds (the only barriers) ran every 8 steps and at epoch ends, with everyone's digest
    const rounds = reports.filter((r) => r.peerDigests.size > 0)
    expect(rounds.map((r) => r.step)).toEqual(reports.filter((r) => r.step % 8 === 7 || r.epochEnded).map((r) => r.step))
    // every round heard every member's anchor digest (a member whose anchor differed, having
    // aggregated another set in an earlier round, is re-synced by the divergence repair)
    for (const r of rounds) expect(r.peerDigests.size + r.missing.length).toBe(3)
    // between rounds a step waits for nobody, so nobody is ever counted missing there
    for (const r of reports.filter((x) => x.peerDigests.size === 0)) expect(r.missing).toEqual([])
    // (no rejection count here: a gradient that arrives after the staleness bound is dropped as 'stale' by design)
    if (transport === 'amqp') expect(brokerNames('queues', job.id!)).toEqual([])
  }, 240_000)
})
