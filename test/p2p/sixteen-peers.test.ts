/**
 * Sixteen peers in one process train together (issue #20: a 16-peer demo never left step 0), in
 * the reduce-scatter exchange, where each peer sends 2 x 3 x 15/16 = 5.6 payloads a step instead
 * of the streams' 15: every step aggregates all 16 members' parts, every peer ends with the same
 * parameters and learns. (Stream and gossipsub at 16 peers: `bench/scale-loopback.ts`.)
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { runDemo } from '../../daemon/demo/run-demo.js'
import { silentLogger } from '../../daemon/logger.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { createCodec } from '../../ml/compress/index.js'
import { createModel } from '../../ml/models/zoo.js'

const PEERS = 16

describe('sixteen peers on loopback', () => {
  it('train an mlp to identical parameters in the reduce-scatter exchange, each sending about 6 payloads a step against the streams\' 15', async () => {
    const reports: StepReport[] = []
    const job = parseJobConfig({
      id: 'sixteen-peers',
      model: 'mlp',
      epochs: 1,
      batchSize: 32,
      minPeers: PEERS,
      optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 },
      compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 },
      exchange: 'reduce-scatter',
      earlyStopping: { patience: 0 }
    })
    const result = await runDemo({ peers: PEERS, job, log: silentLogger(), events: { onStep: (r) => reports.push(r) } })

    expect(result.peers.filter((p) => p.result === undefined).map((p) => p.name)).toEqual([])
    expect(result.identicalParameters).toBe(true)
    const stepsPerEpoch = Math.floor(8000 / (PEERS * 32))
    expect(reports).toHaveLength(stepsPerEpoch)
    for (const r of reports) expect(r.contributors).toHaveLength(PEERS)
    const accuracy = result.peers[0].result!.test.accuracy
    const payload = createCodec({ codec: 'qsgd', bits: 8, bucketSize: 512 }).encodedSize(createModel('mlp').layout.totalSize)
    // peer-0 (the host) also re-sends step 0 to members that joined while it started
    const perStep = result.bytesSentPerPeer.slice(1).map((b) => b / reports.length / payload)
    console.log(`16 peers, reduce-scatter: ${reports.length} steps, test accuracy ${accuracy}, ${(result.wallMs / 1000).toFixed(1)} s, payloads per peer per step ${Math.min(...perStep).toFixed(2)}-${Math.max(...perStep).toFixed(2)} (streams: 15)`)
    // one epoch of 15 steps: 86.9 % measured (2 epochs: 89 %)
    expect(accuracy).toBeGreaterThan(0.8)
    // 5.6 payloads of gradients, plus every TCP byte besides (framing, re-sends at the start, and
    // heartbeats and membership gossip, which grow with wall time): 6.2-6.9 measured over this
    // job's 15 steps alone, 7.9 beside another test file; on a slow day 6.5-9.1 in runs of 40-50 s
    // and 10.9 in one of 79 s (the suite in CI). The streams send 15 gradient payloads alone, 16
    // with the rest (bench/scale-loopback.ts): under 12 still tells the two apart
    for (const x of perStep) expect(x).toBeLessThan(12)
    const { duplicate = 0, ...rejected } = result.rejectedByReason
    expect(rejected).toEqual({})
    expect(duplicate).toBeLessThanOrEqual(PEERS)
  }, 240_000)
})
