import type { JobSessionEvents } from './job-session.js'

type Listener = (...args: never[]) => unknown

/**
 * One set of job events that calls each given set in turn (the CLI's, the metrics'); where
 * handlers return promises (onCheckpoint), the merged handler returns one for them all.
 */
export function fanOutEvents(...sets: ReadonlyArray<JobSessionEvents | undefined>): JobSessionEvents {
  const present = sets.filter((s): s is JobSessionEvents => s !== undefined)
  const keys = new Set(present.flatMap((s) => Object.keys(s))) as Set<keyof JobSessionEvents>
  const merged: Record<string, Listener> = {}
  for (const key of keys) {
    const handlers = present.map((s) => s[key] as Listener | undefined).filter((h): h is Listener => h !== undefined)
    merged[key] = (...args: never[]) => {
      const results = handlers.map((h) => h(...args))
      return results.some((r) => r instanceof Promise) ? Promise.all(results).then(() => undefined) : undefined
    }
  }
  return merged as JobSessionEvents
}
