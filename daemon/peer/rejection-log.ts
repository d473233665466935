/**
 * Counts rejected inbound messages by reason and logs them without flooding: the first few of
 * each reason, then every hundredth. A refusal the protocol expects (an async job's gradient that
 * arrived after its staleness bound, a job request to a peer still joining) is counted apart, as
 * dropped, and logged at debug level only: the rejections a user sees are the ones worth a look.
 */
export interface RejectionLog {
  reject(reason: string, detail: object, message: string, options?: { expected?: boolean }): void
  /** rejections by reason, the expected refusals left out */
  counts(): Record<string, number>
  /** expected refusals by reason */
  dropped(): Record<string, number>
  /** every rejection and expected refusal */
  total(): number
}

export function createRejectionLog(log: { warn(obj: object, msg: string): void, debug(obj: object, msg: string): void }): RejectionLog {
  const counts = new Map<string, number>()
  const dropped = new Map<string, number>()
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0)
  return {
    reject(reason, detail, message, options = {}) {
      const expected = options.expected === true
      const into = expected ? dropped : counts
      const n = (into.get(reason) ?? 0) + 1
      into.set(reason, n)
      if (expected) log.debug({ ...detail, reason, droppedSoFar: n }, `dropped inbound message: ${message}`)
      else if (n <= 5 || n % 100 === 0) log.warn({ ...detail, reason, rejectedSoFar: n }, `rejected inbound message: ${message}`)
    },
    counts: () => Object.fromEntries(counts),
    dropped: () => Object.fromEntries(dropped),
    total: () => sum(counts) + sum(dropped)
  }
}

/** counts by reason, summed over the records given */
export function sumCounts(...records: ReadonlyArray<Readonly<Record<string, number>>>): Record<string, number> {
  const sum: Record<string, number> = {}
  for (const byReason of records) for (const [reason, n] of Object.entries(byReason)) sum[reason] = (sum[reason] ?? 0) + n
  return sum
}
