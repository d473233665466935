/**
 * This peer's answers about its state at a step, for the state-sync and digest questions other
 * members ask (joiners, re-syncs, catch-up, vouching, reconciliation): the snapshot or digest at
 * the start of a step >= minStep, given at once when the loop is there and otherwise when it gets
 * there, so the state never moves between the question and the answer. A finished job answers
 * any later step with its final state (a peer admitted just before the end takes it and finishes).
 * A joiner takes its state in ranges from several donors, one range each (fetch-from-donors.ts):
 * every range must come from the same step, so the state first served to a range request is kept
 * (one copy, shared by the ranges) and served for that step even after the loop has gone on; the
 * newest two such steps are kept (two admission batches).
 */
import type { DigestAtStep, JobSnapshot } from './job-types.js'

/** recent steps whose digests a peer remembers, to vouch for another member's state */
const DIGEST_HISTORY = 256
/** a question for a step further ahead than this is refused at once, not waited on */
const LOOKAHEAD = 16
/** the state served for a range request is kept this long after its last use */
const KEEP_FOR_RANGES_MS = 30_000
/** states kept for range requests at once: joiners admitted in two batches ask for two steps */
const KEEP_STEPS = 2

export interface StateAtStepOptions {
  /** the step the loop is at (its state is that of the start of this step) */
  step(): number
  /** the job finished on this peer: no later state is coming */
  finished(): boolean
  /** the state is being changed outside a step (the epoch-end bookkeeping): answers wait */
  changing(): boolean
  snapshot(): JobSnapshot
  digest(): string
  /** a snapshot for `minStep` is being served to `requester` (a reconciliation waits for its readers) */
  onSnapshotServed?(minStep: number, requester: string | undefined): void
}

export interface StateAtStep {
  /** the full digest at the start of `step`, an anchor step this peer ran with others: it vouches for it later */
  remember(step: number, digest: string): void
  /** answer the questions waiting for a step the loop has reached (call when it moves on) */
  serveWaiting(): void
  /**
   * the snapshot at the start of a step >= minStep; rejects for a step far ahead, or on abort.
   * `range`: the request is for a range of it: the state kept for a range request at exactly
   * minStep is served if there is one, else the snapshot served is kept (KEEP_FOR_RANGES_MS,
   * the newest KEEP_STEPS steps)
   */
  snapshotAt(minStep: number, signal?: AbortSignal, requester?: string, range?: boolean): Promise<JobSnapshot>
  /** the full digest at `minStep` if it is a remembered anchor step, else the current one like snapshotAt (its step tells which) */
  digestAt(minStep: number, signal?: AbortSignal): Promise<DigestAtStep>
  /** drop the state kept for range requests (the job stopped) */
  forget(): void
}

export function createStateAtStep(options: StateAtStepOptions): StateAtStep {
  const history = new Map<number, string>()
  /** served synchronously once the loop is at minStep, so the state cannot move in between */
  const waiting: Array<{ minStep: number, serve: () => void }> = []
  /** the states served to range requests by step (the newest KEEP_STEPS), and the timers that drop them */
  const kept = new Map<number, { snapshot: JobSnapshot, timer: NodeJS.Timeout }>()

  const keep = (snapshot: JobSnapshot): JobSnapshot => {
    clearTimeout(kept.get(snapshot.step)?.timer)
    const timer = setTimeout(() => { kept.delete(snapshot.step) }, KEEP_FOR_RANGES_MS)
    timer.unref()
    kept.set(snapshot.step, { snapshot, timer })
    while (kept.size > KEEP_STEPS) {
      const oldest = Math.min(...kept.keys())
      clearTimeout(kept.get(oldest)?.timer)
      kept.delete(oldest)
    }
    return snapshot
  }

  const farAhead = (minStep: number): Error | undefined => minStep > options.step() + LOOKAHEAD
    ? new Error(`this peer is at step ${options.step()}, far before step ${minStep}`)
    : undefined

  /** `read()` of the state at the start of a step >= minStep, once the loop gets there */
  const readAt = <T>(minStep: number, read: () => T, signal?: AbortSignal): Promise<T> => {
    if ((minStep <= options.step() || options.finished()) && !options.changing()) return Promise.resolve(read())
    return new Promise((resolve, reject) => {
      const waiter = { minStep, serve: () => resolve(read()) }
      waiting.push(waiter)
      signal?.addEventListener('abort', () => {
        const i = waiting.indexOf(waiter)
        if (i >= 0) waiting.splice(i, 1)
        reject(signal.reason)
      }, { once: true })
    })
  }

  return {
    remember(step, digest) {
      history.set(step, digest)
      if (history.size > DIGEST_HISTORY) history.delete(history.keys().next().value as number)
    },
    serveWaiting() {
      for (let i = waiting.length - 1; i >= 0; i--) {
        if (waiting[i].minStep <= options.step() || options.finished()) {
          waiting[i].serve()
          waiting.splice(i, 1)
        }
      }
    },
    snapshotAt(minStep, signal, requester, range = false) {
      const held = range ? kept.get(minStep) : undefined
      if (held !== undefined) {
        options.onSnapshotServed?.(minStep, requester)
        return Promise.resolve(keep(held.snapshot))
      }
      // far ahead of this peer: not waited for (a joiner asks for a step at most a few ahead)
      const refused = farAhead(minStep)
      if (refused !== undefined) return Promise.reject(refused)
      return readAt(minStep, () => {
        options.onSnapshotServed?.(minStep, requester)
        if (!range) return options.snapshot()
        // ranges waiting for this step are served one after another: they share one copy
        return keep(kept.get(options.step())?.snapshot ?? options.snapshot())
      }, signal)
    },
    forget() {
      for (const { timer } of kept.values()) clearTimeout(timer)
      kept.clear()
    },
    digestAt(minStep, signal) {
      // a step this peer already ran: its digest then (the member asking vouches a state by it)
      const past = history.get(minStep)
      if (past !== undefined && minStep < options.step()) return Promise.resolve({ step: minStep, digest: past })
      // far ahead of this peer: it will not get there soon, and an invented step is not waited for
      const refused = farAhead(minStep)
      if (refused !== undefined) return Promise.reject(refused)
      return readAt(minStep, () => ({ step: options.step(), digest: options.digest() }), signal)
    }
  }
}
