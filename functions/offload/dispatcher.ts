/** How an offload computer hands micro-batches to functions: a worker pool, Lambda, or Step Functions. */
import type { GradientObserver } from '../../ml/core/types.js'
import type { GradientEvent, GradientTaskResult } from '../gradient-task.js'

/** One micro-batch's outcome: the function's result, or why it failed after its retries. */
export type DispatchOutcome =
  | { readonly ok: true, readonly result: GradientTaskResult }
  | { readonly ok: false, readonly error: string }

export interface GradientDispatcher {
  /** a short name for logs and metrics ('pool', 'lambda', 'stepfunctions') */
  readonly kind: string
  /**
   * Runs every event (in parallel, as the backend allows); one outcome per event, in order.
   * Never throws for a failed micro-batch (that is a `{ ok: false }` outcome, computed locally by
   * the caller); times its `invoke` and `wait` sub-stages through the observer.
   */
  dispatch(events: readonly GradientEvent[], observer: GradientObserver): Promise<DispatchOutcome[]>
  /** invocations made so far (retries included) */
  invocations(): number
  close(): Promise<void>
}

/** An error as one line for a DispatchOutcome. */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}
