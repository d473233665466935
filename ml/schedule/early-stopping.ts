import type { EarlyStoppingConfig } from '../../config/job-config.js'
import { bestValue, counter, stateRecord } from './state-checks.js'

export interface EarlyStoppingState {
  /** null: no epoch seen yet */
  readonly best: number | null
  readonly badEpochs: number
}

/** Stop when the validation loss has not improved by minDelta for `patience` epochs. */
export class EarlyStopping {
  private best = Infinity
  private badEpochs = 0

  constructor (private readonly config: EarlyStoppingConfig) {}

  /** Restore from toJSON()'s output; throws ScheduleStateError when `state` is not such an object. */
  static fromJSON(config: EarlyStoppingConfig, state: EarlyStoppingState | unknown): EarlyStopping {
    const record = stateRecord(state, 'EarlyStopping')
    const e = new EarlyStopping(config)
    e.best = bestValue(record, 'EarlyStopping')
    e.badEpochs = counter(record, 'badEpochs', 'EarlyStopping')
    return e
  }

  /** Returns true when training should stop. */
  step(metric: number): boolean {
    if (metric < this.best - this.config.minDelta) {
      this.best = metric
      this.badEpochs = 0
      return false
    }
    this.badEpochs++
    return this.config.patience > 0 && this.badEpochs >= this.config.patience
  }

  toJSON(): EarlyStoppingState {
    return { best: Number.isFinite(this.best) ? this.best : null, badEpochs: this.badEpochs }
  }
}
