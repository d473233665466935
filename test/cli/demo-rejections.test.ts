/** The demo's rejection line: what the protocol drops by design is not reported as refusals. */
import { describe, expect, it } from 'vitest'
import { describeRejections } from '../../cli/commands/demo.js'

describe('describeRejections', () => {
  it('tells drops by design apart from refused messages', () => {
    expect(describeRejections({})).toBe('rejected messages: 0')
    expect(describeRejections({}, { stale: 66 })).toBe('rejected messages: 0; stale gradients dropped (older than maxStaleness, by design): 66')
    expect(describeRejections({ duplicate: 2 }, { stale: 3 })).toBe('rejected messages: 2 (duplicate 2); stale gradients dropped (older than maxStaleness, by design): 3')
    // in sync mode a gradient outside the window is an anomaly: the peers count it as rejected
    expect(describeRejections({ stale: 3, payload: 1 })).toBe('rejected messages: 4 (stale 3, payload 1)')
    expect(describeRejections({}, { 'job-refused': 2 })).toBe('rejected messages: 0; refused as the protocol expects: job-refused 2')
  })
})
