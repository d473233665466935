/**
 * Training progress for people: a redrawn bar on a terminal, plain lines otherwise (logs,
 * CI), at most one line per 10 % of an epoch. With the samples each step trained on, it shows
 * the throughput, the epoch's expected length and the time left (all from recent steps).
 */
import { createPaceTracker, timeLeftMs, type StepPace } from '../../daemon/job/step-pace.js'
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

/**
 * `epoch 2/10: 40% (60/150 steps) loss 0.3121, 812 samples/s, epoch ~31s, ETA 4m 40s` (the
 * pace part only when known). The ETA assumes every epoch runs (early stopping may end sooner).
 */
export function formatStep(epoch: number, totalEpochs: number, stepInEpoch: number, stepsInEpoch: number, loss: number, pace?: StepPace): string {
  const head = `epoch ${epoch + 1}/${totalEpochs}: ${formatEpochShare(stepInEpoch, stepsInEpoch)} loss ${formatLoss(loss)}`
  if (pace === undefined) return head
  return `${head}, ${formatPace(pace, epoch, totalEpochs, stepInEpoch, stepsInEpoch)}`
}

/** `40% (60/150 steps)` */
export function formatEpochShare(stepInEpoch: number, stepsInEpoch: number): string {
  const percent = stepsInEpoch === 0 ? 0 : Math.floor((100 * Math.min(stepInEpoch, stepsInEpoch)) / stepsInEpoch)
  return `${percent}% (${stepInEpoch}/${stepsInEpoch} steps)`
}

/** `812 samples/s, epoch ~31s, ETA 4m 40s` */
export function formatPace(pace: StepPace, epoch: number, totalEpochs: number, stepInEpoch: number, stepsInEpoch: number): string {
  return `${Math.round(pace.samplesPerSecond)} samples/s, epoch ~${formatDuration(stepsInEpoch * pace.stepMs + (pace.epochEndMs ?? 0))}, ETA ${formatDuration(timeLeftMs(pace, epoch, totalEpochs, stepInEpoch, stepsInEpoch))}`
}

export function createProgressReporter(stream: NodeJS.WriteStream = process.stderr, totalEpochs: number, options: ProgressOptions = {}): ProgressReporter {
  const now = options.now ?? (() => performance.now())
  const tty = stream.isTTY === true
  let lastDecile = -1
  let lastEpoch = -1
  let drawn = false
  let lastDraw = -Infinity
  const tracker = createPaceTracker({ now })
  const pace = (): StepPace | undefined => tracker.pace()
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K')
    drawn = false
  }
  return {
    step(epoch, stepInEpoch, stepsInEpoch, loss, samples) {
      if (samples !== undefined) tracker.step(epoch, samples)
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
      tracker.pause()
    },
    done() {
      clear()
    }
  }
}
