import { describe, expect, it } from 'vitest'
import { CPU_SAMPLE_EVERY, createStageRecorder } from '../../daemon/metrics/stage-metrics.js'

describe('stage recorder', () => {
  it('summarises each stage by count, total, mean, median, p95 and max, in Table I order', () => {
    const stages = createStageRecorder()
    // one slow start-up step among 19 ordinary ones: the mean moves, the median does not
    for (let i = 0; i < 19; i++) stages.record('receive', 10 + i, 1)
    stages.record('receive', 500, 1)
    stages.record('compute', 40, 80)
    stages.record('update', 4, 8)
    const [compute, receive, update] = stages.summary()
    expect(compute).toMatchObject({ stage: 'compute', count: 1, totalMs: 40, meanMs: 40, medianMs: 40, p95Ms: 40, maxMs: 40, cpuPercent: 200 })
    // under CPU_PERCENT_MIN_MS a call, CPU time cannot be told apart from other threads' late-credited ticks
    expect(update).toMatchObject({ stage: 'update', count: 1, medianMs: 4, cpuPercent: null })
    expect(receive.stage).toBe('receive')
    expect(receive.count).toBe(20)
    expect(receive.totalMs).toBe(361 + 500) // 10..28 sum to 361
    expect(receive.meanMs).toBeCloseTo(861 / 20, 10)
    // an even count: the mean of the middle two (19 and 20)
    expect(receive.medianMs).toBe(19.5)
    expect(receive.p95Ms).toBe(500)
    expect(receive.maxMs).toBe(500)
    expect(receive.rssMiB).toBeGreaterThan(10)
  })

  it('times real work, CPU included, and starts over after reset', async () => {
    const stages = createStageRecorder()
    await stages.time('aggregate', () => {
      const until = performance.now() + 30
      let x = 0
      while (performance.now() < until) x += Math.sqrt(x + 1)
      return x
    })
    const [aggregate] = stages.summary()
    expect(aggregate.meanMs).toBeGreaterThanOrEqual(30)
    // a busy loop on one thread: close to 100 % of a core (less when the machine is loaded)
    expect(aggregate.cpuPercent).toBeGreaterThan(10)
    // (no upper bound for an idle stage: CPU is the whole process's, and test workers share it)
    stages.reset()
    expect(stages.summary()).toEqual([])
  })

  it('reads CPU time and memory on one call in CPU_SAMPLE_EVERY, and takes CPU % over those calls only', async () => {
    const stages = createStageRecorder()
    const cpuReads: number[] = []
    stages.onRecord((_stage, _wallMs, cpuMs) => { if (cpuMs !== undefined) cpuReads.push(cpuMs) })
    const calls = 2 * CPU_SAMPLE_EVERY + 1
    for (let i = 0; i < calls; i++) await stages.time('update', () => i)
    expect(cpuReads).toHaveLength(3)
    expect(stages.summary()[0].count).toBe(calls)
    // calls recorded without CPU time leave the percentage as the sampled calls made it; the
    // first call (start-up) counts only until a later call's CPU time is read
    stages.record('compute', 100, 150)
    stages.record('compute', 1000)
    let compute = stages.summary().find((s) => s.stage === 'compute')
    expect(compute?.cpuPercent).toBe(150)
    expect(compute?.meanMs).toBe(550)
    stages.record('compute', 200, 100)
    compute = stages.summary().find((s) => s.stage === 'compute')
    expect(compute?.cpuPercent).toBe(50)
    expect(compute?.rssMiB).toBeGreaterThan(10)
    // a caller timing a few calls reads CPU time on every one
    const every = createStageRecorder({ cpuSampleEvery: 1 })
    let reads = 0
    every.onRecord((_stage, _wallMs, cpuMs) => { if (cpuMs !== undefined) reads++ })
    for (let i = 0; i < 3; i++) await every.time('compute', () => i)
    expect(reads).toBe(3)
  })
})
