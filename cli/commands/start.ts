// Placeholder so cli/main.ts builds; the lead replaces this file with the real `start` command.
import type { Command } from 'commander'

export function registerStartCommand(program: Command): void {
  program.command('start').description('run a peer daemon in the foreground').allowUnknownOption().action(() => {
    process.stderr.write('p2pmld start: not implemented yet\n')
    process.exitCode = 1
  })
}
