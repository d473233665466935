/**
 * A daemon started with a job (`--config`, job flags) on a data dir that already holds a job's
 * checkpoint: the job it was told to run may be that checkpoint's job, restarted the same way it
 * was started (the README's "start each again the same way"), or another one that would overwrite
 * an unfinished job's state.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { JobSnapshot } from '../job/job-runner.js'

export type JobOverCheckpoint =
  /** no checkpoint, or a finished job's: run the given job (a finished job's state is replaced) */
  | { readonly kind: 'host' }
  /** the checkpoint's job: go on from it as a start without job flags would; `differs`: top-level keys whose values the flags change (the checkpoint's are kept) */
  | { readonly kind: 'resume', readonly differs: readonly string[] }
  /** another job over an unfinished one: refuse, nothing is overwritten */
  | { readonly kind: 'refuse', readonly message: string }

/** JSON with object keys sorted, so equal configs give equal strings whatever their key order */
const canonical = (value: unknown): string => JSON.stringify(value, (_key, v: unknown) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v)

/**
 * Whether `job` is the job `saved` (the data dir's checkpoint) holds: the same id where `job` names
 * one, else the same config (a job without an id gets a new one at every start, so the config is
 * all there is to go by). `dataDir` goes into the refusal's fix.
 */
export function jobOverCheckpoint(job: JobConfig, saved: JobSnapshot | undefined, dataDir: string): JobOverCheckpoint {
  if (saved === undefined) return { kind: 'host' }
  const { id: savedId, ...savedRest } = saved.jobConfig
  const { id, ...rest } = job
  const keys = [...new Set([...Object.keys(rest), ...Object.keys(savedRest)])].sort()
  const differs = keys.filter((k) => canonical((rest as Record<string, unknown>)[k]) !== canonical((savedRest as Record<string, unknown>)[k]))
  const same = id !== undefined ? id === savedId : differs.length === 0
  if (same) return saved.meta.finished ? { kind: 'resume', differs: [] } : { kind: 'resume', differs }
  if (saved.meta.finished) return { kind: 'host' }
  const which = id !== undefined ? `job ${id}` : `a job whose ${differs.join(', ')} differ${differs.length === 1 ? 's' : ''} from it`
  return {
    kind: 'refuse',
    message: `the data dir ${dataDir} holds the checkpoint of job ${savedId ?? '(unnamed)'} at step ${saved.step}, unfinished, and this start was given ${which}, ` +
      `which would overwrite it: start without job flags (or with that job's own) to resume job ${savedId ?? '(unnamed)'}, or run the new job on another --data-dir`
  }
}
