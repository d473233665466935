/**
 * Job flags shared by `train`, `start` and `demo`: each maps onto a field of the job config;
 * a job file (--config) gives the base and flags override it. Values are checked here so an
 * error names the flag, and the merged result goes through the one JobConfig schema.
 */
import { InvalidArgumentError, Option, type Command } from 'commander'
import { allowedValues, describeAllowed, schemaAt } from '../../config/config-errors.js'
import { ConfigError, JobConfigSchema, parseJobConfig, withMinPeersForOneProcess, type JobConfig, type JobConfigInput } from '../../config/job-config.js'
import { loadJobConfigFile, readJobConfigFields } from '../../config/load.js'

export interface JobFlagValues {
  config?: string
  model?: string
  dataset?: string
  epochs?: number
  patience?: number
  batchSize?: number
  lr?: number
  optimizer?: 'sgd' | 'adam'
  momentum?: number
  seed?: number
  trainSamples?: number
  compression?: 'qsgd' | 'fp16' | 'none'
  bits?: number
  aggregation?: string
  f?: number
  minPeers?: number
  deadlineMs?: number
  transport?: 'libp2p' | 'amqp' | 'auto'
  exchange?: 'stream' | 'gossipsub'
  mode?: 'sync' | 'async'
  maxStaleness?: number
  averageEvery?: number
}

/**
 * A numeric flag, checked as the job schema will check its field so the error names the flag:
 * 'int' a whole number >= 0, 'count' a whole number >= 1, 'positive' any number > 0, 'fraction'
 * a number in [0, 1].
 */
function numberFlag(flag: string, kind: 'int' | 'count' | 'positive' | 'fraction' | 'number'): (value: string) => number {
  return (value: string) => {
    const n = Number(value)
    // '1e400' parses, to Infinity: say what is wrong with it, not that it is no number
    if (value.trim() === '' || Number.isNaN(n)) throw new InvalidArgumentError(`${flag} must be a number, got '${value}'`)
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a finite number, got '${value}' (beyond the largest double, ~1.8e308)`)
    if (kind === 'int' && (!Number.isInteger(n) || n < 0)) throw new InvalidArgumentError(`${flag} must be a whole number >= 0, got '${value}'`)
    if (kind === 'count' && (!Number.isInteger(n) || n < 1)) throw new InvalidArgumentError(`${flag} must be a whole number >= 1, got '${value}'`)
    if (kind === 'positive' && n <= 0) throw new InvalidArgumentError(`${flag} must be greater than 0, got '${value}'`)
    if (kind === 'fraction' && (n < 0 || n > 1)) throw new InvalidArgumentError(`${flag} must be between 0 and 1, got '${value}'`)
    return n
  }
}

/** A flag whose values are those the job schema allows at `path` (an enum or literals). */
function choice<T extends string | number>(flag: string, path: readonly string[]): (value: string) => T {
  const field = schemaAt(JobConfigSchema, path)
  const choices = field === undefined ? undefined : allowedValues(field)
  if (choices === undefined) throw new Error(`job config field ${path.join('.')} is not an enum`)
  return (value: string) => {
    const match = choices.find((c) => String(c) === value.trim())
    if (match === undefined) throw new InvalidArgumentError(`${flag} ${describeAllowed(choices, value)}`)
    return match as T
  }
}

/**
 * The job flags that only mean something with peers (`start`, `demo`): how many to wait for, how
 * gradients travel, the step deadline, async mode. `train` (one process) refuses them by name.
 */
export const PEER_JOB_FLAGS = [
  ['--min-peers <n>', 'members needed before step 0', numberFlag('--min-peers', 'count')],
  ['--deadline-ms <ms>', 'step deadline (default: derived from recent step times)', numberFlag('--deadline-ms', 'count')],
  ['--transport <t>', 'libp2p, amqp (a RabbitMQ broker, see --amqp-url) or auto', choice('--transport', ['transport'])],
  ['--exchange <e>', 'how gradients travel over libp2p: stream (one stream per member), gossipsub (one publish on the job topic) or reduce-scatter (slices to 2f+1 replicas each: bytes per peer do not grow with the peers)', choice('--exchange', ['exchange'])],
  ['--mode <m>', 'sync (every step waits for the gradients) or async', choice('--mode', ['mode'])],
  ['--max-staleness <steps>', 'async: use a gradient at most this many steps old', numberFlag('--max-staleness', 'int')],
  ['--average-every <steps>', 'async: robust parameter averaging every this many steps', numberFlag('--average-every', 'count')]
] as const

/**
 * Adds the job flags. `peers: false` (train): the PEER_JOB_FLAGS and --f (a single process's one
 * gradient leaves no faulty one out) are accepted but left out of the help, so refusePeerJobFlags
 * and the job check can name the one given instead of commander's "unknown option"; the codec and
 * rule say they run on that one gradient.
 * `configFlag: false` (job submit, whose --config is the daemon config and whose job file is its
 * argument): no --config for the job file.
 */
export function addJobFlags(command: Command, options: { peers?: boolean, configFlag?: boolean } = {}): Command {
  if (options.configFlag !== false) command.option('--config <file>', 'job config file (YAML or JSON); flags override its fields')
  const alone = options.peers === false
  /** train: the peers' codec and rule, applied to its one gradient only when given */
  const onOwnGradient = alone ? ' (train: applied to its one gradient when given, to measure the cost)' : ''
  command
    .option('--model <name|file.onnx>', 'model: a zoo name (see `p2pmld models`: mlp, lenet5, squeezenet1_1, mobilenet_v3_small, vgg11, ...) or an ONNX file exported in eval mode')
    .option('--dataset <name|dir>', "dataset: 'mnist' (bundled), 'fashion-mnist', or a directory of IDX or CIFAR-10 binary files")
    .option('--epochs <n>', 'maximum epochs', numberFlag('--epochs', 'count'))
    .option('--patience <epochs>', 'early stopping: stop after this many epochs without a better validation loss (default 5; 0 trains every epoch)', numberFlag('--patience', 'int'))
    .option('--batch-size <n>', alone ? 'batch size' : 'batch size per peer', numberFlag('--batch-size', 'count'))
    .option('--lr <rate>', 'learning rate', numberFlag('--lr', 'positive'))
    .option('--optimizer <sgd|adam>', 'optimizer', choice('--optimizer', ['optimizer', 'type']))
    .option('--momentum <m>', 'SGD momentum', numberFlag('--momentum', 'fraction'))
    .option('--seed <n>', 'random seed (initial weights, shuffling, quantization)', numberFlag('--seed', 'int'))
    .option('--train-samples <n>', 'train on this many of the training split (a seeded random subset, at most the split)', numberFlag('--train-samples', 'count'))
    .option('--compression <codec>', `gradient codec: qsgd, fp16, none${onOwnGradient}`, choice('--compression', ['compression', 'codec']))
    .option('--bits <n>', 'QSGD bits per coordinate: 2, 4 or 8', choice('--bits', ['compression', 'bits']))
    .option('--aggregation <rule>', `trimmed-mean, mean, median, mean-around-median, krum, multi-krum, centered-clip${onOwnGradient}`, choice('--aggregation', ['aggregation', 'rule']))
  const f = new Option('--f <n>', 'number of faulty peers the aggregation tolerates').argParser(numberFlag('--f', 'int'))
  command.addOption(alone ? f.hideHelp() : f)
  for (const [flags, description, parse] of PEER_JOB_FLAGS) {
    const option = new Option(flags, description).argParser(parse)
    command.addOption(options.peers === false ? option.hideHelp() : option)
  }
  return command
}

/** whether any job flag but --config was given */
export function hasJobFlags(flags: JobFlagValues): boolean {
  return (Object.keys(JOB_FLAG_KEYS) as Array<keyof JobFlagValues>).some((key) => key !== 'config' && flags[key] !== undefined)
}

/**
 * every JobFlagValues key, to tell job flags from a command's other options: `satisfies` makes a
 * key added to JobFlagValues and missing here a compile error (it was a list kept by hand)
 */
const JOB_FLAG_KEYS = {
  config: true, model: true, dataset: true, epochs: true, patience: true, batchSize: true, lr: true, optimizer: true, momentum: true,
  seed: true, trainSamples: true, compression: true, bits: true, aggregation: true, f: true, minPeers: true, deadlineMs: true,
  transport: true, exchange: true, mode: true, maxStaleness: true, averageEvery: true
} as const satisfies Record<keyof JobFlagValues, true>

/** flag name -> its JobFlagValues key (commander's attribute name), for the peer-only flags */
const PEER_FLAG_KEYS = PEER_JOB_FLAGS.map(([flags]) => {
  const option = new Option(flags)
  return [option.long ?? flags, option.attributeName() as keyof JobFlagValues] as const
})

/**
 * Throws when a peer-only flag was given to a command that runs without peers (`train`): it
 * would be ignored. The error names the flag and where it does apply.
 */
export function refusePeerJobFlags(flags: JobFlagValues, command: string): void {
  const given = PEER_FLAG_KEYS.filter(([, key]) => flags[key] !== undefined).map(([flag]) => flag)
  if (given.length > 0) {
    throw new Error(`${given.join(', ')} ${given.length === 1 ? 'has' : 'have'} no effect in p2pmld ${command} (one process, no peers): drop ${given.length === 1 ? 'it' : 'them'}, or run the job with p2pmld start`)
  }
}

/**
 * Merge a job file (if any), command defaults and flags into a validated JobConfig.
 * `oneProcess` (p2pmld train): minPeers is raised to the aggregation rule's floor, so a rule that
 * needs more gradients than one process has is left to the caller's check and its fix.
 * @throws ConfigError naming the bad field or flag
 */
export function jobConfigFromFlags(flags: JobFlagValues, defaults: JobConfigInput = {}, options: { readonly oneProcess?: boolean } = {}): JobConfig {
  // the file's fields as written, checked once the flags are laid over them: a flag may fix what
  // the file alone gets wrong ('set minPeers (--min-peers) to 11' refused --min-peers 11)
  const fileFields = flags.config !== undefined ? readJobConfigFields(flags.config) : undefined
  if (fileFields !== undefined && (typeof fileFields !== 'object' || fileFields === null || Array.isArray(fileFields))) return loadJobConfigFile(flags.config as string, options)
  const base = (fileFields ?? defaults) as JobConfigInput
  const merged: Record<string, unknown> = { ...base }
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) merged[key] = value
  }
  set('model', flags.model)
  set('dataset', flags.dataset)
  set('epochs', flags.epochs)
  set('batchSize', flags.batchSize)
  set('seed', flags.seed)
  set('trainSamples', flags.trainSamples)
  set('minPeers', flags.minPeers)
  set('stepDeadlineMs', flags.deadlineMs)
  set('transport', flags.transport)
  set('exchange', flags.exchange)
  set('mode', flags.mode)
  set('maxStaleness', flags.maxStaleness)
  set('averageEvery', flags.averageEvery)
  if (flags.optimizer !== undefined || flags.lr !== undefined || flags.momentum !== undefined) {
    const previous = (base.optimizer ?? {}) as Record<string, unknown>
    // a file's optimizer without a type is sgd's (the default)
    const previousType = (previous.type as string | undefined) ?? 'sgd'
    const type = flags.optimizer ?? previousType
    const optimizer: Record<string, unknown> = type === previousType ? { ...previous, type } : { type }
    if (flags.lr !== undefined) optimizer.lr = flags.lr
    if (flags.momentum !== undefined) optimizer.momentum = flags.momentum
    merged.optimizer = optimizer
  }
  if (flags.patience !== undefined) merged.earlyStopping = { ...(base.earlyStopping ?? {}), patience: flags.patience }
  if (flags.compression !== undefined || flags.bits !== undefined) {
    merged.compression = { ...(base.compression ?? {}), ...(flags.compression !== undefined ? { codec: flags.compression } : {}), ...(flags.bits !== undefined ? { bits: flags.bits } : {}) }
  }
  if (flags.aggregation !== undefined || flags.f !== undefined) {
    merged.aggregation = { ...(base.aggregation ?? {}), ...(flags.aggregation !== undefined ? { rule: flags.aggregation } : {}), ...(flags.f !== undefined ? { f: flags.f } : {}) }
  }
  const flagsGiven = Object.keys(merged).some((key) => merged[key] !== (base as Record<string, unknown>)[key])
  const source = flags.config === undefined ? 'job flags' : flagsGiven ? `job config (${flags.config} + flags)` : `job file ${flags.config}`
  const config = parseJobConfig(options.oneProcess === true ? withMinPeersForOneProcess(merged) : merged, source)
  refuseUnusedFlags(flags, config)
  return config
}

/** Flags that would have no effect with the job's other settings: refused, naming the one they need. */
function refuseUnusedFlags(flags: JobFlagValues, config: JobConfig): void {
  if (flags.bits !== undefined && config.compression.codec !== 'qsgd') {
    throw new ConfigError(`--bits sets qsgd's bits per value; this job's compression is ${config.compression.codec}: drop --bits or use --compression qsgd`)
  }
  const asyncOnly = [['--max-staleness', flags.maxStaleness], ['--average-every', flags.averageEvery]].filter(([, value]) => value !== undefined).map(([flag]) => flag)
  if (asyncOnly.length > 0 && config.mode !== 'async') {
    throw new ConfigError(`${asyncOnly.join(' and ')} ${asyncOnly.length === 1 ? 'applies' : 'apply'} only in async mode; this job runs in ${config.mode} mode: drop ${asyncOnly.length === 1 ? 'it' : 'them'} or add --mode async`)
  }
}
