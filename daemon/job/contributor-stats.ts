/** How many members contributed a gradient to each of the last steps (`p2pmld status`). */

/** steps kept */
const KEPT_STEPS = 10_000

export interface ContributorStats {
  /** a step done with `count` contributors */
  record(count: number): void
  /** the last step's count and the mean, least and most over the steps kept (all 0 before the first step) */
  summary(): { last: number, mean: number, min: number, max: number }
}

export function createContributorStats(): ContributorStats {
  const counts: number[] = []
  return {
    record(count) {
      counts.push(count)
      if (counts.length > KEPT_STEPS) counts.shift()
    },
    summary() {
      if (counts.length === 0) return { last: 0, mean: 0, min: 0, max: 0 }
      return {
        last: counts[counts.length - 1],
        mean: counts.reduce((a, b) => a + b, 0) / counts.length,
        min: Math.min(...counts),
        max: Math.max(...counts)
      }
    }
  }
}
