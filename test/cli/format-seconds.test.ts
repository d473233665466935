import { describe, expect, it } from 'vitest'
import { formatSeconds } from '../../cli/support/format.js'

describe('formatSeconds', () => {
  it('reads seconds, tenths, two significant digits or milliseconds, and never carries into exponent notation at a unit bound', () => {
    expect(formatSeconds(0.0093)).toBe('9.3 ms')
    expect(formatSeconds(0.0123)).toBe('12 ms')
    // 99.96 ms rounded to two digits is 100: it was printed '1.0e+2 ms' (a CI failure)
    expect(formatSeconds(0.09996)).toBe('0.1 s')
    expect(formatSeconds(0.0994)).toBe('99 ms')
    expect(formatSeconds(0.25)).toBe('0.25 s')
    expect(formatSeconds(0.125)).toBe('0.13 s')
    expect(formatSeconds(1.234)).toBe('1.2 s')
    expect(formatSeconds(9.996)).toBe('10.0 s')
    expect(formatSeconds(41.2)).toBe('41.2 s')
    expect(formatSeconds(99.96)).toBe('100 s')
    expect(formatSeconds(1234.4)).toBe('1234 s')
    for (let ms = 0.5; ms < 200_000; ms *= 1.013) expect(formatSeconds(ms / 1000)).toMatch(/^\d+(\.\d+)? m?s$/)
  })
})
