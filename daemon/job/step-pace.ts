/**
 * The pace of a job as one peer sees it, from the times its steps finished: samples per second
 * over the recent steps, a step's time, what an epoch's end (validation, a checkpoint) adds, and
 * from those the time left. `p2pmld start`'s progress lines and `p2pmld status` both read it.
 */

/** Steps the rate and the ETA are averaged over. */
const RATE_WINDOW = 20
/**
 * Intervals between steps measured before a pace is given: one or two read a job's first steps,
 * slow while V8 compiles them and the members line up (a walk read '0 samples/s' and an ETA
 * that halved within seconds).
 */
const MIN_INTERVALS = 3

export interface StepPace {
  /** samples per second over recent steps, all members' samples */
  readonly samplesPerSecond: number
  /** ms a step takes, over recent steps */
  readonly stepMs: number
  /**
   * what the last epoch's end (validation, a checkpoint) added beyond one step, ms; counted once per
   * epoch in the ETA (absent: none seen yet)
   */
  readonly epochEndMs?: number
}

export interface PaceTracker {
  /** a step of `epoch` (0-based) finished now, having trained on `samples` samples (all members') */
  step(epoch: number, samples: number): void
  /** the steps stop for a while (a job-wide pause): the wait until the next step is not a step's time */
  pause(): void
  /** undefined until MIN_INTERVALS intervals were measured */
  pace(): StepPace | undefined
}

export interface PaceOptions {
  /** ms clock (tests); default performance.now */
  readonly now?: () => number
}

export function createPaceTracker(options: PaceOptions = {}): PaceTracker {
  const now = options.now ?? (() => performance.now())
  /** the last RATE_WINDOW intervals between steps (ms) and the samples of the later step */
  const recent: Array<{ ms: number, samples: number }> = []
  /** when the last step finished, and its epoch */
  let last: { at: number, epoch: number } | undefined
  let epochEndMs: number | undefined
  const measured = (): { spanMs: number, samples: number } => ({
    spanMs: recent.reduce((sum, r) => sum + r.ms, 0),
    samples: recent.reduce((sum, r) => sum + r.samples, 0)
  })
  return {
    step(epoch, samples) {
      const at = now()
      if (last !== undefined && epoch !== last.epoch) {
        // the gap since the last step holds the epoch's end (validation, a checkpoint): kept out
        // of the step rate (averaged in, it halved the rate and doubled the ETA for the next 20
        // steps) and counted once per epoch instead
        const { spanMs } = measured()
        if (recent.length > 0) epochEndMs = Math.max(0, at - last.at - spanMs / recent.length)
      } else if (last !== undefined) {
        recent.push({ ms: at - last.at, samples })
        if (recent.length > RATE_WINDOW) recent.shift()
      }
      last = { at, epoch }
    },
    pause() {
      last = undefined
    },
    pace() {
      const { spanMs, samples } = measured()
      if (recent.length < MIN_INTERVALS || spanMs <= 0) return undefined
      return { samplesPerSecond: (1000 * samples) / spanMs, stepMs: spanMs / recent.length, ...(epochEndMs === undefined ? {} : { epochEndMs }) }
    }
  }
}

/** where a job stands as of its last step (StepReport's fields): the epoch (0-based), the steps done in it and in all of it */
export interface EpochPosition {
  readonly epoch: number
  readonly stepInEpoch: number
  readonly stepsInEpoch: number
}

/** timeLeftMs from a job's last step; undefined without a pace or a step */
export function timeLeftAt(pace: StepPace | undefined, position: EpochPosition | undefined, totalEpochs: number): number | undefined {
  if (pace === undefined || position === undefined) return undefined
  return timeLeftMs(pace, position.epoch, totalEpochs, position.stepInEpoch, position.stepsInEpoch)
}

/**
 * ms left until the last epoch ends at `pace`: the steps left in `epoch` (0-based) and in the
 * epochs after it, plus one epoch end each. It assumes every epoch runs (early stopping may end
 * sooner) and the member count stays (a join makes each step's share of an epoch smaller).
 */
export function timeLeftMs(pace: StepPace, epoch: number, totalEpochs: number, stepInEpoch: number, stepsInEpoch: number): number {
  const stepsLeft = Math.max(0, stepsInEpoch - stepInEpoch) + Math.max(0, totalEpochs - epoch - 1) * stepsInEpoch
  const endsLeft = Math.max(0, totalEpochs - epoch)
  return stepsLeft * pace.stepMs + endsLeft * (pace.epochEndMs ?? 0)
}
