/**
 * The members the coordinator names as a joiner's state donors (daemon/peer/state-donors.ts).
 */
import { describe, expect, it } from 'vitest'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { createStateDonors, type DonorSource } from '../../daemon/peer/state-donors.js'

// the coordinator 'c' and members a, b from step 0; 'late' admitted at step 10; 'gone' leaving at step 11
const membership = MembershipView.fromSnapshot({
  members: [
    { peerId: 'c', joinStep: 0, leaveStep: null },
    { peerId: 'a', joinStep: 0, leaveStep: null },
    { peerId: 'b', joinStep: 0, leaveStep: null },
    { peerId: 'late', joinStep: 10, leaveStep: null },
    { peerId: 'gone', joinStep: 0, leaveStep: 11 }
  ]
})

function runner(step: number, contributors: readonly string[] | undefined, state: 'training' | 'paused' | 'waiting' = 'training', reportStep = step - 1): DonorSource {
  return {
    membership: () => membership,
    progress: () => ({ step }) as never,
    state: () => state as never,
    lastReport: () => (contributors === undefined ? undefined : { step: reportStep, contributors }) as never
  }
}

describe('state donors for a joiner', () => {
  it('takes the members that held a state and contributed, in turn, never the joiner, a member leaving or one joined at this step', () => {
    const donors = createStateDonors('c')
    const all = ['c', 'a', 'b', 'late', 'gone']
    // at step 10: 'late' joins at this step (holds no state yet); 'gone' is no member at the joiner's step 12
    const first = donors.next(runner(10, all), 12, 'joiner')
    expect(new Set(first.donors)).toEqual(new Set(['c', 'a', 'b']))
    expect(first.donor).toBe(first.donors[0])
    const second = donors.next(runner(10, all), 12, 'joiner')
    // the next joiner starts one member further on
    expect(second.donors).toEqual([...first.donors.slice(1), first.donors[0]])
    // a member restarted from its checkpoint that joins again is not its own donor
    expect(donors.next(runner(10, all), 12, 'a').donors).not.toContain('a')
  })

  it('leaves out a member whose gradient the last step did not aggregate (evicted, stalled, re-joining)', () => {
    const donors = createStateDonors('c')
    expect(donors.next(runner(10, ['c', 'a']), 12, 'joiner').donors.sort()).toEqual(['a', 'c'])
  })

  it('names the coordinator alone before the first step, when not training, or after a resume with no step done', () => {
    const donors = createStateDonors('c')
    expect(donors.next(runner(0, ['c', 'a']), 2, 'joiner')).toEqual({ donor: 'c', donors: ['c'] })
    expect(donors.next(runner(10, ['c', 'a'], 'waiting'), 12, 'joiner')).toEqual({ donor: 'c', donors: ['c'] })
    expect(donors.next(runner(10, undefined), 12, 'joiner')).toEqual({ donor: 'c', donors: ['c'] })
  })

  it('takes every state holder when the last report is older than the step before (no step aggregated since)', () => {
    const donors = createStateDonors('c')
    expect(donors.next(runner(10, ['c'], 'paused', 7), 12, 'joiner').donors.sort()).toEqual(['a', 'b', 'c'])
  })
})
