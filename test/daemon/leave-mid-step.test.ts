/**
 * A member told to leave while it computes a step (Ctrl-C, `p2pmld stop`, `job stop`) finishes
 * that step as a clean leave promises: its gradient for the step goes to the others, and it
 * leaves from the next step. The stop turned the session's sends off before the step was
 * finished: the leaver completed the step with the others' gradients while they never got its
 * own, waited out a deadline for it, and recorded its leave a step before the one it announced
 * (a fresh user's run report then listed the clean leave as an eviction). A real session core and
 * runner hosting the job, a member 'a' played by the test through a wire that records.
 */
import { describe, expect, it } from 'vitest'
import type { JobWire } from '../../daemon/peer/session-core.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import { useHostSessionCores } from '../support/host-session-core.js'

const host = useHostSessionCores('leave-mid-step')

describe('a member leaving while it computes a step', () => {
  it('sends that step\'s gradient and leaves from the next step', async () => {
    const published: GradientMessage[] = []
    const leaves: number[] = []
    let answer: ((message: GradientMessage) => void) | undefined
    const wire: JobWire = {
      async publishGradient(message, recipients) {
        expect(recipients).toEqual(['a'])
        published.push(message)
        // member 'a' answers with the same gradient (same parameters, same codec)
        const copy = { ...message, sender: 'a', payload: Uint8Array.from(message.payload) }
        setImmediate(() => answer?.(copy))
        return { missed: [] }
      },
      async broadcast(message) {
        const m = message as { type?: string, effectiveStep?: number }
        if (m.type === 'leave' && m.effectiveStep !== undefined) leaves.push(m.effectiveStep)
      },
      request: async () => await Promise.reject(new Error('member a answers no requests')),
      fetchSnapshot: async () => await Promise.reject(new Error('no state transfer in this test'))
    }
    const core = await host(2, wire)
    answer = (message) => { core.onGradient(message, 'a') }
    const runner = core.runner()!
    // the stop comes while step 1's gradient is computed: the compute stage is recorded, the
    // step's send has not started yet
    let stopping: Promise<unknown> | undefined
    runner.stages.onRecord((stage) => {
      if (stage === 'compute' && runner.progress().step === 1 && stopping === undefined) stopping = core.stopRunner(true)
    })
    await runner.admit('a')
    const started = Date.now()
    while (stopping === undefined && Date.now() - started < 30_000) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(stopping, 'the stop during step 1').toBeDefined()
    await stopping
    // step 1's gradient went out, the step completed with both, and the leave is from step 2
    expect(published.map((m) => m.step)).toEqual([0, 1])
    expect(runner.progress().step).toBe(2)
    expect(leaves).toEqual([2])
  }, 60_000)
})
