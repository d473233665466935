/** The payload buffers the sync trainer encodes into, one per step index. */
import { describe, expect, it } from 'vitest'
import { createBufferRing } from '../../ml/compress/buffer-ring.js'

describe('buffer ring', () => {
  it('refuses fewer than two buffers, and grows a buffer asked for more', () => {
    expect(() => createBufferRing(1)).toThrow(RangeError)
    const ring = createBufferRing(2)
    const small = ring.at(0, 4)
    const grown = ring.at(2, 8)
    expect(grown).not.toBe(small)
    expect(grown.length).toBe(8)
  })

  it('by step index: a step that runs again gets its own buffer back, never the one of the steps before it', () => {
    const ring = createBufferRing(4)
    const steps = [5, 6, 7].map((step) => ring.at(step, 16))
    // step 8 tried three times (catch-ups that failed): steps 5-7 keep their payloads
    for (let attempt = 0; attempt < 3; attempt++) {
      const buffer = ring.at(8, 16)
      buffer.fill(attempt + 1)
      expect(steps).not.toContain(buffer)
    }
    expect(ring.at(9, 16)).toBe(steps[0])
    expect(ring.at(0, 16)).toBe(ring.at(8, 16))
  })
})
