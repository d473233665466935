/** `p2pmld train`: one process, no network: the baseline peer-to-peer training is compared with. */
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Option, type Command } from 'commander'
import { minimumPeersFor, parseJobConfig, quorumFix, type JobConfig } from '../../config/job-config.js'
import { readConfigFile } from '../../config/load.js'
import { createLogger, type LogLevel } from '../../daemon/logger.js'
import type { StopReason } from '../../daemon/training/training-state.js'
import { reportFromLocalTraining } from '../../daemon/report/local-report.js'
import { createReportRecorder } from '../../daemon/report/report-recorder.js'
import { checkModelPath } from '../../daemon/checkpoint/model-path.js'
import { checkReportDir, writeRunReport } from '../../daemon/report/write-report.js'
import { describeWrittenReport, reportDirOption, type ReportDirFlags } from './report.js'
import { addJobFlags, jobConfigFromFlags, refusePeerJobFlags, type JobFlagValues } from '../support/job-flags.js'
import { defaultLogFormat } from '../support/log-format.js'
import { computeThreads } from '../support/compute-threads.js'
import { describeExportedInputs } from '../support/exported-inputs.js'
import { action } from '../support/output.js'
import { createProgressReporter } from '../support/progress.js'
import { formatStageTable } from '../support/stage-table.js'
import { formatEpochMetrics, formatLoss } from '../support/format.js'

interface TrainFlags extends JobFlagValues, ReportDirFlags {
  computeThreads?: string
  /** --compute-threads' name before it was p2pmld start's (still taken) */
  threads?: string
  logLevel?: string
  json?: boolean
  out?: string
}

export function registerTrainCommand(program: Command): void {
  const command = program
    .command('train')
    .description('train a job in this process (no peers), print per-epoch validation and the final test accuracy')
  addJobFlags(command, { peers: false })
    .option('--compute-threads <n>', 'ONNX Runtime threads for gradient computation (default: 2)')
    .addOption(new Option('--threads <n>', 'the old name of --compute-threads').hideHelp())
    .option('--log-level <level>', 'log level on stderr', 'warn')
    .option('--json', 'print the result as JSON')
    .option('--out <file>', 'write the trained model as a forward ONNX file (parameters as initializers)')
    .option('--report-dir <dir>', 'where the run report (JSON + HTML) goes (default: ~/.p2pmld/reports)')
    .option('--no-report', 'write no run report')
    .action(action(async (flags: TrainFlags) => {
      refusePeerJobFlags(flags, 'train')
      // asked for: the exchange pipeline runs on this process's own gradient (else it goes to
      // the optimizer as computed, as one member's gradient needs no codec or aggregate)
      const exchangeAlone = flags.compression !== undefined || flags.aggregation !== undefined
      // f > 0 needs more gradients than the one a step here (every rule refused it, mean ignored it)
      if (flags.f !== undefined && flags.f > 0) throw new Error(`--f ${flags.f}: p2pmld train aggregates one gradient a step, of which no rule can leave out a faulty one: drop --f (f > 0 needs peers: run the job with p2pmld start)`)
      const config = localJobConfig(flags, exchangeAlone)
      if (exchangeAlone) {
        const fix = quorumFix(config.aggregation.rule, config.aggregation.f, 1, '--f', '--aggregation')
        if (fix !== undefined) throw new Error(`--aggregation ${config.aggregation.rule} with f=${config.aggregation.f} needs ${minimumPeersFor(config.aggregation.rule, config.aggregation.f)} gradients a step and train has one: ${fix}`)
      }
      // ONNX Runtime and the model zoo load here, not for every p2pmld command
      const [{ runLocalTraining }, { checkModelSpec, checkDatasetSpec }] = await Promise.all([import('../../daemon/training/local-training.js'), import('../../daemon/training/job-runtime.js')])
      // an unknown model or dataset, or a missing file, fails before the run's first line ('training ...')
      await checkModelSpec(config.model)
      checkDatasetSpec(config.dataset)
      // a report directory that is a file fails now, not after the training (EEXIST, the result unprinted)
      const reportDir = reportDirOption(flags)
      if (reportDir !== undefined) await checkReportDir(reportDir, '--report-dir')
      // so does an --out that cannot be written (it failed after the training: the model, the
      // result and the report lost)
      const out = flags.out === undefined ? undefined : resolve(flags.out)
      if (out !== undefined) await checkModelPath(out, '--out')
      const modelExport = out === undefined ? undefined : await import('../../daemon/checkpoint/index.js')
      const threads = computeThreads(flags.computeThreads, flags.threads)
      const progress = createProgressReporter(process.stderr, config.epochs)
      const controller = new AbortController()
      const onSignal = (): void => controller.abort()
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      const recorder = createReportRecorder()
      progress.line(`training ${config.model} on ${config.dataset}: ${config.epochs} epoch${config.epochs === 1 ? '' : 's'}, batch ${config.batchSize}, ${config.optimizer.type} lr ${config.optimizer.lr}`)
      if (config.mode === 'async') progress.line(`note: ${flags.config ?? 'the job config'} sets mode: async; p2pmld train runs one process, in sync mode`)
      const ignored = exchangeAlone || flags.config === undefined ? [] : exchangeSettingsIn(flags.config)
      if (ignored.length > 0) progress.line(`note: ${flags.config} sets ${ignored.join(' and ')} for peers; p2pmld train applies its one gradient as computed (give --compression or --aggregation to run them on it)`)
      if (exchangeAlone) progress.line(`note: running the peer pipeline on this process's own gradient as asked: ${config.compression.codec} compression, then ${config.aggregation.rule} over one gradient`)
      // the progress bar is cleared on failure too: the error line must not land on it
      const result = await runLocalTraining(config, {
        computeThreads: threads,
        exchangeAlone,
        log: createLogger((flags.logLevel ?? 'warn') as LogLevel, { component: 'train' }, { format: defaultLogFormat() }),
        signal: controller.signal,
        // Ctrl-C: the model trained so far is written where --out says (it was lost)
        onStopped: async ({ step, epoch, model, params }) => {
          progress.done()
          if (out === undefined || modelExport === undefined) return
          const written = await writeTrainedModel(modelExport, out, model, params, config.dataset)
          process.stderr.write(`stopped at step ${step} (epoch ${epoch + 1} of ${config.epochs}): the model at that step written to ${written.path} (ONNX, ${written.bytes} bytes)\n`)
        },
        events: {
          onStep: (r) => {
            recorder.events.onStep(r)
            // with the samples: samples/s, the epoch's length and the ETA, as start shows
            progress.step(r.epoch, r.stepInEpoch, r.stepsInEpoch, r.loss, r.samples)
          },
          onEpoch: (e) => {
            recorder.events.onEpoch(e)
            progress.line(`epoch ${e.epoch + 1}/${config.epochs}  ${formatEpochMetrics(e)}`)
          }
        }
      }).finally(() => progress.done())
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      if (result === undefined) {
        process.stderr.write('training stopped before it finished\n')
        process.exitCode = 130
        return
      }
      const exported = out === undefined || modelExport === undefined ? undefined : await writeTrainedModel(modelExport, out, result.model, result.params, config.dataset)
      const report = reportDir === undefined ? undefined : await writeRunReport(reportDir, reportFromLocalTraining(config, result, recorder))
      if (flags.json === true) {
        const out = exported === undefined ? {} : { out: exported.path, ...(exported.normalization !== undefined ? { normalization: exported.normalization } : { normalizationUnknown: exported.normalizationUnknown }) }
        process.stdout.write(JSON.stringify({ test: result.test, reason: result.reason, epochs: result.epoch, steps: result.step, wallMs: result.wallMs, history: result.history, stages: result.stages, report, ...out }, null, 2) + '\n')
        return
      }
      process.stdout.write([
        `test accuracy ${(result.test.accuracy * 100).toFixed(2)} %  (loss ${formatLoss(result.test.loss)}, ${result.test.count} samples)`,
        `${describeEnd(result.reason, result.epoch)}, ${result.step} steps, ${(result.wallMs / 1000).toFixed(1)} s`,
        ...(exported !== undefined ? [`model written to ${exported.path} (ONNX, ${exported.bytes} bytes)`, describeExportedInputs(exported)] : []),
        '',
        formatStageTable(result.stages),
        ...(report === undefined ? [] : ['', describeWrittenReport(report)])
      ].join('\n') + '\n')
    }))
}

type ModelExporter = typeof import('../../daemon/checkpoint/index.js')

/**
 * The trained model written where --out says (checked before the training); if that write
 * fails all the same (the directory removed or the disk filled during the training), written to
 * the temp directory instead, the failure and the new path on stderr and exit code 1: the
 * model of a finished training is not lost. Throws only when that second write fails too.
 */
async function writeTrainedModel(exporter: ModelExporter, out: string, model: Parameters<ModelExporter['writeModelExport']>[1], params: Float32Array, dataset: string): Promise<Awaited<ReturnType<ModelExporter['writeModelExport']>>> {
  try {
    return await exporter.writeModelExport(out, model, params, dataset)
  } catch (error) {
    if (!(error instanceof exporter.ModelExportError)) throw error
    const written = await exporter.writeModelExport(join(tmpdir(), `p2pmld-model-${process.pid}-${Date.now()}.onnx`), model, params, dataset)
    process.stderr.write(`could not write --out ${out}: ${error.message}
the trained model was written to ${written.path} instead
`)
    process.exitCode = 1
    return written
  }
}

/**
 * The job train runs. Without --compression/--aggregation the one gradient goes to the optimizer
 * as computed, so the config says so (fp32, mean, f=0) whatever a job file for peers sets: its
 * trimmed-mean f=1 (the default) would refuse a run it plays no part in, and the run report would
 * name a codec and rule that never ran.
 */
function localJobConfig(flags: TrainFlags, exchangeAlone: boolean): JobConfig {
  const single = { compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 } } as const
  const config = jobConfigFromFlags(flags, single, { oneProcess: true })
  if (exchangeAlone || flags.config === undefined) return config
  return parseJobConfig({ ...config, ...single }, `job config (${flags.config} + flags)`)
}

/** Which of the exchange's settings (compression, aggregation) a job file sets itself. */
function exchangeSettingsIn(path: string): string[] {
  const raw = readConfigFile(path, 'job file')
  return typeof raw === 'object' && raw !== null ? ['compression', 'aggregation'].filter((key) => key in raw) : []
}

/** How the run ended, for people ('stopped after 2 epochs (epochs)' said the reason's code twice). */
function describeEnd(reason: StopReason, epochs: number): string {
  const counted = `${epochs} epoch${epochs === 1 ? '' : 's'}`
  return reason === 'epochs' ? `ran ${epochs === 1 ? 'its' : 'all'} ${counted}` : reason === 'early-stopping' ? `stopped early after ${counted} (the validation loss stopped improving)` : `stopped after ${counted}`
}
