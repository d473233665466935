/**
 * A member of a reduce-scatter job (issue #20) vanishes mid-training without a word (its daemon
 * stops without announcing a leave, as a crash looks to the others): its parts stop coming, and
 * so do its results for the 3 of 5 slices it replicates. The others go on with the parts that
 * came (the deadline and quorum of the stream exchange), take those slices' medians over the 2
 * replicas left (f+1 of 2f+1) without waiting a second deadline for the gone member's results,
 * evict it after `evictAfterMissedSteps` missed steps, re-cut the slices among the 4 left and
 * finish with identical parameters and a trained model.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { accuracyOf, startCluster } from './cluster.js'

const DEADLINE_MS = 2000

describe('reduce-scatter when a member crashes', () => {
  it('the others evict it, re-cut the slices among themselves and finish with one digest', async () => {
    const job = parseJobConfig({
      id: 'reduce-scatter-crash', model: 'mlp', seed: 3, epochs: 3, batchSize: 64, trainSamples: 4096,
      stepDeadlineMs: DEADLINE_MS, evictAfterMissedSteps: 3,
      optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 }, compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 }, exchange: 'reduce-scatter', earlyStopping: { patience: 0 }
    })
    const cluster = await startCluster({ peers: 5, job })
    try {
      const host = cluster.daemons[0]
      while ((host.session()?.runner()?.progress().step ?? 0) < 4) await new Promise((resolve) => setTimeout(resolve, 20))
      const gone = cluster.peerIds[4]
      await cluster.daemons[4].stop({ leave: false })
      const peers = (await cluster.finished()).slice(0, 4)

      expect(peers.map((p) => p.failure)).toEqual([undefined, undefined, undefined, undefined])
      expect(new Set(peers.map((p) => p.result?.digest)).size).toBe(1)
      const reports = peers[0].reports
      const last = reports[reports.length - 1]
      expect(last.members).not.toContain(gone)
      expect(last.members).toHaveLength(4)
      // steps short of the gone member's parts: at most evictAfterMissedSteps (+1 for the step it died in)
      const short = reports.filter((r) => r.members.includes(gone) && !r.contributors.includes(gone))
      expect(short.length).toBeGreaterThan(0)
      expect(short.length).toBeLessThanOrEqual(4)
      // each of them waited one deadline for the parts, not a second one for the results
      for (const r of short) expect(r.stepMs).toBeLessThan(1.8 * DEADLINE_MS)
      console.log(`reduce-scatter crash: ${short.length} steps without the gone member (${short.map((r) => `${r.stepMs.toFixed(0)} ms`).join(', ')}), evicted; test accuracy ${accuracyOf(peers[0])}`)
      expect(accuracyOf(peers[0])).toBeGreaterThan(0.85)
    } finally {
      await cluster.stop()
    }
  }, 180_000)
})
