/**
 * Joiners of a running job admitted in crowds: one that asks within ADMISSION_WINDOW_MS of the
 * last admission waits for the end of a window that long, and all who asked meanwhile are
 * admitted together, at one step. A crowd costs two re-shards (and re-cuts of a reduce-scatter),
 * the first joiner's and the rest's, not one per joiner; a joiner on its own is admitted at once.
 */

/** the window (ms) that gathers joiners asking close together */
export const ADMISSION_WINDOW_MS = 500

export interface AdmissionWindow {
  /** admit `peerId` at once or with the window's crowd; resolves once admitted, rejects if the window closes first */
  admit(peerId: string): Promise<void>
  /** reject the joiners waiting in the window; later calls to admit reject */
  close(): void
}

/** `admitAll`: admit these peers at one step (one membership version, one announcement) */
export function createAdmissionWindow(admitAll: (peers: readonly string[]) => void): AdmissionWindow {
  /** joiners waiting in the window, and the timer that admits them */
  let batch: { readonly peers: Map<string, (admitted: true | Error) => void>, readonly timer: NodeJS.Timeout } | undefined
  /** when the last joiner was admitted (performance.now()) */
  let lastAdmissionAt = -Infinity
  let closed = false

  const admitBatch = (): void => {
    const pending = batch
    batch = undefined
    if (pending === undefined) return
    lastAdmissionAt = performance.now()
    admitAll([...pending.peers.keys()])
    for (const resolve of pending.peers.values()) resolve(true)
  }

  return {
    async admit(peerId) {
      if (closed) throw new Error('the job stopped')
      if (batch === undefined && performance.now() - lastAdmissionAt >= ADMISSION_WINDOW_MS) {
        // a joiner on its own (nobody admitted lately): at once
        lastAdmissionAt = performance.now()
        admitAll([peerId])
        return
      }
      // one of a crowd: wait for the window that gathers it; one admission step for all of it
      if (batch === undefined) batch = { peers: new Map(), timer: setTimeout(admitBatch, ADMISSION_WINDOW_MS) }
      const { peers } = batch
      const admitted = await new Promise<true | Error>((resolve) => { peers.set(peerId, resolve) })
      if (admitted instanceof Error) throw admitted
    },
    close() {
      closed = true
      if (batch === undefined) return
      clearTimeout(batch.timer)
      for (const resolve of batch.peers.values()) resolve(new Error('the job stopped'))
      batch = undefined
    }
  }
}
