import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseJobConfig, type JobConfigInput } from '../../config/job-config.js'
import { CHECKPOINT_DIR, writeCheckpoint } from '../../daemon/checkpoint/index.js'
import type { JobSnapshot } from '../../daemon/job/job-runner.js'
import { toTrainingSnapshot } from '../../daemon/job/snapshot-conversion.js'
import { silentLogger } from '../../daemon/logger.js'
import { saveKnownMembers } from '../../daemon/peer/known-members.js'
import { planStartup, type StartupInput } from '../../daemon/peer/startup-plan.js'

const job = (input: JobConfigInput) => parseJobConfig(input, 'test job')
const snapshot = (input: JobConfigInput, step: number, finished = false): JobSnapshot => ({
  jobConfig: job(input),
  step,
  epoch: 0,
  cursor: 0,
  meta: { lr: 0.05, epochLossSum: 0, epochLossCount: 0, convergence: null, membership: { version: 1, members: [] }, history: [], finished },
  params: new Float32Array([0.5, -0.25]),
  optimizerState: new Float32Array(0)
})

describe('what a daemon start does with its job flags and data dir', () => {
  let dataDir: string
  let input: StartupInput
  const notices: string[] = []
  const checkpoint = async (s: JobSnapshot): Promise<void> => { await writeCheckpoint(join(dataDir, CHECKPOINT_DIR), toTrainingSnapshot(s)) }
  const members = async (jobId: string, ids: string[]): Promise<void> => {
    await saveKnownMembers(dataDir, { v: 1, jobId, members: ids.map((peerId) => ({ peerId, addrs: peerId === 'self' ? [] : [`/ip4/127.0.0.1/tcp/4${peerId.length}01`] })) })
  }

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'p2pmld-startup-'))
    notices.length = 0
    input = { dataDir, checkpointDir: join(dataDir, CHECKPOINT_DIR), peerId: 'self', bootstrapCount: 0, log: silentLogger(), notice: (t) => notices.push(t) }
  })
  afterEach(async () => { await rm(dataDir, { recursive: true, force: true }) })

  it('an empty data dir: hosts the job given, joins through bootstrap peers, or idles', async () => {
    const given = job({ model: 'mlp' })
    expect(await planStartup({ ...input, job: given })).toEqual({ kind: 'host', job: given })
    expect(await planStartup({ ...input, bootstrapCount: 1 })).toEqual({ kind: 'join-bootstrap' })
    // a broker and no checkpoint: asks the broker for a job
    expect(await planStartup({ ...input, amqpUrl: 'amqp://127.0.0.1' })).toEqual({ kind: 'join-bootstrap' })
    expect(await planStartup(input)).toEqual({ kind: 'idle' })
  })

  it('a checkpoint of a job run alone resumes it, also when the same job is given again (flags that differ named)', async () => {
    await checkpoint(snapshot({ id: 'j1', model: 'mlp', epochs: 2 }, 40))
    const alone = await planStartup(input)
    expect(alone.kind === 'resume' && alone.snapshot.step).toBe(40)
    const again = await planStartup({ ...input, job: job({ id: 'j1', model: 'mlp', epochs: 5 }) })
    expect(again.kind === 'resume' && again.snapshot.jobConfig.epochs).toBe(2)
    expect(notices).toEqual(['the job given (job flags or --config file) has job j1 with other epochs than its checkpoint: it goes on as checkpointed (a changed job needs another id)'])
  })

  it('another job over a finished checkpoint is hosted, saying that it replaces the finished one', async () => {
    await checkpoint(snapshot({ id: 'j1', model: 'mlp' }, 90, true))
    const given = job({ model: 'lenet5' })
    expect(await planStartup({ ...input, job: given })).toEqual({ kind: 'host', job: given })
    expect(notices).toEqual(['the data dir\'s checkpoint holds job j1, which finished at step 90: this start hosts a new job, whose checkpoints replace it'])
  })

  it('refuses another job over an unfinished checkpoint, before anything starts', async () => {
    await checkpoint(snapshot({ id: 'j1', model: 'mlp' }, 40))
    await expect(planStartup({ ...input, job: job({ id: 'j2', model: 'mlp' }) })).rejects.toThrow(/holds the checkpoint of job j1 at step 40, unfinished, and this start was given job j2/)
  })

  it('with other members known: asks them (re-join or resume), checkpoint or not; a finished job idles and dials them', async () => {
    await members('j1', ['host', 'self', 'third'])
    const noCheckpoint = await planStartup(input)
    expect(noCheckpoint.kind === 'resume-or-rejoin' && noCheckpoint.snapshot).toBeUndefined()
    await checkpoint(snapshot({ id: 'j1', model: 'mlp' }, 40))
    const withCheckpoint = await planStartup(input)
    expect(withCheckpoint.kind === 'resume-or-rejoin' && withCheckpoint.snapshot?.step).toBe(40)
    await checkpoint(snapshot({ id: 'j1', model: 'mlp' }, 90, true))
    const finished = await planStartup(input)
    expect(finished.kind).toBe('finished')
    expect(finished.kind === 'finished' && [finished.jobId, finished.others.map((m) => m.peerId)]).toEqual(['j1', ['host', 'third']])
  })

  it('members recorded for another job than the checkpoint\'s do not count: the checkpoint resumes alone', async () => {
    await members('other-job', ['host', 'self'])
    await checkpoint(snapshot({ id: 'j1', model: 'mlp' }, 40))
    expect((await planStartup(input)).kind).toBe('resume')
  })
})
