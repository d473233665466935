/**
 * Whether a daemon takes a job submitted to it (`p2pmld job submit`), and what its console says
 * when it does. A daemon hosts one job at a time; a job's id names it to every member.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { RunnerState } from '../job/job-types.js'

/** The daemon's last job as submission sees it: the session's, or the finished one its checkpoint holds. */
export interface LastJob {
  readonly jobId: string
  /** the runner's state; undefined while the session starts (or for a checkpoint's finished job) */
  readonly state: RunnerState | undefined
  /** whether the job runs in a session now (not only in the checkpoint) */
  readonly inSession: boolean
  readonly step: number | undefined
}

/**
 * Throws, with the fix, when `job` cannot be taken: another job still runs here (stop it first),
 * or `job` reuses the id of the job that ran here, whose members hold it as done and would never
 * join it (the submit was taken and the job waited for its minPeers for ever).
 */
export function checkSubmission(job: JobConfig, last: LastJob | undefined): void {
  if (last === undefined) return
  if (last.inSession && last.state !== 'finished' && last.state !== 'failed') {
    throw new Error(`job ${last.jobId} is ${last.state ?? 'starting'}: stop it first with 'p2pmld job stop'`)
  }
  if (job.id !== undefined && job.id === last.jobId) {
    throw new Error(`job ${last.jobId} already ran on this daemon (${last.state ?? 'finished'}${last.step === undefined ? '' : ` at step ${last.step}`}), and its members hold it as done: give the new job another id, or leave id out for a generated one`)
  }
}

/** The console line of a job taken by submission (it printed nothing until the job's first epoch ended). */
export function describeSubmitted(jobId: string, job: JobConfig): string {
  return `hosting job ${jobId} (job submit): ${job.minPeers === 1 ? 'starting (minPeers 1: this peer alone)' : `waiting for ${job.minPeers} peers (minPeers, this one included)`}`
}
