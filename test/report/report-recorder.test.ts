/**
 * A run report's wall time is the job's on this peer: from its session's start to its end. A
 * report written later (`p2pmld report` on the idle daemon) read the daemon's uptime since the
 * job's start (a walk: 17.6 s at the job's end, 59.4 s for the same job 40 s later).
 */
import { describe, expect, it } from 'vitest'
import { createReportRecorder } from '../../daemon/report/report-recorder.js'
import type { JobResult } from '../../daemon/job/job-runner.js'

describe('report recorder wall time', () => {
  it('runs while the job runs and stops at its end, finished or stopped', () => {
    let clock = 1000
    const finished = createReportRecorder(() => clock)
    clock += 5000
    expect(finished.elapsedMs()).toBe(5000)
    finished.events.onFinished({} as JobResult)
    clock += 40_000
    expect(finished.elapsedMs()).toBe(5000)

    const stopped = createReportRecorder(() => clock)
    clock += 2000
    stopped.end()
    clock += 3000
    // a later end (the daemon's stop after a `job stop`) does not move it
    stopped.end()
    expect(stopped.elapsedMs()).toBe(2000)
  })
})
