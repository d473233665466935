/**
 * Where a peer computes its gradients (`offload` in the daemon config): in process (`none`), in a
 * local worker pool (`pool`), through direct Lambda invocations (`lambda`) or through a Step
 * Functions state machine that maps Lambda over the micro-batches (`stepfunctions`). A per-peer
 * setting: peers of one job may each choose differently, the gradients are the same.
 * Accepts the mode alone as a string (`offload: pool`, `P2PMLD_OFFLOAD=pool`, `--offload pool`).
 */
import { z } from 'zod'

export const OFFLOAD_MODES = ['none', 'pool', 'lambda', 'stepfunctions'] as const

/** Retry of a failed function: ASL Retry (stepfunctions) or the client's own (lambda). */
export const OffloadRetrySchema = z.object({
  /** attempts in all, the first included */
  attempts: z.number().int().min(1).max(10).default(3),
  /** wait before the first retry, seconds (ASL IntervalSeconds) */
  intervalSeconds: z.number().int().min(1).max(300).default(1),
  /** each later wait is this many times the previous (ASL BackoffRate) */
  backoffRate: z.number().min(1).max(10).default(2)
}).strict()
export type OffloadRetryConfig = z.infer<typeof OffloadRetrySchema>

const microBatching = {
  /** no micro-batch smaller than this many samples (small batches are split less) */
  minMicroBatchSize: z.number().int().min(1).max(65536).default(16)
}

/** an S3 bucket name as S3 accepts it (the daemon's offload config, and the IAM policies `functions package` writes) */
export const S3BucketNameSchema = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3-63 lower-case letters, digits, dots and dashes')

const aws = {
  /** the gradient Lambda function (name or ARN) */
  functionName: z.string().min(1).max(170).default('p2pmld-gradient'),
  /** S3 bucket the peer and the functions exchange parameters, micro-batches and gradients in */
  bucket: S3BucketNameSchema,
  /** key prefix in the bucket */
  prefix: z.string().max(200).regex(/^([A-Za-z0-9!_.*'()-]+\/)*$/, "empty, or '/'-separated segments ending in '/' (e.g. 'p2pmld/')").default('p2pmld/'),
  /** AWS region (default: the SDK's: AWS_REGION, the profile) */
  region: z.string().min(1).optional(),
  /** micro-batches per step, each one function invocation */
  microBatches: z.number().int().min(1).max(1000).default(4),
  retry: OffloadRetrySchema.default(OffloadRetrySchema.parse({})),
  /** one invocation's time limit, seconds (a timed-out micro-batch is retried, then computed locally) */
  timeoutSeconds: z.number().int().min(1).max(900).default(60),
  ...microBatching
}

export const OffloadConfigObjectSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('none') }).strict(),
  z.object({
    mode: z.literal('pool'),
    /** worker threads (default: cores - 1, at least 1) */
    workers: z.number().int().min(1).max(256).optional(),
    /** ORT intra-op threads per worker */
    threadsPerWorker: z.number().int().min(1).max(64).default(1),
    /** micro-batches per step (default: one per worker) */
    microBatches: z.number().int().min(1).max(1024).optional(),
    ...microBatching
  }).strict(),
  z.object({
    mode: z.literal('lambda'),
    ...aws,
    /** invocations in flight at once (default: all micro-batches) */
    concurrency: z.number().int().min(1).max(1000).optional()
  }).strict(),
  z.object({
    mode: z.literal('stepfunctions'),
    ...aws,
    /** the state machine's name (created or updated at start unless stateMachineArn is given) */
    stateMachineName: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, '1-80 letters, digits, dashes or underscores').default('p2pmld-gradients'),
    /** use this existing state machine as it is (no create/update) */
    stateMachineArn: z.string().startsWith('arn:').optional(),
    /** IAM role the state machine runs as (needed to create or update it) */
    roleArn: z.string().startsWith('arn:').optional(),
    /** EXPRESS: one StartSyncExecution per step; STANDARD: StartExecution + DescribeExecution polling */
    type: z.enum(['EXPRESS', 'STANDARD']).default('EXPRESS'),
    /** Map state MaxConcurrency (0: no limit) */
    maxConcurrency: z.number().int().min(0).max(10000).default(0),
    /** STANDARD: DescribeExecution polling interval, ms */
    pollIntervalMs: z.number().int().min(10).max(60000).default(250)
  }).strict().superRefine((value, ctx) => {
    if (value.stateMachineArn === undefined && value.roleArn === undefined) {
      ctx.addIssue({ code: 'custom', path: ['roleArn'], message: 'give roleArn (the IAM role the state machine runs as, to create or update it) or stateMachineArn (an existing state machine)' })
    }
  })
])

export const OffloadConfigSchema = z.preprocess(
  (value, ctx) => {
    if (typeof value !== 'string') return value
    const parsed = parseShorthand(value)
    // '{mode:pool}': it read 'expected object, received string'
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', input: value, message: `'${value}' is not valid JSON: write the section as JSON with its keys in double quotes, e.g. '{"mode": "pool", "workers": 2}', or give the mode alone, e.g. pool` })
      return z.NEVER
    }
    return parsed
  },
  OffloadConfigObjectSchema
)
export type OffloadConfig = z.output<typeof OffloadConfigSchema>
export type OffloadConfigInput = z.input<typeof OffloadConfigObjectSchema>

/** 'pool' -> { mode: 'pool' }; a JSON object string (env var, flag) -> that object. */
function parseShorthand(value: string): unknown {
  const text = value.trim()
  if (text.startsWith('{')) {
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return { mode: text }
}
