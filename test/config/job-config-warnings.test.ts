/**
 * Settings that parse but train badly are named when a job starts (jobConfigWarnings): async
 * mode with SGD momentum (see its docstring for the measurement); mean with an f its members
 * cannot repair a divergence with.
 */
import { describe, expect, it } from 'vitest'
import { jobConfigWarnings, parseJobConfig } from '../../config/job-config.js'

describe('job config warnings', () => {
  it('names optimizer.momentum in async mode and the lr to use without it', () => {
    const warnings = jobConfigWarnings(parseJobConfig({ mode: 'async', optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 } }))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/mode async with optimizer\.momentum 0\.9: .*set optimizer\.momentum to 0 and optimizer\.lr to about 0\.1 /)
  })

  it('names aggregation.f and minPeers when mean runs with fewer members than a divergence repair needs (2f+1)', () => {
    const warnings = jobConfigWarnings(parseJobConfig({ aggregation: { rule: 'mean' }, minPeers: 2 }))
    expect(warnings).toEqual([expect.stringMatching(/^aggregation mean with f 1 and minPeers 2: .*\(2f\+1 = 3\).* set aggregation\.f to 0 .* or minPeers to 3 or more$/)])
    expect(jobConfigWarnings(parseJobConfig({ aggregation: { rule: 'mean', f: 0 }, minPeers: 2 }))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ aggregation: { rule: 'mean', f: 1 }, minPeers: 3 }))).toEqual([])
    // the robust rules cannot step below 2f+1 at all (the job waits, says why)
    expect(jobConfigWarnings(parseJobConfig({ aggregation: { rule: 'trimmed-mean', f: 1 }, minPeers: 3 }))).toEqual([])
  })

  it('names maxStaleness 0 in async mode when the rule needs others\' gradients (the steps would update nothing)', () => {
    const warnings = jobConfigWarnings(parseJobConfig({ mode: 'async', maxStaleness: 0, optimizer: { type: 'sgd', lr: 0.1, momentum: 0 } }))
    expect(warnings).toEqual([expect.stringMatching(/^mode async with maxStaleness 0: .* fewer than the 3 gradients trimmed-mean with f 1 needs and update nothing; set maxStaleness to 1 or more \(default 4\)$/)])
    // the mean of f 0 steps on this member's own gradient
    expect(jobConfigWarnings(parseJobConfig({ mode: 'async', maxStaleness: 0, aggregation: { rule: 'mean', f: 0 }, optimizer: { type: 'sgd', lr: 0.1, momentum: 0 } }))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ mode: 'async', maxStaleness: 1, optimizer: { type: 'sgd', lr: 0.1, momentum: 0 } }))).toEqual([])
  })

  it('names qsgd\'s settings given with another codec, which ignores them', () => {
    expect(jobConfigWarnings(parseJobConfig({ compression: { codec: 'fp16', bits: 4 } }))).toEqual(['compression.bits 4 has no effect with compression.codec fp16 (16 bits a coordinate); they set qsgd\'s quantization: drop it, or set compression.codec to qsgd'])
    expect(jobConfigWarnings(parseJobConfig({ compression: { codec: 'none', bits: 2, bucketSize: 64 } }))).toEqual(['compression.bits 2 and compression.bucketSize 64 have no effect with compression.codec none (float32, uncompressed); they set qsgd\'s quantization: drop them, or set compression.codec to qsgd'])
    // fp16 scales by bucket too; qsgd takes both
    expect(jobConfigWarnings(parseJobConfig({ compression: { codec: 'fp16', bucketSize: 64 } }))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ compression: { codec: 'qsgd', bits: 4, bucketSize: 64 } }))).toEqual([])
  })

  it('says nothing for sync jobs, async without momentum, or Adam', () => {
    expect(jobConfigWarnings(parseJobConfig({}))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ mode: 'async', optimizer: { type: 'sgd', lr: 0.1, momentum: 0 } }))).toEqual([])
    expect(jobConfigWarnings(parseJobConfig({ mode: 'async', optimizer: { type: 'adam', lr: 0.001 } }))).toEqual([])
  })
})
