/**
 * State repair adopts only what f+1 members vouch for (f = 1 here): one peer serving an invented
 * state, or standing alone against this peer's digest, is not followed; a state two members hold
 * is.
 */
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { createJobMembership } from '../../daemon/job/job-membership.js'
import type { DigestAtStep, JobSnapshot } from '../../daemon/job/job-types.js'
import { createStateRepair } from '../../daemon/job/state-repair.js'
import { parameterDigest } from '../../daemon/training/training-state.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'

const params = (v: number): Float32Array => new Float32Array(4).fill(v)
const snapshot = (step: number, v: number): JobSnapshot => ({ step, params: params(v) }) as unknown as JobSnapshot

function setup (states: Record<string, JobSnapshot>, digests: Record<string, DigestAtStep>, known: Record<string, string> = {}, laterStepVouches = false) {
  // 'attacker' joined first: it is the most senior member, so it wins ties and leads source lists
  const membership = createJobMembership({
    selfId: 'self', host: false, minPeers: 1, evictAfterMissedSteps: 3, network: { announceMembership: async () => {} },
    log: silentLogger(), step: () => 10, phase: () => 'training', onRemoved: () => {}
  })
  membership.restore({ version: 1, members: ['attacker', 'a', 'b', 'self'].map((peerId) => ({ peerId, joinStep: 0, leaveStep: null })) })
  const adopted: JobSnapshot[] = []
  const fetched: string[] = []
  const reconciled: number[] = []
  const repair = createStateRepair({
    selfId: 'self',
    network: {
      fetchSnapshot: async (peer) => {
        fetched.push(peer)
        return states[peer]
      },
      queryDigest: async (peer) => {
        const answer = digests[peer]
        if (answer === undefined) throw new Error('no answer')
        return answer
      }
    },
    membership,
    log: silentLogger(),
    f: 1,
    laterStepVouches,
    knownDigests: () => new Map(Object.entries(known)),
    deadlineMs: () => 100,
    signal: () => new AbortController().signal,
    step: () => 10,
    params: () => params(1),
    adopt: (snap) => adopted.push(snap),
    reconcile: async (step) => {
      reconciled.push(step)
      return false
    }
  })
  return { repair, adopted, fetched, reconciled }
}

const report = (own: string, peers: Record<string, string>): StepReport => ({ step: 9, digest: own, peerDigests: new Map(Object.entries(peers)) }) as unknown as StepReport

describe('state repair vouching (f = 1)', () => {
  it('catch-up refuses a far-ahead poisoned state only its server vouches for, and takes one a second member holds', async () => {
    const poisoned = snapshot(1010, 0.37)
    const honest = snapshot(11, 2)
    const { repair, adopted, fetched } = setup(
      { attacker: poisoned, a: honest },
      // the attacker vouches for itself; b holds a's state at step 11
      { attacker: { step: 1010, digest: parameterDigest(poisoned.params) }, b: { step: 11, digest: parameterDigest(honest.params) } }
    )
    await repair.catchUp(10, ['attacker', 'a'])
    expect(fetched).toEqual(['attacker', 'a'])
    expect(adopted).toEqual([honest])
  })

  it('catch-up adopts nothing when only the attacker is ahead', async () => {
    const poisoned = snapshot(1010, 0.37)
    const { repair, adopted } = setup({ attacker: poisoned }, { attacker: { step: 1010, digest: parameterDigest(poisoned.params) } })
    await repair.catchUp(10, ['attacker'])
    expect(adopted).toEqual([])
  })

  it('divergence repair does not follow one peer against this peer (a tie it would win by seniority): no f+1 hold a digest, so it reconciles', async () => {
    const { repair, adopted, fetched, reconciled } = setup({ attacker: snapshot(10, 0.37) }, {})
    expect(await repair.repairDivergence(report('mine', { attacker: 'invented' }))).toBe(false)
    expect(fetched).toEqual([])
    expect(adopted).toEqual([])
    expect(reconciled).toEqual([10])
  })

  it('divergence repair leaves a peer alone whose digest f+1 members hold, whatever one peer claims', async () => {
    const { repair, adopted, reconciled } = setup({ attacker: snapshot(10, 0.37) }, {})
    expect(await repair.repairDivergence(report('mine', { a: 'mine', b: 'mine', attacker: 'invented' }))).toBe(false)
    expect(adopted).toEqual([])
    expect(reconciled).toEqual([])
  })

  it('every member holding another digest: reconciles rather than adopt any one of them', async () => {
    const { repair, adopted, fetched, reconciled } = setup({}, {})
    expect(await repair.repairDivergence(report('mine', { a: 'da', b: 'db', attacker: 'dx' }))).toBe(false)
    expect(fetched).toEqual([])
    expect(adopted).toEqual([])
    expect(reconciled).toEqual([10])
  })

  it('the final agreement reconciles when no f+1 members hold one final digest', async () => {
    // four members, four final digests
    const { repair, adopted, reconciled } = setup({}, { attacker: { step: 10, digest: 'dx' }, a: { step: 10, digest: 'da' }, b: { step: 10, digest: 'db' } })
    await repair.agreeOnFinalState()
    expect(adopted).toEqual([])
    expect(reconciled).toEqual([10])
  })

  it('divergence repair follows two members holding one digest, once their state is vouched', async () => {
    const majority = snapshot(10, 3)
    const digest = parameterDigest(majority.params)
    const { repair, adopted } = setup({ a: majority }, {}, { b: digest })
    expect(await repair.repairDivergence(report('mine', { a: digest, b: digest, attacker: 'invented' }))).toBe(true)
    expect(adopted).toEqual([majority])
  })

  it('async: a member past the state\'s step vouches if it still holds its digest (the anchor is held from round to round); sync: the same step only', async () => {
    const agreed = snapshot(10, 3)
    const digest = parameterDigest(agreed.params)
    const fresh = (): Record<string, DigestAtStep> => ({ b: { step: 13, digest }, attacker: { step: 14, digest: 'other' } })
    const sync = setup({ a: agreed, b: agreed }, fresh())
    expect(await sync.repair.repairDivergence(report('mine', { a: digest, b: digest }))).toBe(false)
    expect(sync.adopted).toEqual([])
    const async = setup({ a: agreed, b: agreed }, fresh(), {}, true)
    expect(await async.repair.repairDivergence(report('mine', { a: digest, b: digest }))).toBe(true)
    expect(async.adopted).toEqual([agreed])
    // past the step with another digest (a later round's anchor): no vouch
    const moved = setup({ a: agreed, b: agreed }, { b: { step: 13, digest: 'later-anchor' } }, {}, true)
    expect(await moved.repair.repairDivergence(report('mine', { a: digest, b: digest }))).toBe(false)
    expect(moved.adopted).toEqual([])
  })
})
