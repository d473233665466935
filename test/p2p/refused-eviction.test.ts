/**
 * A member whose process dies (its port then refuses connections) is not waited out for the step
 * deadline: in a job's first steps that deadline is the 30 s warm-up, and with 3 missed steps to
 * evict, a crash there held the job ~90 s. A refused dial says the process is gone (a cut link or
 * a host that is down times out instead, and is still waited for): each step counts its miss at
 * once, and the coordinator evicts it within seconds; in an asynchronous job each averaging round
 * that waited for it did too.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import type { PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { daemonStarter, startTrainingMembers, useLocalDaemons } from './support/local-daemons.js'

/**
 * stops `crashed` without a leave (its listener closes with it) and waits up to 60 s for the
 * host's membership to drop it; asserts it did, within 20 s (the warm-up deadline alone is 30 s a
 * step: three of them before a refused port was a signal). Returns when it started waiting
 */
async function crashAndAwaitEviction (host: PeerDaemon, crashed: PeerDaemon): Promise<number> {
  const runner = host.session()!.runner()!
  const crashedId = crashed.peerId
  await crashed.stop({ leave: false })
  const started = Date.now()
  const evicted = (): boolean => !runner.membership().isMemberAt(crashedId, Number.MAX_SAFE_INTEGER)
  while (!evicted() && Date.now() - started < 60_000) await new Promise((resolve) => setTimeout(resolve, 100))
  const tookMs = Date.now() - started
  expect(evicted(), `still a member after ${tookMs} ms`).toBe(true)
  expect(tookMs).toBeLessThan(20_000)
  return started
}

describe('a member whose port refuses connections', () => {
  const local = useLocalDaemons('p2pmld-refused-eviction-')

  it('is evicted within seconds of its crash in the warm-up, and the job goes on without it', async () => {
    const job = parseJobConfig({
      id: `refused-eviction-${process.pid}`, model: 'mlp', epochs: 4, batchSize: 32, trainSamples: 3072, minPeers: 4,
      optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, aggregation: { rule: 'trimmed-mean', f: 1 }
    }, 'test job')
    const [host, member, , crashed] = await startTrainingMembers(daemonStarter(local, job), 4, 2)
    const runner = host.session()!.runner()!
    const crashedAt = runner.progress().step
    const started = await crashAndAwaitEviction(host, crashed)
    // and the job goes on with the three: steps past the crash on the host and on a member
    const past = runner.progress().step + 3
    while ((runner.progress().step < past || member.session()!.runner()!.progress().step < past) && Date.now() - started < 90_000) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(runner.progress().step, `host at ${runner.progress().step}, crash at ${crashedAt}`).toBeGreaterThanOrEqual(past)
    expect(member.session()!.runner()!.membership().isMemberAt(crashed.peerId, Number.MAX_SAFE_INTEGER)).toBe(false)
  }, 120_000)

  it('in an asynchronous job: evicted within seconds, not a warm-up deadline per averaging round', async () => {
    const job = parseJobConfig({
      id: `refused-eviction-async-${process.pid}`, model: 'mlp', epochs: 4, batchSize: 32, trainSamples: 3072, minPeers: 4,
      mode: 'async', maxStaleness: 4, averageEvery: 4,
      optimizer: { type: 'sgd', lr: 0.05, momentum: 0 }, aggregation: { rule: 'trimmed-mean', f: 1 }
    }, 'test job')
    const [host, , , crashed] = await startTrainingMembers(daemonStarter(local, job), 4, 2)
    await crashAndAwaitEviction(host, crashed)
  }, 120_000)
})
