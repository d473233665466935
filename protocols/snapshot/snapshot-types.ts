/**
 * The full training state a joining or restarting peer needs, and the error its codec throws.
 */

export interface TrainingSnapshot {
  /** the job's config as JSON; the receiver validates it with JobConfigSchema */
  readonly jobConfig: unknown
  readonly step: number
  readonly epoch: number
  /** samples of the current epoch already consumed */
  readonly cursor: number
  /** JSON-serialisable state: LR schedule, early stopping, membership, learning rate... */
  readonly meta: Record<string, unknown>
  readonly params: Float32Array
  readonly optimizerState: Float32Array
}

export type SnapshotErrorReason =
  | 'invalid-snapshot'
  | 'bad-magic'
  | 'unsupported-version'
  | 'bad-header'
  | 'too-large'
  | 'bad-json'
  | 'truncated'
  | 'trailing-bytes'
  | 'checksum-mismatch'

export class SnapshotError extends Error {
  override name = 'SnapshotError'
  readonly reason: SnapshotErrorReason

  constructor (reason: SnapshotErrorReason, message: string) {
    super(message)
    this.reason = reason
  }
}
