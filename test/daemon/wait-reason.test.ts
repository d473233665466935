/** What `status` says a job waits for: the start, a pause, a step's deadline round, or a long wait before the deadline. */
import { describe, expect, it } from 'vitest'
import type { PendingCollect } from '../../daemon/membership/gradient-collector.js'
import { createWaitReasons, describeLiveWait } from '../../daemon/job/wait-reason.js'

describe('a step\'s live wait', () => {
  const pending = (since: number, missing: string[], received: number): PendingCollect => ({ step: 7, missing, received, since, deadline: since + 30_000 })
  it('is named once it lasts 2 s, with who it waits for and when the deadline lets the step go on', () => {
    expect(describeLiveWait(pending(0, ['peerB'], 2), 1999, 'gradients', 3)).toBeUndefined()
    expect(describeLiveWait(pending(0, ['peerB'], 2), 12_400, 'gradients', 3))
      .toBe('waiting 12 s for the gradients of peerB: the step goes on without it in ~18 s (the step deadline)')
    // all arrived (the step is aggregating), or no collect
    expect(describeLiveWait(pending(0, [], 3), 12_000, 'gradients', 3)).toBeUndefined()
    expect(describeLiveWait(undefined, 12_000, 'gradients', 3)).toBeUndefined()
  })

  it('says when the others are not enough for the rule: the deadline does not let the step go on (a walk read "if the others are enough" with 2 of 3)', () => {
    expect(describeLiveWait(pending(0, ['peerC'], 1), 5_000, 'gradients', 3))
      .toBe('waiting 5 s for the gradients of peerC: the step cannot go on without it (the rule needs 3 gradients); past the deadline (~25 s) it waits on until it sends or is evicted')
    // two members: 'they send', not 'them send'
    expect(describeLiveWait(pending(0, ['peerB', 'peerC'], 0), 5_000, 'gradients', 3))
      .toBe('waiting 5 s for the gradients of peerB, peerC: the step cannot go on without them (the rule needs 3 gradients); past the deadline (~25 s) it waits on until they send or are evicted')
    expect(describeLiveWait(pending(0, ['peerB', 'peerC'], 1), 31_000, 'parameter changes', 3))
      .toBe('waiting 31 s for the parameter changes of peerB, peerC: without them the averaging round is skipped at the deadline (~0 s; the rule needs 3 parameter changes)')
  })
})

describe('wait reasons', () => {
  it('say the start, the pause, the step\'s own reason before a live wait, and nothing once the job ended', () => {
    let collect: PendingCollect | undefined
    const reasons = createWaitReasons({ startWaitReason: () => 'waiting for members: 1 of 3', pendingCollect: () => collect, awaited: 'gradients', minInputs: 3 })
    expect(reasons.current('waiting', 0)?.reason).toBe('waiting for members: 1 of 3')
    expect(reasons.current('paused', 40)?.reason).toBe('paused job-wide before step 40: p2pmld job resume (on any member) goes on')
    expect(reasons.current('training', 41)).toBeUndefined()
    collect = { step: 41, missing: ['peerB'], received: 2, since: performance.now() - 5000, deadline: performance.now() + 25_000 }
    expect(reasons.current('training', 41)?.reason).toMatch(/^waiting 5 s for the gradients of peerB: the step goes on without it in ~2[45] s/)
    reasons.onWaiting('trimmed-mean with f=1 needs 3 gradients, 2 live members', 'below-floor')
    // below the floor: how it goes on
    expect(reasons.current('training', 41)).toEqual({ reason: 'trimmed-mean with f=1 needs 3 gradients, 2 live members: it goes on once another peer joins (p2pmld start --bootstrap with a member\'s address)', belowFloor: true, stalled: true })
    expect(reasons.step()?.belowFloor).toBe(true)
    reasons.onWaiting('trimmed-mean with f=1 needs 3 gradients, 2 arrived; waiting on peerB')
    expect(reasons.current('training', 41)?.reason).toBe('trimmed-mean with f=1 needs 3 gradients, 2 arrived; waiting on peerB')
    reasons.onWaiting(undefined)
    collect = undefined
    expect(reasons.current('training', 42)).toBeUndefined()
    expect(reasons.current('finished', 42)).toBeUndefined()
  })

  it('a pause decided while a step waits says it holds once that step completes', () => {
    let decided: number | undefined
    const reasons = createWaitReasons({ startWaitReason: () => '', pendingCollect: () => undefined, awaited: 'gradients', minInputs: 3, pauseDecided: () => decided })
    reasons.onWaiting('trimmed-mean with f=1 needs 3 gradients, 2 arrived; waiting on peerB')
    decided = 41
    expect(reasons.current('training', 41)?.reason).toBe('trimmed-mean with f=1 needs 3 gradients, 2 arrived; waiting on peerB; the job-wide pause (before step 42) holds once this step completes')
    decided = 44
    expect(reasons.current('training', 41)?.reason).toMatch(/; the job-wide pause \(before step 44\) holds once this step completes$/)
    // in force: the pause alone; no wait: nothing (it pauses at the next step)
    expect(reasons.current('paused', 44)?.reason).toBe('paused job-wide before step 44: p2pmld job resume (on any member) goes on')
    reasons.onWaiting(undefined)
    expect(reasons.current('training', 42)).toBeUndefined()
  })
})
