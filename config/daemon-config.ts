/**
 * The daemon configuration: where a peer keeps its state, how it is reached and how it logs.
 * Layers (flags, P2PMLD_* env, a YAML/JSON file) are merged by config/load.ts and parsed here once.
 */
import { homedir, availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const LogLevelSchema = z.enum(LOG_LEVELS)

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4001'] as const
export const SOCKET_FILE_NAME = 'p2pmld.sock'
/** sun_path holds 108 bytes on Linux (104 on macOS), NUL included */
export const MAX_SOCKET_PATH_BYTES = 103

const MultiaddrStringSchema = z.string().min(1).refine((value) => {
  try {
    multiaddr(value)
    return true
  } catch {
    return false
  }
}, { error: (issue) => `'${String(issue.input)}' is not a valid multiaddr (example: /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...)` })

const fields = {
  /** state directory: peer key, checkpoints, socket */
  dataDir: z.string().min(1),
  listen: z.array(MultiaddrStringSchema),
  bootstrap: z.array(MultiaddrStringSchema),
  socketPath: z.string().min(1),
  /** libp2p pre-shared key file: peers without the same key cannot connect */
  pskFile: z.string().min(1),
  /** peer ids allowed to connect; absent: everyone with the PSK (or everyone) */
  allowlist: z.array(z.string().min(1)),
  logLevel: LogLevelSchema,
  /** gradient worker threads */
  computeThreads: z.number().int().min(1).max(256),
  /** the RabbitMQ broker for jobs with transport amqp or auto (amqp://user:pass@host:port/vhost) */
  amqpUrl: z.string().min(1).refine((value) => {
    try {
      return ['amqp:', 'amqps:'].includes(new URL(value).protocol)
    } catch {
      return false
    }
  }, { error: (issue) => `'${String(issue.input)}' is not an AMQP URL (example: amqp://guest:guest@127.0.0.1:5672)` })
}

/** Every field optional: one layer (a file, the environment, flags) as written by a user. */
export const DaemonConfigLayerSchema = z.object(fields).partial().strict()
export type DaemonConfigLayer = z.infer<typeof DaemonConfigLayerSchema>

/** The resolved configuration a daemon runs with (paths absolute once loaded by config/load.ts). */
export const DaemonConfigSchema = z.object({
  ...fields,
  listen: fields.listen.default(() => [...DEFAULT_LISTEN]),
  bootstrap: fields.bootstrap.default(() => []),
  pskFile: fields.pskFile.optional(),
  allowlist: fields.allowlist.optional(),
  logLevel: fields.logLevel.default('info'),
  computeThreads: fields.computeThreads.default(() => defaultComputeThreads()),
  amqpUrl: fields.amqpUrl.optional()
}).strict()
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

/** the broker a job with transport amqp/auto uses when the daemon names none (RabbitMQ's defaults) */
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672'
