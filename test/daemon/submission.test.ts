/** Which submitted jobs a daemon takes (daemon/peer/submission.ts); test/e2e/lifecycle.test.ts submits to a real daemon. */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { checkSubmission, describeSubmitted } from '../../daemon/peer/submission.js'

const job = (id?: string) => parseJobConfig({ ...(id === undefined ? {} : { id }), model: 'mlp', minPeers: 3 }, 'test job')

describe('job submission', () => {
  it('takes a job on a daemon with none, or after its job ended, under a new id or none', () => {
    expect(() => checkSubmission(job('a'), undefined)).not.toThrow()
    expect(() => checkSubmission(job('b'), { jobId: 'a', state: 'finished', inSession: true, step: 8 })).not.toThrow()
    expect(() => checkSubmission(job(), { jobId: 'a', state: 'failed', inSession: true, step: 3 })).not.toThrow()
  })

  it('refuses while another job runs here, and the id of the job that ran here (its members hold it as done)', () => {
    expect(() => checkSubmission(job('b'), { jobId: 'a', state: 'training', inSession: true, step: 5 })).toThrow("job a is training: stop it first with 'p2pmld job stop'")
    expect(() => checkSubmission(job('b'), { jobId: 'a', state: undefined, inSession: true, step: undefined })).toThrow('job a is starting')
    expect(() => checkSubmission(job('a'), { jobId: 'a', state: 'finished', inSession: true, step: 8 }))
      .toThrow('job a already ran on this daemon (finished at step 8), and its members hold it as done: give the new job another id, or leave id out for a generated one')
    // the finished job of the checkpoint this daemon started from, with no session
    expect(() => checkSubmission(job('a'), { jobId: 'a', state: undefined, inSession: false, step: 120 })).toThrow('job a already ran on this daemon (finished at step 120)')
  })

  it('says what the daemon does with it', () => {
    expect(describeSubmitted('x', job('x'))).toBe('hosting job x (job submit): waiting for 3 peers (minPeers, this one included)')
  })
})
