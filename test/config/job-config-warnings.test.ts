/**
 * Settings that parse but train badly are named when a job starts (jobConfigWarnings): async
 * mode with SGD momentum (see its docstring for the measurement).
 */
import { describe, expect, it } from 'vitest'
import { jobConfigWarnings, parseJobConfig } from '../../config/job-config.js'

describe('job config warnings', () => {
  it('names optimizer.momentum in async mode and the lr to use without it', () => {
    const warnings = jobConfigWarnings(parseJobConfig({ mode: 'async', optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 } }))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/mode async with optimizer\.momentum 0\.9: .*set optimizer\.momentum to 0 and optimizer\.lr to about 0\.1 /)
  })

  it('says nothing for sync jobs, async without momentum, or Adam', () => {
    expect(jobConfigWarnings(parseJobConfig({}))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ mode: 'async', optimizer: { type: 'sgd', lr: 0.1, momentum: 0 } }))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ mode: 'async', optimizer: { type: 'adam', lr: 0.001 } }))).toEqual([])
  })
})
