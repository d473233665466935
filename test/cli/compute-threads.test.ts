/** `--compute-threads` of train and estimate, as `p2pmld start` names it; `--threads`, its old name, still taken. */
import { describe, expect, it } from 'vitest'
import { computeThreads } from '../../cli/support/compute-threads.js'

describe('--compute-threads', () => {
  it('defaults to 2, takes either name, and names the flag given in an error', () => {
    expect(computeThreads(undefined, undefined)).toBe(2)
    expect(computeThreads('1', undefined)).toBe(1)
    expect(computeThreads(undefined, '3')).toBe(3)
    expect(() => computeThreads('0', undefined)).toThrow("--compute-threads must be a whole number >= 1, got '0'")
    expect(() => computeThreads(undefined, 'two')).toThrow("--threads must be a whole number >= 1, got 'two'")
    expect(() => computeThreads('1', '1')).toThrow('--threads is the old name of --compute-threads: give one of them')
  })
})
