/** `p2pmld metrics`' text: what its traffic counts are (a gradient published once a step to every member, delivered once per sender). */
import { describe, expect, it } from 'vitest'
import { formatMetrics } from '../../cli/commands/metrics.js'

describe('p2pmld metrics output', () => {
  it('says what a sent and a received message count, so 5 against 10 does not read as loss', () => {
    const text = formatMetrics({
      jobId: 'job-1',
      step: 5,
      stages: [],
      network: { bytesSent: 2.6 * 1048576, bytesReceived: 1048576, messagesSent: 5, messagesReceived: 10 },
      contributors: { last: 3, mean: 3, min: 3, max: 3 },
      rssMiB: 120,
      uptimeMs: 5000,
      refusedConnections: {},
      rejectedInputs: {},
      droppedInputs: {}
    })
    expect(text).toMatch(/^sent\s+2\.6 MiB; 5 gradients published \(one a step, to every member\)$/m)
    expect(text).toMatch(/^received\s+1\.0 MiB; 10 gradients delivered \(one per sender a step\)$/m)
    expect(text).toMatch(/^rejected\s+none$/m)
    expect(text).toMatch(/^dropped\s+none$/m)
  })

  it('lists rejections apart from the refusals the protocol expects', () => {
    const text = formatMetrics({
      jobId: 'job-1', step: 5, stages: [],
      network: { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0 },
      contributors: { last: 3, mean: 3, min: 3, max: 3 }, rssMiB: 120, uptimeMs: 5000, refusedConnections: {},
      rejectedInputs: { codec: 2 },
      droppedInputs: { stale: 7, 'job-refused': 1 }
    })
    expect(text).toMatch(/^rejected\s+codec 2$/m)
    expect(text).toMatch(/^dropped\s+stale 7, job-refused 1$/m)
  })
})
