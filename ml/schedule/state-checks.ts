/**
 * Schedule state arrives from checkpoints and from other peers: check its shape before use.
 */
export class ScheduleStateError extends Error {
  override name = 'ScheduleStateError'
}

export function stateRecord(state: unknown, kind: string): Record<string, unknown> {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) {
    throw new ScheduleStateError(`${kind} state must be an object, got ${state === null ? 'null' : typeof state}: the checkpoint or peer state is damaged`)
  }
  return state as Record<string, unknown>
}

/** A finite number, or null / absent for "no best value yet" (JSON has no Infinity). */
export function bestValue(record: Record<string, unknown>, kind: string): number {
  const best = record.best
  if (best === null || best === undefined) return Infinity
  if (typeof best !== 'number' || !Number.isFinite(best)) throw new ScheduleStateError(`${kind} state: best must be a finite number or null, got ${String(best)}`)
  return best
}

export function counter(record: Record<string, unknown>, key: string, kind: string): number {
  const value = record[key]
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new ScheduleStateError(`${kind} state: ${key} must be a non-negative integer, got ${String(value)}`)
  }
  return value
}
