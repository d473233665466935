import { describe, expect, it } from 'vitest'
import { createStateAtStep } from '../../daemon/job/state-at-step.js'
import type { JobSnapshot } from '../../daemon/job/job-types.js'

/** a loop at `step` whose snapshot() copies its current state, counting the copies */
function fakeLoop (): { step: number, copies: number, at: ReturnType<typeof createStateAtStep> } {
  const loop = {
    step: 5,
    copies: 0,
    at: undefined as unknown as ReturnType<typeof createStateAtStep>
  }
  loop.at = createStateAtStep({
    step: () => loop.step,
    finished: () => false,
    changing: () => false,
    snapshot: () => {
      loop.copies++
      return { step: loop.step, params: new Float32Array([loop.step]) } as unknown as JobSnapshot
    },
    digest: () => `digest-${loop.step}`
  })
  return loop
}

describe('the state served at a step', () => {
  it('keeps the states served to range requests (two steps), so later ranges of a step match after the loop went on', async () => {
    const loop = fakeLoop()
    const first = await loop.at.snapshotAt(5, undefined, 'joiner', true)
    const second = await loop.at.snapshotAt(5, undefined, 'joiner', true)
    // one copy shared by the ranges of one step
    expect(second).toBe(first)
    expect(loop.copies).toBe(1)
    loop.step = 7
    loop.at.serveWaiting()
    // the loop went on: a range of step 5 is still the state of step 5
    const late = await loop.at.snapshotAt(5, undefined, 'joiner', true)
    expect(late.step).toBe(5)
    expect(late).toBe(first)
    // a whole-state request gets the current state, as before
    expect((await loop.at.snapshotAt(5)).step).toBe(7)
    // a range of another step (a second admission batch) is kept beside it
    expect((await loop.at.snapshotAt(6, undefined, 'joiner', true)).step).toBe(7)
    expect(await loop.at.snapshotAt(5, undefined, 'joiner', true)).toBe(first)
    expect((await loop.at.snapshotAt(7, undefined, 'joiner', true)).step).toBe(7)
    // ranges that wait for a step share one copy when the loop gets there
    const waiting = [loop.at.snapshotAt(9, undefined, 'a', true), loop.at.snapshotAt(9, undefined, 'b', true)]
    const before = loop.copies
    loop.step = 9
    loop.at.serveWaiting()
    const [a, b] = await Promise.all(waiting)
    expect(a).toBe(b)
    expect(loop.copies).toBe(before + 1)
    // the newest two steps are kept: 7 and 9, not 5
    expect((await loop.at.snapshotAt(5, undefined, 'joiner', true)).step).toBe(9)
    loop.at.forget()
    const copies = loop.copies
    await loop.at.snapshotAt(9, undefined, 'joiner', true)
    expect(loop.copies).toBe(copies + 1)
    loop.at.forget()
  })
})
