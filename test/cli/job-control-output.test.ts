/** What `p2pmld job pause / resume / stop` print. */
import { describe, expect, it } from 'vitest'
import { describeControl } from '../../cli/commands/job.js'

describe('job control replies', () => {
  it('says a pause decided for a later step is still to come, and names the step once paused', () => {
    // a walk read 'paused at step 80' at step 42 (async: the pause takes effect after the next round)
    expect(describeControl('paused', { jobId: 'j', state: 'training', effectiveStep: 80 })).toBe('job j pauses before step 80, job-wide (training until then)')
    expect(describeControl('paused', { jobId: 'j', state: 'paused', effectiveStep: 80 })).toBe('job j paused at step 80, job-wide')
    expect(describeControl('resumed', { jobId: 'j', state: 'training', effectiveStep: 80 })).toBe('job j resumed at step 80, job-wide (training)')
    expect(describeControl('stopped', { jobId: 'j', state: 'finished' })).toMatch(/^job j had finished already/)
  })
})
