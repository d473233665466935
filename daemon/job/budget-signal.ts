/**
 * A signal that aborts when any of `signals` does, or after `ms`, on a timer of its own. Not
 * AbortSignal.any([..., AbortSignal.timeout(ms)]): a timeout signal that nothing else references
 * can be collected before it fires, and then the budget never ends (seen once: a reconciliation's
 * 5 s budget ran for minutes). Call dispose() when done, to clear the timer.
 */
export interface BudgetSignal {
  readonly signal: AbortSignal
  dispose(): void
}

export function budgetSignal(ms: number, ...signals: AbortSignal[]): BudgetSignal {
  const budget = new AbortController()
  // whole ms: a derived deadline can be a fraction
  const timer = setTimeout(() => budget.abort(new Error(`budget of ${Math.ceil(ms)} ms spent`)), Math.ceil(ms))
  return {
    signal: AbortSignal.any([...signals, budget.signal]),
    dispose: () => clearTimeout(timer)
  }
}
