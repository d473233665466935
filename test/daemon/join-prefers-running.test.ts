/**
 * A daemon joining through its bootstrap peers takes a job still going over a finished one: the
 * first peer asked may have finished its job (and run no other yet) while a later one runs the
 * job to join. A finished job is still taken when no peer asked runs another (its final state).
 * Real libp2p nodes on 127.0.0.1 answer the job protocol's 'info'.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { createJobJoiner } from '../../daemon/peer/job-joiner.js'
import { JOB_PROTOCOL, JobRequestSchema } from '../../protocols/job/job-protocol.js'
import { createPeerNode, parseMultiaddr, type PeerNode } from '../../protocols/node/index.js'
import { handleJsonRequests } from '../../protocols/request/json-request.js'

describe('joining through the bootstrap peers', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })
  const startedNode = async (): Promise<PeerNode> => {
    const node: PeerNode = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    await node.start()
    cleanups.push(async () => { await node.stop() })
    return node
  }
  /** a node answering 'info' for `jobId` in `phase`, coordinated by itself */
  const answering = async (jobId: string, phase: 'training' | 'finished'): Promise<Multiaddr[]> => {
    const node = await startedNode()
    const id = node.peerId.toString()
    await handleJsonRequests(node.libp2p, JOB_PROTOCOL, JobRequestSchema, async () => ({
      jobId,
      config: { id: jobId, model: 'mlp' },
      phase,
      step: 64,
      coordinator: { peerId: id, addrs: [] },
      membership: { version: 2, members: [{ peerId: id, joinStep: 0, leaveStep: null }] }
    }))
    return node.dialableAddrs().map((a) => parseMultiaddr(a))
  }
  /** the job the joiner opens a session for first (the session then refuses: not this test's concern) */
  const firstJobJoined = async (bootstrap: Multiaddr[]): Promise<string> => {
    const node = await startedNode()
    const opened: string[] = []
    const joiner = createJobJoiner({
      node,
      log: silentLogger(),
      peerId: node.peerId.toString(),
      privateKey: await generateKeyPair('Ed25519'),
      bootstrapAddrs: bootstrap,
      session: () => undefined,
      openSession: async (jobId) => {
        opened.push(jobId)
        throw new Error('not in this test')
      },
      dropSession: async () => {},
      resume: async () => {},
      rememberMembers: async () => {}
    })
    cleanups.push(async () => { joiner.abort() })
    const joining = joiner.joinThroughBootstrap()
    const end = Date.now() + 10_000
    while (opened.length === 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
    joiner.abort()
    await joining
    return opened[0]
  }

  it('takes the running job a later peer answers with, not the finished one the first peer names', async () => {
    const done = await answering('job-done', 'finished')
    const running = await answering('job-running', 'training')
    expect(await firstJobJoined([...done, ...running])).toBe('job-running')
  }, 30_000)

  it('takes the finished job when no peer runs another', async () => {
    expect(await firstJobJoined(await answering('job-done', 'finished'))).toBe('job-done')
  }, 30_000)
})
