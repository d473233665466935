/**
 * Seeded pseudo-random numbers (xoshiro128**, seeded through splitmix32).
 * Everything random in training (initialisation, shuffling, QSGD rounding, test attacks)
 * takes an Rng so a run is reproducible from its seed.
 */
export interface Rng {
  /** uniform in [0, 2^32) */
  nextUint32(): number
  /** uniform in [0, 1) */
  nextFloat(): number
  /** standard normal (Box-Muller) */
  nextNormal(): number
  /** uniform integer in [0, n) */
  nextInt(n: number): number
}

function splitmix32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

export function createRng(seed: number): Rng {
  const mix = splitmix32(seed)
  let s0 = mix()
  let s1 = mix()
  let s2 = mix()
  let s3 = mix()
  let spareNormal: number | undefined

  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0
    const t = (s1 << 9) >>> 0
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 11)
    s0 >>>= 0; s1 >>>= 0; s2 >>>= 0; s3 >>>= 0
    return result
  }
  const nextFloat = (): number => nextUint32() / 4294967296

  return {
    nextUint32,
    nextFloat,
    nextInt: (n: number) => Math.floor(nextFloat() * n),
    nextNormal: () => {
      if (spareNormal !== undefined) {
        const value = spareNormal
        spareNormal = undefined
        return value
      }
      let u = 0
      while (u === 0) u = nextFloat()
      const v = nextFloat()
      const radius = Math.sqrt(-2 * Math.log(u))
      spareNormal = radius * Math.sin(2 * Math.PI * v)
      return radius * Math.cos(2 * Math.PI * v)
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** Derive an independent seed from a base seed and labels (peer rank, step, purpose...). */
export function deriveSeed(base: number, ...parts: number[]): number {
  let h = base >>> 0
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x9e3779b1) >>> 0
    h = (h ^ (h >>> 15)) >>> 0
    h = Math.imul(h, 0x85ebca77) >>> 0
    h = (h ^ (h >>> 13)) >>> 0
  }
  return h
}
