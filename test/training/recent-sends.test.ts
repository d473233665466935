/** The trainer's memory of its last sends: re-sends to members of the previous step, one replay per member and step. */
import { describe, expect, it } from 'vitest'
import { createRecentSends } from '../../daemon/training/recent-sends.js'

describe('recent sends', () => {
  it('re-sends the previous step to its members only, replays once per member, and forgets past its limit', () => {
    const sent: string[] = []
    const recent = createRecentSends('me', 2)
    const remember = (step: number, members: string[]): void => recent.remember(step, members, (to) => sent.push(`${step}->${to.join(',')}`))
    remember(3, ['a', 'b', 'me'])
    // 'c' joined after step 3, 'me' never sends to itself
    recent.resendPrevious(4, ['a', 'c', 'me'])
    expect(sent).toEqual(['3->a'])
    // no step 4 kept: nothing for step 5
    recent.resendPrevious(5, ['a'])
    expect(sent).toEqual(['3->a'])

    expect(recent.replay(3, 'b', () => false)).toBe(true)
    expect(recent.replay(3, 'b', () => false)).toBe(false)
    expect(recent.replay(3, 'a', () => true)).toBe(false)
    expect(recent.replay(3, 'c', () => false)).toBe(false)
    expect(sent).toEqual(['3->a', '3->b'])

    // a step sent again replaces its entry (a re-cut step): replays start over
    remember(3, ['a', 'b', 'me'])
    expect(recent.replay(3, 'b', () => false)).toBe(true)
    remember(4, ['a', 'me'])
    remember(5, ['a', 'me'])
    expect(recent.replay(3, 'a', () => false)).toBe(false)
    recent.resendPrevious(5, ['a'])
    expect(sent).toEqual(['3->a', '3->b', '3->b', '4->a'])
  })
})
