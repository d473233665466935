import { resolve } from 'node:path'
import type { Command } from 'commander'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { formatBytes } from '../support/format.js'
import { action, printResult } from '../support/output.js'

export function registerCheckpointCommand(program: Command): void {
  addClientOptions(program.command('checkpoint').description('save a checkpoint of the running job now'))
    .option('--path <file>', "where the daemon writes it (default: the daemon's checkpoint directory)")
    .action(action(async (options: ClientOptions & { readonly path?: string }) => {
      // the daemon may run in another directory: send an absolute path
      const params = options.path === undefined ? {} : { path: resolve(options.path) }
      const result = await withClient(options, async (client) => await client.saveCheckpoint(params))
      printResult(options, result, (r) => `checkpoint of step ${r.step} written to ${r.path} (${formatBytes(r.bytes)})`)
    }))
}
