/**
 * The coordinator answers a joiner it admitted before the job started with the membership the job
 * starts with (admission-reply.ts). Answered with the one of its admission once minPeers had
 * joined, a member started step 0 without a peer the host admitted before its own start, and the
 * members diverged at step 0 (rejoin.test.ts, 1 run in 6). A real session core and runner, with
 * a wire that goes nowhere (nobody else runs the job here).
 */
import { describe, expect, it } from 'vitest'
import { admissionReply, JobNotStartedError, notTheCoordinator } from '../../daemon/peer/admission-reply.js'
import { ExpectedRefusal } from '../../protocols/request/json-request.js'
import { useHostSessionCores } from '../support/host-session-core.js'

const host = useHostSessionCores('admission-reply')

describe('the reply to a joiner admitted before the start', () => {
  it('lists every member the job starts with, once minPeers joined', async () => {
    const runner = (await host(2)).runner()!
    expect(runner.state()).toBe('waiting')
    // 'a' makes minPeers; 'b' asks before the host's next look at its members (every 250 ms)
    const replyA = admissionReply(runner, 'a')
    const replyB = admissionReply(runner, 'b')
    const [a, b] = await Promise.all([replyA, replyB])
    expect(runner.state()).not.toBe('waiting')
    const members = (reply: typeof a): string[] => reply.membership.members.filter((m) => m.joinStep <= 0 && m.leaveStep === null).map((m) => m.peerId).sort()
    expect(a.effectiveStep).toBe(0)
    expect(members(a)).toEqual(['a', 'b', 'host'])
    expect(members(b)).toEqual(['a', 'b', 'host'])
    expect(a.membership.version).toBe(runner.membershipVersion())
    // this job's step deadline is fixed (stepDeadlineMs): every member has it, the reply does not
    // carry one (early-membership.test.ts: a derived one does)
    expect(a.deadlineMs).toBeUndefined()
  })

  it('is not held below minPeers: the joiner waits for the start announcement', async () => {
    const runner = (await host(3)).runner()!
    // held, it would never be answered: the job cannot start without a third member
    const a = await admissionReply(runner, 'a')
    expect(runner.state()).toBe('waiting')
    expect(a.membership.members.map((m) => m.peerId).sort()).toEqual(['a', 'host'])
    // and `p2pmld status` says what the start waits for
    expect(runner.waitingFor()?.reason).toBe('waiting for members: 2 of the 3 members it needs (minPeers, the host included) have joined')
  })

  it('is withdrawn when the joiner goes away before the start: it does not count toward minPeers', async () => {
    const runner = (await host(2)).runner()!
    // the joiner's request stream closed before the start (it crashed): the signal has aborted
    let forgotten = 0
    await expect(admissionReply(runner, 'a', AbortSignal.abort(), () => { forgotten++ })).rejects.toThrow(JobNotStartedError)
    expect(forgotten).toBe(1)
    // counted, 'a' made minPeers and the job started on a member that no longer existed
    await new Promise((resolve) => setTimeout(resolve, 700))
    expect(runner.state()).toBe('waiting')
    expect(runner.membership().membersAt(0)).toEqual(['host'])
    expect(runner.waitingFor()?.reason).toBe('waiting for members: 1 of the 2 members it needs (minPeers, the host included) have joined')
    // back (or another joiner): admitted and answered with the start's membership
    const again = await admissionReply(runner, 'a')
    expect(runner.state()).not.toBe('waiting')
    expect(again.membership.members.filter((m) => m.leaveStep === null).map((m) => m.peerId).sort()).toEqual(['a', 'host'])
  })

  it('a join sent to a member that does not coordinate is refused naming the coordinator; to the coordinator\'s new process, as an expected refusal (no warning)', () => {
    const other = notTheCoordinator('coord', 'joiner')
    expect(other.message).toBe('not the coordinator: send the join request to coord')
    expect(other).not.toBeInstanceOf(ExpectedRefusal)
    // killed and restarted with --bootstrap: it tells this member its previous process left and asks again
    const restarted = notTheCoordinator('coord', 'coord')
    expect(restarted.message).toBe('not the coordinator: send the join request to coord')
    expect(restarted).toBeInstanceOf(ExpectedRefusal)
  })
})
