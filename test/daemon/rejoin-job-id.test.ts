/**
 * A member evicted from its job re-joins that job, not another one its bootstrap peer (or the
 * broker) runs now: a reviewer's evicted broker member, its job over, joined another host's job
 * on the same broker and trained it. Real libp2p nodes on 127.0.0.1: a daemon hosting job B
 * answers the evicted member's question; the joiner must refuse it and keep asking. A member whose
 * view still names the asking peer as the coordinator (it joined as that peer stopped) is not an
 * answer either: joining through it dialled the peer itself, for ever ('Can not dial self').
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createJobJoiner, type JobJoiner, type JobJoinerOptions } from '../../daemon/peer/job-joiner.js'
import type { JobSession } from '../../daemon/peer/job-session.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { JOB_PROTOCOL, JobRequestSchema } from '../../protocols/job/job-protocol.js'
import { createPeerNode, parseMultiaddr, type PeerNode } from '../../protocols/node/index.js'
import { handleJsonRequests } from '../../protocols/request/json-request.js'

/**
 * The joiner of a daemon evicted from job A (what it reads of that session), asking `bootstrap`;
 * a session it would open is recorded in `opened`, then refused (no job runs here)
 */
function evictedFromJobA(node: PeerNode, key: PrivateKey, bootstrap: Multiaddr[], opened: string[], giveUp: Pick<JobJoinerOptions, 'rejoinGiveUpMs' | 'onRejoinGaveUp'> = {}): JobJoiner {
  const evicted = { jobId: 'job-a', sightings: new Map(), runner: () => undefined } as unknown as JobSession
  return createJobJoiner({
    node,
    log: silentLogger(),
    peerId: node.peerId.toString(),
    privateKey: key,
    bootstrapAddrs: bootstrap,
    session: () => evicted,
    openSession: async (jobId) => {
      opened.push(jobId)
      throw new Error('not in this test')
    },
    dropSession: async () => {},
    resume: async () => {},
    rememberMembers: async () => {},
    ...giveUp
  })
}

describe('a member evicted from its job', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })
  /** a started libp2p node on 127.0.0.1 with a fresh key, stopped after the test */
  const startedNode = async (): Promise<{ node: PeerNode, key: PrivateKey }> => {
    const key = await generateKeyPair('Ed25519')
    const node: PeerNode = await createPeerNode({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'] })
    await node.start()
    cleanups.push(async () => { await node.stop() })
    return { node, key }
  }

  it('asks its bootstrap peer again and again but does not join the other job that peer runs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rejoin-job-id-'))
    cleanups.push(async () => { await rm(root, { recursive: true, force: true }) })
    // job B waits for more members: it answers 'info' with itself
    const other: PeerDaemon = await createPeerDaemon({
      config: { dataDir: join(root, 'b'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], socketPath: join(root, 'b', 's.sock'), logLevel: 'silent', computeThreads: 1 },
      log: silentLogger(),
      job: parseJobConfig({ id: 'job-b', model: 'mlp', epochs: 1, minPeers: 3, trainSamples: 512 }),
      controlSocket: false
    })
    await other.start()
    cleanups.push(async () => { await other.stop() })

    const gone = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const { node, key } = await startedNode()
    const opened: string[] = []
    // the session of job A it was evicted from (what the joiner reads of it)
    // a member it knew that is gone (nothing listens on port 1), then job B's host
    const joiner = evictedFromJobA(node, key, [parseMultiaddr(`/ip4/127.0.0.1/tcp/1/p2p/${gone}`), ...other.addresses().map((a) => parseMultiaddr(a))], opened)
    cleanups.push(async () => { joiner.abort() })
    const rejoining = joiner.rejoin()
    const end = Date.now() + 10_000
    while (!/runs job job-b, not job-a \(the job this daemon was evicted from and re-joins\)/.test(joiner.stage() ?? '') && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(joiner.stage()).toMatch(/runs job job-b, not job-a \(the job this daemon was evicted from and re-joins\)/)
    // each address's failure is named, not only the last one's (a CI run's re-join showed only a
    // dead address's error while the live members' dial errors were what mattered)
    expect(joiner.stage()).toContain(`/ip4/127.0.0.1/tcp/1/p2p/${gone}: `)
    expect(opened).toEqual([])
    expect(joiner.busy()).toBe(true)
    joiner.abort()
    await rejoining
  }, 30_000)

  it('does not take an answer that names it as the coordinator (a member that missed its leave): it does not dial itself', async () => {
    const { node, key } = await startedNode()
    const selfId = node.peerId.toString()
    // a member of job A that joined as this peer stopped: its view still has this peer coordinating
    const { node: stale } = await startedNode()
    await handleJsonRequests(stale.libp2p, JOB_PROTOCOL, JobRequestSchema, async () => ({
      jobId: 'job-a',
      config: { id: 'job-a', model: 'mlp' },
      phase: 'training',
      step: 200,
      coordinator: { peerId: selfId, addrs: [] },
      membership: { version: 2, members: [{ peerId: selfId, joinStep: 0, leaveStep: null }, { peerId: stale.peerId.toString(), joinStep: 200, leaveStep: null }] }
    }))
    const opened: string[] = []
    const joiner = evictedFromJobA(node, key, stale.dialableAddrs().map((a) => parseMultiaddr(a)), opened)
    cleanups.push(async () => { joiner.abort() })
    const rejoining = joiner.rejoin()
    const named = /names this peer as job job-a's coordinator \(it has not heard that this peer left\)/
    const end = Date.now() + 10_000
    while (!named.test(joiner.stage() ?? '') && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100))
    // taken, the answer opened a session for job A and sent the join request to this peer itself
    expect(joiner.stage()).toMatch(named)
    expect(opened).toEqual([])
    joiner.abort()
    await rejoining
  }, 30_000)

  it('with rejoinGiveUpMs, gives up once nobody has answered for its job that long, and says why (--exit-when-done then exits 1)', async () => {
    const { node, key } = await startedNode()
    // its members finished the job and exited: nothing listens where they were
    const gone = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const gaveUp: Array<{ jobId: string, reason: string }> = []
    const joiner = evictedFromJobA(node, key, [parseMultiaddr(`/ip4/127.0.0.1/tcp/1/p2p/${gone}`)], [], { rejoinGiveUpMs: 2_000, onRejoinGaveUp: (jobId, reason) => { gaveUp.push({ jobId, reason }) } })
    cleanups.push(async () => { joiner.abort() })
    const started = Date.now()
    await joiner.rejoin()
    const tookMs = Date.now() - started
    expect(gaveUp).toHaveLength(1)
    expect(gaveUp[0].jobId).toBe('job-a')
    expect(gaveUp[0].reason).toMatch(/^no member answered for job job-a for 2 s \(its members may have finished it and stopped\): .*tcp\/1/)
    // not before the bound; after it, at the next try (the back-off reaches 2 s by then)
    expect(tookMs).toBeGreaterThanOrEqual(2_000)
    expect(tookMs).toBeLessThan(8_000)
    expect(joiner.busy()).toBe(false)
  }, 30_000)

  it('does not give up while a member answers for its job, even if joining it keeps failing', async () => {
    const { node, key } = await startedNode()
    const { node: member } = await startedNode()
    const memberId = member.peerId.toString()
    let asked = 0
    await handleJsonRequests(member.libp2p, JOB_PROTOCOL, JobRequestSchema, async () => {
      asked++
      return {
        jobId: 'job-a',
        config: { id: 'job-a', model: 'mlp' },
        phase: 'training',
        step: 40,
        coordinator: { peerId: memberId, addrs: [] },
        membership: { version: 3, members: [{ peerId: memberId, joinStep: 0, leaveStep: null }] }
      }
    })
    const opened: string[] = []
    const gaveUp: string[] = []
    // the join itself fails every time (this test's session refuses to open)
    const joiner = evictedFromJobA(node, key, member.dialableAddrs().map((a) => parseMultiaddr(a)), opened, { rejoinGiveUpMs: 1_000, onRejoinGaveUp: (jobId) => { gaveUp.push(jobId) } })
    cleanups.push(async () => { joiner.abort() })
    const rejoining = joiner.rejoin()
    // tries at 0, 0.5, 1.5 and 3.5 s: past the 1 s bound twice over
    const end = Date.now() + 15_000
    while (opened.length < 4 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(opened).toEqual(['job-a', 'job-a', 'job-a', 'job-a'])
    expect(asked).toBeGreaterThanOrEqual(4)
    expect(gaveUp).toEqual([])
    expect(joiner.busy()).toBe(true)
    joiner.abort()
    await rejoining
    expect(gaveUp).toEqual([])
  }, 30_000)
})
