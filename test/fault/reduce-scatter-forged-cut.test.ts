/**
 * Sliced (reduce-scatter) messages from a peer that lies about the cut, checked at the boundary:
 * a total of 60,000 slices (a slice plan holds a codec per slice: building one for every forged
 * total would cost the receiver memory and time) is refused before any plan is built (reason
 * 'slices'), and a
 * plausible total whose payload does not fit the cut is refused by the decoder. The 3-member job
 * goes on unharmed, every step with all three members' parts, to one digest.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createGradientExchange } from '../../protocols/gradient-exchange/index.js'
import { createPeerNode } from '../../protocols/node/index.js'
import { accuracyOf, startCluster } from './cluster.js'

const PARAMETERS = 784 * 128 + 128 + 128 * 10 + 10

describe('a forged reduce-scatter cut', () => {
  it('is refused at the boundary and the job goes on', async () => {
    const job = parseJobConfig({
      id: 'forged-cut', model: 'mlp', seed: 4, epochs: 2, batchSize: 64, trainSamples: 2048, minPeers: 3,
      optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 }, aggregation: { rule: 'trimmed-mean', f: 1 }, exchange: 'reduce-scatter'
    })
    const cluster = await startCluster({ peers: 3, job })
    const attacker = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [...cluster.bootstrap] })
    const exchange = createGradientExchange({ mode: 'stream', node: attacker, jobId: 'forged-cut', logger: silentLogger() })
    try {
      await attacker.start()
      await exchange.start()
      const host = cluster.daemons[0]
      while ((host.session()?.runner()?.progress().step ?? 0) < 2) await new Promise((resolve) => setTimeout(resolve, 20))
      const step = host.session()!.runner()!.progress().step + 1
      const forged = (total: number, payload: number, at: number): Parameters<typeof exchange.publish>[0] => ({
        jobId: 'forged-cut', step: at, sender: attacker.peerId.toString(), codec: 'qsgd', parameterCount: PARAMETERS,
        digest: new Uint8Array(32), payload: new Uint8Array(payload), slices: { phase: 'parts', total, first: 0, count: 1 }
      })
      const hostId = host.peerId
      expect((await exchange.publish(forged(60_000, 16, step), [hostId])).missed).toEqual([])
      expect((await exchange.publish(forged(3, 100, step + 1), [hostId])).missed).toEqual([])
      const peers = await cluster.finished()
      expect(peers.map((p) => p.failure)).toEqual([undefined, undefined, undefined])
      expect(new Set(peers.map((p) => p.result?.digest)).size).toBe(1)
      for (const r of peers[0].reports) expect(r.contributors).toHaveLength(3)
      // the forged total refused as such (no plan built), the misfit payload by the decoder
      expect(peers[0].rejections).toMatchObject({ slices: 1, payload: 1 })
      expect(accuracyOf(peers[0])).toBeGreaterThan(0.8)
    } finally {
      await exchange.stop().catch(() => {})
      await attacker.stop()
      await cluster.stop()
    }
  }, 120_000)
})
