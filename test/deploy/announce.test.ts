/** --announce: the address a host behind NAT gives other peers, validated where it comes in. */
import { describe, expect, it } from 'vitest'
import { loadDaemonConfig } from '../../config/load.js'
import { ConfigError } from '../../config/job-config.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createPeerNode } from '../../protocols/node/index.js'

describe('--announce', () => {
  it('comes from flags, P2PMLD_ANNOUNCE or the config file, and defaults to none', () => {
    expect(loadDaemonConfig({ env: {}, flags: {} }).announce).toBeUndefined()
    expect(loadDaemonConfig({ env: {}, flags: { announce: ['/ip4/203.0.113.7/tcp/4001'] } }).announce).toEqual(['/ip4/203.0.113.7/tcp/4001'])
    expect(loadDaemonConfig({ env: { P2PMLD_ANNOUNCE: '/ip4/203.0.113.7/tcp/4001,/dns4/peer.example.com/tcp/4001' }, flags: {} }).announce)
      .toEqual(['/ip4/203.0.113.7/tcp/4001', '/dns4/peer.example.com/tcp/4001'])
  })

  it('refuses an address nobody can dial, naming the flag and the fix', () => {
    for (const bad of ['/ip4/0.0.0.0/tcp/4001', '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo', '/ip4/203.0.113.7/udp/4001', 'nonsense']) {
      expect(() => loadDaemonConfig({ env: {}, flags: { announce: [bad] } }), bad).toThrow(ConfigError)
      expect(() => loadDaemonConfig({ env: {}, flags: { announce: [bad] } }), bad).toThrow(/^invalid flags:\n  --announce: /)
    }
    expect(() => loadDaemonConfig({ env: {}, flags: { announce: ['/ip4/0.0.0.0/tcp/4001'] } })).toThrow(/give the public IP and port, e\.g\. \/ip4\/203\.0\.113\.7\/tcp\/4001/)
  })

  it('a node gives out the announced address instead of its listen address', async () => {
    const node = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], announce: ['/ip4/203.0.113.7/tcp/4001'] })
    await node.start()
    try {
      expect(node.dialableAddrs()).toEqual([`/ip4/203.0.113.7/tcp/4001/p2p/${node.peerId.toString()}`])
    } finally {
      await node.stop()
    }
  })
})
