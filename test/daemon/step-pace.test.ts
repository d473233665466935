/** The pace `p2pmld start`'s progress lines and `p2pmld status` show: from recent steps only, and only once a few were timed. */
import { describe, expect, it } from 'vitest'
import { createPaceTracker, timeLeftMs } from '../../daemon/job/step-pace.js'

describe('step pace', () => {
  const tracked = () => {
    let clock = 0
    const tracker = createPaceTracker({ now: () => clock })
    return { tracker, wait: (ms: number) => { clock += ms } }
  }

  it('gives nothing until three intervals between steps were timed, then their samples per second', () => {
    const { tracker, wait } = tracked()
    // a job's first steps: slow, then 100 ms each (a first interval alone read '0 samples/s')
    tracker.step(0, 96)
    wait(5000)
    tracker.step(0, 96)
    expect(tracker.pace()).toBeUndefined()
    wait(100)
    tracker.step(0, 96)
    expect(tracker.pace()).toBeUndefined()
    wait(100)
    tracker.step(0, 96)
    expect(tracker.pace()?.stepMs).toBeCloseTo(5200 / 3)
    // the window forgets the slow start after 20 intervals
    for (let i = 0; i < 20; i++) {
      wait(100)
      tracker.step(0, 96)
    }
    expect(tracker.pace()).toEqual({ samplesPerSecond: 960, stepMs: 100 })
  })

  it('keeps an epoch end and a pause out of the step time, and counts the epoch end once per epoch left', () => {
    const { tracker, wait } = tracked()
    for (let i = 0; i < 5; i++) {
      wait(200)
      tracker.step(0, 32)
    }
    // validation: 1 s beyond the step
    wait(1200)
    tracker.step(1, 32)
    tracker.pause()
    wait(60_000)
    tracker.step(1, 32)
    wait(200)
    tracker.step(1, 32)
    const pace = tracker.pace()!
    expect(pace).toEqual({ samplesPerSecond: 160, stepMs: 200, epochEndMs: 1000 })
    // epoch 2 of 3 (0-based 1), 4 of 10 steps done: 6 + 10 steps and two epoch ends left
    expect(timeLeftMs(pace, 1, 3, 4, 10)).toBe(16 * 200 + 2 * 1000)
    expect(timeLeftMs(pace, 2, 3, 10, 10)).toBe(1000)
  })
})
