/**
 * A gradient the runner does not collect is counted by why: `stale` for a step before the steps
 * it collects, `ahead` for one past them (this peer lags behind its sender; it was counted as
 * `stale` too, which sent a reader of the log after a bug in the sender). A real session core
 * hosting the job with member 'a', played by the test.
 */
import { describe, expect, it } from 'vitest'
import type { JobWire } from '../../daemon/peer/session-core.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import { useHostSessionCores } from '../support/host-session-core.js'

const host = useHostSessionCores('gradient-window')

describe('gradients outside the steps a peer collects', () => {
  it('are counted as stale before the window and as ahead past it', async () => {
    const published: GradientMessage[] = []
    let answer: ((message: GradientMessage) => void) | undefined
    const wire: JobWire = {
      async publishGradient(message) {
        published.push(message)
        // member 'a' answers each step with the same gradient
        const copy = { ...message, sender: 'a', payload: Uint8Array.from(message.payload) }
        setImmediate(() => answer?.(copy))
        return { missed: [] }
      },
      broadcast: async () => {},
      request: async () => await Promise.reject(new Error('member a answers no requests')),
      fetchSnapshot: async () => await Promise.reject(new Error('no state transfer in this test'))
    }
    const core = await host(2, wire)
    answer = (message) => { core.onGradient(message, 'a') }
    const runner = core.runner()!
    await runner.admit('a')
    const started = Date.now()
    while (runner.progress().step < 4 && Date.now() - started < 30_000) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(runner.progress().step).toBeGreaterThanOrEqual(4)
    expect(core.rejections.counts()).toEqual({})
    answer = undefined
    const first = published[0]!
    const now = runner.progress().step
    core.onGradient({ ...first, sender: 'a', step: now + 50, payload: Uint8Array.from(first.payload) }, 'a')
    expect(core.rejections.counts()).toEqual({ ahead: 1 })
    core.onGradient({ ...first, sender: 'a', step: 0, payload: Uint8Array.from(first.payload) }, 'a')
    expect(core.rejections.counts()).toEqual({ ahead: 1, stale: 1 })
  }, 60_000)
})
