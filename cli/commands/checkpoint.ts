import { join, resolve } from 'node:path'
import { CHECKPOINT_FILE } from '../../daemon/checkpoint/checkpoint.js'
import type { Command } from 'commander'
import { addClientOptions, withClient, WRITING_TIMEOUT_MS, type ClientOptions } from '../support/daemon-target.js'
import { formatBytes } from '../support/format.js'
import { action, printResult } from '../support/output.js'

export function registerCheckpointCommand(program: Command): void {
  addClientOptions(program.command('checkpoint').description('save a checkpoint of the running job now'), WRITING_TIMEOUT_MS)
    .option('--path <file>', "where the daemon writes it: a file, or a directory (an existing one, or one ending in /) to write state.p2ckpt into (default: the daemon's checkpoint directory)")
    .action(action(async (options: ClientOptions & { readonly path?: string }) => {
      // the daemon may run in another directory: send an absolute path. One that ends in '/' names
      // a directory (resolve() drops the slash, and a file of that name was written): its checkpoint file inside
      const params = options.path === undefined ? {} : { path: /[\\/]$/.test(options.path) ? join(resolve(options.path), CHECKPOINT_FILE) : resolve(options.path) }
      const result = await withClient(options, async (client) => await client.saveCheckpoint(params))
      printResult(options, result, (r) => `checkpoint of step ${r.step} written to ${r.path} (${formatBytes(r.bytes)})`)
    }))
}
