/**
 * Robust state reconciliation: the repair for members that ended a step holding different
 * parameters with no digest held by f+1 of them (each aggregated a different set of gradients:
 * lost messages, a deadline missed under load, or a Byzantine member sending different gradients
 * to different members). Adopting any one member's state would let a single peer impose it, so
 * every member at the step fetches every other member's state at that step and takes the
 * coordinate-wise trimmed mean (f trimmed from each end, Yin et al. 2018) of the parameters and
 * of the optimizer state, from at least 2f+1 states. Members that fetched the same states compute
 * the same bits, and no f members can move the result outside the range the others' states span.
 * A member behind the step is left out and catches up to the result (f+1 members then hold it).
 *
 * The race it avoids: a member that adopted the result early would serve it instead of the state
 * it held, and the others would average a different set. So a member adopts only after each
 * member whose state it uses has read its own (counted by requester, so one peer's repeated reads
 * stand for nobody else) or moved on without reconciling, within a bounded wait.
 *
 * Exact agreement holds when every member reconciles from the same states. A Byzantine member
 * that serves different states to different members keeps the others apart (each inside the
 * honest members' range) for as long as it does so, the job's end included: closing that needs
 * agreement on the states' digests before averaging (signed statements, exchanged), not built.
 */
import { aggregateTrimmedMean } from '../../ml/aggregate/index.js'
import { allFinite } from '../../ml/params.js'
import type { Logger } from '../logger.js'
import { abortableSleep } from './abortable-sleep.js'
import { budgetSignal } from './budget-signal.js'
import type { JobSnapshot } from './job-types.js'

/** bounds on how long a reconciliation waits for the members' states */
const RECONCILE_MIN_MS = 5_000
const RECONCILE_MAX_MS = 60_000

export interface StateReconciliationOptions {
  readonly selfId: string
  /** faulty members tolerated (aggregation.f): trimmed from each end of every coordinate */
  readonly f: number
  readonly log: Logger
  /** a member's state as of `minStep` (or later) */
  fetchSnapshot(peerId: string, minStep: number): Promise<JobSnapshot>
  /** the members at `step` (agreed membership) */
  membersAt(step: number): readonly string[]
  /** members that already sent their gradient for `step`: they went on and will not fetch */
  sentGradientAt(step: number): ReadonlySet<string>
  /** the current step deadline in ms (the wait scales with it) */
  deadlineMs(): number
  /** aborted when the job stops */
  signal(): AbortSignal
  /** this peer's state now */
  own(): JobSnapshot
  /** replace this peer's state with the reconciled one */
  adopt(snapshot: JobSnapshot): void
}

export interface StateReconciliation {
  /**
   * Reconcile the members' states at `step` (this peer's current step); true when it adopted the
   * result, false when fewer than 2f+1 states at the step could be had (it keeps its own; the
   * next divergence check tries again).
   */
  reconcile(step: number): Promise<boolean>
  /**
   * this peer served its state for `minStep` to `requester`: a reconciliation waits until each
   * member it read has read it (an unknown requester counts for nobody)
   */
  served(minStep: number, requester: string | undefined): void
}

/** `promise`, or a rejection once `signal` aborts (a transfer that hangs does not hold the step) */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(signal.reason)
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

/** a fetched state the reconciliation can use: its layout, finite values */
function usable(snap: JobSnapshot, own: JobSnapshot): boolean {
  if (snap.params.length !== own.params.length || snap.optimizerState.length !== own.optimizerState.length) return false
  return allFinite(snap.params) && allFinite(snap.optimizerState) && Number.isFinite(snap.meta.lr)
}

export function createStateReconciliation(options: StateReconciliationOptions): StateReconciliation {
  const { selfId, log, f } = options
  /** who read this peer's state, by the step asked for (a few recent steps) */
  const readersAt = new Map<number, Set<string>>()

  const fetchState = async (peer: string, step: number, signal: AbortSignal): Promise<JobSnapshot | undefined> => {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const snap = await untilAborted(options.fetchSnapshot(peer, step), signal)
        if (snap.step === step) return snap
        // a finished member's final state is served for any step: finished at another step, it is not comparable either
        // it went on past the step (it saw no divergence): its state there is not comparable
        log.warn({ peer, step, at: snap.step }, 'reconciliation: a member is past the step')
        return undefined
      } catch {
        // busy serving the others, or still getting there: retry within the budget
        await abortableSleep(Math.min(2_000, 100 * 2 ** attempt), signal)
      }
    }
    return undefined
  }

  const reconcileWithin = async (step: number, members: readonly string[], others: readonly string[], own: JobSnapshot, signal: AbortSignal): Promise<boolean> => {
    log.warn({ step, members: members.length, f }, 'no f+1 members hold the same parameters: reconciling the members\' states (coordinate-wise trimmed mean)')
    const fetched = await Promise.all(others.map(async (peer) => await fetchState(peer, step, signal)))
    if (options.signal().aborted) return false
    // a member behind the step (catching up, it waits for the others to agree) or past it has
    // no state at the step: the members at the step reconcile without it, and it then catches
    // up to their common state. One of another layout or with non-finite values is faulty.
    const missing = others.filter((_, i) => fetched[i] === undefined)
    const invalid = others.filter((_, i) => fetched[i] !== undefined && !usable(fetched[i] as JobSnapshot, own))
    // in member order, the same on every member (a sum's rounding depends on its order)
    const states = members
      .map((id) => id === selfId ? own : fetched[others.indexOf(id)])
      .filter((snap): snap is JobSnapshot => snap === own || (snap !== undefined && usable(snap, own)))
    if (states.length < 2 * f + 1) {
      log.warn({ step, missing, invalid, needed: 2 * f + 1 }, 'reconciliation: fewer than 2f+1 members\' states at the step; keeping this peer\'s (the next divergence check tries again)')
      return false
    }
    if (missing.length > 0 || invalid.length > 0) log.warn({ step, missing, invalid }, 'reconciliation: going on without these members\' states')
    // adopting now would change the state the others may still be fetching: wait until each
    // member whose state it uses has read this one, or sent its gradient of this step (it went on). By
    // requester: repeated reads by one peer (a Byzantine one, say) do not count for the others
    const awaited = others.filter((_, i) => fetched[i] !== undefined && !invalid.includes(others[i]))
    const settled = (): boolean => {
      const readers = readersAt.get(step)
      const went = options.sentGradientAt(step)
      return awaited.every((id) => readers?.has(id) === true || went.has(id))
    }
    while (!signal.aborted && !settled()) await abortableSleep(50, signal)
    if (options.signal().aborted) return false
    if (!settled()) {
      // the budget ran out before all of them read it: they may average this peer's new state
      const readers = readersAt.get(step)
      const unread = awaited.filter((id) => readers?.has(id) !== true && !options.sentGradientAt(step).has(id))
      log.warn({ step, unread }, 'reconciliation: adopting before these members read this peer\'s state (their result may differ; the next check reconciles again)')
    }
    const params = aggregateTrimmedMean(states.map((s) => s.params), own.params.length, f)
    const optimizerState = aggregateTrimmedMean(states.map((s) => s.optimizerState), own.optimizerState.length, f)
    // the learning rate comes from each member's own plateau decisions: the median one
    const lrs = states.map((s) => s.meta.lr).sort((a, b) => a - b)
    const lr = lrs[(lrs.length - 1) >> 1]
    options.adopt({ ...own, params, optimizerState, meta: { ...own.meta, lr } })
    log.warn({ step, members: members.length }, 'reconciled: adopted the trimmed mean of the members\' states')
    return true
  }

  return {
    served(minStep, requester) {
      if (requester === undefined) return
      const readers = readersAt.get(minStep) ?? new Set<string>()
      readers.add(requester)
      readersAt.set(minStep, readers)
      for (const step of readersAt.keys()) if (step < minStep - 8) readersAt.delete(step)
    },

    async reconcile(step) {
      const members = [...options.membersAt(step)].sort()
      const others = members.filter((id) => id !== selfId)
      if (others.length === 0) return false
      const own = options.own()
      if (own.step !== step) return false
      const budgetMs = Math.ceil(Math.min(RECONCILE_MAX_MS, Math.max(RECONCILE_MIN_MS, 3 * options.deadlineMs())))
      const budget = budgetSignal(budgetMs, options.signal())
      try {
        return await reconcileWithin(step, members, others, own, budget.signal)
      } finally {
        budget.dispose()
      }
    }
  }
}
