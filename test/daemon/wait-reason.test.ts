/** What `status` says a job waits for: the start, a pause, a step's deadline round, or a long wait before the deadline. */
import { describe, expect, it } from 'vitest'
import type { PendingCollect } from '../../daemon/membership/gradient-collector.js'
import { createWaitReasons, describeLiveWait } from '../../daemon/job/wait-reason.js'

describe('a step\'s live wait', () => {
  const pending = (since: number, missing: string[]): PendingCollect => ({ step: 7, missing, since, deadline: since + 30_000 })
  it('is named once it lasts 2 s, with who it waits for and when the deadline lets the step go on', () => {
    expect(describeLiveWait(pending(0, ['peerB']), 1999, 'gradients')).toBeUndefined()
    expect(describeLiveWait(pending(0, ['peerB']), 12_400, 'gradients'))
      .toBe('waiting 12 s for the gradients of peerB: the step goes on without it in ~18 s (the step deadline), if the others are enough')
    expect(describeLiveWait(pending(0, ['peerB', 'peerC']), 31_000, 'parameter changes'))
      .toBe('waiting 31 s for the parameter changes of peerB, peerC: the step goes on without them in ~0 s (the step deadline), if the others are enough')
    // all arrived (the step is aggregating), or no collect
    expect(describeLiveWait(pending(0, []), 12_000, 'gradients')).toBeUndefined()
    expect(describeLiveWait(undefined, 12_000, 'gradients')).toBeUndefined()
  })
})

describe('wait reasons', () => {
  it('say the start, the pause, the step\'s own reason before a live wait, and nothing once the job ended', () => {
    let collect: PendingCollect | undefined
    const reasons = createWaitReasons({ startWaitReason: () => 'waiting for members: 1 of 3', pendingCollect: () => collect, awaited: 'gradients' })
    expect(reasons.current('waiting', 0)?.reason).toBe('waiting for members: 1 of 3')
    expect(reasons.current('paused', 40)?.reason).toBe('paused job-wide before step 40: p2pmld job resume (on any member) goes on')
    expect(reasons.current('training', 41)).toBeUndefined()
    collect = { step: 41, missing: ['peerB'], since: performance.now() - 5000, deadline: performance.now() + 25_000 }
    expect(reasons.current('training', 41)?.reason).toMatch(/^waiting 5 s for the gradients of peerB: the step goes on without it in ~2[45] s/)
    reasons.onWaiting('trimmed-mean with f=1 needs 3 gradients, 2 live members', 'below-floor')
    expect(reasons.current('training', 41)).toEqual({ reason: 'trimmed-mean with f=1 needs 3 gradients, 2 live members', belowFloor: true, stalled: true })
    expect(reasons.step()?.belowFloor).toBe(true)
    reasons.onWaiting(undefined)
    collect = undefined
    expect(reasons.current('training', 42)).toBeUndefined()
    expect(reasons.current('finished', 42)).toBeUndefined()
  })
})
