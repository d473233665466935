/**
 * The job the fault tests compare a faulty run with its fault-free run on. A lost gradient, a
 * re-sync or an eviction nudges the trajectory, and a job compared while still climbing ends
 * wherever "another run" would: 1 to 2 points either way at ~93 %, the size of the issue's bound.
 * This one settles: mlp, 10 epochs of batch 64 per peer, the learning rate halved whenever
 * validation loss stops improving (it ends at ~1/8 of its start), early stopping off so both runs
 * train every epoch. Its accuracy is read on all 2,000 held-out digits (the 1,000 test digits
 * and the final validation's 1,000): two runs' models disagree on a few % of digits, so on 1,000
 * digits alone the comparison carries ~0.5 points of sampling noise.
 */
export const SETTLED_MLP_JOB = {
  model: 'mlp',
  epochs: 10,
  batchSize: 64,
  optimizer: { type: 'sgd' as const, lr: 0.1, momentum: 0.9 },
  lrSchedule: { patience: 0 },
  earlyStopping: { patience: 0 }
}

/** accuracy over the test and validation digits (1,000 each), from their two accuracies */
export function heldOutAccuracy (testAccuracy: number, validationAccuracy: number): number {
  return (testAccuracy + validationAccuracy) / 2
}
