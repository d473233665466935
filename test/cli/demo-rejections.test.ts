/** The demo's rejection line: async's by-design stale drops are not reported as refusals. */
import { describe, expect, it } from 'vitest'
import { describeRejections } from '../../cli/commands/demo.js'

describe('describeRejections', () => {
  it('tells async stale drops apart from refused messages', () => {
    expect(describeRejections({}, 'sync')).toBe('rejected messages: 0')
    expect(describeRejections({ stale: 66 }, 'async')).toBe('rejected messages: 0; stale gradients dropped (older than maxStaleness, by design): 66')
    expect(describeRejections({ stale: 3, duplicate: 2 }, 'async')).toBe('rejected messages: 2 (duplicate 2); stale gradients dropped (older than maxStaleness, by design): 3')
    // in sync mode a gradient outside the window is an anomaly: counted with the rest
    expect(describeRejections({ stale: 3, payload: 1 }, 'sync')).toBe('rejected messages: 4 (stale 3, payload 1)')
  })
})
