/** How a client command finds its daemon: --socket, else --data-dir, P2PMLD_* env or --config. */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { loadDaemonConfig } from '../../config/load.js'
import { CHECKPOINT_DIR, CHECKPOINT_FILE } from '../../daemon/checkpoint/checkpoint.js'
import { ControlRpcError, createControlClient, DaemonNotRunningError, type ControlClient } from '../../daemon/control/client.js'
import { RPC_ERROR } from '../../daemon/control/methods.js'

export interface ClientOptions {
  readonly socket?: string
  readonly dataDir?: string
  readonly config?: string
  readonly json?: boolean
  readonly timeout?: string
}

/** How long a client command waits for the daemon's answer, by default (ms; --timeout). */
export const DEFAULT_TIMEOUT_MS = 30_000
/** ... for a command whose answer comes once the daemon has written a file as large as the model (export, checkpoint: vgg11's 491 MiB took ~50 s) */
export const WRITING_TIMEOUT_MS = 600_000

export function addClientOptions(command: Command, defaultTimeoutMs = DEFAULT_TIMEOUT_MS): Command {
  return command
    .option('--socket <path>', "the daemon's control socket (default: <data-dir>/p2pmld.sock)")
    .option('--data-dir <dir>', "the daemon's data directory (default: $P2PMLD_DATA_DIR or ~/.p2pmld)")
    .option('--config <file>', 'daemon config file (YAML or JSON) naming the data dir or socket')
    .option('--timeout <ms>', 'give up when the daemon does not answer within this many ms', String(defaultTimeoutMs))
    .option('--json', 'print machine-readable JSON')
}

export function resolveSocketPath(options: ClientOptions, env: NodeJS.ProcessEnv = process.env): string {
  return daemonConfigOf(options, env).socketPath
}

function daemonConfigOf(options: ClientOptions, env: NodeJS.ProcessEnv = process.env): { readonly socketPath: string, readonly dataDir: string } {
  return loadDaemonConfig({
    env,
    ...(options.config !== undefined ? { configFile: options.config } : {}),
    flags: { socketPath: options.socket, dataDir: options.dataDir }
  })
}

/**
 * Opens a client for the command, runs work, always closes the connection. `offline`: the
 * command's way to do without a daemon (e.g. `p2pmld report --checkpoint <data dir>`), given the
 * daemon's data dir, added to the error when that data dir holds a checkpoint and no daemon runs
 * there, or the daemon there runs no job (idle after its job, or restarted over a finished one).
 * @throws DaemonNotRunningError or ControlRpcError, with `offline`'s hint when given
 */
export async function withClient<T>(options: ClientOptions, work: (client: ControlClient) => Promise<T>, offline?: (dataDir: string) => string): Promise<T> {
  const timeoutMs = Number(options.timeout ?? String(DEFAULT_TIMEOUT_MS))
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout must be a positive number of milliseconds, got ${options.timeout}`)
  const { socketPath, dataDir } = daemonConfigOf(options)
  const client = createControlClient(socketPath, { timeoutMs })
  try {
    return await work(client)
  } catch (error) {
    // only where there is a checkpoint to do without it from (an empty data dir's hint named a missing file)
    const checkpointed = offline !== undefined && existsSync(join(dataDir, CHECKPOINT_DIR, CHECKPOINT_FILE))
    if (checkpointed && error instanceof DaemonNotRunningError) throw new DaemonNotRunningError(`${error.message}, or ${offline(dataDir)}`)
    // a daemon idle after its job finished (or restarted over a finished one): its checkpoint holds that job
    if (checkpointed && error instanceof ControlRpcError && error.code === RPC_ERROR.NO_JOB) throw new ControlRpcError(error.code, `${error.message}, or ${offline(dataDir)}`, error.data)
    throw error
  } finally {
    await client.close()
  }
}
