/**
 * Test-and-demo-only Byzantine behaviours: what a misbehaving peer publishes instead of its
 * honest gradient. Pure functions of their arguments; the honest gradient is never modified.
 */
import type { AttackConfig } from '../../config/job-config.js'
import { createRng, deriveSeed } from '../core/rng.js'

export interface AttackContext {
  readonly step: number
  /**
   * gaussian: a per-peer seed (two noisy peers should not send the same noise);
   * collude: the seed every colluder shares (e.g. the job seed), so they agree without talking
   */
  readonly seed: number
  /** equivocate: the peer the gradient is sent to (each gets another one) */
  readonly recipient?: string
}

// labels mixed into deriveSeed so attack streams never coincide with training streams
const GAUSSIAN_STREAM = 0x6a7541
const COLLUDE_STREAM = 0x636f6c
const EQUIVOCATE_STREAM = 0x657175

/** FNV-1a, 32 bits, of a peer id: a recipient's seed component */
function idSeed (id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0
  return h
}

export function applyAttack (attack: AttackConfig, honestGradient: Float32Array, context: AttackContext): Float32Array {
  const d = honestGradient.length
  const { magnitude } = attack
  switch (attack.kind) {
    case 'sign-flip':
      return honestGradient.map((x) => -magnitude * x)
    case 'scale':
      return honestGradient.map((x) => magnitude * x)
    case 'gaussian': {
      const rng = createRng(deriveSeed(context.seed, GAUSSIAN_STREAM, context.step))
      const out = new Float32Array(d)
      for (let j = 0; j < d; j++) out[j] = magnitude * rng.nextNormal()
      return out
    }
    case 'collude': {
      // +-magnitude per coordinate with signs drawn from (seed, step): identical for every colluder
      const rng = createRng(deriveSeed(context.seed, COLLUDE_STREAM, context.step))
      const out = new Float32Array(d)
      for (let j = 0; j < d; j++) out[j] = (rng.nextUint32() & 1) === 0 ? magnitude : -magnitude
      return out
    }
    case 'equivocate': {
      // a different gradient for every recipient, so members aggregate different sets
      const rng = createRng(deriveSeed(context.seed, EQUIVOCATE_STREAM, context.step, idSeed(context.recipient ?? '')))
      const factor = magnitude * (2 * rng.nextFloat() - 1)
      return honestGradient.map((x) => factor * x)
    }
  }
}
