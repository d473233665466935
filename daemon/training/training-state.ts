/**
 * The state every member holds identically: parameters, optimizer state and where the job is.
 * It is what a checkpoint stores and what a joining peer receives.
 */
import { createHash } from 'node:crypto'

export interface TrainingProgress {
  /** global step: the next step to run */
  step: number
  epoch: number
  /** samples of this epoch's permutation already consumed */
  cursor: number
  /** learning rate in force */
  lr: number
  /** sum and count of this peer's batch losses in the current epoch (for reporting) */
  epochLossSum: number
  epochLossCount: number
}

export interface EpochRecord {
  readonly epoch: number
  readonly step: number
  readonly trainLoss: number
  readonly validationLoss: number
  readonly validationAccuracy: number
  readonly lr: number
  readonly durationMs: number
}

export type StopReason = 'epochs' | 'early-stopping' | 'stopped'

/** A short digest of the parameters: members compare it every step to detect divergence. */
export function parameterDigest(params: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)).digest('hex')
}
