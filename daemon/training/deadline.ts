/**
 * How long a step waits for the other members' gradients. A configured deadline wins;
 * otherwise it follows recent healthy step times, so a slow model gets a long deadline and a
 * fast one does not wait seconds for a dead peer.
 */
export interface StepDeadlinePolicy {
  /** ms to wait, from the moment this peer has published its own gradient */
  current(): number
  /** record how long a complete (nobody missing) exchange took */
  observe(waitMs: number, stepMs: number): void
}

export interface DeadlineOptions {
  readonly fixedMs?: number
  readonly minMs?: number
  readonly maxMs?: number
  /**
   * used until enough steps were seen (graph compilation and warm-up are slow; default 30 s),
   * held within [minMs, maxMs] (a joiner's comes from its coordinator's reply)
   */
  readonly warmupMs?: number
  /**
   * complete exchanges timed before the deadline follows them (default 5). An async job times
   * only its complete averaging rounds, one every averageEvery steps: five took ~50 steps, and a
   * member that crashed in them cost each round the whole warm-up (30 s) until evicted
   */
  readonly warmupSteps?: number
}

const WINDOW = 50
const WARMUP_STEPS = 5

export function createStepDeadlinePolicy(options: DeadlineOptions = {}): StepDeadlinePolicy {
  const minMs = options.minMs ?? 2000
  const maxMs = options.maxMs ?? 120_000
  const warmupMs = Math.min(maxMs, Math.max(minMs, options.warmupMs ?? 30_000))
  const stepTimes: number[] = []
  return {
    current(): number {
      if (options.fixedMs !== undefined) return options.fixedMs
      if (stepTimes.length < (options.warmupSteps ?? WARMUP_STEPS)) return warmupMs
      const sorted = [...stepTimes].sort((a, b) => a - b)
      const p90 = sorted[Math.floor(sorted.length * 0.9)]
      // whole ms: callers hand it to AbortSignal.timeout(), which throws on a fraction
      return Math.ceil(Math.min(maxMs, Math.max(minMs, 4 * p90)))
    },
    observe(_waitMs: number, stepMs: number): void {
      stepTimes.push(stepMs)
      if (stepTimes.length > WINDOW) stepTimes.shift()
    }
  }
}
