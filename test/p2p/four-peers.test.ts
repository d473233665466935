/**
 * Four in-process peers on loopback, once per gradient exchange (job config `exchange`): every
 * gradient every step, identical parameters, the demo's accuracy; and gossipsub without relaying
 * sends about the bytes the direct streams send (relayed gossip sent ~3x).
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { runDemo } from '../../daemon/demo/run-demo.js'
import { silentLogger } from '../../daemon/logger.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'

describe('four peers on loopback', () => {
  const bytesPerStep = new Map<string, number>()

  for (const exchange of ['stream', 'gossipsub', 'reduce-scatter'] as const) {
    it(`train lenet5 to identical parameters, exchanging every gradient every step (exchange ${exchange})`, async () => {
      const reports: StepReport[] = []
      const job = parseJobConfig({
        id: `four-peers-${exchange}`,
        model: 'lenet5',
        epochs: 3,
        batchSize: 32,
        trainSamples: 4096,
        optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
        compression: { codec: 'qsgd', bits: 8 },
        aggregation: { rule: 'trimmed-mean', f: 1 },
        exchange
      })
      const result = await runDemo({ peers: 4, job, log: silentLogger(), events: { onStep: (r) => reports.push(r) } })

      // (a) every peer finished with bit-identical parameters
      expect(result.peers.every((p) => p.result !== undefined)).toBe(true)
      expect(result.identicalParameters).toBe(true)
      // (b) real learning: 3 epochs on 4096 digits
      for (const peer of result.peers) expect(peer.result!.test.accuracy).toBeGreaterThan(0.8)
      // (c) peer-0 aggregated all four gradients (reduce-scatter: all four parts of its slices) at every step, nobody was missing
      const stepsPerEpoch = Math.floor(4096 / (4 * 32))
      expect(reports.length).toBe(3 * stepsPerEpoch)
      for (const r of reports) {
        expect(r.contributors).toHaveLength(4)
        expect(r.missing).toEqual([])
        expect(new Set(r.peerDigests.values())).toEqual(new Set([r.digest]))
      }
      // a gossip re-send (a member not yet subscribed at the first publish) reaches everyone again:
      // the others drop their second copy as a duplicate
      const { duplicate = 0, ...rejected } = result.rejectedByReason
      expect(rejected).toEqual({})
      expect(duplicate).toBeLessThanOrEqual(exchange === 'stream' ? 0 : 12)
      bytesPerStep.set(exchange, Math.max(...result.bytesSentPerPeer) / reports.length)
    }, 180_000)
  }

  it('gossipsub sends each gradient once per member, as the streams do (no relaying)', () => {
    const stream = bytesPerStep.get('stream')
    const gossip = bytesPerStep.get('gossipsub')
    expect(stream).toBeDefined()
    expect(gossip).toBeDefined()
    console.log(`bytes sent per peer per step: stream ${(stream! / 1024).toFixed(0)} KiB, gossipsub ${(gossip! / 1024).toFixed(0)} KiB (x${(gossip! / stream!).toFixed(3)})`)
    expect(gossip! / stream!).toBeLessThan(1.15)
  })

  it('reduce-scatter sends 2 x 3 x 3/4 payloads per peer and step against the stream\'s 3 (it wins from 8 peers on)', () => {
    const stream = bytesPerStep.get('stream')
    const rs = bytesPerStep.get('reduce-scatter')
    expect(stream).toBeDefined()
    expect(rs).toBeDefined()
    console.log(`bytes sent per peer per step: stream ${(stream! / 1024).toFixed(0)} KiB, reduce-scatter ${(rs! / 1024).toFixed(0)} KiB (x${(rs! / stream!).toFixed(3)})`)
    expect(rs! / stream!).toBeGreaterThan(1.3)
    expect(rs! / stream!).toBeLessThan(1.6)
  })
})
