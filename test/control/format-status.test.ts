/** `p2pmld status` counts epochs from 1, as the progress lines and the logs do. */
import { describe, expect, it } from 'vitest'
import { formatEpoch, formatStatus } from '../../cli/commands/status.js'
import type { StatusResult } from '../../daemon/control/methods.js'
import { stepsDoneInEpoch } from '../../daemon/peer/control-handlers.js'

describe('status epoch', () => {
  it('is the epoch in progress from 1, the count completed once the job ended, - without a job', () => {
    expect(formatEpoch({ jobId: 'j', state: 'waiting', epoch: 0 })).toBe('1')
    expect(formatEpoch({ jobId: 'j', state: 'training', epoch: 0 })).toBe('1')
    expect(formatEpoch({ jobId: 'j', state: 'paused', epoch: 4 })).toBe('5')
    expect(formatEpoch({ jobId: 'j', state: 'finished', epoch: 10 })).toBe('10 completed')
    expect(formatEpoch({ jobId: null, state: 'idle', epoch: 0 })).toBe('-')
  })
})

describe('status text', () => {
  const base: StatusResult = {
    peerId: '12D3KooWpeer', addresses: ['/ip4/127.0.0.1/tcp/4001'], jobId: 'j', state: 'training', step: 40, epoch: 1,
    epochs: 10, stepInEpoch: 8, stepsInEpoch: 32, samplesPerSecond: null, etaMs: null, earlyStopping: true,
    loss: 0.25, accuracy: 0.91, testAccuracy: null, stopReason: null, learningRate: 0.05, liveMembers: 3, waiting: null, uptimeMs: 61_000
  }
  it('shows the epoch of the job\'s limit, how far into it, and once timed the pace and the time left', () => {
    expect(formatStatus(base)).toMatch(/epoch\s+2 of 10, 25% \(8\/32 steps\)\n/)
    expect(formatStatus(base)).not.toMatch(/pace/)
    expect(formatStatus({ ...base, samplesPerSecond: 812.4, etaMs: 280_000 })).toMatch(/pace\s+812 samples\/s, ~4m 40s left \(if every epoch runs\)\n/)
    // without early stopping every epoch runs: no proviso
    expect(formatStatus({ ...base, samplesPerSecond: 812.4, etaMs: 280_000, earlyStopping: false })).toMatch(/pace\s+812 samples\/s, ~4m 40s left\n/)
    expect(formatStatus({ ...base, state: 'finished', epoch: 10, stepInEpoch: null, stepsInEpoch: null })).toMatch(/epoch\s+10 completed\n/)
  })
  it('labels the accuracy it shows: validation while training, test and the reason once the job finished', () => {
    const training = formatStatus(base)
    expect(training).toMatch(/validation accuracy\s+91\.0+ ?%/)
    expect(training).not.toMatch(/test accuracy|stopped by/)
    const done = formatStatus({ ...base, state: 'finished', epoch: 2, testAccuracy: 0.9812, stopReason: 'early-stopping' })
    expect(done).toMatch(/test accuracy\s+98\.1/)
    expect(done).toMatch(/stopped by\s+early stopping/)
    expect(formatStatus({ ...base, state: 'finished', testAccuracy: 0.5, stopReason: 'something-new' })).toMatch(/stopped by\s+something-new/)
  })
  it('prints a small loss in significant digits and the learning rate without float noise', () => {
    const text = formatStatus({ ...base, loss: 0.0000123, learningRate: 0.1 * 0.1 * 0.1 })
    expect(text).toMatch(/loss\s+0\.0000123\n/)
    expect(text).toMatch(/learning rate\s+0\.001\n/)
    expect(formatStatus({ ...base, loss: null })).toMatch(/loss\s+-\n/)
  })
})

describe('the step within the epoch status gives', () => {
  it('counts the steps done in the epoch the job is in: none when the last step ended the previous one', () => {
    expect(stepsDoneInEpoch(9, { epoch: 9, stepInEpoch: 12 })).toBe(12)
    // 558 steps done of 62-step epochs: the last one was the 9th epoch's 62nd, the job is in the 10th (0-based 9)
    expect(stepsDoneInEpoch(9, { epoch: 8, stepInEpoch: 62 })).toBe(0)
  })
})
