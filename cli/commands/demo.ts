/** `p2pmld demo`: several real peers on 127.0.0.1 train the bundled MNIST end to end. */
import type { Command } from 'commander'
import { AttackConfigSchema, minimumPeersFor } from '../../config/job-config.js'
import { createLogger, type LogLevel } from '../../daemon/logger.js'
import { formatEpochMetrics, formatTable } from '../support/format.js'
import { addJobFlags, jobConfigFromFlags, type JobFlagValues } from '../support/job-flags.js'
import { action } from '../support/output.js'
import { createProgressReporter } from '../support/progress.js'
import { formatStageTable } from '../support/stage-table.js'
import { checkReportDir } from '../../daemon/report/write-report.js'
import { describeWrittenReport, reportDirOption, type ReportDirFlags } from './report.js'

interface DemoFlags extends JobFlagValues, ReportDirFlags {
  peers: string
  baseline?: boolean
  logLevel?: string
  json?: boolean
  attack?: string
  attackPeer?: string
  attackMagnitude?: string
  amqpUrl?: string
}

/**
 * The demo's line on refused inbound messages: real refusals (bad, forged, duplicate) apart from
 * what the protocol drops by design (in async mode a gradient past the staleness bound; a job
 * request to a peer still joining), which the peers count separately (droppedCounts).
 */
export function describeRejections(rejected: Readonly<Record<string, number>>, dropped: Readonly<Record<string, number>> = {}): string {
  const listed = (byReason: Readonly<Record<string, number>>): string => Object.entries(byReason).map(([reason, n]) => `${reason} ${n}`).join(', ')
  const refused = Object.values(rejected).reduce((a, b) => a + b, 0)
  const { stale = 0, ...otherDrops } = dropped
  return [
    `rejected messages: ${refused}${refused > 0 ? ` (${listed(rejected)})` : ''}`,
    ...(stale > 0 ? [`stale gradients dropped (older than maxStaleness, by design): ${stale}`] : []),
    ...(Object.keys(otherDrops).length > 0 ? [`refused as the protocol expects: ${listed(otherDrops)}`] : [])
  ].join('; ')
}

/**
 * Throws naming the flag when an attack flag would be ignored: a peer name the demo does not run
 * (it ran a clean demo without a word), or --attack-peer / --attack-magnitude without --attack.
 * `given(option)`: whether the user gave that option (not its default).
 */
function checkAttackFlags(flags: DemoFlags, peers: number, given: (option: string) => boolean): void {
  const unused = (['attackPeer', 'attackMagnitude'] as const).filter((option) => given(option)).map((option) => option === 'attackPeer' ? '--attack-peer' : '--attack-magnitude')
  if (flags.attack === undefined) {
    if (unused.length > 0) throw new Error(`${unused.join(' and ')} ${unused.length === 1 ? 'has' : 'have'} no effect without --attack: add --attack <kind> (${AttackConfigSchema.shape.kind.options.join(', ')}) or drop ${unused.length === 1 ? 'it' : 'them'}`)
    return
  }
  // Number('abc') is NaN, which the job schema reported as 'must be a number, got null'
  const magnitude = Number(flags.attackMagnitude)
  if (Number.isNaN(magnitude) || String(flags.attackMagnitude).trim() === '') throw new Error(`--attack-magnitude must be a number, got '${flags.attackMagnitude}'`)
  if (!Number.isFinite(magnitude)) throw new Error(`--attack-magnitude must be a finite number, got '${flags.attackMagnitude}' (beyond the largest double, ~1.8e308)`)
  const names = Array.from({ length: peers }, (_, i) => `peer-${i}`)
  const peer = flags.attackPeer ?? 'peer-1'
  if (!names.includes(peer)) throw new Error(`--attack-peer ${peer} is not one of this demo's peers (${names.join(', ')}${given('attackPeer') ? '' : '; peer-1 is the default'}): name one of them${peers === 1 ? ', or run more peers with --peers' : ''}`)
}

export function registerDemoCommand(program: Command): void {
  const command = program
    .command('demo')
    .description('start several peers on 127.0.0.1 and train the bundled MNIST end to end')
    .option('--peers <n>', 'number of peers', '4')
    .option('--no-baseline', 'skip training the same job in one process afterwards (the wall-time comparison)')
    .option('--attack <kind>', `test-only: make one peer Byzantine (${AttackConfigSchema.shape.kind.options.join(', ')})`)
    .option('--attack-peer <name>', 'which peer misbehaves', 'peer-1')
    .option('--attack-magnitude <x>', 'attack strength', '10')
    .option('--log-level <level>', 'log level on stderr', 'warn')
    .option('--json', 'print the result as JSON')
    .option('--report-dir <dir>', "where peer-0's run report (JSON + HTML) goes (default: ~/.p2pmld/reports)")
    .option('--no-report', 'write no run report')
    .option('--amqp-url <url>', 'the RabbitMQ broker for --transport amqp or auto (env P2PMLD_AMQP_URL; default amqp://guest:guest@127.0.0.1:5672)')
  addJobFlags(command)
  command.action(action(async (flags: DemoFlags) => {
    const peers = Number(flags.peers)
    if (!Number.isInteger(peers) || peers < 1 || peers > 16) throw new Error(`--peers must be a whole number from 1 to 16, got '${flags.peers}'`)
    checkAttackFlags(flags, peers, (option) => command.getOptionValueSource(option) === 'cli')
    const base = jobConfigFromFlags(flags, { model: 'lenet5', epochs: 10, batchSize: 32, optimizer: { type: 'sgd', lr: 0.03, momentum: 0.9 } })
    const job = flags.attack === undefined
      ? base
      : jobConfigFromFlags({}, { ...base, attack: { peers: [flags.attackPeer ?? 'peer-1'], kind: flags.attack as never, magnitude: Number(flags.attackMagnitude) } })
    const needed = minimumPeersFor(job.aggregation.rule, job.aggregation.f)
    if (peers < needed) throw new Error(`--peers ${peers} is too few for ${job.aggregation.rule} with f=${job.aggregation.f} (it needs ${needed}): use --peers ${needed} or more, or --f ${Math.max(0, job.aggregation.f - 1)}`)
    const log = createLogger((flags.logLevel ?? 'warn') as LogLevel, { component: 'demo' })
    const progress = createProgressReporter(process.stderr, job.epochs)
    const controller = new AbortController()
    process.once('SIGINT', () => controller.abort())
    process.once('SIGTERM', () => controller.abort())
    const amqpUrl = flags.amqpUrl ?? process.env.P2PMLD_AMQP_URL
    progress.line(`demo: ${peers} peers on 127.0.0.1${job.transport === 'libp2p' ? '' : ` over ${job.transport === 'amqp' ? 'the broker' : 'libp2p with the broker as fallback'}`}${job.mode === 'async' ? ' (async)' : ''} training ${job.model} on ${job.dataset} (batch ${job.batchSize} per peer, ${job.compression.codec}${job.compression.codec === 'qsgd' ? ` ${job.compression.bits}-bit` : ''}, ${job.aggregation.rule} f=${job.aggregation.f}); the progress and epoch lines are peer-0's`)
    // libp2p and ONNX Runtime load here, not for every p2pmld command
    const [{ runDemo }, { runLocalTraining }] = await Promise.all([import('../../daemon/demo/run-demo.js'), import('../../daemon/training/local-training.js')])
    const interrupted = (): void => {
      progress.done()
      progress.line('demo interrupted: every peer stopped')
      process.exitCode = 130
    }
    const reportDir = reportDirOption(flags)
    // a report directory that is a file fails now, not after the demo's training
    if (reportDir !== undefined) await checkReportDir(reportDir, '--report-dir')
    const result = await runDemo({
      peers,
      job,
      log,
      signal: controller.signal,
      reportDir,
      amqpUrl,
      events: {
        // with the samples all peers trained on: samples/s, the epoch's length and the ETA, as start shows
        onStep: (r) => progress.step(r.epoch, r.stepInEpoch, r.stepsInEpoch, r.loss, r.samples),
        onEpoch: (e) => progress.line(`epoch ${e.epoch + 1}/${job.epochs}  ${formatEpochMetrics(e)}`)
      }
    }).catch((error: unknown) => {
      if (controller.signal.aborted) return undefined
      // the progress bar is cleared first: the error line must not land on it
      progress.done()
      throw error
    })
    if (result === undefined || controller.signal.aborted) {
      interrupted()
      // every peer has stopped; libp2p's timers set while they stopped (a debounced address
      // update, gossipsub's next heartbeat) held the process 1-3 s more: exit, output written through
      await new Promise<void>((resolve) => process.stderr.write('', () => { resolve() }))
      await new Promise<void>((resolve) => process.stdout.write('', () => { resolve() }))
      process.exit()
    }
    progress.done()
    let baseline: { wallMs: number, accuracy: number } | undefined
    if (flags.baseline !== false && !controller.signal.aborted) {
      progress.line(`baseline: the same job in one process (global batch ${job.batchSize * peers}) for the wall-time comparison; --no-baseline skips it`)
      // its own pace: the peers' rate and ETA, shown for its steps, read 19 s left of a 6 s run
      const baselineProgress = createProgressReporter(process.stderr, job.epochs)
      // a failed baseline (e.g. diverged at the 4x batch) loses only the comparison: the peers' results are complete
      const local = await runLocalTraining({ ...job, batchSize: job.batchSize * peers, compression: { ...job.compression, codec: 'none' }, aggregation: { ...job.aggregation, rule: 'mean', f: 0 }, attack: undefined }, {
        log,
        signal: controller.signal,
        events: { onStep: (r) => baselineProgress.step(r.epoch, r.stepInEpoch, r.stepsInEpoch, r.loss, r.samples) }
      }).catch((error: unknown) => {
        baselineProgress.done()
        progress.line(`baseline failed: ${error instanceof Error ? error.message : String(error)}; the peers' results follow without the single-process comparison`)
        return undefined
      })
      baselineProgress.done()
      if (local !== undefined) baseline = { wallMs: local.wallMs, accuracy: local.test.accuracy }
      if (controller.signal.aborted) {
        // the peers' results are complete: shown, without the comparison
        progress.line('baseline interrupted: the peers\' results follow without the single-process comparison')
        process.exitCode = 130
      }
    }
    // a job that failed on a peer (e.g. diverged) is a failed demo, whatever else it printed
    const failed = result.peers.filter((p) => p.failure !== undefined)
    if (failed.length > 0) process.exitCode = 1
    if (flags.json === true) {
      process.stdout.write(JSON.stringify({ ...result, baseline }, null, 2) + '\n')
      return
    }
    const rows = result.peers.map((p) => [p.name, p.peerId.slice(-12), p.result === undefined ? '-' : `${(p.result.test.accuracy * 100).toFixed(2)} %`, p.result?.reason ?? (p.failure !== undefined ? 'failed' : 'stopped'), String(p.result?.step ?? '-'), p.result?.digest.slice(0, 12) ?? '-'])
    const finished = result.peers.filter((p) => p.result !== undefined).length
    process.stdout.write([
      formatTable(['peer', 'id', 'test acc', 'stopped by', 'steps', 'param digest'], rows),
      '',
      ...failed.map((p) => `${p.name} failed: ${p.failure ?? ''}`),
      finished === 0 ? 'parameters identical on all peers: - (no peer finished the job)' : `parameters identical on all peers: ${result.identicalParameters ? 'yes' : 'NO'}`,
      `wall time ${(result.wallMs / 1000).toFixed(1)} s${baseline !== undefined ? `; single process on the same samples ${(baseline.wallMs / 1000).toFixed(1)} s (test acc ${(baseline.accuracy * 100).toFixed(2)} %)` : ''}`,
      `gradient bytes sent per peer: ${result.bytesSentPerPeer.map((b) => `${(b / 1048576).toFixed(1)} MiB`).join(', ')}; ${describeRejections(result.rejectedByReason, result.droppedByReason)}`,
      '',
      'per-stage figures of peer-0 (Table I):',
      formatStageTable(result.stages),
      ...(result.report === undefined ? [] : ['', describeWrittenReport(result.report)])
    ].join('\n') + '\n')
  }))
}
