/**
 * Counts rejected inbound messages by reason and logs them without flooding: the first few of
 * each reason, then every hundredth; a rejection the protocol expects (an async job's gradient
 * that arrived after its staleness bound) is counted and logged at debug level only.
 */
export interface RejectionLog {
  reject(reason: string, detail: object, message: string, options?: { expected?: boolean }): void
  counts(): Record<string, number>
  total(): number
}

export function createRejectionLog(log: { warn(obj: object, msg: string): void, debug(obj: object, msg: string): void }): RejectionLog {
  const counts = new Map<string, number>()
  return {
    reject(reason, detail, message, options = {}) {
      const n = (counts.get(reason) ?? 0) + 1
      counts.set(reason, n)
      if (options.expected === true) log.debug({ ...detail, reason, rejectedSoFar: n }, `dropped inbound message: ${message}`)
      else if (n <= 5 || n % 100 === 0) log.warn({ ...detail, reason, rejectedSoFar: n }, `rejected inbound message: ${message}`)
    },
    counts: () => Object.fromEntries(counts),
    total: () => [...counts.values()].reduce((a, b) => a + b, 0)
  }
}
