/**
 * Auto-join (daemon/peer/job-discovery.ts) asks at most 3 connected peers per poll, in turn, so
 * an idle daemon's requests per poll do not grow with the number of peers (16 idle daemons each
 * asking all 15 others every 2 s kept two cores busy), and every peer is still asked within
 * ceil(P / 3) polls. The node is a stand-in that records each dial and answers none.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { createAutoJoin } from '../../daemon/peer/job-discovery.js'
import type { PeerNode } from '../../protocols/node/index.js'

describe('auto-join polling', () => {
  it('asks 3 connected peers a poll, each in turn, and every peer within ceil(P/3) polls', async () => {
    const peers = await Promise.all(Array.from({ length: 10 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const dialed: string[] = []
    const node = {
      connectedPeers: () => [...peers],
      libp2p: {
        dialProtocol: async (target: { toString(): string }) => {
          dialed.push(target.toString())
          throw new Error('not answering')
        }
      }
    } as unknown as PeerNode
    const autoJoin = createAutoJoin({ node, log: silentLogger(), isIdle: () => true, currentJobId: () => undefined, join: async () => {}, intervalMs: 20 })
    autoJoin.start()
    while (dialed.length < 12) await new Promise((resolve) => setTimeout(resolve, 5))
    autoJoin.stop()
    const polls = [0, 3, 6, 9].map((at) => dialed.slice(at, at + 3))
    for (const poll of polls) expect(new Set(poll).size).toBe(3)
    // four polls of 3 cover all 10 peers (ceil(10 / 3) = 4), in the sorted order, wrapping round
    const sorted = [...peers].sort()
    expect(dialed.slice(0, 12)).toEqual([...sorted, ...sorted].slice(0, 12))
  })
})
