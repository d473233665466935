import type { LrScheduleConfig } from '../../config/job-config.js'

export interface PlateauState {
  readonly best: number
  readonly badEpochs: number
  readonly cooldownLeft: number
}

/** torch.optim.lr_scheduler.ReduceLROnPlateau, mode 'min', threshold_mode 'rel'. */
export class ReduceLROnPlateau {
  private best = Infinity
  private badEpochs = 0
  private cooldownLeft = 0

  constructor (private readonly config: LrScheduleConfig) {}

  static fromJSON(config: LrScheduleConfig, state: PlateauState): ReduceLROnPlateau {
    const s = new ReduceLROnPlateau(config)
    s.best = state.best ?? Infinity
    s.badEpochs = state.badEpochs
    s.cooldownLeft = state.cooldownLeft
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
    return { best: Number.isFinite(this.best) ? this.best : (null as unknown as number), badEpochs: this.badEpochs, cooldownLeft: this.cooldownLeft }
  }
}
