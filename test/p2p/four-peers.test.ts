import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { runDemo } from '../../daemon/demo/run-demo.js'
import { silentLogger } from '../../daemon/logger.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'

describe('four peers on loopback', () => {
  it('train lenet5 to identical parameters, exchanging every gradient every step', async () => {
    const reports: StepReport[] = []
    const job = parseJobConfig({
      id: 'four-peers',
      model: 'lenet5',
      epochs: 3,
      batchSize: 32,
      trainSamples: 4096,
      optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
      compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 }
    })
    const result = await runDemo({ peers: 4, job, log: silentLogger(), events: { onStep: (r) => reports.push(r) } })

    // (a) every peer finished with bit-identical parameters
    expect(result.peers.every((p) => p.result !== undefined)).toBe(true)
    expect(result.identicalParameters).toBe(true)
    // (b) real learning: 3 epochs on 4096 digits
    for (const peer of result.peers) expect(peer.result!.test.accuracy).toBeGreaterThan(0.8)
    // (c) peer-0 aggregated all four gradients at every step, nobody was missing
    const stepsPerEpoch = Math.floor(4096 / (4 * 32))
    expect(reports.length).toBe(3 * stepsPerEpoch)
    for (const r of reports) {
      expect(r.contributors).toHaveLength(4)
      expect(r.missing).toEqual([])
      expect(new Set(r.peerDigests.values())).toEqual(new Set([r.digest]))
    }
    expect(result.rejectedByReason).toEqual({})
  }, 180_000)
})
