/** The `p2pmld` command tree (main.ts only adds the polyfill and runs it). */
import { Command } from 'commander'
import { registerCheckpointCommand } from './commands/checkpoint.js'
import { registerDemoCommand } from './commands/demo.js'
import { registerExportCommand } from './commands/export.js'
import { registerEstimateCommand } from './commands/estimate.js'
import { registerFunctionsCommands } from './commands/functions.js'
import { registerJobCommands } from './commands/job.js'
import { registerMetricsCommand } from './commands/metrics.js'
import { registerModelsCommand } from './commands/models.js'
import { registerPeersCommand } from './commands/peers.js'
import { registerReportCommand } from './commands/report.js'
import { registerStartCommand } from './commands/start.js'
import { registerStatusCommand } from './commands/status.js'
import { registerStopCommand } from './commands/stop.js'
import { registerTrainCommand } from './commands/train.js'
import { printJsonFailure } from './support/output.js'

/**
 * Refuses a command-line path into a command group that names no subcommand of it: commander
 * prints the group's help and exits 0 for `p2pmld job start --help` (there is no `job start`),
 * which reads as success to a script. Without --help commander refuses the name itself (with its
 * "Did you mean" suggestion), so this acts only on -h / --help. `args` are the user's arguments
 * (argv after the script). Group commands take no options with values, so every word not starting
 * with '-' is a command name until a leaf command is reached. Throws through the group's
 * `error()` (exit 1, one line).
 */
export function checkSubcommands(program: Command, args: readonly string[]): void {
  if (!args.includes('--help') && !args.includes('-h')) return
  let command = program
  for (const word of args) {
    if (word === '--') return
    if (word.startsWith('-')) continue
    if (command.commands.length === 0 || word === 'help') return
    const next = command.commands.find((c) => c.name() === word || c.aliases().includes(word))
    if (next === undefined) {
      const names = command.commands.map((c) => c.name())
      command.error(`error: unknown command '${word}' for '${commandPath(command)}': its commands are ${names.join(', ')}`, { code: 'commander.unknownCommand', exitCode: 1 })
    }
    command = next as Command
  }
}

function commandPath(command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

/**
 * The CLI. `options.json`: the command line asks for --json, so commander's own usage errors
 * (unknown option, missing argument) also print `{"error": {"message"}}` on stdout, as a failed
 * command's do (output.ts printJsonFailure).
 */
export function createProgram(options: { readonly json?: boolean } = {}): Command {
  const program = new Command('p2pmld')
    .description('peer daemon for decentralized, data-parallel neural-network training')
    .version('0.1.0')
    .showSuggestionAfterError()
  // commander's own usage errors (unknown option, missing argument) also exit 1 with one line,
  // its "(Did you mean --epochs?)" line joined to it
  program.configureOutput({
    outputError: (text, write) => {
      const line = text.split('\n').map((l) => l.trim()).filter((l) => l !== '').join(' ')
      if (options.json === true) printJsonFailure(line)
      write(line + '\n')
    }
  })
  registerStartCommand(program)
  registerTrainCommand(program)
  registerDemoCommand(program)
  registerStatusCommand(program)
  registerPeersCommand(program)
  registerJobCommands(program)
  registerMetricsCommand(program)
  registerModelsCommand(program)
  registerCheckpointCommand(program)
  registerExportCommand(program)
  registerStopCommand(program)
  registerReportCommand(program)
  registerEstimateCommand(program)
  registerFunctionsCommands(program)
  showDefaultsAsTyped(program)
  return program
}

/**
 * Help shows a flag's default as one types it (`(default: 30000)`), not as commander's JSON of
 * the string the flag parses from (`(default: "30000")`), on `command` and every subcommand.
 */
function showDefaultsAsTyped(command: Command): void {
  for (const option of command.options) {
    if (typeof option.defaultValue === 'string' && option.defaultValueDescription === undefined) option.defaultValueDescription = option.defaultValue
  }
  for (const sub of command.commands) showDefaultsAsTyped(sub)
}
