/** `p2pmld train`: one process, no network: the baseline peer-to-peer training is compared with. */
import type { Command } from 'commander'
import { createLogger, type LogLevel } from '../../daemon/logger.js'
import { addJobFlags, jobConfigFromFlags, type JobFlagValues } from '../support/job-flags.js'
import { defaultLogFormat } from '../support/log-format.js'
import { action } from '../support/output.js'
import { createProgressReporter } from '../support/progress.js'
import { formatStageTable } from '../support/stage-table.js'

interface TrainFlags extends JobFlagValues {
  threads?: string
  logLevel?: string
  json?: boolean
}

export function registerTrainCommand(program: Command): void {
  const command = program
    .command('train')
    .description('train a job in this process (no peers), print per-epoch validation and the final test accuracy')
  addJobFlags(command)
    .option('--threads <n>', 'ONNX Runtime threads', '2')
    .option('--log-level <level>', 'daemon log level on stderr', 'warn')
    .option('--json', 'print the result as JSON')
    .action(action(async (flags: TrainFlags) => {
      // single process: the exchange is a no-op, so send fp32 and average (nothing to be robust to)
      const config = jobConfigFromFlags(flags, { compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 } })
      const threads = Number(flags.threads)
      if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a whole number >= 1, got '${flags.threads}'`)
      const progress = createProgressReporter(process.stderr, config.epochs)
      const controller = new AbortController()
      const onSignal = (): void => controller.abort()
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      progress.line(`training ${config.model} on ${config.dataset}: ${config.epochs} epochs, batch ${config.batchSize}, ${config.optimizer.type} lr ${config.optimizer.lr}`)
      // ONNX Runtime and the model zoo load here, not for every p2pmld command
      const { runLocalTraining } = await import('../../daemon/training/local-training.js')
      const result = await runLocalTraining(config, {
        computeThreads: threads,
        log: createLogger((flags.logLevel ?? 'warn') as LogLevel, { component: 'train' }, { format: defaultLogFormat() }),
        signal: controller.signal,
        events: {
          onStep: (r) => progress.step(r.epoch, r.stepInEpoch, r.stepsInEpoch, r.loss),
          onEpoch: (e) => {
            progress.line(`epoch ${e.epoch + 1}/${config.epochs}  train loss ${e.trainLoss.toFixed(4)}  val loss ${e.validationLoss.toFixed(4)}  val acc ${(e.validationAccuracy * 100).toFixed(2)} %  lr ${e.lr}`)
          }
        }
      })
      progress.done()
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      if (result === undefined) {
        process.stderr.write('training stopped before it finished\n')
        process.exitCode = 130
        return
      }
      if (flags.json === true) {
        process.stdout.write(JSON.stringify({ test: result.test, reason: result.reason, epochs: result.epoch, steps: result.step, wallMs: result.wallMs, history: result.history, stages: result.stages }, null, 2) + '\n')
        return
      }
      process.stdout.write([
        `test accuracy ${(result.test.accuracy * 100).toFixed(2)} %  (loss ${result.test.loss.toFixed(4)}, ${result.test.count} samples)`,
        `stopped after ${result.epoch} epochs (${result.reason}), ${result.step} steps, ${(result.wallMs / 1000).toFixed(1)} s`,
        '',
        formatStageTable(result.stages)
      ].join('\n') + '\n')
    }))
}
