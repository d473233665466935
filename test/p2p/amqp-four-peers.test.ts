import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { runDemo } from '../../daemon/demo/run-demo.js'
import { silentLogger } from '../../daemon/logger.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { brokerNames } from '../amqp/broker-names.js'

describe('four peers over the RabbitMQ broker', () => {
  it('train lenet5 to identical parameters in sync mode, every gradient every step, and leave no queues', async () => {
    const reports: StepReport[] = []
    const job = parseJobConfig({
      id: `amqp-four-${process.pid}`,
      transport: 'amqp',
      model: 'lenet5',
      epochs: 3,
      batchSize: 32,
      trainSamples: 4096,
      optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
      compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 },
      // every peer is alive and every gradient is asserted: the derived deadline let one step of a
      // loaded CI run go on with 3 of 4 (the libp2p four-peer and byzantine tests do the same)
      stepDeadlineMs: 30_000
    })
    const result = await runDemo({ peers: 4, job, log: silentLogger(), events: { onStep: (r) => reports.push(r) } })

    expect(result.peers.every((p) => p.result !== undefined)).toBe(true)
    expect(result.identicalParameters).toBe(true)
    for (const peer of result.peers) expect(peer.result!.test.accuracy).toBeGreaterThan(0.8)
    const stepsPerEpoch = Math.floor(4096 / (4 * 32))
    expect(reports.length).toBe(3 * stepsPerEpoch)
    for (const r of reports) {
      expect(r.contributors).toHaveLength(4)
      expect(r.missing).toEqual([])
      expect(new Set(r.peerDigests.values())).toEqual(new Set([r.digest]))
    }
    expect(result.rejectedByReason).toEqual({})
    // gradients went through the broker: every peer published 3 per step
    for (const bytes of result.bytesSentPerPeer) expect(bytes).toBeGreaterThan(3 * reports.length * 60_000)
    expect(brokerNames('queues', job.id!)).toEqual([])
    expect(brokerNames('exchanges', job.id!)).toEqual([])
  }, 180_000)
})
