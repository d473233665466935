/** How a client command finds its daemon: --socket, else --data-dir, P2PMLD_* env or --config. */
import type { Command } from 'commander'
import { loadDaemonConfig } from '../../config/load.js'
import { createControlClient, type ControlClient } from '../../daemon/control/client.js'

export interface ClientOptions {
  readonly socket?: string
  readonly dataDir?: string
  readonly config?: string
  readonly json?: boolean
  readonly timeout?: string
}

export function addClientOptions(command: Command): Command {
  return command
    .option('--socket <path>', "the daemon's control socket (default: <data-dir>/p2pmld.sock)")
    .option('--data-dir <dir>', "the daemon's data directory (default: $P2PMLD_DATA_DIR or ~/.p2pmld)")
    .option('--config <file>', 'daemon config file (YAML or JSON) naming the data dir or socket')
    .option('--timeout <ms>', 'give up when the daemon does not answer within this many ms', '30000')
    .option('--json', 'print machine-readable JSON')
}

export function resolveSocketPath(options: ClientOptions, env: NodeJS.ProcessEnv = process.env): string {
  return loadDaemonConfig({
    env,
    ...(options.config !== undefined ? { configFile: options.config } : {}),
    flags: { socketPath: options.socket, dataDir: options.dataDir }
  }).socketPath
}

/** Opens a client for the command, runs work, always closes the connection. */
export async function withClient<T>(options: ClientOptions, work: (client: ControlClient) => Promise<T>): Promise<T> {
  const timeoutMs = Number(options.timeout ?? '30000')
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout must be a positive number of milliseconds, got ${options.timeout}`)
  const client = createControlClient(resolveSocketPath(options), { timeoutMs })
  try {
    return await work(client)
  } finally {
    await client.close()
  }
}
