/**
 * A daemon's run reports: the recorder of the current job's steps and epochs, the report as this
 * peer sees the job now, and the job-end report written to the reports directory (one write at a
 * time; `flushed()` waits for the last).
 */
import type { TrafficCounts } from '../../protocols/node/index.js'
import type { Logger } from '../logger.js'
import { createReportRecorder, type ReportRecorder } from '../report/report-recorder.js'
import type { RunReport } from '../report/report-schema.js'
import { reportFromSession, type ConnectionBook } from '../report/session-report.js'
import { writeRunReport, type WrittenReport } from '../report/write-report.js'
import type { JobSession, JobSessionEvents } from './job-session.js'

export interface DaemonReportsOptions {
  readonly peerId: string
  readonly peerName?: string
  /** where job-end reports go; null: write none */
  readonly dir: string | null
  readonly log: Logger
  readonly connections: ConnectionBook
  session(): JobSession | undefined
  /** a job-end report was written */
  readonly onReport?: (written: WrittenReport, report: RunReport) => void
}

export interface DaemonReports {
  /** step and epoch events to feed the recorder (stable across jobs) */
  readonly events: JobSessionEvents
  /**
   * a new job's session opened: record from scratch, its bytes from `traffic` (the session's
   * window on the daemon's meter); returns the undo (that session could not start)
   */
  newJob(traffic: TrafficCounts): () => void
  /** the current job's report as this peer sees it now; undefined without a job */
  current(source?: RunReport['source']): RunReport | undefined
  /** write the current job's report (job end, or stopped before its end), once per job; errors are logged */
  writeJobEnd(): void
  /** resolves when every report write asked for so far is done */
  flushed(): Promise<unknown>
}

export function createDaemonReports(options: DaemonReportsOptions): DaemonReports {
  let recorder: ReportRecorder | undefined
  let traffic: TrafficCounts | undefined
  let writing: Promise<unknown> = Promise.resolve()
  /** the recorder whose job's report was written: one report per job (a `job stop`, then the daemon's stop, wrote two) */
  let writtenFor: ReportRecorder | undefined
  const current = (source: RunReport['source'] = 'daemon'): RunReport | undefined => {
    const session = options.session()
    return session === undefined ? undefined : reportFromSession({ source, peerId: options.peerId, peerName: options.peerName, session, recorder, traffic, connections: options.connections })
  }
  return {
    // the recorder is made per job, so it is called through a stable forwarder
    events: {
      onStep: (report) => recorder?.events.onStep(report),
      onEpoch: (record) => recorder?.events.onEpoch(record),
      onFinished: (result) => recorder?.events.onFinished(result)
    },
    newJob: (jobTraffic) => {
      const previous = { recorder, traffic }
      recorder = createReportRecorder()
      traffic = jobTraffic
      return () => {
        recorder = previous.recorder
        traffic = previous.traffic
      }
    },
    current,
    writeJobEnd() {
      const dir = options.dir
      // the job ended here (finished, stopped, left): its wall time too, report written or not
      recorder?.end()
      if (dir === null || (recorder !== undefined && writtenFor === recorder)) return
      const report = current('job-end')
      if (report === undefined) return
      writtenFor = recorder
      if (admittedAfterEnd(report)) {
        // its membership read 'joined at step 260' of a job that ended at 250, as a mid-job join
        options.log.info({ step: report.result?.step }, 'no run report: this peer was admitted as the job ended and trained no step of it')
        return
      }
      writing = writing.then(async () => {
        const written = await writeRunReport(dir, report)
        options.log.info({ json: written.json, html: written.html }, 'run report written')
        options.onReport?.(written, report)
      }).catch((error: unknown) => {
        options.log.error({ err: error, dir }, 'could not write the run report')
      })
    },
    flushed: () => writing
  }
}

/**
 * A finished job's report whose peer was admitted at or after the job's last step and was no
 * member before (evicted or left, then re-admitted at the end: it trained then): it took the
 * final state and trained nothing.
 */
function admittedAfterEnd(report: RunReport): boolean {
  const id = report.peer.id
  const self = report.membership.members.find((m) => m.peerId === id)
  const earlier = [...report.membership.evictions, ...report.membership.leaves].some((e) => e.peerId === id)
  return report.result !== null && self !== undefined && self.joinStep >= report.result.step && !earlier
}
