/**
 * A ring of `size` byte buffers, one per step index, so an encoder writes each step's payload
 * into memory it reuses rather than a fresh allocation (in a new process the first ~1000
 * 78 KB allocations cost ~125 us each, a third of a lenet5 qsgd encode). The buffer of index i
 * is handed out again for index i + size: the caller must be done with a payload by then.
 */
export interface BufferRing {
  /**
   * the buffer of slot `index` mod size, at least `bytes` long (grown when a larger one is asked
   * for): a step that runs again (a retry) writes over its own earlier payload, never an earlier
   * step's (the sync trainer keeps the last steps' payloads to send again)
   */
  at(index: number, bytes: number): Uint8Array
}

export function createBufferRing(size: number): BufferRing {
  if (!Number.isInteger(size) || size < 2) throw new RangeError(`a buffer ring needs at least 2 buffers, got ${size}`)
  const buffers: Uint8Array[] = []
  return {
    at(index, bytes) {
      const i = ((index % size) + size) % size
      if (buffers[i] === undefined || buffers[i].length < bytes) buffers[i] = new Uint8Array(bytes)
      return buffers[i]
    }
  }
}
