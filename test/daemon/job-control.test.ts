/** The coordinator's job-wide pause: at which step it takes effect. */
import { describe, expect, it } from 'vitest'
import { createJobControl } from '../../daemon/job/job-control.js'
import { silentLogger } from '../../daemon/logger.js'
import { asyncChangeStep } from '../../daemon/training/async-trainer.js'

const control = (step: number, changeStep?: (earliest: number) => number) => createJobControl({
  selfId: 'host', log: silentLogger(), network: {}, step: () => step, waitingForStart: () => false, isCoordinator: () => true, coordinator: () => 'host',
  ...(changeStep === undefined ? {} : { changeStep })
})

describe('job control', () => {
  it('pauses MEMBERSHIP_MARGIN steps on in sync mode; in async right after the next averaging round, which no member has passed', async () => {
    const sync = control(21)
    expect((await sync.request('pause')).step).toBe(23)
    expect(sync.pausedAt(22)).toBe(false)
    expect(sync.pausedAt(23)).toBe(true)
    // async members run ahead of the coordinator up to the next round: one at step 23 of this job
    // (rounds every 8 steps) would have run past a pause at 23 and waited for the paused others
    const async = control(21, (earliest) => asyncChangeStep(earliest, 8))
    const decided = await async.request('pause')
    expect(decided.step).toBe(24)
    expect(async.pausedAt(23)).toBe(false)
    expect((await async.request('resume')).action).toBe('resume')
    expect(async.pausedAt(24)).toBe(false)
  })

  it('a host resumed from a state taken while paused holds that decision again, and its next decision is news to members holding it', async () => {
    const resumed = control(40)
    resumed.restore({ seq: 3, action: 'pause', step: 40 })
    expect(resumed.pausedAt(40)).toBe(true)
    expect(resumed.latest()).toEqual({ seq: 3, action: 'pause', step: 40 })
    // a member still running holds seq 3: the resume must come after it
    expect(await resumed.request('resume')).toEqual({ seq: 4, action: 'resume', step: 40 })
    expect(resumed.pausedAt(40)).toBe(false)
    // an older saved decision does not undo a newer one
    resumed.restore({ seq: 2, action: 'pause', step: 40 })
    expect(resumed.pausedAt(40)).toBe(false)
  })

  it('holds a step while paused until the resume, or until this peer is no longer a member (checked every 500 ms), or the abort', async () => {
    const paused = control(40)
    paused.restore({ seq: 1, action: 'pause', step: 40 })
    expect(paused.pendingPause()).toBe(40)
    const abort = new AbortController()
    let member = true
    const settled = (p: Promise<void>): Promise<boolean> => Promise.race([p.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300))])
    // the resume ends the hold
    const resumed = paused.holdWhilePaused(40, abort.signal, () => member)
    expect(await settled(resumed)).toBe(false)
    await paused.request('resume')
    expect(await settled(resumed)).toBe(true)
    expect(paused.pendingPause()).toBeUndefined()
    // evicted meanwhile: the next 500 ms check ends it, paused or not
    await paused.request('pause')
    const evicted = paused.holdWhilePaused(paused.pendingPause()!, abort.signal, () => member)
    member = false
    expect(await Promise.race([evicted.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 900))])).toBe(true)
    // an abort at once
    member = true
    const aborted = paused.holdWhilePaused(paused.pendingPause()!, abort.signal, () => member)
    abort.abort()
    expect(await settled(aborted)).toBe(true)
  })
})
