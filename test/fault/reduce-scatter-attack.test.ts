/**
 * Eight peers in the reduce-scatter exchange (issue #20), one of them (peer-7) Byzantine: it
 * sends its gradient's parts sign-flipped x10, and as the replica of 3 of the 8 slices it also
 * sends those slices' aggregates sign-flipped x10 (it corrupts what it aggregates). Every slice's
 * median over its 3 replicas drops the corrupt result, and the trimmed mean over the parts drops
 * the corrupt parts: the honest peers keep identical parameters and the accuracy of the same job
 * without the attacker, within the trimmed-mean bound of test/fault/byzantine.test.ts (3 points).
 * Each peer sends 2 x 3 x 7/8 = 5.25 payloads a step (parts, then results), not the stream
 * exchange's 7, and that figure does not grow with the number of peers (bench/scale-sim.ts).
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig, type JobConfig } from '../../config/job-config.js'
import { createCodec } from '../../ml/compress/index.js'
import { createModel } from '../../ml/models/zoo.js'
import { accuracyOf, runCluster, type ClusterPeerResult } from './cluster.js'

const PEERS = 8

const job = (attacked: boolean): JobConfig => parseJobConfig({
  id: `reduce-scatter-${attacked ? 'attacked' : 'clean'}`,
  model: 'mlp',
  seed: 1,
  epochs: 8,
  batchSize: 128,
  // every peer is alive: a long deadline keeps a loaded machine's hiccups from dropping parts
  stepDeadlineMs: 10_000,
  optimizer: { type: 'sgd', lr: 0.2, momentum: 0.9 },
  compression: { codec: 'qsgd', bits: 8 },
  aggregation: { rule: 'trimmed-mean', f: 1 },
  exchange: 'reduce-scatter',
  ...(attacked ? { attack: { peers: ['peer-7'], kind: 'sign-flip', magnitude: 10 } } : {})
})

/** the honest peers: every step aggregated all 8 members' parts, one digest at the end */
function honestAccuracy(peers: ClusterPeerResult[]): number {
  const honest = peers.slice(0, PEERS - 1)
  expect(honest.map((p) => p.failure)).toEqual(honest.map(() => undefined))
  const short = honest.flatMap((p) => p.reports.filter((r) => r.contributors.length < PEERS).map((r) => `${p.name} step ${r.step}: ${r.contributors.length}`))
  expect(short).toEqual([])
  expect(new Set(honest.map((p) => p.result?.digest)).size).toBe(1)
  return accuracyOf(honest[0])
}

describe('reduce-scatter with a Byzantine slice aggregator', () => {
  it('eight peers keep identical parameters and the clean accuracy when one corrupts its parts and its slices', async () => {
    const clean = await runCluster({ peers: PEERS, job: job(false) })
    const attacked = await runCluster({ peers: PEERS, job: job(true) })
    const cleanAccuracy = honestAccuracy(clean)
    const attackedAccuracy = honestAccuracy(attacked)
    // the attack changed the trajectory (the trimmed mean drops other values than without it)
    expect(attacked[0].result?.digest).not.toBe(clean[0].result?.digest)
    // the attacker ends with the honest peers' parameters too: it takes the same medians
    expect(attacked[PEERS - 1].result?.digest).toBe(attacked[0].result?.digest)

    const steps = attacked[0].reports.length
    const n = createModel('mlp').layout.totalSize
    const payload = createCodec({ codec: 'qsgd', bits: 8, bucketSize: 512 }).encodedSize(n)
    const perStep = attacked.slice(1).map((p) => p.bytesSent / steps / payload)
    console.log(`reduce-scatter, 8 peers: clean ${cleanAccuracy}, attacked ${attackedAccuracy}; payloads sent per peer per step ${Math.min(...perStep).toFixed(2)}-${Math.max(...perStep).toFixed(2)} (stream: 7)`)
    expect(cleanAccuracy).toBeGreaterThan(0.9)
    expect(cleanAccuracy - attackedAccuracy).toBeLessThanOrEqual(0.03 + 1e-9)
    // 5.25 payloads plus every other TCP byte (headers, heartbeats): 5.32-5.37 measured; the
    // streams send 7 (the host, peer-0, also re-sends to members that joined late: left out)
    for (const x of perStep) expect(x).toBeGreaterThan(5.2)
    for (const x of perStep) expect(x).toBeLessThan(6)
  }, 240_000)
})
