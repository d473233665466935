import { afterEach, describe, expect, it, vi } from 'vitest'
import { BrokerRequestTimeoutError } from '../../protocols/amqp/control-messages.js'
import type { Envelope } from '../../protocols/amqp/envelope.js'
import { createPendingAnswers } from '../../protocols/amqp/pending-answers.js'

const envelope = (kind: string, index = 0): Envelope => ({ header: { kind, job: 'j', from: 'peer-a', index }, body: new Uint8Array(0) })

describe('answers over the broker matched to their question', () => {
  it('goes to the wait for that sender and id only, until the answer is complete', async () => {
    const answers = createPendingAnswers()
    const seen: number[] = []
    const wait = answers.await('peer-a', 'q1', (e) => { seen.push(e.header.index as number); return e.header.index === 2 }, { timeoutMs: 5_000 })
    // another sender, or another id: not this wait's
    answers.deliver('peer-b', 'q1', envelope('snapshot-chunk', 7))
    answers.deliver('peer-a', 'q2', envelope('snapshot-chunk', 8))
    for (const i of [0, 1, 2]) answers.deliver('peer-a', 'q1', envelope('snapshot-chunk', i))
    await wait.done
    expect(seen).toEqual([0, 1, 2])
    // done: a late envelope goes nowhere
    answers.deliver('peer-a', 'q1', envelope('snapshot-chunk', 3))
    expect(seen).toEqual([0, 1, 2])
  })

  afterEach(() => { vi.useRealTimers() })

  it('times out naming the peer; an idle wait restarts its timeout at every envelope', async () => {
    vi.useFakeTimers()
    const answers = createPendingAnswers()
    const plain = answers.await('peer-a', 'q1', () => true, { timeoutMs: 50 })
    const failed = expect(plain.done).rejects.toThrow(new BrokerRequestTimeoutError('no answer from peer-a over the broker within 50 ms'))
    await vi.advanceTimersByTimeAsync(50)
    await failed
    let complete = false
    const idle = answers.await('peer-a', 'q2', (e) => e.header.index === 3, { timeoutMs: 150, idle: true })
    void idle.done.then(() => { complete = true })
    // four envelopes 100 ms apart: 400 ms in all, past the 150 ms, but never 150 ms without one
    for (const i of [0, 1, 2, 3]) {
      await vi.advanceTimersByTimeAsync(100)
      answers.deliver('peer-a', 'q2', envelope('snapshot-chunk', i))
    }
    await idle.done
    expect(complete).toBe(true)
    // without `idle` the same envelopes come too late: the timeout counts from the question
    const whole = answers.await('peer-a', 'q3', (e) => e.header.index === 1, { timeoutMs: 150 })
    const late = expect(whole.done).rejects.toThrow(BrokerRequestTimeoutError)
    await vi.advanceTimersByTimeAsync(100)
    answers.deliver('peer-a', 'q3', envelope('snapshot-chunk', 0))
    await vi.advanceTimersByTimeAsync(100)
    answers.deliver('peer-a', 'q3', envelope('snapshot-chunk', 1))
    await late
  })

  it('fails on abort, on cancel, on a throw of its handler and when the transport stops', async () => {
    const answers = createPendingAnswers()
    const controller = new AbortController()
    const aborted = answers.await('peer-a', 'q1', () => true, { timeoutMs: 5_000, signal: controller.signal })
    controller.abort(new Error('job stopped'))
    await expect(aborted.done).rejects.toThrow('job stopped')
    await expect(answers.await('peer-a', 'q0', () => true, { timeoutMs: 5_000, signal: controller.signal }).done).rejects.toThrow('job stopped')
    const cancelled = answers.await('peer-a', 'q2', () => true, { timeoutMs: 5_000 })
    cancelled.cancel()
    await expect(cancelled.done).rejects.toThrow('cancelled')
    const refused = answers.await('peer-a', 'q3', () => { throw new Error('peer-a refused') }, { timeoutMs: 5_000 })
    answers.deliver('peer-a', 'q3', envelope('reply'))
    await expect(refused.done).rejects.toThrow('peer-a refused')
    const left = [answers.await('peer-a', 'q4', () => true, { timeoutMs: 5_000 }), answers.await('peer-b', 'q4', () => true, { timeoutMs: 5_000 })]
    answers.rejectAll(new Error('broker transport stopped'))
    for (const w of left) await expect(w.done).rejects.toThrow('broker transport stopped')
  })
})
