import type { LrScheduleConfig } from '../../config/job-config.js'
import { bestValue, counter, stateRecord } from './state-checks.js'

export interface PlateauState {
  /** null: no epoch seen yet */
  readonly best: number | null
  readonly badEpochs: number
  readonly cooldownLeft: number
}

/** torch.optim.lr_scheduler.ReduceLROnPlateau, mode 'min', threshold_mode 'rel'. */
export class ReduceLROnPlateau {
  private best = Infinity
  private badEpochs = 0
  private cooldownLeft = 0

  constructor (private readonly config: LrScheduleConfig) {}

  /** Restore from toJSON()'s output; throws ScheduleStateError when `state` is not such an object. */
  static fromJSON(config: LrScheduleConfig, state: PlateauState | unknown): ReduceLROnPlateau {
    const record = stateRecord(state, 'ReduceLROnPlateau')
    const s = new ReduceLROnPlateau(config)
    s.best = bestValue(record, 'ReduceLROnPlateau')
    s.badEpochs = counter(record, 'badEpochs', 'ReduceLROnPlateau')
    s.cooldownLeft = counter(record, 'cooldownLeft', 'ReduceLROnPlateau')
    return s
  }

  /** Feed one epoch's validation loss; returns the learning rate for the next epoch. */
  step(metric: number, lr: number): number {
    if (metric < this.best * (1 - this.config.threshold)) {
      this.best = metric
      this.badEpochs = 0
    } else {
      this.badEpochs++
    }
    if (this.cooldownLeft > 0) {
      this.cooldownLeft--
      this.badEpochs = 0
    }
    if (this.badEpochs > this.config.patience) {
      const reduced = Math.max(lr * this.config.factor, this.config.minLr)
      this.cooldownLeft = this.config.cooldown
      this.badEpochs = 0
      // PyTorch ignores reductions smaller than eps (1e-8)
      return lr - reduced > 1e-8 ? reduced : lr
    }
    return lr
  }

  toJSON(): PlateauState {
    // JSON has no Infinity: null stands for "no best yet"
    return { best: Number.isFinite(this.best) ? this.best : null, badEpochs: this.badEpochs, cooldownLeft: this.cooldownLeft }
  }
}
