/**
 * What a daemon's start does with the job it was given (if any) and its data dir (checkpoint,
 * members.json): host a job, join one through its bootstrap peers or the broker, re-join the
 * members it knew or resume its checkpoint, or idle after a finished job. Decided before the
 * peer starts, so a refusal (another job over an unfinished checkpoint) leaves nothing running.
 */
import type { JobConfig } from '../../config/job-config.js'
import { readCheckpoint } from '../checkpoint/index.js'
import type { JobSnapshot } from '../job/job-runner.js'
import { fromTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import { jobOverCheckpoint } from './job-over-checkpoint.js'
import { loadKnownMembers, type KnownMembers } from './known-members.js'

export type StartupPlan =
  /** host `job` as a new job (given, and not the checkpoint's) */
  | { readonly kind: 'host', readonly job: JobConfig }
  /** no checkpoint: ask the bootstrap peers (or the broker) for a job */
  | { readonly kind: 'join-bootstrap' }
  /** other members were known: re-join those that carry the job on, or resume `snapshot` if none does (job-joiner.ts) */
  | { readonly kind: 'resume-or-rejoin', readonly snapshot: JobSnapshot | undefined, readonly known: KnownMembers }
  /** the checkpoint's job finished: idle, dialing its other members `others` (auto-join then takes up their next job) */
  | { readonly kind: 'finished', readonly snapshot: JobSnapshot, readonly jobId: string, readonly others: KnownMembers['members'] }
  /** a job this daemon ran alone: resume it from `snapshot` */
  | { readonly kind: 'resume', readonly snapshot: JobSnapshot }
  /** nothing to do until a job is submitted (or auto-join finds one) */
  | { readonly kind: 'idle' }

export interface StartupInput {
  /** the job given at the start (`--config`, job flags) */
  readonly job?: JobConfig
  readonly dataDir: string
  readonly checkpointDir: string
  /** this daemon's peer id */
  readonly peerId: string
  /** bootstrap peers other than this daemon */
  readonly bootstrapCount: number
  /** the broker, if configured */
  readonly amqpUrl?: string
  readonly log: Logger
  notice?(text: string): void
}

/**
 * The plan for this start. Throws when `job` is another job than the data dir's unfinished
 * checkpoint (the message names both and the fix), or when the checkpoint it reads does not parse.
 */
export async function planStartup(input: StartupInput): Promise<StartupPlan> {
  const { checkpointDir, log } = input
  const load = async (): Promise<JobSnapshot | undefined> => {
    const raw = await readCheckpoint(checkpointDir)
    return raw === undefined ? undefined : fromTrainingSnapshot(raw, `checkpoint in ${checkpointDir}`)
  }
  // a job given on a data dir with a checkpoint: that job restarted the same way resumes it;
  // another job does not overwrite an unfinished one's state
  let saved: JobSnapshot | undefined
  if (input.job !== undefined) {
    saved = await load()
    const decision = jobOverCheckpoint(input.job, saved, input.dataDir)
    if (decision.kind === 'refuse') throw new Error(decision.message)
    if (decision.kind === 'host') {
      // a finished job's state is replaced by the new job's first checkpoint: said, not done silently
      if (saved !== undefined) input.notice?.(`the data dir's checkpoint holds job ${saved.jobConfig.id ?? '(unnamed)'}, which finished at step ${saved.step}: this start hosts a new job, whose checkpoints replace it`)
      return { kind: 'host', job: input.job }
    }
    log.info({ job: saved?.jobConfig.id, step: saved?.step, differs: decision.differs }, saved?.meta.finished === true ? 'the job given is the one in the checkpoint, which finished: not run again' : 'the job given is the one in the checkpoint: going on from it')
    if (decision.differs.length > 0) input.notice?.(`the job given (job flags or --config file) has job ${saved?.jobConfig.id ?? ''} with other ${decision.differs.join(', ')} than its checkpoint: it goes on as checkpointed (a changed job needs another id)`)
  }
  if (saved === undefined && (input.bootstrapCount > 0 || (input.amqpUrl !== undefined && await readCheckpoint(checkpointDir) === undefined))) return { kind: 'join-bootstrap' }
  const snapshot = saved ?? await load()
  const known = await loadKnownMembers(input.dataDir)
  const sameJob = known !== undefined && (snapshot === undefined || known.jobId === snapshot.jobConfig.id)
  // members of a job over the broker count without an address: they are asked on the broker
  const viaBroker = input.amqpUrl !== undefined && snapshot?.jobConfig.transport !== 'libp2p'
  const others = sameJob ? known.members.filter((m) => m.peerId !== input.peerId && (m.addrs.length > 0 || viaBroker)) : []
  // a job that no other member ran is this daemon's alone; killed before its first checkpoint,
  // it still re-joins the members it knew. A finished job is not replayed (a second end, a second
  // report, apart from its members, or on its own): the daemon idles and dials its members, if
  // any, so that auto-join takes up the job they run now
  if (known !== undefined && others.length > 0 && snapshot?.meta.finished !== true) return { kind: 'resume-or-rejoin', snapshot, known }
  if (snapshot?.meta.finished === true) return { kind: 'finished', snapshot, jobId: known?.jobId ?? snapshot.jobConfig.id ?? 'unnamed', others }
  if (snapshot !== undefined) return { kind: 'resume', snapshot }
  return { kind: 'idle' }
}
