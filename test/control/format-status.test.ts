/** `p2pmld status` counts epochs from 1, as the progress lines and the logs do. */
import { describe, expect, it } from 'vitest'
import { formatEpoch } from '../../cli/commands/status.js'

describe('status epoch', () => {
  it('is the epoch in progress from 1, the count completed once the job ended, - without a job', () => {
    expect(formatEpoch({ jobId: 'j', state: 'waiting', epoch: 0 })).toBe('1')
    expect(formatEpoch({ jobId: 'j', state: 'training', epoch: 0 })).toBe('1')
    expect(formatEpoch({ jobId: 'j', state: 'paused', epoch: 4 })).toBe('5')
    expect(formatEpoch({ jobId: 'j', state: 'finished', epoch: 10 })).toBe('10 completed')
    expect(formatEpoch({ jobId: null, state: 'idle', epoch: 0 })).toBe('-')
  })
})
