/** Whether a joiner loaded the model a job's members train, before it asks for admission. */
import type { JobConfig } from '../../config/job-config.js'
import { zooModelNames } from '../../ml/models/zoo.js'
import type { JobInfo } from '../../protocols/job/job-protocol.js'
import type { JobSession } from './job-session.js'

/** the model this peer loaded for a job is not the one its members train (checkSameModel) */
export class ModelMismatchError extends Error {
  override name = 'ModelMismatchError'
}

/**
 * Throws ModelMismatchError, before this peer asks for admission, when the model it loaded for the job is not the one
 * the job's members train (JobInfo.model; a member that does not say is trusted): every member
 * loads the job's `model` from its own disk, and a joiner admitted with another one could never
 * take the job's state while the members waited on its gradients (a trial's job stayed at step 0,
 * evicting and re-admitting it). The retry loop asks again later: the file may be fixed meanwhile.
 */
export function checkSameModel(s: Pick<JobSession, 'runtimeInfo'>, info: JobInfo, jobConfig: JobConfig): void {
  const mine = s.runtimeInfo()
  const theirs = info.model
  if (mine === undefined || theirs === undefined) return
  if (mine.parameterCount === theirs.parameters && mine.layout === theirs.layout) return
  const how = mine.parameterCount === theirs.parameters
    ? `the same ${theirs.parameters} parameters in tensors of other shapes`
    : `${mine.parameterCount} parameters where the job's has ${theirs.parameters}`
  const where = zooModelNames().includes(jobConfig.model) ? '' : ` (a path is read on each peer, relative to its daemon's working directory: ${process.cwd()} here)`
  throw new ModelMismatchError(`this peer's model '${jobConfig.model}'${where} is not the one job ${info.jobId} trains: ${how}. Every member needs the same model file at that path: copy the job's model file here, or start this daemon where it lies`)
}
