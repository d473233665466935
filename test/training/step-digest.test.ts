/**
 * The per-step digest members compare: equal parameters give equal digests, and a changed
 * parameter anywhere in the vector changes the digest of some step within one sweep; what members
 * exchange is the full digest at anchor steps and the sample between.
 */
import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { exchangedDigest, parameterDigest, STEP_DIGEST_BLOCK, STEP_DIGEST_BLOCKS, stepDigest } from '../../daemon/training/training-state.js'

function randomParams(n: number, seed: number): Float32Array {
  const rng = createRng(seed)
  return Float32Array.from({ length: n }, () => rng.nextFloat() - 0.5)
}

describe('stepDigest', () => {
  it('is a 32-byte hex digest, equal for equal parameters, and depends on the step', () => {
    const a = randomParams(100_000, 1)
    const b = a.slice()
    expect(stepDigest(a, 5)).toMatch(/^[0-9a-f]{64}$/)
    expect(stepDigest(a, 5)).toBe(stepDigest(b, 5))
    expect(stepDigest(a, 5)).not.toBe(stepDigest(a, 6))
    // not the trusted full digest: that one stays sha256 of every byte
    expect(stepDigest(a, 5)).not.toBe(parameterDigest(a))
  })

  it('reads the parameters where they lie in their buffer, and tells -0 from 0', () => {
    const a = randomParams(50_000, 6)
    const host = new Float32Array(a.length + 3)
    host.set(a, 3)
    const b = host.subarray(3)
    expect(b.byteOffset).toBe(12)
    for (const step of [0, 1, 17]) expect(stepDigest(b, step)).toBe(stepDigest(a, step))
    const zero = new Float32Array(100)
    const negativeZero = zero.slice()
    negativeZero[40] = -0
    // sha256 of the bytes told them apart; the sample's hash must as well
    expect(stepDigest(negativeZero, 2)).not.toBe(stepDigest(zero, 2))
  })

  it('hashes every parameter of a small model at every step', () => {
    const n = STEP_DIGEST_BLOCKS * STEP_DIGEST_BLOCK
    const a = randomParams(n, 2)
    const before = stepDigest(a, 3)
    for (const i of [0, 1, n >> 1, n - 1]) {
      const b = a.slice()
      b[i] = Math.fround(b[i] + 1e-6)
      expect(stepDigest(b, 3), `index ${i}`).not.toBe(before)
    }
  })

  it('detects a change at any index of a large vector within one sweep of steps', () => {
    for (const n of [2049, 10_007, 1_000_003]) {
      const a = randomParams(n, n)
      const stride = Math.ceil(n / STEP_DIGEST_BLOCKS)
      const sweep = Math.ceil(stride / STEP_DIGEST_BLOCK)
      const rng = createRng(n + 1)
      for (const i of [0, n - 1, stride - 1, stride, ...Array.from({ length: 20 }, () => rng.nextInt(n))]) {
        const b = a.slice()
        // the smallest change there is: one ulp
        b[i] = b[i] === 0 ? 1e-45 : Math.fround(b[i] * (1 + 2 ** -23))
        expect(b[i]).not.toBe(a[i])
        let caught = 0
        for (let step = 100; step < 100 + sweep; step++) if (stepDigest(a, step) !== stepDigest(b, step)) caught++
        // exactly one step of each sweep samples a given index
        expect(caught, `n=${n} index ${i}`).toBe(1)
      }
    }
  })
})

describe('exchangedDigest', () => {
  it('is the full sha256 at anchor steps and the sample between', () => {
    const a = randomParams(300_000, 4)
    for (const step of [0, 32, 64]) expect(exchangedDigest(a, step, 32)).toEqual({ digest: parameterDigest(a), full: true })
    for (const step of [1, 31, 33]) expect(exchangedDigest(a, step, 32)).toEqual({ digest: stepDigest(a, step), full: false })
    // every 1: the full digest at every step
    for (const step of [0, 1, 7]) expect(exchangedDigest(a, step, 1).full).toBe(true)
  })

  it('catches a difference the samples miss at the next anchor step', () => {
    const a = randomParams(1_000_003, 5)
    const b = a.slice()
    // one parameter that step 33's sample does not read
    const stride = Math.ceil(a.length / STEP_DIGEST_BLOCKS)
    const shift = (33 % Math.ceil(stride / STEP_DIGEST_BLOCK)) * STEP_DIGEST_BLOCK
    const i = shift + STEP_DIGEST_BLOCK + 1
    b[i] = Math.fround(b[i] + 0.25)
    expect(exchangedDigest(b, 33, 32).digest).toBe(exchangedDigest(a, 33, 32).digest)
    expect(exchangedDigest(b, 64, 32).digest).not.toBe(exchangedDigest(a, 64, 32).digest)
  })
})
