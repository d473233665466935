/**
 * The price table the cost estimate (`p2pmld estimate`) multiplies times by: EC2 on-demand per
 * hour by instance type, Lambda per GB-second and per request, Step Functions per state
 * transition, S3 per request. The defaults are AWS us-east-1 list prices (Linux on-demand,
 * x86 Lambda); a user overrides any subset with a YAML/JSON file (`--prices FILE`), merged over
 * the defaults and validated here.
 */
import { z } from 'zod'
import { formatConfigIssues, nearest } from './config-errors.js'
import { readConfigFile } from './load.js'
import { ConfigError } from './job-config.js'

const usd = z.number().finite().min(0)

export const PriceTableSchema = z.object({
  currency: z.string().min(1),
  region: z.string().min(1),
  /** EC2 on-demand price per instance-hour, by instance type (e.g. 't2.large': 0.0928) */
  ec2PerHour: z.record(z.string().min(1), usd),
  lambda: z.object({
    /** USD per GB-second of configured memory (1 GB = 1024 MB, as AWS bills) */
    perGbSecond: usd,
    perRequest: usd,
    /** vCPU share Lambda gives per MB of memory: 1 vCPU at 1769 MB, up to 6 vCPUs */
    mbPerVcpu: z.number().positive(),
    maxVcpus: z.number().positive(),
    maxMemoryMb: z.number().int().positive(),
    /** concurrent executions per account and region: an epoch's batches run in waves of this many */
    concurrency: z.number().int().positive()
  }).strict(),
  stepFunctions: z.object({
    perStateTransition: usd,
    /** transitions one batch costs in the offload state machine (Map iteration: task + result) */
    transitionsPerBatch: z.number().min(0)
  }).strict(),
  s3: z.object({
    perPutRequest: usd,
    perGetRequest: usd,
    /** requests one batch costs: the gradient put by the function, read by the peer */
    putsPerBatch: z.number().min(0),
    getsPerBatch: z.number().min(0)
  }).strict()
}).strict()
export type PriceTable = z.infer<typeof PriceTableSchema>

/** AWS us-east-1 list prices (checked against the paper's Table II/III EC2 rates: t2.small $0.023/h = $0.00000639/s, t2.large $0.0928/h = $0.00002578/s). */
export const DEFAULT_PRICES: PriceTable = {
  currency: 'USD',
  region: 'us-east-1',
  ec2PerHour: {
    't2.micro': 0.0116,
    't2.small': 0.023,
    't2.medium': 0.0464,
    't2.large': 0.0928,
    't2.xlarge': 0.1856,
    't2.2xlarge': 0.3712,
    't3.small': 0.0208,
    't3.medium': 0.0416,
    't3.large': 0.0832,
    't3.xlarge': 0.1664,
    'm5.large': 0.096,
    'm5.xlarge': 0.192,
    'm5.2xlarge': 0.384,
    'c5.large': 0.085,
    'c5.xlarge': 0.17,
    'c5.2xlarge': 0.34
  },
  lambda: { perGbSecond: 0.0000166667, perRequest: 0.0000002, mbPerVcpu: 1769, maxVcpus: 6, maxMemoryMb: 10240, concurrency: 1000 },
  stepFunctions: { perStateTransition: 0.000025, transitionsPerBatch: 2 },
  s3: { perPutRequest: 0.000005, perGetRequest: 0.0000004, putsPerBatch: 1, getsPerBatch: 1 }
}

/** What a user's price file may hold: any subset of the table. */
export const PriceOverridesSchema = z.object({
  currency: z.string().min(1),
  region: z.string().min(1),
  ec2PerHour: z.record(z.string().min(1), usd),
  lambda: PriceTableSchema.shape.lambda.partial().strict(),
  stepFunctions: PriceTableSchema.shape.stepFunctions.partial().strict(),
  s3: PriceTableSchema.shape.s3.partial().strict()
}).partial().strict()
export type PriceOverrides = z.infer<typeof PriceOverridesSchema>

/** The defaults with `overrides` merged over them (instance types add to the defaults' list). */
export function mergePrices(overrides: PriceOverrides, base: PriceTable = DEFAULT_PRICES): PriceTable {
  return PriceTableSchema.parse({
    currency: overrides.currency ?? base.currency,
    region: overrides.region ?? base.region,
    ec2PerHour: { ...base.ec2PerHour, ...overrides.ec2PerHour },
    lambda: { ...base.lambda, ...overrides.lambda },
    stepFunctions: { ...base.stepFunctions, ...overrides.stepFunctions },
    s3: { ...base.s3, ...overrides.s3 }
  })
}

/** Parses a price file's content; errors name the file and the bad field. */
export function parsePriceOverrides(raw: unknown, source: string): PriceOverrides {
  if (raw === null || raw === undefined) return {}
  const parsed = PriceOverridesSchema.safeParse(raw)
  if (!parsed.success) {
    // one line per problem, an unknown key with the nearest valid one (as job and daemon configs)
    throw new ConfigError(`invalid ${source} (it holds any of currency, region, ec2PerHour, lambda, stepFunctions, s3; prices in USD >= 0):\n${formatConfigIssues(PriceOverridesSchema, parsed.error, raw).join('\n')}`)
  }
  return parsed.data
}

/** The price table: the defaults, or the defaults overridden by a YAML/JSON file. */
export function loadPriceTable(file?: string): PriceTable {
  if (file === undefined) return DEFAULT_PRICES
  return mergePrices(parsePriceOverrides(readConfigFile(file, 'price file'), `price file ${file}`))
}

/** EC2 price per second of `type`; an unknown type names the known ones and the override. */
export function ec2PricePerSecond(prices: PriceTable, type: string): number {
  const perHour = prices.ec2PerHour[type]
  if (perHour === undefined) {
    const known = Object.keys(prices.ec2PerHour)
    const near = nearest(type, known)
    throw new ConfigError(`no price for instance type '${type}'${near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : ''}: use one of ${known.join(', ')}, or add it under ec2PerHour in a --prices file`)
  }
  return perHour / 3600
}

/** Lambda price per second of one execution with `memoryMb` configured. */
export function lambdaPricePerSecond(prices: PriceTable, memoryMb: number): number {
  return (memoryMb / 1024) * prices.lambda.perGbSecond
}
