/**
 * The restart timings a daemon is given (config: restartGraceMs, restartStaggerMs) are the ones
 * its job joiner waits: two juniors restarted from their checkpoints, their senior gone and
 * unable to see each other (members.json has no address for them, as over the broker), resume
 * one rank at a time: the first after the grace, the second not before the grace plus the
 * stagger. Real libp2p nodes on 127.0.0.1; the resume itself is recorded, not run.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import type { RestartTimings } from '../../config/daemon-config.js'
import type { JobSnapshot } from '../../daemon/job/job-runner.js'
import { silentLogger } from '../../daemon/logger.js'
import { createJobJoiner, type JobJoiner } from '../../daemon/peer/job-joiner.js'
import type { KnownMembers } from '../../daemon/peer/known-members.js'
import { createPeerNode, type PeerNode } from '../../protocols/node/index.js'


describe('restart timings', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  /** a restarted junior's joiner on its own node; resolves with the ms from its start to its resume */
  async function restartedJunior(key: Awaited<ReturnType<typeof generateKeyPair>>, known: KnownMembers, timings: RestartTimings): Promise<{ joiner: JobJoiner, resumedAfter: Promise<number> }> {
    const node: PeerNode = await createPeerNode({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'] })
    await node.start()
    cleanups.push(async () => { await node.stop() })
    let resumed: (ms: number) => void = () => {}
    const resumedAfter = new Promise<number>((resolve) => { resumed = resolve })
    const started = Date.now()
    const joiner = createJobJoiner({
      node,
      log: silentLogger(),
      peerId: node.peerId.toString(),
      privateKey: key,
      bootstrapAddrs: [],
      restart: timings,
      session: () => undefined,
      openSession: async () => { throw new Error('not in this test') },
      dropSession: async () => {},
      resume: async () => { resumed(Date.now() - started) },
      rememberMembers: async () => {}
    })
    cleanups.push(async () => { joiner.abort() })
    void joiner.resumeOrRejoin({ step: 20, jobConfig: { id: known.jobId } } as unknown as JobSnapshot, known)
    return { joiner, resumedAfter }
  }

  // the second: a senior wait no longer than the grace, the least the config takes (a reviewer's
  // juniors both resumed at its end, 1 ms apart: it bounded every rank's wait without the stagger)
  for (const TIMINGS of [{ graceMs: 300, staggerMs: 3_000, seniorWaitMs: 10_000 }, { graceMs: 1_000, staggerMs: 3_000, seniorWaitMs: 1_000 }] satisfies RestartTimings[]) it(`a junior resumes after the grace, the next one not before the grace plus the stagger (${JSON.stringify(TIMINGS)})`, async () => {
    const keys = await Promise.all([0, 1, 2].map(async () => await generateKeyPair('Ed25519')))
    const [senior, first, second] = keys.map((k) => peerIdFromPrivateKey(k).toString())
    // admission order: the host (gone), then the two juniors; no addresses to ask them at
    const known: KnownMembers = { v: 1, jobId: 'restart-timings', members: [senior, first, second].map((peerId) => ({ peerId, addrs: [] })) }
    const [one, two] = await Promise.all([restartedJunior(keys[1], known, TIMINGS), restartedJunior(keys[2], known, TIMINGS)])
    const [firstAfter, secondAfter] = await Promise.all([one.resumedAfter, two.resumedAfter])
    expect(firstAfter).toBeGreaterThanOrEqual(TIMINGS.graceMs)
    expect(secondAfter).toBeGreaterThanOrEqual(TIMINGS.graceMs + TIMINGS.staggerMs)
    // the first did not wait the second's turn, nor the default grace (15 s)
    expect(firstAfter).toBeLessThan(TIMINGS.graceMs + TIMINGS.staggerMs)
    expect(secondAfter).toBeLessThan(15_000)
  }, 30_000)
})
