import { describe, expect, it } from 'vitest'
import { createGradientCollector, type CollectedGradient } from '../../daemon/membership/gradient-collector.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'

describe('MembershipView', () => {
  it('applies joins and leaves at their effective steps, in sorted rank order', () => {
    const view = new MembershipView()
    view.join('c', 0)
    view.join('a', 0)
    view.join('b', 5)
    expect(view.membersAt(0)).toEqual(['a', 'c'])
    expect(view.membersAt(5)).toEqual(['a', 'b', 'c'])
    expect(view.leave('a', 7)).toBe(true)
    expect(view.membersAt(6)).toEqual(['a', 'b', 'c'])
    expect(view.membersAt(7)).toEqual(['b', 'c'])
    // the earliest announced leave wins; a later one changes nothing
    expect(view.leave('a', 9)).toBe(false)
    expect(view.record('a')?.leaveStep).toBe(7)
  })

  it('re-admits a peer that left, from its new join step', () => {
    const view = new MembershipView()
    view.join('a', 0)
    view.join('b', 0)
    view.leave('b', 3)
    expect(view.join('b', 10)).toBe(true)
    expect(view.membersAt(5)).toEqual(['a'])
    expect(view.membersAt(10)).toEqual(['a', 'b'])
  })

  it('names the most senior unsuspected member coordinator, and survives a snapshot round trip', () => {
    const view = new MembershipView()
    view.join('z-host', 0)
    view.join('a', 0)
    view.join('m', 0)
    expect(view.coordinatorAt(0)).toBe('z-host')
    expect(view.coordinatorAt(0, new Set(['z-host']))).toBe('a')
    view.leave('z-host', 4)
    const copy = MembershipView.fromSnapshot(JSON.parse(JSON.stringify(view.toSnapshot())))
    expect(copy.coordinatorAt(4)).toBe('a')
    expect(copy.membersAt(3)).toEqual(['a', 'm', 'z-host'])
    expect(copy.membersAt(4)).toEqual(['a', 'm'])
  })
})

interface G extends CollectedGradient { readonly value: number }

describe('gradient collector', () => {
  it('returns as soon as every expected peer sent, keeping each gradient once', async () => {
    const c = createGradientCollector<G>()
    const done = c.collect(0, { expected: new Set(['a', 'b']), deadline: performance.now() + 5000 })
    expect(c.offer({ step: 0, sender: 'a', value: 1 })).toBe(true)
    expect(c.offer({ step: 0, sender: 'a', value: 2 })).toBe(false)
    c.offer({ step: 0, sender: 'b', value: 3 })
    const started = performance.now()
    const result = await done
    expect(performance.now() - started).toBeLessThan(1000)
    expect(result.timedOut).toBe(false)
    expect(result.missing).toEqual([])
    expect([...result.received.values()].map((g) => g.value).sort()).toEqual([1, 3])
  })

  it('goes on at the deadline with what arrived, and names who is missing', async () => {
    const c = createGradientCollector<G>()
    c.offer({ step: 2, sender: 'a', value: 1 })
    c.discardBefore(2)
    const started = performance.now()
    const result = await c.collect(2, { expected: new Set(['a', 'b']), deadline: performance.now() + 150 })
    expect(performance.now() - started).toBeGreaterThanOrEqual(140)
    expect(result.timedOut).toBe(true)
    expect(result.missing).toEqual(['b'])
    expect(result.received.size).toBe(1)
  })

  it('tells which collect is in progress and who it still waits for (status names a long wait)', async () => {
    const c = createGradientCollector<G>()
    expect(c.pending()).toBeUndefined()
    const deadline = performance.now() + 5000
    const done = c.collect(3, { expected: new Set(['a', 'b']), deadline })
    expect(c.pending()).toMatchObject({ step: 3, missing: ['a', 'b'], deadline })
    c.offer({ step: 3, sender: 'a', value: 1 })
    expect(c.pending()).toMatchObject({ missing: ['b'], received: 1 })
    c.offer({ step: 3, sender: 'b', value: 2 })
    await done
    expect(c.pending()).toBeUndefined()
  })

  it('does not wait for a peer it gave up on (its port refuses), still names it missing, and takes its gradient if it comes', async () => {
    const c = createGradientCollector<G>()
    const gone = new Set<string>()
    const started = performance.now()
    const done = c.collect(1, { expected: new Set(['a', 'b']), deadline: started + 10_000, gaveUp: (id) => gone.has(id) })
    c.offer({ step: 1, sender: 'a', value: 1 })
    // found gone while the collect waits: looked at again within its poll
    setTimeout(() => gone.add('b'), 50)
    const result = await done
    expect(performance.now() - started).toBeLessThan(2_000)
    expect(result).toMatchObject({ missing: ['b'], timedOut: false })
    expect([...result.received.keys()]).toEqual(['a'])
    // one given up on that sends after all is received (it was not gone)
    const next = c.collect(2, { expected: new Set(['a', 'b']), deadline: performance.now() + 10_000, gaveUp: (id) => gone.has(id) })
    c.offer({ step: 2, sender: 'b', value: 3 })
    c.offer({ step: 2, sender: 'a', value: 4 })
    const second = await next
    expect(second.missing).toEqual([])
    expect([...second.received.keys()].sort()).toEqual(['a', 'b'])
  })

  it('names the senders that sent a later step, also when the step was too far ahead to keep', () => {
    const c = createGradientCollector<G>({ maxStepsAhead: 2 })
    c.discardBefore(5)
    c.offer({ step: 5, sender: 'a', value: 0 })
    c.offer({ step: 6, sender: 'b', value: 0 })
    expect(c.offer({ step: 30, sender: 'c', value: 0 })).toBe(false)
    expect(c.sendersAhead(5).sort()).toEqual(['b', 'c'])
    expect(c.sendersAhead(6)).toEqual(['c'])
    expect(c.sendersAhead(30)).toEqual([])
  })

  it('stops waiting for a peer that is forgotten, and refuses stale and far-future steps', async () => {
    const c = createGradientCollector<G>({ maxStepsAhead: 4 })
    c.discardBefore(10)
    expect(c.offer({ step: 9, sender: 'a', value: 0 })).toBe(false)
    expect(c.offer({ step: 15, sender: 'a', value: 0 })).toBe(false)
    expect(c.offer({ step: 14, sender: 'a', value: 0 })).toBe(true)
    const pending = c.collect(10, { expected: new Set(['gone']), deadline: performance.now() + 10_000 })
    setTimeout(() => c.forget('gone'), 20)
    const result = await pending
    expect(result.timedOut).toBe(false)
    expect(result.received.size).toBe(0)
  })

  it('a forgotten peer expected by a later collect (evicted and admitted again at one step) is waited for and named missing', async () => {
    const c = createGradientCollector<G>()
    c.forget('back')
    const result = await c.collect(3, { expected: new Set(['back', 'b']), deadline: performance.now() + 30 })
    expect(result.timedOut).toBe(true)
    expect(result.missing.sort()).toEqual(['b', 'back'])
    // and its gradient completes the set
    const pending = c.collect(3, { expected: new Set(['back']), deadline: performance.now() + 10_000 })
    c.offer({ step: 3, sender: 'back', value: 1 })
    expect([...(await pending).received.keys()]).toEqual(['back'])
  })
})
