// Placeholder so cli/main.ts builds; the lead replaces this file with the real `demo` command.
import type { Command } from 'commander'

export function registerDemoCommand(program: Command): void {
  program.command('demo').description('start several peers on loopback and train a bundled dataset').allowUnknownOption().action(() => {
    process.stderr.write('p2pmld demo: not implemented yet\n')
    process.exitCode = 1
  })
}
