/**
 * `p2pmld start`: run a peer daemon in the foreground until SIGINT/SIGTERM or `p2pmld stop`.
 * With a job (--config job.yaml or job flags) it hosts that job; with --bootstrap it joins the
 * job its bootstrap peers run; with neither it resumes from its checkpoint or waits for
 * `p2pmld job submit`.
 */
import type { Command } from 'commander'
import { loadDaemonConfig } from '../../config/load.js'
import { createLogger } from '../../daemon/logger.js'
import { createPeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { addJobFlags, jobConfigFromFlags, type JobFlagValues } from '../support/job-flags.js'
import { action } from '../support/output.js'

interface StartFlags extends JobFlagValues {
  bootstrap?: string[]
  listen?: string[]
  dataDir?: string
  socket?: string
  daemonConfig?: string
  pskFile?: string
  allowlist?: string
  logLevel?: string
  computeThreads?: string
  amqpUrl?: string
  exitWhenDone?: boolean
}

const JOB_FLAG_KEYS: ReadonlyArray<keyof JobFlagValues> = ['config', 'model', 'dataset', 'epochs', 'batchSize', 'lr', 'optimizer', 'momentum', 'seed', 'trainSamples', 'compression', 'bits', 'aggregation', 'f', 'minPeers', 'deadlineMs', 'transport', 'mode', 'maxStaleness', 'averageEvery']

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

export function registerStartCommand(program: Command): void {
  const command = program
    .command('start')
    .description('run a peer daemon in the foreground (host a job given by --config/job flags, or join one with --bootstrap)')
    .option('--bootstrap <multiaddr>', 'a peer to join through (repeatable)', collect)
    .option('--listen <multiaddr>', 'address to listen on (repeatable; default /ip4/0.0.0.0/tcp/4001)', collect)
    .option('--data-dir <dir>', 'data directory: peer key, checkpoints, control socket (default ~/.p2pmld)')
    .option('--socket <path>', 'control socket path (default <data-dir>/p2pmld.sock)')
    .option('--daemon-config <file>', 'daemon config file (YAML or JSON)')
    .option('--psk-file <file>', 'pre-shared key of a private network (only peers with the same key connect)')
    .option('--allowlist <ids>', 'comma-separated peer ids allowed to connect')
    .option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)')
    .option('--compute-threads <n>', 'ONNX Runtime threads for gradient computation')
    .option('--amqp-url <url>', 'RabbitMQ broker for jobs with transport amqp/auto (env P2PMLD_AMQP_URL; default amqp://guest:guest@127.0.0.1:5672)')
    .option('--exit-when-done', 'stop the daemon when its job finishes')
  addJobFlags(command)
  command.action(action(async (flags: StartFlags) => {
    const config = loadDaemonConfig({
      configFile: flags.daemonConfig,
      flags: {
        dataDir: flags.dataDir,
        socketPath: flags.socket,
        listen: flags.listen,
        bootstrap: flags.bootstrap,
        pskFile: flags.pskFile,
        allowlist: flags.allowlist,
        logLevel: flags.logLevel,
        computeThreads: flags.computeThreads,
        amqpUrl: flags.amqpUrl
      }
    })
    const hostsJob = JOB_FLAG_KEYS.some((key) => flags[key] !== undefined)
    const job = hostsJob ? jobConfigFromFlags(flags) : undefined
    const log = createLogger(config.logLevel, { component: 'daemon' })
    const daemon = await createPeerDaemon({
      config,
      log,
      job,
      events: {
        onEpoch: (e) => process.stdout.write(`epoch ${e.epoch + 1}: val loss ${e.validationLoss.toFixed(4)} val acc ${(e.validationAccuracy * 100).toFixed(2)} % lr ${e.lr}\n`),
        onFinished: (r) => {
          // the last validation, when it ran on the final parameters
          const last = r.history.at(-1)
          const validation = last?.step === r.step ? `, validation accuracy ${(last.validationAccuracy * 100).toFixed(2)} %` : ''
          process.stdout.write(`job finished (${r.reason}) at step ${r.step}: test accuracy ${(r.test.accuracy * 100).toFixed(2)} %${validation} digest ${r.digest}\n`)
        }
      }
    })
    let stopping = false
    const stop = async (why: string): Promise<void> => {
      if (stopping) return
      stopping = true
      log.info({ why }, 'stopping')
      await daemon.stop()
    }
    process.once('SIGINT', () => { void stop('SIGINT') })
    process.once('SIGTERM', () => { void stop('SIGTERM') })
    await daemon.start()
    process.stdout.write(`p2pmld daemon ${daemon.peerId}\n`)
    for (const address of daemon.addresses()) process.stdout.write(`listening on ${address}\n`)
    process.stdout.write(`control socket ${config.socketPath}\n`)
    if (job !== undefined) process.stdout.write(`hosting job ${daemon.session()?.jobId}: waiting for ${job.minPeers} peer(s)\n`)
    if (flags.exitWhenDone === true) {
      void daemon.jobDone().then(async () => { await daemon.settleAfterJob() }).then(() => stop('job finished'))
    }
    await daemon.shutdownRequested()
    await stop('shutdown requested')
  }))
}
