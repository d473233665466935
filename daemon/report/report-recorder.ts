/**
 * What a run report needs that the runner does not keep: when each epoch ended, the parameter
 * digest and member count at its last step, and the last step's digests. It listens to the
 * runner's events (onStep, onEpoch, onFinished); one recorder per job session. Its clock runs from
 * the session's start to the job's end on this peer (a report written later, or by `p2pmld report`
 * on an idle daemon, read the daemon's uptime since the job's start as its wall time).
 */
import type { JobRunnerEvents } from '../job/job-runner.js'
import type { StepReport } from '../training/sync-trainer.js'

export interface EpochMark {
  /** ms since the recorder started (the job's start on this peer) */
  readonly atMs: number
  readonly digest: string | null
  readonly members: number | null
}

export interface ReportRecorder {
  /** the events to chain into the runner's (they only read) */
  readonly events: Required<Pick<JobRunnerEvents, 'onStep' | 'onEpoch' | 'onFinished'>>
  epochMarks(): ReadonlyMap<number, EpochMark>
  lastStep(): { readonly digest: string, readonly peerDigests: ReadonlyMap<string, string> } | undefined
  /** the job ended on this peer (finished, stopped, left): the wall time stops at the first call */
  end(): void
  /** ms from the recorder's creation (the job's start on this peer) to the job's end, or to now while it runs */
  elapsedMs(): number
}

export function createReportRecorder(now: () => number = () => performance.now()): ReportRecorder {
  const started = now()
  const marks = new Map<number, EpochMark>()
  let last: StepReport | undefined
  let endedAt: number | undefined
  const end = (): void => { endedAt ??= now() }
  return {
    events: {
      onStep: (report) => { last = report },
      onEpoch: (record) => {
        // the epoch's last step is the one reported just before its end
        const fromLastStep = last !== undefined && last.step + 1 === record.step
        marks.set(record.epoch, {
          atMs: now() - started,
          digest: fromLastStep ? (last as StepReport).digest : null,
          members: fromLastStep ? (last as StepReport).members.length : null
        })
      },
      onFinished: end
    },
    epochMarks: () => marks,
    lastStep: () => last === undefined ? undefined : { digest: last.digest, peerDigests: last.peerDigests },
    end,
    elapsedMs: () => (endedAt ?? now()) - started
  }
}
