/**
 * The daemon configuration: where a peer keeps its state, how it is reached and how it logs.
 * Layers (flags, P2PMLD_* env, a YAML/JSON file) are merged by config/load.ts and parsed here once.
 */
import { homedir, availableParallelism } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { fromString } from 'uint8arrays/from-string'
import { z } from 'zod'
import { OffloadConfigSchema } from './offload-config.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const LogLevelSchema = z.enum(LOG_LEVELS)
/** 'pretty' for people at a terminal, 'json' (one object per line) for machines */
export const LOG_FORMATS = ['pretty', 'json'] as const
export type LogFormat = typeof LOG_FORMATS[number]

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4001'] as const
export const SOCKET_FILE_NAME = 'p2pmld.sock'
/** sun_path holds 108 bytes on Linux (104 on macOS), NUL included */
export const MAX_SOCKET_PATH_BYTES = 103

/**
 * How long a daemon restarted from its data dir (without --bootstrap) waits for its seniors
 * before it resumes the job from its own checkpoint (daemon/peer/job-joiner.ts). The defaults
 * suit members restarted by hand or by a service manager; shorter values resume sooner.
 */
export interface RestartTimings {
  /** a junior member that reaches no senior one resumes after this long (ms) */
  readonly graceMs: number
  /**
   * and each rank after the first junior this much longer (ms): juniors that cannot see each
   * other (over the broker) must not resume at one moment, two jobs under one id. A restarted
   * member asks in rounds (over the broker ~1 s each) 0.5, 1, 2, 4, then 5 s apart and decides at
   * a round's end: the stagger must outlast the pause after the round where the first junior
   * resumes, plus a round, or two juniors decide in one round
   */
  readonly staggerMs: number
  /** at most this long (ms) for a senior member that is up but runs no job to resume it; at least graceMs */
  readonly seniorWaitMs: number
}

/** today's timings: 15 s of grace, 5 s more per rank, 60 s for a senior that is up */
export const DEFAULT_RESTART_TIMINGS: RestartTimings = { graceMs: 15_000, staggerMs: 5_000, seniorWaitMs: 60_000 }

/** the restart timings a config names, each field it leaves out at its default */
export function restartTimings(config: Pick<DaemonConfig, 'restartGraceMs' | 'restartStaggerMs' | 'restartSeniorWaitMs'>): RestartTimings {
  return {
    graceMs: config.restartGraceMs ?? DEFAULT_RESTART_TIMINGS.graceMs,
    staggerMs: config.restartStaggerMs ?? DEFAULT_RESTART_TIMINGS.staggerMs,
    seniorWaitMs: config.restartSeniorWaitMs ?? DEFAULT_RESTART_TIMINGS.seniorWaitMs
  }
}

/** a restart timing in ms: 100 ms to an hour */
const restartMsError = (issue: { input?: unknown }): string => `a whole number of milliseconds from 100 to 3600000 (an hour), got ${typeof issue.input === 'string' ? `'${issue.input}'` : String(issue.input)}`
const RestartMsSchema = z.number({ error: restartMsError }).int({ error: restartMsError }).min(100, { error: restartMsError }).max(3_600_000, { error: restartMsError })

const MultiaddrStringSchema = z.string().min(1).superRefine((value, ctx) => {
  try {
    multiaddr(value)
  } catch (error) {
    // the parser's reason ('Value must be smaller than or equal to 65535', 'Protocol tcpp was unknown') names what to fix
    const reason = error instanceof Error ? `: ${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}` : ''
    ctx.addIssue({ code: 'custom', input: value, message: `'${value}' is not a valid multiaddr${reason} (examples: /ip4/0.0.0.0/tcp/4001 to listen on, /ip4/10.0.0.2/tcp/4001/p2p/12D3KooW... to dial a peer)` })
  }
})

/**
 * A peer to dial: a multiaddr whose /p2p/ part, when given, is a peer id (a character lost in a
 * copy-paste read 'Incorrect length', naming neither the flag nor the id)
 */
const BootstrapAddressSchema = MultiaddrStringSchema.superRefine((value, ctx) => {
  const id = /\/p2p\/([^/]+)/.exec(value)?.[1]
  const problem = id === undefined ? undefined : peerIdProblem(id)
  if (problem === undefined) return
  ctx.addIssue({ code: 'custom', input: value, message: `the peer id '${id}' in '${value}' is not a valid peer id (${problem}): copy the whole address the peer printed after 'bootstrap address' (its id starts 12D3KooW and is 52 characters long)` })
})

/**
 * What is wrong with a peer id as text (base58btc of a multihash: identity 0x00 or sha2-256
 * 0x12, its length, then that many bytes), or undefined. Checked here rather than by
 * @libp2p/peer-id, which every command would then load with libp2p's crypto.
 */
function peerIdProblem(id: string): string | undefined {
  let bytes: Uint8Array
  try {
    bytes = fromString(id, 'base58btc')
  } catch {
    return 'a character that is not base58'
  }
  if (bytes.length < 2 || (bytes[0] !== 0x00 && bytes[0] !== 0x12)) return 'not a peer id multihash'
  return bytes.length === 2 + bytes[1] ? undefined : 'incorrect length: a character lost or added?'
}

/**
 * An address other hosts can dial: a concrete IP (or DNS name) and TCP port, without /p2p/ (the
 * daemon appends its own id). Not 0.0.0.0 / :: (a listen-all address is nothing to dial).
 */
const AnnounceAddressSchema = MultiaddrStringSchema.refine((value) => /^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+$/.test(value) && !/^\/ip4\/0\.0\.0\.0\/|^\/ip6\/::\//.test(value), {
  error: (issue) => `'${String(issue.input)}' is not an address other hosts can dial: give the public IP and port, e.g. /ip4/203.0.113.7/tcp/4001 (no /p2p/ part, not 0.0.0.0)`
})

const fields = {
  /** state directory: peer key, checkpoints, socket */
  dataDir: z.string().min(1),
  listen: z.array(MultiaddrStringSchema),
  /** addresses other peers should dial instead of the listen addresses (a host behind NAT, e.g. EC2's public IP) */
  announce: z.array(AnnounceAddressSchema),
  bootstrap: z.array(BootstrapAddressSchema),
  socketPath: z.string().min(1),
  /** libp2p pre-shared key file: peers without the same key cannot connect */
  pskFile: z.string().min(1),
  /** peer ids allowed to connect; absent: everyone with the PSK (or everyone) */
  allowlist: z.array(z.string().min(1)),
  logLevel: LogLevelSchema,
  /** absent: pretty when stdout and stderr are terminals, else json (decided by the CLI) */
  logFormat: z.enum(LOG_FORMATS),
  /** serve Prometheus metrics on this TCP port (0: any free port); absent: no metrics server */
  metricsPort: z.number().int().min(0).max(65535),
  /** address the metrics server binds (absent: 0.0.0.0, as Prometheus usually scrapes from another host) */
  metricsHost: z.string().min(1),
  /** gradient worker threads */
  computeThreads: z.number().int().min(1).max(256),
  /** where this peer computes its gradients (config/offload-config.ts); default in process */
  offload: OffloadConfigSchema,
  /** the RabbitMQ broker for jobs with transport amqp or auto (amqp://user:pass@host:port/vhost) */
  amqpUrl: z.string().min(1).refine((value) => {
    try {
      return ['amqp:', 'amqps:'].includes(new URL(value).protocol)
    } catch {
      return false
    }
  }, { error: (issue) => `'${String(issue.input)}' is not an AMQP URL (example: amqp://guest:guest@127.0.0.1:5672)` }),
  /** restarted without --bootstrap, a junior member reaching no senior resumes the job after this long, ms (RestartTimings.graceMs) */
  restartGraceMs: RestartMsSchema,
  /** and each rank after the first junior this much later, ms (RestartTimings.staggerMs) */
  restartStaggerMs: RestartMsSchema,
  /** at most this long for a senior member that is up to resume the job, ms (RestartTimings.seniorWaitMs) */
  restartSeniorWaitMs: RestartMsSchema
}

/** Every field optional: one layer (a file, the environment, flags) as written by a user. */
export const DaemonConfigLayerSchema = z.object(fields).partial().strict()
export type DaemonConfigLayer = z.infer<typeof DaemonConfigLayerSchema>

/** The resolved configuration a daemon runs with (paths absolute once loaded by config/load.ts). */
export const DaemonConfigSchema = z.object({
  ...fields,
  listen: fields.listen.default(() => [...DEFAULT_LISTEN]),
  bootstrap: fields.bootstrap.default(() => []),
  announce: fields.announce.optional(),
  pskFile: fields.pskFile.optional(),
  allowlist: fields.allowlist.optional(),
  logLevel: fields.logLevel.default('info'),
  logFormat: fields.logFormat.optional(),
  metricsPort: fields.metricsPort.optional(),
  metricsHost: fields.metricsHost.optional(),
  computeThreads: fields.computeThreads.default(() => defaultComputeThreads()),
  /** absent: in process */
  offload: fields.offload.optional(),
  amqpUrl: fields.amqpUrl.optional(),
  /** absent: DEFAULT_RESTART_TIMINGS (restartTimings() fills them in) */
  restartGraceMs: fields.restartGraceMs.optional(),
  restartStaggerMs: fields.restartStaggerMs.optional(),
  restartSeniorWaitMs: fields.restartSeniorWaitMs.optional()
}).strict().superRefine((config, ctx) => {
  // the senior wait bounds every wait of a restart: shorter than the grace, the juniors would
  // all resume at its end, at one moment (two jobs under one id)
  const { graceMs, seniorWaitMs } = restartTimings(config)
  if (seniorWaitMs < graceMs) {
    ctx.addIssue({ code: 'custom', path: ['restartSeniorWaitMs'], message: `${seniorWaitMs} ms${config.restartSeniorWaitMs === undefined ? ' (the default)' : ''} is shorter than restartGraceMs (${graceMs} ms): give a senior wait at least as long as the grace` })
  }
})
export type DaemonConfigInput = z.input<typeof DaemonConfigSchema>
export type DaemonConfig = z.output<typeof DaemonConfigSchema>

/**
 * $HOME/.p2pmld rather than ./.p2pmld: the daemon is long-lived and the client commands
 * (`p2pmld status`) are typed from any directory; a cwd-relative default would make them miss
 * the daemon's socket. ./.p2pmld only when there is no home directory (some containers).
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const home = env.HOME ?? safeHomedir()
  return home !== undefined && home !== '' ? join(home, '.p2pmld') : resolve(cwd, '.p2pmld')
}

function safeHomedir(): string | undefined {
  try {
    return homedir()
  } catch {
    return undefined
  }
}

export function defaultComputeThreads(): number {
  return Math.max(1, availableParallelism())
}

export function defaultSocketPath(dataDir: string): string {
  return join(dataDir, SOCKET_FILE_NAME)
}

/**
 * The flag that names the daemon at `socketPath` as a user would type it: `--data-dir <dir>` for
 * a data dir's own socket, else `--socket <path>` (for the commands a message suggests).
 */
export function daemonFlagFor(socketPath: string): string {
  return basename(socketPath) === SOCKET_FILE_NAME ? `--data-dir ${dirname(socketPath)}` : `--socket ${socketPath}`
}

/** the broker a job with transport amqp/auto uses when the daemon names none (RabbitMQ's defaults) */
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672'
