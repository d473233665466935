/**
 * `p2pmld estimate`: the paper's cost model (equations 1 and 2) for a job: time and cost per
 * epoch and per job with every gradient computed on the instance, against a small instance
 * that offloads each batch to Lambda. Step times come from a run report (--from-report), from
 * a short calibration run of the model on this machine, or from --instance-time/--offload-time.
 */
import { readFile } from 'node:fs/promises'
import { InvalidArgumentError, Option, type Command } from 'commander'
import { loadPriceTable } from '../../config/prices.js'
import { loadJobDatasets } from '../../ml/data/job-datasets.js'
import { checkEstimateRequest, estimateCosts, type Estimate, type MeasuredCompute } from '../../daemon/report/estimate.js'
import { parseRunReport, type RunReport } from '../../daemon/report/report-schema.js'
import { formatSeconds, formatTable } from '../support/format.js'
import { computeThreads } from '../support/compute-threads.js'
import { action } from '../support/output.js'

interface EstimateFlags {
  model?: string
  batchSize?: number
  peers?: number
  epochs?: number
  trainSamples?: number
  dataset?: string
  instance: string
  offloadInstance: string
  lambdaMemory?: number
  fromReport?: string
  prices?: string
  instanceTime?: number
  offloadTime?: number
  calibrationRuns: number
  computeThreads?: string
  /** --compute-threads' name before it was p2pmld start's (still taken) */
  threads?: string
  json?: boolean
}

const positive = (flag: string, integer = false) => (value: string): number => {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new InvalidArgumentError(`${flag} must be a ${integer ? 'whole ' : ''}number greater than 0, got '${value}'`)
  }
  return n
}

/** timed calibration runs stop once they took this long (a vgg11 batch of 1024 takes ~45 s on 2 cores) */
const CALIBRATION_BUDGET_MS = 20_000

export function registerEstimateCommand(program: Command): void {
  program
    .command('estimate')
    .description("the paper's cost model: instance-based vs serverless-offload time and cost per epoch and per job")
    .option('--model <name|file.onnx>', 'model to calibrate (default: the report\'s, else lenet5)')
    .option('--batch-size <n>', 'batch size per peer (default: the report\'s, else 64)', positive('--batch-size', true))
    .option('--peers <n>', 'peers in the job (default: the report\'s largest membership, else 4)', positive('--peers', true))
    .option('--epochs <n>', 'epochs (default: the report\'s job, else 10)', positive('--epochs', true))
    .option('--train-samples <n>', 'training samples of the whole job (default: the report\'s, else the dataset\'s)', positive('--train-samples', true))
    .option('--dataset <name|dir>', 'dataset whose training split sets the samples per epoch', 'mnist')
    .option('--instance <type>', 'EC2 type of an instance-based peer', 't2.large')
    .option('--offload-instance <type>', 'EC2 type of a peer that offloads to Lambda', 't2.small')
    .option('--lambda-memory <MB>', 'Lambda memory size (default: the measured memory, rounded up to 64 MB)', positive('--lambda-memory', true))
    .option('--from-report <file>', 'take the step times from a run report (p2pmld report / the report a job wrote)')
    .option('--prices <file>', 'price table overrides (YAML/JSON: ec2PerHour, lambda, stepFunctions, s3)')
    .option('--instance-time <s>', 'seconds to compute one epoch\'s gradients on the instance (instead of measuring)', positive('--instance-time'))
    .option('--offload-time <s>', 'seconds to compute one epoch\'s gradients with offload (instead of deriving it)', positive('--offload-time'))
    .option('--calibration-runs <n>', 'timed gradient runs when calibrating on this machine', positive('--calibration-runs', true), 3)
    .option('--compute-threads <n>', 'ONNX Runtime threads for the calibration (default: 2)')
    .addOption(new Option('--threads <n>', 'the old name of --compute-threads').hideHelp())
    .option('--json', 'print the estimate as JSON')
    .action(action(async (flags: EstimateFlags) => {
      const threads = computeThreads(flags.computeThreads, flags.threads)
      const prices = loadPriceTable(flags.prices)
      checkEstimateRequest({ instanceType: flags.instance, offloadInstanceType: flags.offloadInstance, lambdaMemoryMb: flags.lambdaMemory, prices })
      const report = flags.fromReport === undefined ? undefined : await readReport(flags.fromReport)
      const config = report?.job.config as { model?: string, batchSize?: number, epochs?: number, dataset?: string } | undefined
      const model = flags.model ?? config?.model ?? 'lenet5'
      const batchSize = flags.batchSize ?? config?.batchSize ?? 64
      const peers = flags.peers ?? largestMembership(report) ?? 4
      const epochs = flags.epochs ?? config?.epochs ?? 10
      let measured: MeasuredCompute | undefined
      if (report !== undefined) {
        measured = measuredFromReport(report, flags.fromReport as string)
      } else if (flags.instanceTime === undefined || flags.offloadTime === undefined) {
        process.stderr.write(`calibrating: ${model}, batch ${batchSize}: one warm-up gradient run, then up to ${flags.calibrationRuns} timed ones (fewer once they took ${CALIBRATION_BUDGET_MS / 1000} s) on this machine (--from-report FILE uses a run's times instead)\n`)
        // ONNX Runtime and the model zoo load here, not for every p2pmld command
        const { calibrateCompute } = await import('../../daemon/report/calibrate.js')
        const calibration = await calibrateCompute({
          model,
          batchSize,
          runs: flags.calibrationRuns,
          budgetMs: CALIBRATION_BUDGET_MS,
          computeThreads: threads,
          onRun: (run, of, ms) => process.stderr.write(`  run ${run}/${of}: ${ms.toFixed(1)} ms\n`)
        })
        measured = { source: `calibration on this machine, ${threads} thread${threads === 1 ? '' : 's'}`, batchSize, medianMs: calibration.compute.medianMs, cpuPercent: calibration.compute.cpuPercent, rssMiB: calibration.peakRssMiB }
      }
      const trainSamples = flags.trainSamples ?? report?.job.trainSamples ?? (await loadJobDatasets(flags.dataset ?? config?.dataset ?? 'mnist', { seed: 1 })).train.size
      const estimate = estimateCosts({
        model,
        batchSize,
        peers,
        epochs,
        trainSamples,
        instanceType: flags.instance,
        offloadInstanceType: flags.offloadInstance,
        lambdaMemoryMb: flags.lambdaMemory,
        prices,
        measured,
        instanceSecondsPerEpoch: flags.instanceTime,
        offloadSecondsPerEpoch: flags.offloadTime
      })
      process.stdout.write((flags.json === true ? JSON.stringify({ ...estimate, currency: prices.currency, region: prices.region }, null, 2) : formatEstimate(estimate, prices.currency)) + '\n')
    }))
}

async function readReport(path: string): Promise<RunReport> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new Error(`cannot read the run report ${path}: ${(error as Error).message}`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new Error(`run report ${path} is not JSON: pass the .json file a job wrote (not the .html)`)
  }
  return parseRunReport(raw, `run report ${path}`)
}

function measuredFromReport(report: RunReport, path: string): MeasuredCompute {
  const compute = report.stages.find((s) => s.stage === 'compute')
  if (compute === undefined || compute.count === 0) throw new Error(`run report ${path} has no 'compute' stage times: it ended before its first step`)
  // an offloaded run's 'compute' is the round trip to its workers (a user's estimate read 158 ms a
  // batch for a 5.5 ms gradient), not a gradient's time on an instance
  if (report.stages.some((s) => s.stage.startsWith('offload.'))) {
    throw new Error(`run report ${path} is of a run that offloaded its gradients: its 'compute' stage (${compute.medianMs.toFixed(1)} ms a batch) is the round trip to the workers, not a gradient's time on an instance; give the report of a run that computed in process, or leave out --from-report to measure one on this machine`)
  }
  const batchSize = (report.job.config as { batchSize?: number }).batchSize
  if (typeof batchSize !== 'number') throw new Error(`run report ${path} has no job.config.batchSize`)
  // the job's process: the daemon with its peer networking, more than a gradient function holds
  return { source: `report ${path}`, batchSize, medianMs: compute.medianMs, cpuPercent: compute.cpuPercent, rssMiB: compute.rssMiB, rssOf: "the job's whole process, peer networking included: a gradient function needs less" }
}

function largestMembership(report: RunReport | undefined): number | undefined {
  if (report === undefined || report.membership.timeline.length === 0) return undefined
  return Math.max(...report.membership.timeline.map((p) => p.members))
}

/** Costs to 5 decimals like the paper's tables; smaller amounts keep 3 significant digits. */
export function formatUsd(value: number, currency = 'USD'): string {
  const sign = currency === 'USD' ? '$' : `${currency} `
  // three significant digits below $0.001, always in fixed notation: toPrecision(3) switched to
  // exponents under 1e-6, so one table read '$0.00000319' beside '$3.42e-7'
  return value !== 0 && Math.abs(value) < 0.001 ? `${sign}${value.toFixed(Math.min(100, 2 - Math.floor(Math.log10(Math.abs(value)))))}` : `${sign}${value.toFixed(5)}`
}

export function formatEstimate(estimate: Estimate, currency = 'USD'): string {
  const { request: r, inputs, comparison: c } = estimate
  const s = c.serverless
  const i = c.instanceBased
  const usd = (v: number): string => formatUsd(v, currency)
  // a tiny job's epoch takes milliseconds: '0.0 s' said nothing
  const secs = formatSeconds
  const table = formatTable(
    ['', `instance-based (${inputs.instanceBased.instanceType})`, `serverless offload (${inputs.serverless.instanceType} + Lambda ${inputs.serverless.lambdaMemoryMb} MB x ${inputs.batchesPerEpoch})`],
    [
      ['time per epoch', secs(i.secondsPerEpoch), secs(s.secondsPerEpoch)],
      ['cost per peer per epoch', usd(i.costPerPeerPerEpoch), `${usd(s.costPerPeerPerEpoch)} (Lambda ${usd(s.lambdaCostPerPeerPerEpoch)}, instance ${usd(s.instanceCostPerPeerPerEpoch)}, Lambda + Step Functions + S3 requests ${usd(s.requestFeesPerPeerPerEpoch)})`],
      [`time per job (${r.epochs} epoch${r.epochs === 1 ? '' : 's'})`, secs(i.secondsPerJob), secs(s.secondsPerJob)],
      [`cost per job (${r.peers} peer${r.peers === 1 ? '' : 's'})`, usd(i.costPerJob), usd(s.costPerJob)]
    ])
  const verdict = c.cheaper === 'instance-based'
    ? `cheaper: instance-based (serverless offload costs ${c.costRatio.toFixed(2)}x as much${c.speedup > 1 ? ` and computes gradients ${c.speedup.toFixed(2)}x faster` : ''})`
    : `cheaper: serverless offload (${(1 / c.costRatio).toFixed(2)}x less than instance-based${c.speedup > 1 ? `, and ${c.speedup.toFixed(2)}x faster` : ''})`
  return [
    `estimate: ${r.model}, batch ${r.batchSize} per peer, ${r.peers} peer${r.peers === 1 ? '' : 's'}, ${r.epochs} epoch${r.epochs === 1 ? '' : 's'}, ${r.trainSamples} training samples: ${inputs.batchesPerEpoch} batches per peer per epoch`,
    ...estimate.notes.map((n) => `  ${n}`),
    '',
    table,
    '',
    verdict
  ].join('\n')
}
