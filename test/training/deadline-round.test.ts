/**
 * The verdict on one deadline round of a synchronous step (daemon/training/deadline-round.ts):
 * aggregate once the quorum is in, except that a member at its first step after joining is waited
 * for at most JOINER_GRACE_ROUNDS more rounds; short of the quorum: evicted, behind f+1 members,
 * diverged, or another round.
 */
import { describe, expect, it } from 'vitest'
import { JOINER_GRACE_ROUNDS, judgeRound, type RoundFacts } from '../../daemon/training/deadline-round.js'

/** four members, f = 1, quorum 0.5: 3 of 4 in, 'd' (admitted at step 7) missing */
const facts = (over: Partial<RoundFacts> = {}): RoundFacts => ({
  step: 7,
  live: ['a', 'b', 'c', 'd'],
  have: 3,
  needed: 3,
  missing: ['d'],
  received: 2,
  contributes: true,
  graceRounds: 0,
  stillMember: true,
  sendersAhead: () => [],
  f: 1,
  minInputs: 3,
  awaitNewcomer: (peer, step) => peer === 'd' && step === 7,
  ...over
})

describe('a deadline round\'s verdict', () => {
  it('aggregates once the quorum is in and nobody missing is at its first step', () => {
    expect(judgeRound(facts({ awaitNewcomer: () => false }))).toEqual({ kind: 'aggregate' })
    expect(judgeRound(facts({ awaitNewcomer: undefined }))).toEqual({ kind: 'aggregate' })
    expect(judgeRound(facts({ have: 4, missing: [] }))).toEqual({ kind: 'aggregate' })
  })

  it('waits for a member at its first step, at most JOINER_GRACE_ROUNDS more rounds', () => {
    const asked: Array<[string, number]> = []
    const awaitNewcomer = (peer: string, step: number): boolean => { asked.push([peer, step]); return peer === 'd' }
    for (let round = 0; round < JOINER_GRACE_ROUNDS; round++) {
      expect(judgeRound(facts({ graceRounds: round, missing: ['c', 'd'], awaitNewcomer }))).toEqual({ kind: 'await-newcomers', newcomers: ['d'] })
    }
    expect(asked).toContainEqual(['c', 7])
    expect(judgeRound(facts({ graceRounds: JOINER_GRACE_ROUNDS }))).toEqual({ kind: 'aggregate' })
  })

  it('short of the quorum: evicted, behind more than f members, diverged, or another round', () => {
    const short = { have: 2, received: 1, missing: ['c', 'd'] }
    expect(judgeRound(facts({ ...short, stillMember: false }))).toEqual({ kind: 'not-a-member' })
    expect(judgeRound(facts({ ...short, sendersAhead: () => ['a', 'b'] }))).toEqual({ kind: 'behind', ahead: ['a', 'b'] })
    // f members ahead could be lying: not enough to catch up to
    expect(judgeRound(facts({ ...short, sendersAhead: () => ['a'] }))).toEqual({ kind: 'short', belowFloor: false })
    expect(judgeRound(facts({ have: 0, received: 0, missing: ['b', 'c', 'd'], contributes: false }))).toEqual({ kind: 'diverged' })
    expect(judgeRound(facts({ ...short, live: ['a', 'b'], missing: ['b'] }))).toEqual({ kind: 'short', belowFloor: true })
    // a newcomer missing does not lower the quorum: still short
    expect(judgeRound(facts({ ...short, missing: ['d'] }))).toEqual({ kind: 'short', belowFloor: false })
  })
})
