/**
 * The control protocol in one place: method names, param schemas, result schemas and error
 * codes, shared by the daemon's control server and the CLI's client.
 */
import { z } from 'zod'
import { JobConfigSchema, type JobConfig } from '../../config/job-config.js'
import { RunReportSchema, type RunReport } from '../report/report-schema.js'
import { StageFigureSchema } from '../metrics/stage-figure-schema.js'

/** 'stopped': `job stop` ended this daemon's part before the job's end (it left the job) */
export const JOB_STATES = ['idle', 'waiting', 'training', 'paused', 'finished', 'stopped', 'failed'] as const
export const JobStateSchema = z.enum(JOB_STATES)
export type JobState = z.infer<typeof JobStateSchema>

const NoParamsSchema = z.object({}).strict()
const count = z.number().int().min(0)
const finiteOrNull = z.number().finite().nullable()

export const StatusResultSchema = z.object({
  peerId: z.string(),
  addresses: z.array(z.string()),
  jobId: z.string().nullable(),
  state: JobStateSchema,
  step: count,
  /**
   * epochs completed: the 0-based index of the epoch in progress while the job waits, trains or
   * is paused (`p2pmld status` and the console count that epoch from 1), the number completed once it ended
   */
  epoch: count,
  /** the job's epoch limit (config.epochs; early stopping may end it sooner), null without a job */
  epochs: count.nullable(),
  /** steps done and steps in all of the epoch in progress, as of the last step; null before the first step or once the job ended */
  stepInEpoch: count.nullable(),
  stepsInEpoch: count.nullable(),
  /** samples per second over the recent steps, all members' samples; null unless training and a few steps were timed */
  samplesPerSecond: finiteOrNull,
  /** ms until the last epoch ends at that pace (every epoch run, the members as now); null when samplesPerSecond is */
  etaMs: finiteOrNull,
  /** early stopping may end the job before its epoch limit (config earlyStopping.patience > 0): etaMs is then an upper bound; null without a job */
  earlyStopping: z.boolean().nullable(),
  /** last training loss, null before the first step */
  loss: finiteOrNull,
  /** last validation accuracy in [0, 1] (held-out validation split), null before the first validation */
  accuracy: z.number().min(0).max(1).nullable(),
  /** test-split accuracy in [0, 1] at the job's end, null until the job finished */
  testAccuracy: z.number().min(0).max(1).nullable(),
  /** why the job stopped ('epochs', 'early-stopping'), null until it finished */
  stopReason: z.string().nullable(),
  learningRate: finiteOrNull,
  /**
   * members at the current step, heard from or not (a crashed member counts until it is evicted or,
   * where the step cannot evict, comes back; `waiting` then says who is heard from); before the
   * start: those counted toward it; 0 once this peer left the job (state 'stopped'). `status` prints it as `members`
   */
  liveMembers: count,
  /** why training cannot go on, e.g. 'trimmed-mean with f=1 needs 3 gradients, 2 live members'; null when it can */
  waiting: z.string().nullable(),
  uptimeMs: z.number().min(0)
})
export type StatusResult = z.infer<typeof StatusResultSchema>

export const PeerInfoSchema = z.object({
  id: z.string(),
  /** where the peer listens as it announced to the job; unknown: the remote ends of the connections to it */
  addresses: z.array(z.string()),
  connected: z.boolean(),
  /** member of the current job */
  member: z.boolean(),
  /** ms since the epoch, null if never heard from */
  lastSeen: z.number().nullable(),
  suspected: z.boolean()
})
export type PeerInfo = z.infer<typeof PeerInfoSchema>
export const PeersResultSchema = z.object({ peers: z.array(PeerInfoSchema) })
export type PeersResult = z.infer<typeof PeersResultSchema>

export const SubmitJobParamsSchema = z.object({ config: JobConfigSchema }).strict()
export type SubmitJobParamsInput = z.input<typeof SubmitJobParamsSchema>
export const SubmitJobResultSchema = z.object({ jobId: z.string(), state: JobStateSchema })
export type SubmitJobResult = z.infer<typeof SubmitJobResultSchema>

/** job.stop / job.pause / job.resume: the job id is optional, a safety check when given */
export const JobControlParamsSchema = z.object({ jobId: z.string().min(1).optional() }).strict()
export type JobControlParams = z.infer<typeof JobControlParamsSchema>
export const JobControlResultSchema = z.object({
  jobId: z.string(),
  state: JobStateSchema,
  /** pause/resume are job-wide: the step every member pauses before (or resumes at) */
  effectiveStep: count.optional(),
  /** the job was in that state already (a stop of a stopped job): nothing was done */
  unchanged: z.boolean().optional()
})
export type JobControlResult = z.infer<typeof JobControlResultSchema>

export { StageFigureSchema, type StageFigure } from '../metrics/stage-figure-schema.js'

export const MetricsResultSchema = z.object({
  jobId: z.string().nullable(),
  step: count,
  stages: z.array(StageFigureSchema),
  network: z.object({
    bytesSent: count,
    bytesReceived: count,
    messagesSent: count,
    messagesReceived: count
  }),
  /** gradients aggregated per step: the last step and over the run */
  contributors: z.object({
    last: count,
    mean: z.number().min(0),
    min: count,
    max: count
  }),
  rssMiB: z.number().min(0),
  uptimeMs: z.number().min(0),
  /** inbound connections refused, by reason ('not-allowlisted', 'handshake-failed') */
  refusedConnections: z.record(z.string(), count),
  /** inbound messages and requests refused, by reason (gradients, membership, job and state-sync requests) */
  rejectedInputs: z.record(z.string(), count),
  /**
   * inbound messages and requests refused as the protocol expects, by reason: an async job's
   * gradients past the staleness bound, job requests to a peer still joining (absent from a daemon
   * older than this field: read as none)
   */
  droppedInputs: z.record(z.string(), count).default({})
})
export type MetricsResult = z.infer<typeof MetricsResultSchema>

/** path: where to write; absent: the daemon's checkpoint directory */
export const CheckpointParamsSchema = z.object({ path: z.string().min(1).optional() }).strict()
export type CheckpointParams = z.infer<typeof CheckpointParamsSchema>
export const CheckpointResultSchema = z.object({ path: z.string(), step: count, bytes: count })
export type CheckpointResult = z.infer<typeof CheckpointResultSchema>

/** model.export: the daemon writes the current parameters as a forward ONNX file at `path` (absolute) */
export const ExportParamsSchema = z.object({ path: z.string().min(1), format: z.enum(['onnx']).default('onnx') }).strict()
export type ExportParams = z.infer<typeof ExportParamsSchema>
export type ExportParamsInput = z.input<typeof ExportParamsSchema>
/**
 * normalization: how the file says its inputs are normalised (per channel, pixel intensities in
 * [0, 1]); normalizationUnknown instead, why the daemon could not tell (the job's dataset unreadable)
 */
export const ExportResultSchema = z.object({
  path: z.string(),
  step: count,
  bytes: count,
  format: z.enum(['onnx']),
  normalization: z.object({ mean: z.array(z.number()).readonly(), std: z.array(z.number()).readonly() }).optional(),
  normalizationUnknown: z.string().optional()
})
export type ExportResult = z.infer<typeof ExportResultSchema>
export const ReportResultSchema = RunReportSchema

/**
 * The reply to `shutdown`: the daemon stops after answering. `pid` names the process that ends
 * with the daemon (`p2pmld start`'s), so a client on the same host can wait for it to exit; a
 * daemon inside a longer-lived process (the demo, a test) names none.
 */
export const ShutdownResultSchema = z.object({ stopping: z.literal(true), pid: z.number().int().positive().optional() })
export type ShutdownResult = z.infer<typeof ShutdownResultSchema>

export const CONTROL_METHODS = {
  'status': { params: NoParamsSchema, result: StatusResultSchema },
  'peers': { params: NoParamsSchema, result: PeersResultSchema },
  'job.submit': { params: SubmitJobParamsSchema, result: SubmitJobResultSchema },
  'job.stop': { params: JobControlParamsSchema, result: JobControlResultSchema },
  'job.pause': { params: JobControlParamsSchema, result: JobControlResultSchema },
  'job.resume': { params: JobControlParamsSchema, result: JobControlResultSchema },
  'metrics': { params: NoParamsSchema, result: MetricsResultSchema },
  'checkpoint.save': { params: CheckpointParamsSchema, result: CheckpointResultSchema },
  'model.export': { params: ExportParamsSchema, result: ExportResultSchema },
  'report': { params: NoParamsSchema, result: ReportResultSchema },
  'shutdown': { params: NoParamsSchema, result: ShutdownResultSchema }
} as const

export type ControlMethod = keyof typeof CONTROL_METHODS
export const CONTROL_METHOD_NAMES = Object.keys(CONTROL_METHODS) as ControlMethod[]
export type ControlParams<M extends ControlMethod> = z.output<(typeof CONTROL_METHODS)[M]['params']>
export type ControlParamsInput<M extends ControlMethod> = z.input<(typeof CONTROL_METHODS)[M]['params']>
export type ControlResult<M extends ControlMethod> = z.output<(typeof CONTROL_METHODS)[M]['result']>

export function isControlMethod(name: string): name is ControlMethod {
  return Object.prototype.hasOwnProperty.call(CONTROL_METHODS, name)
}

type Awaitable<T> = T | Promise<T>

/**
 * What the daemon implements. Params arrive validated. Throw ControlMethodError for an
 * expected refusal (no job, wrong state); any other throw becomes an internal error.
 * shutdown() should answer first and stop the daemon afterwards (e.g. in setImmediate).
 */
export interface ControlHandlers {
  status(): Awaitable<StatusResult>
  peers(): Awaitable<PeersResult>
  submitJob(config: JobConfig): Awaitable<SubmitJobResult>
  stopJob(params: JobControlParams): Awaitable<JobControlResult>
  pauseJob(params: JobControlParams): Awaitable<JobControlResult>
  resumeJob(params: JobControlParams): Awaitable<JobControlResult>
  metrics(): Awaitable<MetricsResult>
  saveCheckpoint(params: CheckpointParams): Awaitable<CheckpointResult>
  exportModel(params: ExportParams): Awaitable<ExportResult>
  /** the run report of the current job (config, history, membership, stages, bytes, digests) */
  report(): Awaitable<RunReport>
  shutdown(): Awaitable<ShutdownResult>
}

/** Calls the handler behind a method with already-validated params. */
export function dispatchControlMethod<M extends ControlMethod>(handlers: ControlHandlers, method: M, params: ControlParams<M>): Promise<ControlResult<M>> {
  const table: { [K in ControlMethod]: (p: ControlParams<K>) => Awaitable<ControlResult<K>> } = {
    'status': () => handlers.status(),
    'peers': () => handlers.peers(),
    'job.submit': (p) => handlers.submitJob(p.config),
    'job.stop': (p) => handlers.stopJob(p),
    'job.pause': (p) => handlers.pauseJob(p),
    'job.resume': (p) => handlers.resumeJob(p),
    'metrics': () => handlers.metrics(),
    'checkpoint.save': (p) => handlers.saveCheckpoint(p),
    'model.export': (p) => handlers.exportModel(p),
    'report': () => handlers.report(),
    'shutdown': () => handlers.shutdown()
  }
  return Promise.resolve().then(() => table[method](params))
}

export const RPC_ERROR = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** application codes (-32000..-32099 is the server-error range) */
  NO_JOB: -32000,
  JOB_NOT_FOUND: -32001,
  INVALID_STATE: -32002,
  JOB_REJECTED: -32003,
  CHECKPOINT_FAILED: -32004,
  EXPORT_FAILED: -32006,
  SHUTTING_DOWN: -32005,
  REQUEST_TOO_LARGE: -32010,
  /** every control connection is handling a request: retry */
  SERVER_BUSY: -32011
} as const

/** An expected refusal from a handler, sent to the client with its code. */
export class ControlMethodError extends Error {
  override name = 'ControlMethodError'
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message)
  }
}

export function noJobRunningError(): ControlMethodError {
  return new ControlMethodError(RPC_ERROR.NO_JOB, 'no job running: submit one with `p2pmld job submit <file>`')
}

export function jobNotFoundError(requested: string, current: string | null): ControlMethodError {
  // the daemon's job may have finished or stopped: not "the running job"
  const now = current === null ? 'this daemon has no job' : `this daemon's job is ${current}`
  return new ControlMethodError(RPC_ERROR.JOB_NOT_FOUND, `job ${requested} not found: ${now}`)
}

/** What a user can do with a job in `state` instead, for invalidStateError's message. */
const NEXT_STEP: Partial<Record<JobState, string>> = {
  stopped: 'a stopped job goes on when its daemon starts again (p2pmld stop, then p2pmld start with the same --data-dir), from its checkpoint or from the members that carried it on',
  finished: 'p2pmld job submit starts a new job',
  failed: "the daemon's log says why; p2pmld job submit starts a new job",
  training: 'p2pmld job pause pauses it',
  waiting: 'it starts once its members have joined (p2pmld status says how many it has)'
}

export function invalidStateError(action: string, jobId: string, state: JobState): ControlMethodError {
  const next = action === 'pause' && state === 'paused' ? 'p2pmld job resume goes on' : NEXT_STEP[state]
  return new ControlMethodError(RPC_ERROR.INVALID_STATE, `cannot ${action} job ${jobId}: it is ${state}${next === undefined ? '' : `; ${next}`}`)
}
