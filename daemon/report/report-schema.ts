/**
 * The run report: what one peer saw of a job, as JSON a person (or `p2pmld estimate
 * --from-report`) can read back. Written at the end of every job, on `p2pmld report`, and by
 * `p2pmld demo` / `p2pmld train`. Validated with this schema wherever it is read.
 */
import { z } from 'zod'
import { StageFigureSchema } from '../metrics/stage-figure-schema.js'

export const RUN_REPORT_FORMAT = 'p2pmld-run-report'
export const RUN_REPORT_VERSION = 1

const count = z.number().int().min(0)
/** JSON has no NaN: a loss not measured (no step in the epoch) is null */
const lossOrNull = z.number().finite().nullable()

export const EpochEntrySchema = z.object({
  /** the epoch's 0-based index (the console's 'epoch 1/10' is epoch 0 here) */
  epoch: count,
  /** global step at the epoch's end */
  step: count,
  trainLoss: lossOrNull,
  validationLoss: lossOrNull,
  validationAccuracy: z.number().min(0).max(1),
  /** learning rate the epoch trained with */
  lr: z.number().finite(),
  /** validation time at the epoch end, ms */
  durationMs: z.number().min(0),
  /** ms since the job started on this peer, when recorded live */
  atMs: z.number().min(0).nullable(),
  /** parameter digest at the start of the epoch's last step, the one every member sent with its gradient (null when not recorded live) */
  digest: z.string().nullable(),
  /** members at the epoch's last step */
  members: count.nullable()
}).strict()
export type EpochEntry = z.infer<typeof EpochEntrySchema>

export const MemberEntrySchema = z.object({
  peerId: z.string().min(1),
  joinStep: count,
  leaveStep: count.nullable(),
  /** how it left: a clean leave it announced, or evicted for missing steps */
  exit: z.enum(['left', 'evicted']).nullable()
}).strict()

export const MembershipPointSchema = z.object({ step: count, members: count }).strict()

export const PeerBytesSchema = z.object({ peer: z.string().min(1), bytesSent: count, bytesReceived: count }).strict()

export const RunReportSchema = z.object({
  format: z.literal(RUN_REPORT_FORMAT),
  version: z.literal(RUN_REPORT_VERSION),
  generatedAt: z.string().min(1),
  /** what wrote it: a job's end, `p2pmld report` on a daemon or checkpoint, the demo, train */
  source: z.enum(['job-end', 'daemon', 'checkpoint', 'demo', 'train']),
  peer: z.object({ id: z.string().min(1), name: z.string().nullable() }).strict(),
  job: z.object({
    id: z.string().nullable(),
    /** the job config as the runner used it */
    config: z.record(z.string(), z.unknown()),
    state: z.string().min(1),
    parameterCount: count.nullable(),
    trainSamples: count.nullable(),
    step: count,
    epoch: count,
    lr: z.number().finite().nullable()
  }).strict(),
  result: z.object({
    reason: z.string().min(1),
    step: count,
    epoch: count,
    testAccuracy: z.number().min(0).max(1),
    testLoss: z.number().finite().nullable(),
    digest: z.string().min(1)
  }).strict().nullable(),
  epochs: z.array(EpochEntrySchema),
  membership: z.object({
    version: count,
    members: z.array(MemberEntrySchema),
    /** member count from each step it changed at, then the last step */
    timeline: z.array(MembershipPointSchema),
    joins: z.array(z.object({ peerId: z.string(), step: count }).strict()),
    evictions: z.array(z.object({ peerId: z.string(), step: count }).strict()),
    leaves: z.array(z.object({ peerId: z.string(), step: count }).strict())
  }).strict(),
  stages: z.array(StageFigureSchema),
  network: z.object({
    bytesSent: count,
    bytesReceived: count,
    messagesSent: count,
    messagesReceived: count,
    /** TCP bytes to and from each remote peer (all protocols) */
    byPeer: z.array(PeerBytesSchema)
  }).strict(),
  digests: z.object({
    /** this peer's final parameter digest (while the job runs: the digest at the start of its last step) */
    own: z.string().nullable(),
    /**
     * this peer's digest at the start of the last step it ran: what `peers` are compared with (a
     * finished job's `own` is of the parameters after that step). Absent in reports written before it
     */
    lastStep: z.string().nullable().optional(),
    /** the digests the other members sent with their gradients of the last step this peer ran (parameters at that step's start) */
    peers: z.record(z.string(), z.string()),
    /** every digest in `peers` equal to `lastStep` */
    agree: z.boolean().nullable()
  }).strict(),
  /** the job's wall time on this peer so far, ms */
  wallMs: z.number().min(0).nullable()
}).strict()
export type RunReport = z.infer<typeof RunReportSchema>

/** Parses report JSON read from outside; errors name the source and the field. */
export function parseRunReport(raw: unknown, source: string): RunReport {
  const parsed = RunReportSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new Error(`${source} is not a p2pmld run report (version ${RUN_REPORT_VERSION}): field '${issue.path.join('.')}': ${issue.message}`)
  }
  return parsed.data
}
