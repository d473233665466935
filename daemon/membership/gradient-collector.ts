/**
 * Holds inbound gradients by step and sender, and lets the training loop wait for one step's
 * set until every expected peer has sent, or a deadline passes. Each gradient is kept once:
 * nothing is downloaded or processed twice.
 */
export interface CollectedGradient {
  readonly step: number
  readonly sender: string
}

export interface CollectOptions<M extends CollectedGradient = CollectedGradient> {
  /** peers whose gradient this step waits for (self excluded) */
  readonly expected: ReadonlySet<string>
  /** absolute time (performance.now()) after which the step goes on with what arrived */
  readonly deadline: number
  readonly signal?: AbortSignal
  /** only messages this accepts count as received (default: all); e.g. reduce-scatter parts cut for this step's plan */
  readonly accept?: (message: M) => boolean
  /**
   * expected peers not to wait for (looked at every GAVE_UP_POLL_MS): known gone, e.g. their port
   * refuses connections. The collect ends once every other expected peer has sent; they are still
   * named missing (a miss toward eviction), and received if they send meanwhile
   */
  readonly gaveUp?: (peerId: string) => boolean
}

/** how often a collect with `gaveUp` looks at it again (ms) */
const GAVE_UP_POLL_MS = 250

export interface CollectResult<M extends CollectedGradient> {
  readonly received: Map<string, M>
  readonly missing: string[]
  readonly timedOut: boolean
}

export interface GradientCollector<M extends CollectedGradient> {
  /** Store an inbound gradient; returns false when it is a duplicate, too old or too far ahead. */
  offer(message: M): boolean
  collect(step: number, options: CollectOptions<M>): Promise<CollectResult<M>>
  /**
   * Senders that sent a gradient for a step after `step` (kept or not): they finished `step`,
   * so a peer still waiting on it has fallen behind them.
   */
  sendersAhead(step: number): string[]
  /** the newest step `sender` sent a gradient for (kept or not); undefined if none yet */
  newestStepFrom(sender: string): number | undefined
  /** the gradients kept for `step`, by sender */
  receivedAt(step: number): ReadonlyMap<string, M>
  /** the collect in progress, if any: its step, who it still waits for, since and until when (performance.now() ms) */
  pending(): PendingCollect | undefined
  /** Peers no longer expected (left or evicted) stop being waited for at once, until a later collect expects them again. */
  forget(peerId: string): void
  /** Drop everything for steps before `step`. */
  discardBefore(step: number): void
  /** Wake every waiter (used on stop). */
  close(): void
}

export interface PendingCollect {
  readonly step: number
  readonly missing: readonly string[]
  /** expected senders that have sent */
  readonly received: number
  /** when the collect began (performance.now() ms) */
  readonly since: number
  /** CollectOptions.deadline */
  readonly deadline: number
}

export interface GradientCollectorOptions<M extends CollectedGradient = CollectedGradient> {
  /** how many steps ahead of the oldest awaited step are buffered (bounds memory) */
  readonly maxStepsAhead?: number
  /**
   * a second message from a sender for a step replaces the first when this says so (default:
   * never; it is a duplicate): a reduce-scatter sender re-cuts its parts when the step's
   * membership changed under it
   */
  readonly replaces?: (kept: M, incoming: M) => boolean
}

export function createGradientCollector<M extends CollectedGradient>(options: GradientCollectorOptions<M> = {}): GradientCollector<M> {
  const maxStepsAhead = options.maxStepsAhead ?? 8
  const byStep = new Map<number, Map<string, M>>()
  let floor = 0
  let wake: (() => void) | undefined
  const forgotten = new Set<string>()
  const newestStep = new Map<string, number>()
  /** the collect in progress (one at a time: the step loop's) */
  let inProgress: { step: number, since: number, deadline: number, missing: () => string[], received: () => number } | undefined

  const notify = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }

  return {
    offer(message: M): boolean {
      if (message.step > (newestStep.get(message.sender) ?? -1)) newestStep.set(message.sender, message.step)
      if (message.step < floor || message.step > floor + maxStepsAhead) return false
      let senders = byStep.get(message.step)
      if (senders === undefined) {
        senders = new Map()
        byStep.set(message.step, senders)
      }
      const kept = senders.get(message.sender)
      if (kept !== undefined && options.replaces?.(kept, message) !== true) return false
      senders.set(message.sender, message)
      forgotten.delete(message.sender)
      notify()
      return true
    },

    async collect(step: number, { expected, deadline, signal, accept, gaveUp }: CollectOptions<M>): Promise<CollectResult<M>> {
      const has = (got: Map<string, M> | undefined, id: string): boolean => {
        const message = got?.get(id)
        return message !== undefined && (accept === undefined || accept(message))
      }
      const waiting = (): string[] => {
        const got = byStep.get(step)
        return [...expected].filter((id) => !forgotten.has(id) && !has(got, id))
      }
      // a forgotten peer expected again was admitted again (a member evicted and re-admitted at
      // one step): it is waited for, and named missing, until it sends
      for (const id of expected) forgotten.delete(id)
      let timedOut = false
      const arrived = (): number => [...expected].filter((id) => has(byStep.get(step), id)).length
      const current = { step, since: performance.now(), deadline, missing: waiting, received: arrived }
      inProgress = current
      while (waiting().some((id) => gaveUp?.(id) !== true)) {
        const remaining = deadline - performance.now()
        if (remaining <= 0) {
          timedOut = true
          break
        }
        if (signal?.aborted === true) break
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, gaveUp === undefined ? remaining : Math.min(remaining, GAVE_UP_POLL_MS))
          const onAbort = (): void => done()
          signal?.addEventListener('abort', onAbort, { once: true })
          wake = done
          function done (): void {
            clearTimeout(timer)
            signal?.removeEventListener('abort', onAbort)
            if (wake === done) wake = undefined
            resolve()
          }
        })
      }
      if (inProgress === current) inProgress = undefined
      const got = byStep.get(step) ?? new Map<string, M>()
      const received = new Map<string, M>()
      for (const [sender, message] of got) {
        if (expected.has(sender) && has(got, sender)) received.set(sender, message)
      }
      return { received, missing: waiting(), timedOut }
    },

    pending() {
      if (inProgress === undefined) return undefined
      const { step, since, deadline, missing, received } = inProgress
      return { step, since, deadline, missing: missing(), received: received() }
    },

    newestStepFrom: (sender) => newestStep.get(sender),
    sendersAhead(step: number): string[] {
      return [...newestStep.entries()].filter(([, newest]) => newest > step).map(([sender]) => sender)
    },

    receivedAt(step: number): ReadonlyMap<string, M> {
      return byStep.get(step) ?? new Map()
    },

    forget(peerId: string): void {
      forgotten.add(peerId)
      notify()
    },

    discardBefore(step: number): void {
      floor = Math.max(floor, step)
      for (const s of byStep.keys()) {
        if (s < step) byStep.delete(s)
      }
    },

    close(): void {
      notify()
    }
  }
}
