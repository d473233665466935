/**
 * The job configuration: one zod schema, shared by the CLI flags, job YAML files,
 * the control socket (job.submit) and the state a joining peer receives.
 */
import { z } from 'zod'
import { formatConfigIssues } from './config-errors.js'

export const OptimizerConfigSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('sgd'),
    lr: z.number().positive().finite().default(0.05),
    momentum: z.number().min(0).max(1).default(0.9),
    weightDecay: z.number().min(0).finite().default(0),
    nesterov: z.boolean().default(false)
  }).strict(),
  z.object({
    type: z.literal('adam'),
    lr: z.number().positive().finite().default(0.001),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    weightDecay: z.number().min(0).finite().default(0)
  }).strict()
])
export type OptimizerConfig = z.infer<typeof OptimizerConfigSchema>

export const LrScheduleConfigSchema = z.object({
  /** ReduceLROnPlateau on validation loss */
  factor: z.number().gt(0).lt(1).default(0.5),
  patience: z.number().int().min(0).default(1),
  threshold: z.number().min(0).default(1e-4),
  cooldown: z.number().int().min(0).default(0),
  minLr: z.number().min(0).default(1e-6)
}).strict()
export type LrScheduleConfig = z.infer<typeof LrScheduleConfigSchema>

export const EarlyStoppingConfigSchema = z.object({
  /** epochs without validation-loss improvement before stopping; 0 disables */
  patience: z.number().int().min(0).default(5),
  minDelta: z.number().min(0).default(1e-4)
}).strict()
export type EarlyStoppingConfig = z.infer<typeof EarlyStoppingConfigSchema>

export const AggregationRuleSchema = z.enum(['trimmed-mean', 'mean', 'median', 'mean-around-median', 'krum', 'multi-krum', 'centered-clip'])
export type AggregationRule = z.infer<typeof AggregationRuleSchema>

export const AggregationConfigSchema = z.object({
  rule: AggregationRuleSchema.default('trimmed-mean'),
  /** number of faulty peers tolerated (trimmed per side for trimmed-mean) */
  f: z.number().int().min(0).default(1),
  /** multi-krum: how many selected gradients are averaged (default n - f) */
  multiKrumM: z.number().int().positive().optional(),
  /** centered clipping radius and iterations */
  clipRadius: z.number().positive().default(1),
  clipIterations: z.number().int().positive().default(3)
}).strict()
export type AggregationConfig = z.infer<typeof AggregationConfigSchema>

export const CompressionConfigSchema = z.object({
  codec: z.enum(['qsgd', 'fp16', 'none']).default('qsgd'),
  /** bits per coordinate for qsgd (sign included) */
  bits: z.union([z.literal(2), z.literal(4), z.literal(8)]).default(8),
  bucketSize: z.number().int().min(16).max(1 << 20).default(512)
}).strict()
export type CompressionConfig = z.infer<typeof CompressionConfigSchema>

/** Test-and-demo-only Byzantine behaviour; never on unless a job names peers. */
export const AttackConfigSchema = z.object({
  /**
   * the peers that misbehave, by the name the demo (or a test) gives its in-process peers, e.g.
   * peer-1; a daemon started with `p2pmld start` runs no attack, whatever a job names
   */
  peers: z.array(z.string().min(1)).min(1),
  /** equivocate: each recipient gets the gradient times its own factor in [-magnitude, magnitude] */
  kind: z.enum(['sign-flip', 'gaussian', 'scale', 'collude', 'equivocate']),
  /** multiplier for sign-flip and scale, standard deviation for gaussian, value for collude, bound for equivocate */
  magnitude: z.number().finite().default(10)
}).strict()
export type AttackConfig = z.infer<typeof AttackConfigSchema>

export const JobConfigSchema = z.object({
  /** job id; generated when absent */
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'use 1-64 letters, digits, dot, dash or underscore').optional(),
  /** a zoo model name (`p2pmld models` lists them) or a path to a forward ONNX file */
  model: z.string().min(1).default('lenet5'),
  /** 'mnist' (bundled), 'fashion-mnist', or a directory holding IDX files or CIFAR-10 binary files */
  dataset: z.string().min(1).default('mnist'),
  seed: z.number().int().min(0).max(2 ** 32 - 1).default(1),
  epochs: z.number().int().positive().default(10),
  /** per-peer batch size */
  batchSize: z.number().int().positive().max(65536).default(64),
  /** use only the first N training samples (short jobs, tests); absent: all */
  trainSamples: z.number().int().positive().optional(),
  optimizer: OptimizerConfigSchema.default({ type: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, nesterov: false }),
  lrSchedule: LrScheduleConfigSchema.default(LrScheduleConfigSchema.parse({})),
  earlyStopping: EarlyStoppingConfigSchema.default(EarlyStoppingConfigSchema.parse({})),
  aggregation: AggregationConfigSchema.default(AggregationConfigSchema.parse({})),
  compression: CompressionConfigSchema.default(CompressionConfigSchema.parse({})),
  /** peers that must be members before step 0 (the default fits trimmed-mean with f = 1) */
  minPeers: z.number().int().positive().default(3),
  /** per-step deadline in ms; absent: derived from recent step times */
  stepDeadlineMs: z.number().int().positive().optional(),
  /**
   * fraction of live members whose gradients must arrive for a step to proceed, on top of the
   * rule's floor. At least 0.5: a step never goes on with half of its members or fewer, unless
   * the most senior member is among exactly half (daemon/training/step-quorum.ts), so a quorum
   * below 0.5 would change nothing
   */
  quorum: z.number().max(1).default(0.5),
  /** consecutive missed steps before a member is evicted */
  evictAfterMissedSteps: z.number().int().positive().default(3),
  /** write a checkpoint every N steps (0: only on shutdown) */
  checkpointEverySteps: z.number().int().min(0).default(50),
  /**
   * members compare a full sha256 of the parameters every this many steps (anchor steps) and a
   * sampled digest between (training-state.ts, exchangedDigest): a full hash costs ~0.6 ms per MB
   * of parameters, 40 % of an mlp-large step if done every step. 64 keeps detection under 2 % of a
   * step for every zoo model (bench/digest-cost.ts); at 32 the anchors alone were ~2.1 % of mlp's
   * 0.34 ms step on a Zen 5 (sha256 of its 0.4 MB in 0.23 ms)
   */
  digestEvery: z.number().int().min(1).max(10_000).default(64),
  attack: AttackConfigSchema.optional(),
  /**
   * how gradients and control messages travel: libp2p (direct streams), amqp (a RabbitMQ broker,
   * the daemon's amqpUrl), or auto (libp2p, and the broker for members libp2p cannot reach)
   */
  transport: z.enum(['libp2p', 'amqp', 'auto']).default('libp2p'),
  /**
   * how gradients travel over libp2p: stream (a direct stream to each member) or gossipsub (one
   * signed publish on the job's gradient topic, flooded to the members connected to the sender,
   * not relayed; chunked below gossipsub's 4 MiB limit), or reduce-scatter (each member sends
   * each slice of its gradient to the slice's 2f+1 replicas, which aggregate it and send their
   * results to everyone; members take the median of a slice's replica results: bytes per member
   * do not grow with the number of members; daemon/training/reduce-scatter-step.ts). Every member
   * uses the job's choice.
   */
  exchange: z.enum(['stream', 'gossipsub', 'reduce-scatter']).default('stream'),
  /** sync: every step waits for the members' gradients; async: use the latest each published */
  mode: z.enum(['sync', 'async']).default('sync'),
  /** async: a member's latest gradient is used while at most this many steps old */
  maxStaleness: z.number().int().min(0).max(1000).default(4),
  /** async: robust parameter averaging across members every this many steps */
  averageEvery: z.number().int().positive().max(100_000).default(10)
}).strict().superRefine((job, ctx) => {
  if (job.exchange !== 'stream' && job.transport !== 'libp2p') {
    ctx.addIssue({
      code: 'custom',
      path: ['exchange'],
      message: `exchange ${job.exchange} needs transport libp2p (over the broker, and for transport auto's per-member fallback, gradients go to each member on its own): set exchange to stream or transport to libp2p`
    })
  }
  if (job.exchange === 'reduce-scatter' && job.mode !== 'sync') {
    ctx.addIssue({ code: 'custom', path: ['exchange'], message: 'exchange reduce-scatter runs in mode sync only (async members aggregate the latest of each member\'s gradients): set mode to sync or exchange to stream' })
  }
  if (job.exchange === 'reduce-scatter' && !COORDINATE_WISE_RULES.includes(job.aggregation.rule)) {
    ctx.addIssue({ code: 'custom', path: ['exchange'], message: `exchange reduce-scatter aggregates slices of the gradients, which ${job.aggregation.rule} cannot (it compares whole vectors): set aggregation.rule to one of ${COORDINATE_WISE_RULES.join(', ')} or exchange to stream` })
  }
  if (job.quorum < 0.5) {
    ctx.addIssue({
      code: 'custom',
      path: ['quorum'],
      message: `must be at least 0.5, got ${job.quorum}: a step always needs more than half of its members (or exactly half holding the most senior one), so that two halves of a job cut apart by the network cannot both train on; a lower quorum would change nothing (raise it toward 1 to need more)`
    })
  }
  const needed = minimumPeersFor(job.aggregation.rule, job.aggregation.f)
  if (job.minPeers < needed) {
    ctx.addIssue({
      code: 'custom',
      path: ['minPeers'],
      // the flags beside the fields: the same check reads a job file and `p2pmld start`'s flags
      message: `${job.aggregation.rule} with f=${job.aggregation.f} needs at least ${needed} peers: set minPeers (--min-peers) to ${needed} or more` +
        (job.aggregation.f > 0 ? ', or lower aggregation.f (--f)' : needed > 1 ? `, or set aggregation.rule (--aggregation) to mean (${job.aggregation.rule} needs ${needed} even with f=0)` : '')
    })
  }
})

/**
 * Settings that are valid but known to train badly, as one sentence each naming the field and
 * the fix (logged by the daemon the job is submitted to). Async mode with SGD momentum:
 * heavy-ball momentum on stale gradients shrinks the largest stable lr x curvature from
 * 2(1 + m) to about 0.13 at m = 0.9
 * when 3/4 of each step's gradient is one step old (linear stability of delayed heavy ball; cf.
 * Mitliagkas et al., "Asynchrony begets momentum", 2016); measured on lenet5 with 4 peers:
 * 12-54 % test accuracy with momentum 0.9 (lr 0.02 or 0.01) against 74-90 % with momentum 0, lr 0.1
 * (4 epochs; 92-93 % after 6).
 */
export function jobConfigWarnings(job: JobConfig): string[] {
  const warnings: string[] = []
  if (job.mode === 'async' && job.optimizer.type === 'sgd' && job.optimizer.momentum > 0) {
    warnings.push(`mode async with optimizer.momentum ${job.optimizer.momentum}: momentum on stale gradients oscillates and often diverges; set optimizer.momentum to 0 and optimizer.lr to about ${+(job.optimizer.lr / (1 - Math.min(job.optimizer.momentum, 0.99)) / 2).toPrecision(2)} (lr / (1 - momentum) / 2)`)
  }
  const { rule, f } = job.aggregation
  if (job.mode === 'async' && job.maxStaleness === 0 && minimumPeersFor(rule, f) > 1) {
    // async-trainer.ts: a step short of the rule's minimum of fresh gradients updates nothing, and
    // async never waits for the others' gradient of the same step: a demo trained to 7 % (chance)
    warnings.push(`mode async with maxStaleness 0: another member's gradient is used only at the step it was computed for, and async never waits for it, so most steps have fewer than the ${minimumPeersFor(rule, f)} gradients ${rule} with f ${f} needs and update nothing; set maxStaleness to 1 or more (default 4)`)
  }
  if (rule === 'mean' && f > 0 && job.minPeers < 2 * f + 1) {
    // state-reconciliation.ts: a divergence is repaired from 2f+1 members' states; mean steps with
    // any number of members, so a job of fewer trains on with members whose parameters differ
    warnings.push(`aggregation mean with f ${f} and minPeers ${job.minPeers}: mean tolerates no faulty member, but f still sets how many members' states repair a divergence (2f+1 = ${2 * f + 1}), so with fewer members two whose parameters came apart (a gradient one got and another did not) stay apart; set aggregation.f to 0 (--f 0: a joiner then takes its state from one member unchecked) or minPeers to ${2 * f + 1} or more`)
  }
  // bits (and for none, bucketSize) are qsgd's: their defaults cannot be told from a value given,
  // so only another value is named (a job file with {codec: fp16, bits: 4} ran fp16 without a word)
  const { codec, bits, bucketSize } = job.compression
  const ignored = codec === 'qsgd' ? [] : [...(bits !== 8 ? [`bits ${bits}`] : []), ...(codec === 'none' && bucketSize !== 512 ? [`bucketSize ${bucketSize}`] : [])]
  if (ignored.length > 0) {
    warnings.push(`compression.${ignored.join(' and compression.')} ${ignored.length === 1 ? 'has' : 'have'} no effect with compression.codec ${codec} (${codec === 'fp16' ? '16 bits a coordinate' : 'float32, uncompressed'}); they set qsgd's quantization: drop ${ignored.length === 1 ? 'it' : 'them'}, or set compression.codec to qsgd`)
  }
  return warnings
}

/** rules that work coordinate by coordinate, so a slice of the vectors aggregates on its own */
export const COORDINATE_WISE_RULES: readonly AggregationRule[] = ['trimmed-mean', 'mean', 'median', 'mean-around-median']

/** Fewest gradients the rule can aggregate while tolerating f faulty ones. */
export function minimumPeersFor(rule: AggregationRule, f: number): number {
  if (rule === 'mean') return 1
  if (rule === 'krum' || rule === 'multi-krum') return 2 * f + 3
  return 2 * f + 1
}

/**
 * What to change so a job of `members` members can aggregate under `rule` (e.g. 'set
 * aggregation.f to 0'), or undefined when it already can. `fField`/`ruleField` name the setting
 * as the caller's user writes it (a config key or a CLI flag).
 */
export function quorumFix(rule: AggregationRule, f: number, members: number, fField = 'aggregation.f', ruleField = 'aggregation.rule'): string | undefined {
  if (minimumPeersFor(rule, f) <= members) return undefined
  if (minimumPeersFor(rule, 0) <= members) return `set ${fField} to 0 (f counts faulty peers)`
  return `set ${ruleField} to mean (${rule} needs ${minimumPeersFor(rule, 0)} gradients even with f=0)`
}

/**
 * `input` (a job's raw fields) with minPeers raised to its aggregation rule's floor, for one
 * process (p2pmld train), where minPeers means nothing: the schema's check, whose fix is
 * --min-peers, then leaves the rule to the caller's check of one gradient. An aggregation
 * section that does not parse is left for the schema to name.
 */
export function withMinPeersForOneProcess(input: Record<string, unknown>): Record<string, unknown> {
  const aggregation = AggregationConfigSchema.safeParse(input.aggregation ?? {})
  const needed = aggregation.success ? minimumPeersFor(aggregation.data.rule, aggregation.data.f) : 1
  return typeof input.minPeers === 'number' && input.minPeers >= needed ? input : { ...input, minPeers: needed }
}

export type JobConfigInput = z.input<typeof JobConfigSchema>
export type JobConfig = z.output<typeof JobConfigSchema>

/**
 * `invalid <source>:` and one line per problem; unknown keys suggest the nearest valid one and
 * enum values list what is allowed (see config-errors.ts). `input` is what was parsed.
 */
export function formatZodError(error: z.ZodError, source: string, input?: unknown, schema: z.ZodType = JobConfigSchema): string {
  return `invalid ${source}:\n${formatConfigIssues(schema, error, input).join('\n')}`
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function parseJobConfig(input: unknown, source = 'job config'): JobConfig {
  const result = JobConfigSchema.safeParse(input)
  if (!result.success) throw new ConfigError(formatZodError(result.error, source, input))
  return result.data
}
