/**
 * Between the runner's typed JobSnapshot and the wire/checkpoint TrainingSnapshot. What comes
 * from a peer or a file is validated here (job config and meta) before it reaches training.
 */
import { z } from 'zod'
import { parseJobConfig } from '../../config/job-config.js'
import { ControlDecisionSchema, MembershipStateSchema } from '../../protocols/job/job-protocol.js'
import type { TrainingSnapshot } from '../../protocols/snapshot/index.js'
import type { JobSnapshot, SnapshotMeta } from './job-runner.js'

const finiteOrNull = z.number().nullable().transform((v) => v ?? NaN)

const EpochRecordSchema = z.object({
  epoch: z.number().int().min(0),
  step: z.number().int().min(0),
  trainLoss: finiteOrNull,
  validationLoss: finiteOrNull,
  validationAccuracy: z.number().min(0).max(1).nullable().transform((v) => v ?? 0),
  lr: z.number(),
  durationMs: z.number()
})

const SnapshotMetaSchema = z.object({
  lr: z.number().positive().finite(),
  epochLossSum: z.number().finite(),
  epochLossCount: z.number().int().min(0),
  convergence: z.unknown(),
  membership: MembershipStateSchema,
  history: z.array(EpochRecordSchema).max(100_000),
  finished: z.boolean(),
  control: ControlDecisionSchema.optional(),
  result: z.object({
    reason: z.enum(['epochs', 'early-stopping', 'stopped']),
    test: z.object({ loss: finiteOrNull, accuracy: z.number().min(0).max(1), count: z.number().int().min(0) }),
    digest: z.string().min(1).max(128)
  }).optional()
})

export class InvalidSnapshotError extends Error {
  override name = 'InvalidSnapshotError'
}

export function toTrainingSnapshot(snapshot: JobSnapshot): TrainingSnapshot {
  return {
    jobConfig: snapshot.jobConfig,
    step: snapshot.step,
    epoch: snapshot.epoch,
    cursor: snapshot.cursor,
    meta: JSON.parse(JSON.stringify(snapshot.meta)) as Record<string, unknown>,
    params: snapshot.params,
    optimizerState: snapshot.optimizerState
  }
}

export function fromTrainingSnapshot(snapshot: TrainingSnapshot, source: string): JobSnapshot {
  const jobConfig = parseJobConfig(snapshot.jobConfig, `job config in ${source}`)
  const meta = SnapshotMetaSchema.safeParse(snapshot.meta)
  if (!meta.success) throw new InvalidSnapshotError(`training state from ${source} is invalid: ${meta.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  for (const v of snapshot.params) {
    if (!Number.isFinite(v)) throw new InvalidSnapshotError(`training state from ${source} has non-finite parameters`)
  }
  return {
    jobConfig,
    step: snapshot.step,
    epoch: snapshot.epoch,
    cursor: snapshot.cursor,
    meta: meta.data as SnapshotMeta,
    params: snapshot.params,
    optimizerState: snapshot.optimizerState
  }
}
