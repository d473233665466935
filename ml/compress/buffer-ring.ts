/**
 * A ring of `size` byte buffers handed out in turn, so an encoder writes each step's payload
 * into memory it reuses rather than a fresh allocation (in a new process the first ~1000
 * 78 KB allocations cost ~125 us each, a third of a lenet5 qsgd encode). A buffer comes back
 * after `size - 1` further calls: the caller must be done with a payload by then (the sync
 * trainer's is read until the step after next: re-sends and the previous-step re-send).
 */
export interface BufferRing {
  /** the next buffer, at least `bytes` long (grown when a larger one is asked for) */
  next(bytes: number): Uint8Array
}

export function createBufferRing(size: number): BufferRing {
  if (!Number.isInteger(size) || size < 2) throw new RangeError(`a buffer ring needs at least 2 buffers, got ${size}`)
  const buffers: Uint8Array[] = []
  let turn = 0
  return {
    next(bytes) {
      const i = turn
      turn = (turn + 1) % size
      if (buffers[i] === undefined || buffers[i].length < bytes) buffers[i] = new Uint8Array(bytes)
      return buffers[i]
    }
  }
}
