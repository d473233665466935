/**
 * Reconciliation (f = 1, four members): the coordinate-wise trimmed mean of every member's state,
 * the same bits on every member whatever its place, adopted only once the others fetched this
 * member's state; members not at the step left out, and nothing adopted from fewer than 2f+1.
 */
import { describe, expect, it } from 'vitest'
import type { JobSnapshot } from '../../daemon/job/job-types.js'
import { createStateReconciliation } from '../../daemon/job/state-reconciliation.js'
import { silentLogger } from '../../daemon/logger.js'

const MEMBERS = ['a', 'b', 'c', 'd']

function state(step: number, values: number[], momentum: number, lr: number): JobSnapshot {
  return {
    step,
    epoch: 0,
    cursor: 0,
    params: Float32Array.from(values),
    optimizerState: Float32Array.from([1, momentum, momentum]),
    meta: { lr, epochLossSum: 0, epochLossCount: 0, convergence: {}, membership: { version: 1, members: [] }, history: [], finished: false }
  } as unknown as JobSnapshot
}

// d is Byzantine: its state is far out; a, b, c hold three different honest states
const STATES: Record<string, JobSnapshot> = {
  a: state(10, [1, 10, -1], 0.1, 0.1),
  b: state(10, [2, 20, -2], 0.2, 0.1),
  c: state(10, [3, 30, -3], 0.3, 0.01),
  d: state(10, [1e6, -1e6, 1e30], 1e6, 100)
}

function member(selfId: string, serve: (peer: string) => JobSnapshot | Promise<JobSnapshot> = (peer) => STATES[peer], signal = new AbortController().signal) {
  const adopted: JobSnapshot[] = []
  const warnings: Array<{ fields: Record<string, unknown>, msg: string }> = []
  const log = silentLogger()
  log.warn = ((fields: Record<string, unknown>, msg: string) => { warnings.push({ fields, msg }) }) as typeof log.warn
  const reconciliation = createStateReconciliation({
    selfId,
    f: 1,
    log,
    fetchSnapshot: async (peer) => await serve(peer),
    membersAt: () => MEMBERS,
    sentGradientAt: () => new Set(),
    deadlineMs: () => 100,
    signal: () => signal,
    own: () => STATES[selfId],
    adopt: (snap) => adopted.push(snap)
  })
  return { reconciliation, adopted, warnings }
}

describe('state reconciliation (f = 1, 4 members)', () => {
  it('adopts the trimmed mean of the parameters and optimizer state and the median learning rate, the same bits on every member', async () => {
    const results: JobSnapshot[] = []
    for (const id of ['a', 'b', 'c']) {
      const { reconciliation, adopted } = member(id)
      // the three others fetched this member's state
      for (const other of MEMBERS) if (other !== id) reconciliation.served(10, other)
      expect(await reconciliation.reconcile(10)).toBe(true)
      expect(adopted).toHaveLength(1)
      results.push(adopted[0])
    }
    // per coordinate the middle two of four: the attacker's extreme and one honest extreme are trimmed
    expect(Array.from(results[0].params)).toEqual([2.5, 15, -1.5])
    expect(Array.from(results[0].optimizerState)).toEqual([1, 0.25, 0.25])
    // lrs 0.01, 0.1, 0.1, 100: the lower median
    expect(results[0].meta.lr).toBe(0.1)
    expect(results[0].step).toBe(10)
    for (const r of results.slice(1)) {
      expect(Buffer.from(r.params.buffer).equals(Buffer.from(results[0].params.buffer))).toBe(true)
      expect(Buffer.from(r.optimizerState.buffer).equals(Buffer.from(results[0].optimizerState.buffer))).toBe(true)
    }
  })

  it('adopts only after each member it read has read this member\'s state', async () => {
    const { reconciliation, adopted } = member('a')
    const done = reconciliation.reconcile(10)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(adopted).toHaveLength(0)
    reconciliation.served(10, 'b')
    // one peer reading again and again (a Byzantine one, say) does not stand for the others
    for (let i = 0; i < 5; i++) reconciliation.served(10, 'd')
    // nor do reads by an unknown requester, or for another step
    reconciliation.served(10, undefined)
    reconciliation.served(11, 'c')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(adopted).toHaveLength(0)
    reconciliation.served(10, 'c')
    expect(await done).toBe(true)
    expect(adopted).toHaveLength(1)
  })

  it('goes on without a member that is not at the step (it catches up to the result), waiting only for those at it', async () => {
    const { reconciliation, adopted } = member('a', (peer) => peer === 'c' ? state(11, [3, 30, -3], 0.3, 0.1) : STATES[peer])
    // b and d fetched this member's state; c, past the step, never will
    reconciliation.served(10, 'b')
    reconciliation.served(10, 'd')
    expect(await reconciliation.reconcile(10)).toBe(true)
    // a, b, d: the middle value of three (d's extremes trimmed)
    expect(Array.from(adopted[0].params)).toEqual([2, 10, -1])
  })

  it('keeps its own state with fewer than 2f+1 states at the step', async () => {
    const { reconciliation, adopted } = member('a', (peer) => peer === 'b' ? STATES.b : state(11, [0, 0, 0], 0, 0.1))
    reconciliation.served(10, 'b')
    expect(await reconciliation.reconcile(10)).toBe(false)
    expect(adopted).toHaveLength(0)
  })

  it('leaves out a state with non-finite values or another layout, and still reconciles from 2f+1', async () => {
    const { reconciliation, adopted } = member('a', (peer) => peer === 'd' ? state(10, [Number.NaN, 0, 0], 0, 0.1) : STATES[peer])
    // d's state is left out: only b and c are waited for
    reconciliation.served(10, 'b')
    reconciliation.served(10, 'c')
    expect(await reconciliation.reconcile(10)).toBe(true)
    // a, b, c: the middle value of three
    expect(Array.from(adopted[0].params)).toEqual([2, 20, -2])
  })

  it('stops at once when the job stops, adopting nothing', async () => {
    const stop = new AbortController()
    const { reconciliation, adopted } = member('a', async () => await new Promise<JobSnapshot>(() => {}), stop.signal)
    const done = reconciliation.reconcile(10)
    setTimeout(() => stop.abort(), 100)
    expect(await done).toBe(false)
    expect(adopted).toHaveLength(0)
  })

  it('adopts when its budget runs out without every read, and says who did not read', async () => {
    const { reconciliation, adopted, warnings } = member('a')
    reconciliation.served(10, 'b')
    reconciliation.served(10, 'c')
    // d never reads: the budget (at least 5 s) ends the wait
    expect(await reconciliation.reconcile(10)).toBe(true)
    expect(adopted).toHaveLength(1)
    const warning = warnings.find((w) => w.msg.startsWith('reconciliation: adopting before'))
    expect(warning?.fields.unread).toEqual(['d'])
  }, 20_000)
})
