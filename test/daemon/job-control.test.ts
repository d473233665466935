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
})
