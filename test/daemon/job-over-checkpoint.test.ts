import { describe, expect, it } from 'vitest'
import { parseJobConfig, type JobConfigInput } from '../../config/job-config.js'
import type { JobSnapshot } from '../../daemon/job/job-runner.js'
import { jobOverCheckpoint } from '../../daemon/peer/job-over-checkpoint.js'

const job = (input: JobConfigInput) => parseJobConfig(input, 'test job')
/** a checkpoint of `input` (given the id a start gave it) at `step` */
const checkpoint = (input: JobConfigInput, step: number, finished = false): JobSnapshot => ({
  jobConfig: job(input),
  step,
  epoch: 0,
  cursor: 0,
  meta: { lr: 0.05, epochLossSum: 0, epochLossCount: 0, convergence: null, membership: { version: 1, members: [] }, history: [], finished },
  params: new Float32Array(0),
  optimizerState: new Float32Array(0)
})

describe('a job given on a data dir that holds a checkpoint', () => {
  it('with no checkpoint, or over a finished job that is another one, hosts the job given', () => {
    expect(jobOverCheckpoint(job({ model: 'mlp' }), undefined, '/d')).toEqual({ kind: 'host' })
    expect(jobOverCheckpoint(job({ model: 'lenet5' }), checkpoint({ id: 'job-1a2b', model: 'mlp' }, 300, true), '/d')).toEqual({ kind: 'host' })
  })

  it('resumes the checkpoint restarted the same way: the same id, or without one the same config', () => {
    // a job file with an id: the id decides; flags that change its config are named (the checkpoint's kept)
    expect(jobOverCheckpoint(job({ id: 'fixed-2', model: 'lenet5', epochs: 20 }), checkpoint({ id: 'fixed-2', model: 'lenet5', epochs: 20 }, 1879), '/d'))
      .toEqual({ kind: 'resume', differs: [] })
    expect(jobOverCheckpoint(job({ id: 'fixed-2', model: 'lenet5', epochs: 30, batchSize: 32 }), checkpoint({ id: 'fixed-2', model: 'lenet5', epochs: 20 }, 1879), '/d'))
      .toEqual({ kind: 'resume', differs: ['batchSize', 'epochs'] })
    // flags without an id: a start names the job anew, so the config is what says it is the same job
    expect(jobOverCheckpoint(job({ model: 'mlp', trainSamples: 2048 }), checkpoint({ id: 'job-1a2b', model: 'mlp', trainSamples: 2048 }, 40), '/d'))
      .toEqual({ kind: 'resume', differs: [] })
    // a finished one restarted the same way: it goes on from the checkpoint too (there, it stays idle)
    expect(jobOverCheckpoint(job({ id: 'fixed-1', model: 'mlp' }), checkpoint({ id: 'fixed-1', model: 'mlp' }, 250, true), '/d'))
      .toEqual({ kind: 'resume', differs: [] })
  })

  it('refuses another job over an unfinished one, naming both and the fixes', () => {
    expect(jobOverCheckpoint(job({ model: 'lenet5' }), checkpoint({ id: 'job-1a2b', model: 'mlp', epochs: 3 }, 40), '/data'))
      .toEqual({ kind: 'refuse', message: 'the data dir /data holds the checkpoint of job job-1a2b at step 40, unfinished, and this start was given a job whose epochs, model differ from it, which would overwrite it: start without job flags (or with that job\'s own) to resume job job-1a2b, or run the new job on another --data-dir' })
    expect(jobOverCheckpoint(job({ id: 'other', model: 'mlp' }), checkpoint({ id: 'fixed-2', model: 'mlp' }, 7), '/data'))
      .toMatchObject({ kind: 'refuse', message: expect.stringMatching(/^the data dir \/data holds the checkpoint of job fixed-2 at step 7, unfinished, and this start was given job other, which would overwrite it/) })
  })
})
