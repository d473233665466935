/**
 * A daemon's checkpoint writes, one at a time in the order asked (a periodic checkpoint, the one
 * at a job's end or stop, `p2pmld checkpoint`), so two never interleave in the data dir.
 */
import { stat } from 'node:fs/promises'
import { writeCheckpoint, writeCheckpointFile } from '../checkpoint/index.js'
import type { JobSnapshot } from '../job/job-runner.js'
import { toTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'

export interface CheckpointWriter {
  /**
   * Writes `snapshot` into the checkpoint dir, or to `file` (a path the user named: `p2pmld
   * checkpoint --path FILE`) after the writes asked before it; resolves with where it went and its
   * size in bytes. A failed write rejects and is logged at error level (callers that cannot act
   * on it may ignore the rejection).
   */
  write(snapshot: JobSnapshot, file?: string): Promise<{ path: string, bytes: number }>
  /** resolves once every write asked so far has ended (a stopping daemon waits for it) */
  idle(): Promise<void>
}

export function createCheckpointWriter(checkpointDir: string, log: Logger): CheckpointWriter {
  let last: Promise<void> = Promise.resolve()
  return {
    write(snapshot, file) {
      const written = last.then(async () => {
        const training = toTrainingSnapshot(snapshot)
        const path = file === undefined ? await writeCheckpoint(checkpointDir, training) : await writeCheckpointFile(file, training)
        return { path, bytes: (await stat(path)).size }
      })
      last = written.then(() => {}, (error: unknown) => {
        log.error({ err: error, dir: file ?? checkpointDir }, 'could not write checkpoint')
      })
      return written
    },
    idle: async () => await last
  }
}
