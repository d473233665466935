/**
 * How long a step waits for the others' gradients (daemon/training/deadline.ts): the warm-up value
 * until five complete exchanges were timed, then four times their 90th percentile, within
 * [minMs, maxMs]; a configured deadline wins. A joiner's warm-up is its coordinator's deadline
 * (JoinReply.deadlineMs), a value from another peer: held within the same bounds.
 */
import { describe, expect, it } from 'vitest'
import { createStepDeadlinePolicy } from '../../daemon/training/deadline.js'

describe('step deadline', () => {
  it('waits the warm-up until five steps were timed, then follows them', () => {
    const policy = createStepDeadlinePolicy()
    expect(policy.current()).toBe(30_000)
    for (let i = 0; i < 4; i++) policy.observe(0, 900)
    expect(policy.current()).toBe(30_000)
    policy.observe(0, 1000)
    expect(policy.current()).toBe(4000)
  })

  it('takes a given warm-up (a joiner\'s coordinator\'s deadline), within [minMs, maxMs]', () => {
    expect(createStepDeadlinePolicy({ warmupMs: 3500 }).current()).toBe(3500)
    // a coordinator's 1 ms would have the joiner leave out every other member's gradient
    expect(createStepDeadlinePolicy({ warmupMs: 1 }).current()).toBe(2000)
    expect(createStepDeadlinePolicy({ warmupMs: 10_000_000 }).current()).toBe(120_000)
    expect(createStepDeadlinePolicy({ warmupMs: 3500, fixedMs: 9000 }).current()).toBe(9000)
  })

  it('follows the timed exchanges after fewer when told (async: its rounds), and before that waits the warm-up', () => {
    const rounds = createStepDeadlinePolicy({ warmupSteps: 2 })
    rounds.observe(0, 700)
    expect(rounds.current()).toBe(30_000)
    rounds.observe(0, 800)
    expect(rounds.current()).toBe(3200)
  })
})
