/**
 * 16 peers behind one address (here 127.0.0.1; a NAT or containers on one host alike), all
 * dialing one hub at once, as a job's members do at its start (issue 20: a 16-peer demo never
 * left step 0). Every dial gets through (libp2p's default allowed 5 inbound connections a second
 * per address and reset the rest), and every peer receives the hub's gossip: gossipsub's IP
 * colocation penalty graylisted the peers past the 13th, so the coordinator's membership
 * announcements reached 6 of 16.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { PeerNode } from '../../protocols/node/index.js'
import { newNode, waitFor } from './peer-helpers.js'

const PEERS = 16
const TOPIC = 'crowd-test'

describe('a crowd of peers on one address', () => {
  const nodes: PeerNode[] = []
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (n) => { await n.stop().catch(() => {}) }))
  })

  it('all connect to the hub at once and all receive its gossip', async () => {
    const hub = await newNode()
    nodes.push(hub)
    await hub.start()
    hub.pubsub.subscribe(TOPIC)
    const crowd = await Promise.all(Array.from({ length: PEERS - 1 }, async () => await newNode()))
    nodes.push(...crowd)
    const received = new Map<string, Set<string>>()
    for (const node of crowd) {
      await node.start()
      node.pubsub.subscribe(TOPIC)
      const mine = new Set<string>()
      received.set(node.peerId.toString(), mine)
      node.pubsub.addEventListener('message', (event) => {
        if (event.detail.topic === TOPIC) mine.add(new TextDecoder().decode(event.detail.data))
      })
    }
    // every peer dials the hub at the same moment
    const dials = await Promise.allSettled(crowd.map(async (node) => await node.libp2p.dial(hub.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })))
    expect(dials.filter((d) => d.status === 'rejected').map((d) => String((d as PromiseRejectedResult).reason))).toEqual([])
    await waitFor(() => hub.pubsub.getSubscribers(TOPIC).length === PEERS - 1, 'the hub sees every subscription')
    // peer scores are refreshed on gossipsub's heartbeat (1 s): once they have been (3 s), each
    // peer must receive what the hub publishes, as a job's coordinator announces every second
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const deadline = Date.now() + 10_000
    let n = 0
    for (; Date.now() < deadline; n++) {
      await hub.pubsub.publish(TOPIC, new TextEncoder().encode(`announcement ${n}`))
      await new Promise((resolve) => setTimeout(resolve, 500))
      if ([...received.values()].every((got) => got.has(`announcement ${n}`))) break
    }
    const missing = [...received.entries()].filter(([, got]) => !got.has(`announcement ${n}`)).map(([id]) => id)
    expect(missing, `peers that missed announcement ${n}`).toEqual([])
  }, 60_000)
})
