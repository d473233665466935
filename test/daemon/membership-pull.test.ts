/**
 * A member that refuses a newer membership from a peer it does not count as coordinator asks its
 * coordinator for the membership it holds, until its own is as new, and adopts it only from that
 * peer (test/e2e/coordinator-restart.test.ts runs the case that needed it with real daemons).
 */
import { describe, expect, it } from 'vitest'
import type { JobInfo, MembershipState } from '../../protocols/job/job-protocol.js'
import type { JobRunner } from '../../daemon/job/job-runner.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { createMembershipPull } from '../../daemon/peer/membership-pull.js'
import { silentLogger } from '../../daemon/logger.js'

/** the old coordinator `old` (alive again under its id), the new one `next`, and this peer `self` */
const stale = (): MembershipState => ({ version: 2, members: [{ peerId: 'old', joinStep: 0, leaveStep: null }, { peerId: 'next', joinStep: 0, leaveStep: null }, { peerId: 'self', joinStep: 0, leaveStep: null }] })
/** what the others hold: `old` left at 20 and joined again at 20, behind the others */
const current = (): MembershipState => ({ version: 4, members: [{ peerId: 'next', joinStep: 0, leaveStep: null }, { peerId: 'self', joinStep: 0, leaveStep: null }, { peerId: 'old', joinStep: 20, leaveStep: null }] })

function fakeRunner(initial: MembershipState, options: { coordinates?: boolean } = {}): JobRunner & { adopted: number[] } {
  let view = MembershipView.fromSnapshot(initial)
  let version = initial.version
  const adopted: number[] = []
  return {
    adopted,
    membership: () => view,
    membershipVersion: () => version,
    progress: () => ({ step: 25 }),
    isCoordinator: () => options.coordinates === true,
    // as JobMembership.mayAnnounce, without suspicion: the coordinator or a member senior to it
    mayDecideForJob: (peerId: string) => {
      const seniority = view.seniority()
      const coordinator = view.coordinatorAt(25)
      return coordinator !== undefined && view.isKnown(peerId, 25) && seniority.indexOf(peerId) <= seniority.indexOf(coordinator)
    },
    adoptMembership: (state: MembershipState) => {
      if (state.version <= version) return false
      view = MembershipView.fromSnapshot(state)
      version = state.version
      adopted.push(state.version)
      return true
    }
  } as unknown as JobRunner & { adopted: number[] }
}

const info = (membership: MembershipState): JobInfo => ({ jobId: 'j', config: {}, phase: 'training', step: 25, coordinator: { peerId: 'next', addrs: [] }, membership })

describe('membership pull', () => {
  it('asks the peer it counts as coordinator, again while that one is still joining, and adopts its newer membership', async () => {
    const runner = fakeRunner(stale())
    const asked: string[] = []
    const answers: Array<() => JobInfo> = [() => { throw new Error('this peer is still joining the job: ask another member') }, () => info(current())]
    const pull = createMembershipPull({
      jobId: 'j',
      log: silentLogger(),
      runner: () => runner,
      wire: () => ({ request: async <T>(peer: string) => { asked.push(peer); return await Promise.resolve(answers.shift()!() as T) } }),
      intervalMs: 5
    })
    pull.refusedNewer('next', 4)
    // repeated announcements while it asks start no second round of questions
    pull.refusedNewer('next', 4)
    await pull.settled()
    expect(asked).toEqual(['old', 'old'])
    expect(runner.adopted).toEqual([4])
    expect(runner.membership().coordinatorAt(25)).toBe('next')
    // current now: a repeat of the announcement asks nobody
    pull.refusedNewer('next', 4)
    await pull.settled()
    expect(asked).toHaveLength(2)
  })

  it('a forged newer membership: the coordinator answers with its own, not newer, and nothing is adopted; the questions end', async () => {
    const runner = fakeRunner(current())
    let asked = 0
    const pull = createMembershipPull({
      jobId: 'j',
      log: silentLogger(),
      runner: () => runner,
      wire: () => ({ request: async <T>() => { asked++; return await Promise.resolve(info(current()) as T) } }),
      intervalMs: 1
    })
    pull.refusedNewer('old', 99)
    await pull.settled()
    expect(runner.adopted).toEqual([])
    expect(runner.membershipVersion()).toBe(4)
    // bounded: a few questions, then none until the next refusal
    expect(asked).toBeGreaterThan(1)
    expect(asked).toBeLessThanOrEqual(15)
  })

  for (const answer of ['the old coordinator', 'another job'] as const) it(`adopts nothing from ${answer === 'another job' ? 'a peer answering for another job' : 'a peer that stopped being its coordinator while it asked'}`, async () => {
    const runner = fakeRunner(stale())
    const asked: string[] = []
    const pull = createMembershipPull({
      jobId: 'j',
      log: silentLogger(),
      runner: () => runner,
      wire: () => ({
        request: async <T>(peer: string) => {
          asked.push(peer)
          if (answer === 'another job') return await Promise.resolve({ ...info(current()), jobId: 'other' } as T)
          if (peer === 'next') return await Promise.resolve(info(current()) as T)
          // meanwhile the old coordinator's leave arrives: `next` decides now, not `old`, whose answer (another version 5) is not taken
          runner.adoptMembership({ version: 3, members: [{ peerId: 'old', joinStep: 0, leaveStep: 20 }, { peerId: 'next', joinStep: 0, leaveStep: null }, { peerId: 'self', joinStep: 0, leaveStep: null }] })
          return await Promise.resolve(info({ ...current(), version: 5 }) as T)
        }
      }),
      intervalMs: 1
    })
    pull.refusedNewer('next', 4)
    await pull.settled()
    // the next question goes to the coordinator it counts now
    expect(runner.adopted).toEqual(answer === 'another job' ? [] : [3, 4])
    if (answer !== 'another job') expect(asked).toEqual(['old', 'next'])
  })

  it('asks nobody when it coordinates itself, and nothing once stopped', async () => {
    let asked = 0
    const wire = { request: async <T>() => { asked++; return await Promise.resolve(info(current()) as T) } }
    const coordinating = createMembershipPull({ jobId: 'j', log: silentLogger(), runner: () => fakeRunner(stale(), { coordinates: true }), wire: () => wire, intervalMs: 1 })
    coordinating.refusedNewer('next', 4)
    await coordinating.settled()
    const stopped = createMembershipPull({ jobId: 'j', log: silentLogger(), runner: () => fakeRunner(stale()), wire: () => wire, intervalMs: 1 })
    stopped.stop()
    stopped.refusedNewer('next', 4)
    await stopped.settled()
    expect(asked).toBe(0)
  })
})
