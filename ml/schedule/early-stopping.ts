import type { EarlyStoppingConfig } from '../../config/job-config.js'

export interface EarlyStoppingState {
  readonly best: number
  readonly badEpochs: number
}

/** Stop when the validation loss has not improved by minDelta for `patience` epochs. */
export class EarlyStopping {
  private best = Infinity
  private badEpochs = 0

  constructor (private readonly config: EarlyStoppingConfig) {}

  static fromJSON(config: EarlyStoppingConfig, state: EarlyStoppingState): EarlyStopping {
    const e = new EarlyStopping(config)
    e.best = state.best ?? Infinity
    e.badEpochs = state.badEpochs
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
    return { best: Number.isFinite(this.best) ? this.best : (null as unknown as number), badEpochs: this.badEpochs }
  }
}
