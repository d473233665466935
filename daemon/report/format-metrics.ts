/** Training metrics for people, as the console, `p2pmld status` and the run report's page print them. */

/**
 * A loss: four decimals, or three significant digits once it is under 0.001 (a converged loss of
 * 3e-6 read "0.0000", as if it were exactly zero).
 */
export function formatLoss(loss: number): string {
  return loss === 0 || !(Math.abs(loss) < 0.001) ? loss.toFixed(4) : String(Number(loss.toPrecision(3)))
}

/** A learning rate: four significant digits (a halved 0.1 reads 0.003125, 0.1 x 0.1 x 0.1 reads 0.001, not 0.0010000000000000002). */
export function formatLearningRate(lr: number): string {
  return String(Number(lr.toPrecision(4)))
}
