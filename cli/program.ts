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

export function createProgram(): Command {
  const program = new Command('p2pmld')
    .description('peer daemon for decentralized, data-parallel neural-network training')
    .version('0.1.0')
    .showSuggestionAfterError()
  // commander's own usage errors (unknown option, missing argument) also exit 1 with one line,
  // its "(Did you mean --epochs?)" line joined to it
  program.configureOutput({ outputError: (text, write) => write(text.split('\n').map((l) => l.trim()).filter((l) => l !== '').join(' ') + '\n') })
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
  return program
}
