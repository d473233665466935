import { describe, expect, it } from 'vitest'
import { majorityDigest } from '../../daemon/membership/digest-majority.js'

const digests = (entries: Array<[string, string]>): Map<string, string> => new Map(entries)

describe('majorityDigest', () => {
  it('picks the digest most peers hold, holders most senior first', () => {
    const decision = majorityDigest(digests([['a', 'x'], ['b', 'y'], ['c', 'y'], ['d', 'x'], ['e', 'y']]), ['e', 'a', 'b', 'c', 'd'])
    expect(decision).toEqual({ digest: 'y', holders: ['e', 'b', 'c'] })
  })

  it('breaks a tie by the most senior holder, whatever the digest values', () => {
    const held = digests([['host', 'ffff'], ['p2', 'ffff'], ['p3', '0000'], ['p4', '0000']])
    expect(majorityDigest(held, ['host', 'p2', 'p3', 'p4']).digest).toBe('ffff')
    expect(majorityDigest(held, ['p3', 'host', 'p2', 'p4']).digest).toBe('0000')
  })

  it('does not let a lone peer with an invented small digest win when everyone differs', () => {
    const held = digests([['host', 'cc'], ['p2', 'bb'], ['byzantine', '00']])
    expect(majorityDigest(held, ['host', 'p2', 'byzantine'])).toEqual({ digest: 'cc', holders: ['host'] })
  })

  it('ranks peers missing from the seniority list last, by id', () => {
    const held = digests([['z', 'a1'], ['y', 'b2']])
    expect(majorityDigest(held, []).digest).toBe('b2')
    expect(majorityDigest(held, ['z']).digest).toBe('a1')
  })

  it('refuses an empty set', () => {
    expect(() => majorityDigest(new Map(), ['a'])).toThrow(/at least one/)
  })
})
