import { describe, expect, it } from 'vitest'
import { EarlyStoppingConfigSchema, LrScheduleConfigSchema } from '../../config/job-config.js'
import { EarlyStopping, ReduceLROnPlateau, ScheduleStateError } from '../../ml/schedule/index.js'

const plateauConfig = (o: object): ReturnType<typeof LrScheduleConfigSchema.parse> => LrScheduleConfigSchema.parse({ minLr: 0, ...o })

/** Learning rate after each epoch's validation loss. */
function lrTrace(s: ReduceLROnPlateau, losses: number[], lr0: number): number[] {
  let lr = lr0
  return losses.map((loss) => { lr = s.step(loss, lr); return lr })
}

function expectLrs(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length)
  actual.forEach((a, i) => { expect(a).toBeCloseTo(expected[i], 12) })
}

// Each trace follows torch.optim.lr_scheduler.ReduceLROnPlateau(mode='min', threshold_mode='rel'):
// better means loss < best * (1 - threshold); a reduction happens when bad epochs exceed patience.
describe('ReduceLROnPlateau', () => {
  it('reduces after more than `patience` epochs without a relative improvement of `threshold`', () => {
    const s = new ReduceLROnPlateau(plateauConfig({ factor: 0.5, patience: 2, threshold: 0.1 }))
    // 1.0 best; 0.95, 0.91 not below 0.9 (bad 1, 2); 0.92 bad 3 > 2: halve; 0.89 < 0.9 new best;
    // 0.88, 0.87 not below 0.801 (bad 1, 2); 0.86 bad 3: halve; 0.85 bad 1
    expectLrs(lrTrace(s, [1.0, 0.95, 0.91, 0.92, 0.89, 0.88, 0.87, 0.86, 0.85], 0.1),
      [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025])
  })

  it('waits `cooldown` epochs after a reduction before counting bad epochs again', () => {
    const s = new ReduceLROnPlateau(plateauConfig({ factor: 0.5, patience: 1, cooldown: 2 }))
    // flat loss: bad 1, bad 2 > 1 -> halve at epoch 3; two cooldown epochs; bad 1, bad 2 -> halve at epoch 7
    expectLrs(lrTrace(s, new Array(8).fill(1.0), 0.1), [0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025])
  })

  it('never goes below minLr, and ignores reductions smaller than 1e-8', () => {
    const s = new ReduceLROnPlateau(plateauConfig({ factor: 0.5, patience: 0, minLr: 0.0008 }))
    expectLrs(lrTrace(s, new Array(5).fill(1.0), 0.001), [0.001, 0.0008, 0.0008, 0.0008, 0.0008])
    const tiny = new ReduceLROnPlateau(plateauConfig({ factor: 0.5, patience: 0 }))
    expect(lrTrace(tiny, [1, 1, 1], 1.5e-8)).toEqual([1.5e-8, 1.5e-8, 1.5e-8])
  })

  it('counts a NaN loss as a bad epoch', () => {
    const s = new ReduceLROnPlateau(plateauConfig({ factor: 0.5, patience: 1 }))
    expectLrs(lrTrace(s, [1.0, NaN, NaN], 0.1), [0.1, 0.1, 0.05])
  })

  it('restored from its JSON (as checkpointed and sent to a joining peer) decides exactly as the original', () => {
    const config = plateauConfig({ factor: 0.3, patience: 2, cooldown: 1, threshold: 0.01 })
    const losses = [2.0, 1.5, 1.49, 1.5, 1.6, 1.2, 1.2, 1.21, 1.3, 1.19, 1.4, 1.4, 1.4, 1.4]
    const whole = lrTrace(new ReduceLROnPlateau(config), losses, 0.1)
    expect(whole[whole.length - 1]).toBeLessThan(0.1)
    for (let cut = 0; cut <= losses.length; cut++) {
      const first = new ReduceLROnPlateau(config)
      const head = lrTrace(first, losses.slice(0, cut), 0.1)
      const wire = JSON.parse(JSON.stringify(first.toJSON())) as unknown
      const resumed = ReduceLROnPlateau.fromJSON(config, wire)
      const tail = lrTrace(resumed, losses.slice(cut), head.length > 0 ? head[head.length - 1] : 0.1)
      expect([...head, ...tail]).toEqual(whole)
    }
    expect(new ReduceLROnPlateau(config).toJSON()).toEqual({ best: null, badEpochs: 0, cooldownLeft: 0 })
  })

  it('rejects damaged state with a typed error', () => {
    const config = plateauConfig({})
    for (const bad of [null, 3, [], { best: 1, badEpochs: -1, cooldownLeft: 0 }, { best: 'x', badEpochs: 0, cooldownLeft: 0 }, { best: 1, badEpochs: 0 }, { best: 1, badEpochs: 0.5, cooldownLeft: 0 }]) {
      expect(() => ReduceLROnPlateau.fromJSON(config, bad)).toThrow(ScheduleStateError)
    }
    expect(() => ReduceLROnPlateau.fromJSON(config, { best: 1, badEpochs: 0 })).toThrow(/cooldownLeft must be a non-negative integer, got undefined/)
  })
})

describe('EarlyStopping', () => {
  const config = EarlyStoppingConfigSchema.parse({ patience: 3, minDelta: 0.01 })

  function stops(e: EarlyStopping, losses: number[]): boolean[] {
    return losses.map((l) => e.step(l))
  }

  it('stops after `patience` epochs without improving by more than minDelta', () => {
    // 1.0 best; 0.995 not below 0.99 (bad 1); 0.98 best; 0.975, 0.972, 0.971 bad 1, 2, 3: stop
    expect(stops(new EarlyStopping(config), [1.0, 0.995, 0.98, 0.975, 0.972, 0.971])).toEqual([false, false, false, false, false, true])
    // steady improvement never stops
    expect(stops(new EarlyStopping(config), [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]).some(Boolean)).toBe(false)
  })

  it('with patience 0 never stops', () => {
    const off = new EarlyStopping(EarlyStoppingConfigSchema.parse({ patience: 0 }))
    expect(stops(off, new Array(20).fill(1)).some(Boolean)).toBe(false)
  })

  it('restored from its JSON continues the count', () => {
    const e = new EarlyStopping(config)
    stops(e, [1.0, 1.0, 1.0])
    const resumed = EarlyStopping.fromJSON(config, JSON.parse(JSON.stringify(e.toJSON())) as unknown)
    expect(resumed.toJSON()).toEqual({ best: 1, badEpochs: 2 })
    expect(resumed.step(1.0)).toBe(true)
    const fresh = EarlyStopping.fromJSON(config, new EarlyStopping(config).toJSON())
    expect(fresh.step(5)).toBe(false)
    expect(fresh.toJSON()).toEqual({ best: 5, badEpochs: 0 })
    expect(() => EarlyStopping.fromJSON(config, { best: Infinity, badEpochs: 0 })).toThrow(ScheduleStateError)
    expect(() => EarlyStopping.fromJSON(config, 'x')).toThrow(/EarlyStopping state must be an object, got string/)
  })
})
