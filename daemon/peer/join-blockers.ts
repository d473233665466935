/**
 * Join failures that only the user can fix on this machine: the job names a model file or a
 * dataset this daemon cannot find, or a model other than the one its members train. The joiner
 * retries them as any failure (the file may be copied meanwhile), but says so on stdout once,
 * not only in its log (a joiner without the job's model file printed nothing but its start-up).
 */
import { UnknownDatasetError } from '../../ml/data/job-datasets.js'
import { UnknownModelError } from '../../ml/models/model-definition.js'
import { InvalidOnnxModelError, OnnxModelNotFoundError } from '../../ml/onnx/load-onnx-model.js'
import { DatasetModelMismatchError } from '../training/job-runtime.js'
import { ModelMismatchError } from './same-model.js'

const NEEDS_THE_USER = [OnnxModelNotFoundError, InvalidOnnxModelError, UnknownModelError, UnknownDatasetError, DatasetModelMismatchError, ModelMismatchError]

/** whether `error` (a join's failure) is one of those above */
export function needsTheUser(error: unknown): error is Error {
  return NEEDS_THE_USER.some((kind) => error instanceof kind)
}

/**
 * The loader's own fix for a missing model file ('check the path, or use a zoo model name') is the
 * submitter's; a joiner cannot pick the model, it needs the job's file where the job's path points
 */
function describe(error: Error): string {
  if (error instanceof OnnxModelNotFoundError && error.missing !== undefined) {
    const { given, resolved } = error.missing
    return `the job's model file '${given}' is not here (looked for ${resolved}): every member reads the job's model from its own disk, so copy the file there${given === resolved ? '' : ', or start this daemon in the directory that holds it (a relative path is read from the daemon\'s working directory)'}`
  }
  return error.message
}

/**
 * One stdout line per distinct blocker: `notice` is called the first time a message is seen for
 * a job, and again only once another message (or none) came between.
 */
export function createBlockerNotices(notice: ((text: string) => void) | undefined): { failed(jobId: string | undefined, error: unknown): void } {
  let last: string | undefined
  return {
    failed(jobId, error) {
      if (!needsTheUser(error)) {
        last = undefined
        return
      }
      const key = `${jobId ?? ''}\n${error.message}`
      if (key === last) return
      last = key
      notice?.(`cannot join ${jobId === undefined ? 'the job' : `job ${jobId}`} on this machine: ${describe(error)} (it tries again every few seconds; \`p2pmld status\` shows the last try)`)
    }
  }
}
