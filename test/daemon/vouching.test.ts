/**
 * A state taken unchecked at join is confirmed by f+1 other members' full digests, and until then
 * vouched for (served, or its digest given) to members only, not to joiners: one Byzantine member
 * cannot hand a joiner its state and have that joiner vouch for it to the next.
 */
import { describe, expect, it } from 'vitest'
import { confirmsState } from '../../daemon/job/state-repair.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { vouchesTo } from '../../daemon/peer/vouching.js'

describe('confirming a state taken unchecked', () => {
  const report = (digest: string, peers: Record<string, string>, fullDigest = true) => ({ digest, fullDigest, peerDigests: new Map(Object.entries(peers)) })

  it('takes f+1 other members sending the same full digest', () => {
    expect(confirmsState(report('d', { a: 'd', b: 'd' }), 1)).toBe(true)
    expect(confirmsState(report('d', { a: 'd', b: 'x', c: 'x' }), 1)).toBe(false)
    expect(confirmsState(report('d', { a: 'd', b: 'd', c: 'x' }), 2)).toBe(false)
    expect(confirmsState(report('d', { a: 'd' }), 0)).toBe(true)
  })

  it('not a sampled digest (it says nothing of the parameters outside its sample)', () => {
    expect(confirmsState(report('d', { a: 'd', b: 'd' }, false), 1)).toBe(false)
  })
})

describe('whom a peer vouches for its state to', () => {
  // a and b members from step 0, the joiner admitted at step 12, this peer at step 12
  const membership = MembershipView.fromSnapshot({ members: [{ peerId: 'a', joinStep: 0, leaveStep: null }, { peerId: 'b', joinStep: 0, leaveStep: null }, { peerId: 'joiner', joinStep: 12, leaveStep: null }] })
  const runner = (confirmed: boolean, coordinator = false) => ({ stateConfirmed: () => confirmed, membership: () => membership, progress: () => ({ step: 12 }) as never, isCoordinator: () => coordinator })

  it('with an unconfirmed state: members of the step before only', () => {
    expect(vouchesTo(runner(false), 'a')).toBe(true)
    expect(vouchesTo(runner(false), 'joiner')).toBe(false)
    expect(vouchesTo(runner(false), 'stranger')).toBe(false)
  })

  it('as the coordinator: anyone (a joiner trusts its admission already; a job below the floor must admit)', () => {
    expect(vouchesTo(runner(false, true), 'joiner')).toBe(true)
  })

  it('with a confirmed state: anyone', () => {
    expect(vouchesTo(runner(true), 'joiner')).toBe(true)
    expect(vouchesTo(runner(true), 'stranger')).toBe(true)
  })
})
