/**
 * Test-only fault injection on inbound gradients: a seeded fraction is dropped, a seeded
 * fraction delayed, so fault-tolerance tests are repeatable.
 */
import { createRng } from '../../ml/core/rng.js'

export interface FaultInjection {
  readonly seed: number
  /** fraction of inbound gradients silently dropped, in [0, 1] */
  readonly dropFraction?: number
  /** fraction of the remaining ones delivered late, in [0, 1] */
  readonly delayFraction?: number
  /** delay in ms, fixed or uniform in [min, max] */
  readonly delayMs?: number | readonly [number, number]
  /** only gradients for steps in [from, to) are affected (default: every step) */
  readonly steps?: readonly [number, number]
  /** only gradients from these senders (peer ids) are affected (default: every sender) */
  readonly senders?: readonly string[]
  /** at most this many gradients are dropped or delayed (default: every one that matches) */
  readonly count?: number
}

export type FaultDecision = { readonly kind: 'deliver' } | { readonly kind: 'drop' } | { readonly kind: 'delay', readonly ms: number }

export interface FaultInjector {
  /** what happens to the next inbound gradient, one for `step` from `sender` when given */
  decide(step?: number, sender?: string): FaultDecision
}

export function createFaultInjector (faults: FaultInjection): FaultInjector {
  const rng = createRng(faults.seed)
  const drop = faults.dropFraction ?? 0
  const delay = faults.delayFraction ?? 0
  for (const [name, f] of [['dropFraction', drop], ['delayFraction', delay]] as const) {
    if (!(f >= 0 && f <= 1)) throw new RangeError(`faults.${name} must be in [0, 1], got ${f}`)
  }
  const [lo, hi] = typeof faults.delayMs === 'number' ? [faults.delayMs, faults.delayMs] : (faults.delayMs ?? [0, 0])
  let left = faults.count ?? Infinity
  return {
    decide (step, sender) {
      // draw both numbers every time so one fraction does not shift the other's sequence
      const a = rng.nextFloat()
      const b = rng.nextFloat()
      const c = rng.nextFloat()
      if (step !== undefined && faults.steps !== undefined && (step < faults.steps[0] || step >= faults.steps[1])) return { kind: 'deliver' }
      if (sender !== undefined && faults.senders !== undefined && !faults.senders.includes(sender)) return { kind: 'deliver' }
      if (left <= 0) return { kind: 'deliver' }
      if (a < drop) {
        left--
        return { kind: 'drop' }
      }
      if (b < delay) {
        left--
        return { kind: 'delay', ms: Math.round(lo + (hi - lo) * c) }
      }
      return { kind: 'deliver' }
    }
  }
}
