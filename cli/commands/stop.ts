import type { Command } from 'commander'
import { addClientOptions, resolveSocketPath, withClient, type ClientOptions } from '../support/daemon-target.js'
import { action, printResult } from '../support/output.js'

export function registerStopCommand(program: Command): void {
  addClientOptions(program.command('stop').description('shut the daemon down (it saves state and leaves the job)'))
    .action(action(async (options: ClientOptions) => {
      const result = await withClient(options, async (client) => await client.shutdown())
      printResult(options, result, () => `daemon at ${resolveSocketPath(options)} is stopping`)
    }))
}
