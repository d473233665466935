/**
 * Counts rejected inbound messages by reason and logs them without flooding: the first few of
 * each reason, then every hundredth.
 */
export interface RejectionLog {
  reject(reason: string, detail: object, message: string): void
  counts(): Record<string, number>
  total(): number
}

export function createRejectionLog(log: { warn(obj: object, msg: string): void }): RejectionLog {
  const counts = new Map<string, number>()
  return {
    reject(reason, detail, message) {
      const n = (counts.get(reason) ?? 0) + 1
      counts.set(reason, n)
      if (n <= 5 || n % 100 === 0) log.warn({ ...detail, reason, rejectedSoFar: n }, `rejected inbound message: ${message}`)
    },
    counts: () => Object.fromEntries(counts),
    total: () => [...counts.values()].reduce((a, b) => a + b, 0)
  }
}
