/**
 * Training progress for people: a redrawn bar on a terminal, plain lines otherwise (logs,
 * CI), at most one line per 10 % of an epoch. With the samples each step trained on, it shows
 * the throughput, the epoch's expected length and the time left (all from recent steps).
 */
import { formatDuration, formatLoss } from './format.js'

export interface ProgressReporter {
  /**
   * One finished step: `epoch` counts from 0 (shown from 1), `stepInEpoch` steps of
   * `stepsInEpoch` are done; `samples` is how many samples the step trained on, all peers
   * together (omit it and no rate or ETA is shown).
   */
  step(epoch: number, stepInEpoch: number, stepsInEpoch: number, loss: number, samples?: number): void
  line(text: string): void
  /** the steps stop for a while (a job-wide pause): the wait until the next step is not a step's time */
  pause(): void
  done(): void
}

export interface ProgressOptions {
  /** ms clock (tests); default performance.now */
  readonly now?: () => number
}

/** Steps the rate and the ETA are averaged over. */
const RATE_WINDOW = 20

export interface StepPace {
  /** samples per second over recent steps */
  readonly samplesPerSecond: number
  readonly stepMs: number
  /**
   * what the last epoch's end (validation, a checkpoint) added beyond one step, ms; counted once per
   * epoch in the ETA (absent: none seen yet)
   */
  readonly epochEndMs?: number
}

/**
 * `epoch 2/10: 40% (60/150 steps) loss 0.3121, 812 samples/s, epoch ~31s, ETA 4m 40s` (the
 * pace part only when known). The ETA assumes every epoch runs (early stopping may end sooner).
 */
export function formatStep(epoch: number, totalEpochs: number, stepInEpoch: number, stepsInEpoch: number, loss: number, pace?: StepPace): string {
  const percent = stepsInEpoch === 0 ? 0 : Math.floor((100 * Math.min(stepInEpoch, stepsInEpoch)) / stepsInEpoch)
  const head = `epoch ${epoch + 1}/${totalEpochs}: ${percent}% (${stepInEpoch}/${stepsInEpoch} steps) loss ${formatLoss(loss)}`
  if (pace === undefined) return head
  const stepsLeft = Math.max(0, stepsInEpoch - stepInEpoch) + Math.max(0, totalEpochs - epoch - 1) * stepsInEpoch
  const endsLeft = Math.max(0, totalEpochs - epoch)
  const epochEndMs = pace.epochEndMs ?? 0
  return `${head}, ${Math.round(pace.samplesPerSecond)} samples/s, epoch ~${formatDuration(stepsInEpoch * pace.stepMs + epochEndMs)}, ETA ${formatDuration(stepsLeft * pace.stepMs + endsLeft * epochEndMs)}`
}

export function createProgressReporter(stream: NodeJS.WriteStream = process.stderr, totalEpochs: number, options: ProgressOptions = {}): ProgressReporter {
  const now = options.now ?? (() => performance.now())
  const tty = stream.isTTY === true
  let lastDecile = -1
  let lastEpoch = -1
  let drawn = false
  let lastDraw = -Infinity
  /** the last RATE_WINDOW intervals between steps (ms) and the samples of the later step */
  const recent: Array<{ ms: number, samples: number }> = []
  /** when the last step was reported */
  let lastAt: number | undefined
  /** the last epoch end's time beyond a step (StepPace.epochEndMs) */
  let epochEndMs: number | undefined
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K')
    drawn = false
  }
  const pace = (): StepPace | undefined => {
    const spanMs = recent.reduce((sum, r) => sum + r.ms, 0)
    if (recent.length === 0 || spanMs <= 0) return undefined
    const samples = recent.reduce((sum, r) => sum + r.samples, 0)
    return { samplesPerSecond: (1000 * samples) / spanMs, stepMs: spanMs / recent.length, ...(epochEndMs === undefined ? {} : { epochEndMs }) }
  }
  return {
    step(epoch, stepInEpoch, stepsInEpoch, loss, samples) {
      if (samples !== undefined) {
        const at = now()
        const stepMs = pace()?.stepMs
        if (lastAt !== undefined && epoch !== lastEpoch && lastEpoch !== -1) {
          // the gap since the last step holds the epoch's end (validation, a checkpoint): kept out
          // of the step rate (averaged in, it halved the rate and doubled the ETA for the next 20
          // steps) and counted once per epoch instead
          if (stepMs !== undefined) epochEndMs = Math.max(0, at - lastAt - stepMs)
        } else if (lastAt !== undefined) {
          recent.push({ ms: at - lastAt, samples })
          if (recent.length > RATE_WINDOW) recent.shift()
        }
        lastAt = at
      }
      if (epoch !== lastEpoch) {
        lastEpoch = epoch
        lastDecile = -1
      }
      const fraction = stepsInEpoch === 0 ? 0 : Math.min(1, stepInEpoch / stepsInEpoch)
      if (tty) {
        const t = now()
        if (t - lastDraw < 100 && stepInEpoch < stepsInEpoch) return
        lastDraw = t
        const width = 30
        const filled = Math.round(fraction * width)
        const text = formatStep(epoch, totalEpochs, stepInEpoch, stepsInEpoch, loss, pace())
        const colon = text.indexOf(': ')
        stream.write(`\r\x1b[2K${text.slice(0, colon)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text.slice(colon + 2)}`)
        drawn = true
        return
      }
      const decile = Math.floor(fraction * 10)
      if (decile !== lastDecile && decile > 0 && decile < 10) {
        lastDecile = decile
        stream.write(formatStep(epoch, totalEpochs, stepInEpoch, stepsInEpoch, loss, pace()) + '\n')
      }
    },
    line(text) {
      clear()
      stream.write(text + '\n')
    },
    pause() {
      lastAt = undefined
    },
    done() {
      clear()
    }
  }
}
