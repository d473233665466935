/**
 * `p2pmld start`: run a peer daemon in the foreground until SIGINT/SIGTERM or `p2pmld stop`.
 * With a job (--config job.yaml or job flags) it hosts that job; with --bootstrap it joins the
 * job its bootstrap peers run; with neither it re-joins the members it knew (or resumes from its
 * checkpoint) or waits for `p2pmld job submit`. While idle it joins a job a connected peer runs
 * (unless --no-auto-join).
 */
import type { Command } from 'commander'
import { loadDaemonConfig } from '../../config/load.js'
import type { PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { createDaemonConsole } from '../support/daemon-console.js'
import { addJobFlags, jobConfigFromFlags, type JobFlagValues } from '../support/job-flags.js'
import { defaultLogFormat, LOG_FORMAT_HELP } from '../support/log-format.js'
import { action } from '../support/output.js'
import { explainStartFailure } from '../support/start-failure.js'
import { describeWrittenReport } from './report.js'

interface StartFlags extends JobFlagValues {
  bootstrap?: string[]
  listen?: string[]
  announce?: string[]
  dataDir?: string
  socket?: string
  daemonConfig?: string
  pskFile?: string
  allowlist?: string
  logLevel?: string
  logFormat?: string
  metricsPort?: string
  metricsHost?: string
  computeThreads?: string
  offload?: string
  amqpUrl?: string
  restartGraceMs?: string
  restartStaggerMs?: string
  restartSeniorWaitMs?: string
  exitWhenDone?: boolean
  autoJoin?: boolean
  joinJob?: string
}

const JOB_FLAG_KEYS: ReadonlyArray<keyof JobFlagValues> = ['config', 'model', 'dataset', 'epochs', 'batchSize', 'lr', 'optimizer', 'momentum', 'seed', 'trainSamples', 'compression', 'bits', 'aggregation', 'f', 'minPeers', 'deadlineMs', 'transport', 'mode', 'maxStaleness', 'averageEvery']

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/**
 * --exit-when-done: an evicted daemon stops re-joining its job once no member has answered for this
 * long, and exits 1: its members finish and exit ~2 s after the job's end, and a daemon evicted just
 * before (CI saw one) otherwise asked their closed ports for ever
 */
const EXIT_WHEN_DONE_REJOIN_GIVE_UP_MS = 60_000
/**
 * --exit-when-done with --bootstrap: a daemon that never got into a job stops trying once no
 * bootstrap peer could be reached for this long, and exits 1 (a walk's joiner, started after its
 * host's job had ended and the host had exited, dialed the dead address for ever). Long enough for
 * machines started together whose host comes up minutes later
 */
const EXIT_WHEN_DONE_JOIN_GIVE_UP_MS = 300_000
/** how often a start in progress checks whether its job is held up (a broker that cannot be reached), ms */
const START_HELD_UP_CHECK_MS = 2_000

export function registerStartCommand(program: Command): void {
  const command = program
    .command('start')
    .description('run a peer daemon in the foreground (host a job given by --config/job flags, or join one with --bootstrap)')
    .option('--bootstrap <multiaddr>', 'a peer to join through (repeatable)', collect)
    .option('--listen <multiaddr>', 'address to listen on (repeatable; default /ip4/0.0.0.0/tcp/4001)', collect)
    .option('--announce <multiaddr>', 'address other hosts dial to reach this one, e.g. a public IP behind NAT: /ip4/203.0.113.7/tcp/4001 (repeatable)', collect)
    .option('--data-dir <dir>', 'data directory: peer key, checkpoints, control socket (default ~/.p2pmld)')
    .option('--socket <path>', 'control socket path (default <data-dir>/p2pmld.sock)')
    .option('--daemon-config <file>', 'daemon config file (YAML or JSON)')
    .option('--psk-file <file>', 'pre-shared key of a private network (only peers with the same key connect)')
    .option('--allowlist <ids>', 'comma-separated peer ids allowed to connect')
    .option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)')
    .option('--log-format <format>', LOG_FORMAT_HELP)
    .option('--metrics-port <port>', 'serve Prometheus metrics at http://<host>:<port>/metrics (0: any free port; default: off)')
    .option('--metrics-host <address>', 'address the metrics server binds (default 0.0.0.0)')
    .option('--compute-threads <n>', 'ONNX Runtime threads for gradient computation (default: the cores; several daemons on one machine: 1 each, or their spinning threads take each other\'s cores)')
    .option('--offload <mode>', 'where gradients are computed: none, pool, lambda or stepfunctions (settings in --daemon-config, or a JSON object here)')
    .option('--amqp-url <url>', 'RabbitMQ broker for jobs with transport amqp/auto (default amqp://guest:guest@127.0.0.1:5672); given (or env P2PMLD_AMQP_URL), an idle daemon also looks for a job on it')
    .option('--restart-grace-ms <ms>', 'restarted from its data dir without --bootstrap: a member that reaches no more senior one resumes the job from its checkpoint after this long (default 15000)')
    .option('--restart-stagger-ms <ms>', 'and each member ranked after the first junior this much later, so that juniors do not resume two jobs (default 5000)')
    .option('--restart-senior-wait-ms <ms>', 'at most this long (plus the stagger per rank) for a more senior member that is up to resume the job (default 60000; at least the grace)')
    .option('--exit-when-done', `stop the daemon when its job finishes or is stopped (once the other members say they finished too, or after 2 s); exit 1 if the job fails here, if no --bootstrap peer can be reached for ${EXIT_WHEN_DONE_JOIN_GIVE_UP_MS / 60_000} min before it joins, or if, evicted, this daemon finds no member to re-join for ${EXIT_WHEN_DONE_REJOIN_GIVE_UP_MS / 1000} s`)
    .option('--no-auto-join', 'while idle, do not join a job a connected peer runs')
    .option('--join-job <id>', 'join only this job (through --bootstrap, the broker or auto-join); default: the job the first peer or broker answers with')
  addJobFlags(command)
  command.action(action(async (flags: StartFlags) => {
    const config = loadDaemonConfig({
      configFile: flags.daemonConfig,
      flags: {
        dataDir: flags.dataDir,
        socketPath: flags.socket,
        listen: flags.listen,
        announce: flags.announce,
        bootstrap: flags.bootstrap,
        pskFile: flags.pskFile,
        allowlist: flags.allowlist,
        logLevel: flags.logLevel,
        logFormat: flags.logFormat,
        metricsPort: flags.metricsPort,
        metricsHost: flags.metricsHost,
        computeThreads: flags.computeThreads,
        offload: flags.offload,
        amqpUrl: flags.amqpUrl,
        restartGraceMs: flags.restartGraceMs,
        restartStaggerMs: flags.restartStaggerMs,
        restartSeniorWaitMs: flags.restartSeniorWaitMs
      }
    })
    const hostsJob = JOB_FLAG_KEYS.some((key) => flags[key] !== undefined)
    const job = hostsJob ? jobConfigFromFlags(flags) : undefined
    if (job !== undefined && flags.joinJob !== undefined) throw new Error(`--join-job is for a daemon that joins a job; this one hosts job ${job.id} (given by its job flags): drop --join-job or the job flags`)
    // the daemon's modules (libp2p, ONNX Runtime) load here, not for every p2pmld command
    const [{ createLogger }, { createPeerDaemon }, { checkModelSpec }] = await Promise.all([
      import('../../daemon/logger.js'), import('../../daemon/peer/peer-daemon.js'), import('../../daemon/training/job-runtime.js')
    ])
    // an unknown model or a missing file fails here, not after the peer and the socket came up
    if (job !== undefined) await checkModelSpec(job.model)
    const log = createLogger(config.logLevel, { component: 'daemon' }, { format: config.logFormat ?? defaultLogFormat() })
    // progress, epochs, membership changes and the result for people, on stdout
    let notices: string[] | undefined = []
    const screen = createDaemonConsole(process.stdout, () => daemon.session()?.config ?? job, { selfId: () => daemon.peerId })
    /** the peer and the control socket are up; the job's start may still be in progress */
    let listening = false
    let listeningPrinted = false
    const daemon: PeerDaemon = await createPeerDaemon({
      config,
      log,
      job,
      autoJoin: flags.autoJoin !== false,
      ...(flags.joinJob !== undefined ? { joinJobId: flags.joinJob } : {}),
      ...(flags.exitWhenDone === true ? { rejoinGiveUpMs: EXIT_WHEN_DONE_REJOIN_GIVE_UP_MS, joinGiveUpMs: EXIT_WHEN_DONE_JOIN_GIVE_UP_MS } : {}),
      // this process exits once the daemon has stopped (below): `p2pmld stop` waits for that
      exitingProcessId: process.pid,
      events: screen.events,
      onReport: (written) => screen.line(describeWrittenReport(written)),
      // held until the daemon's own lines (its id, addresses) are out
      onNotice: (text) => { if (notices !== undefined) notices.push(text); else screen.line(text) },
      onListening: () => { listening = true }
    })
    /** the daemon's id, addresses and socket, then the notices held until they were out; once */
    const printListening = (): void => {
      if (listeningPrinted) return
      listeningPrinted = true
      process.stdout.write(`p2pmld daemon ${daemon.peerId}\n`)
      // announced: the bound addresses are not what other hosts dial; the announced ones are
      const announced = (config.announce ?? []).length > 0
      for (const address of announced ? config.listen : daemon.addresses()) process.stdout.write(`listening on ${address}\n`)
      for (const address of daemon.addresses()) process.stdout.write(`bootstrap address ${address}${announced ? ' (announced)' : ''}\n`)
      process.stdout.write(`control socket ${config.socketPath}\n`)
      const metricsAt = daemon.metrics()?.address()
      if (metricsAt !== undefined) process.stdout.write(`metrics at http://${metricsAt.host === '0.0.0.0' ? '127.0.0.1' : metricsAt.host}:${metricsAt.port}/metrics\n`)
      for (const text of notices ?? []) screen.line(text)
      notices = undefined
    }
    let stopping = false
    let stopped: Promise<void> | undefined
    /** the first call stops the daemon; every call resolves once it has stopped */
    const stop = async (why: string): Promise<void> => {
      if (stopped === undefined) {
        stopping = true
        log.info({ why }, 'stopping')
        stopped = daemon.stop()
      }
      await stopped
    }
    process.once('SIGINT', () => { void stop('SIGINT') })
    process.once('SIGTERM', () => { void stop('SIGTERM') })
    // `p2pmld stop` is answered from the moment the control socket is up: start-up can last (a
    // job's broker that cannot be reached yet is retried), and the stop must not wait for it
    // (not when the daemon's own stop after a failed start settles it)
    let startFailed = false
    void daemon.shutdownRequested().then(async () => { if (!startFailed) await stop('shutdown requested') })
    // the daemon's lines come once its job has started (scripts read 'listening on' as ready to
    // be bootstrapped to), except while that start is held up (its broker cannot be reached yet:
    // it printed nothing, for ever): then they come with the reason
    let hostingPrinted = false
    /** `heldUp`: its start is held up (the next line says why), so it does not say 'starting' */
    const printHosting = (heldUp = false): void => {
      if (hostingPrinted || job === undefined) return
      hostingPrinted = true
      const alone = heldUp ? 'minPeers 1: this peer alone' : 'starting (minPeers 1: this peer alone)'
      process.stdout.write(`hosting job ${daemon.session()?.jobId}: ${job.minPeers === 1 ? alone : `waiting for ${job.minPeers} peers (minPeers, this one included)`}\n`)
    }
    const heldUp = setInterval(() => {
      const why = daemon.session()?.startStage?.()
      if (why === undefined || !listening) return
      clearInterval(heldUp)
      printListening()
      // a job given here is hosted as a new job (PeerDaemon.hostsGivenJob, set once it starts)
      if (job !== undefined) printHosting(true)
      screen.line(`the job cannot start yet: ${why} (p2pmld status says how it stands)`)
    }, START_HELD_UP_CHECK_MS)
    try {
      await daemon.start()
    } catch (error) {
      // SIGINT/SIGTERM or `p2pmld stop` during start-up: stopped as asked, not a failure (read
      // before the stop below, which settles shutdownRequested() itself)
      const askedToStop = stopping
      startFailed = true
      // a job that cannot load, a busy port, a corrupt checkpoint: release the port and the
      // socket, then fail (exit 1) instead of idling on
      await daemon.stop().catch(() => {})
      if (askedToStop) return
      throw explainStartFailure(error)
    } finally {
      clearInterval(heldUp)
    }
    if (stopping) {
      await daemon.stop()
      return
    }
    printListening()
    // minPeers counts this host: with 1 it starts at once
    // (not when the job given was the data dir's checkpoint's: the daemon said where it goes on from)
    if (job !== undefined && daemon.hostsGivenJob()) printHosting()
    const finishedBefore = daemon.finishedBeforeStart()
    if (flags.exitWhenDone === true && finishedBefore !== undefined) {
      // its job is done already: idle, it would wait for the next job its members run, for ever
      process.stdout.write(`job ${finishedBefore.jobId} had finished (step ${finishedBefore.step}, in the checkpoint) before this start: nothing to run; exiting (--exit-when-done)\n`)
      void stop('job finished before this start')
    } else if (finishedBefore !== undefined) {
      const next = flags.autoJoin === false
        ? ' (--no-auto-join)'
        : finishedBefore.members > 0 ? '; this peer joins the job its members run next' : `; p2pmld job submit gives it a new job, p2pmld export --checkpoint ${config.dataDir}/checkpoint writes the finished model`
      process.stdout.write(`job ${finishedBefore.jobId} had finished (step ${finishedBefore.step}, in the checkpoint) before this start: idle${next}\n`)
    }
    if (flags.exitWhenDone === true && finishedBefore === undefined) {
      void daemon.jobDone().then(async (result) => {
        const failure = daemon.jobFailure()
        if (result === undefined && !stopping && failure !== undefined) {
          // failed here, or evicted with no member left to re-join: a script waiting on the exit code must see it
          process.exitCode = 1
          // a daemon that never got into a job (or was evicted from it) holds no session: the failure says it all
          screen.line(`${daemon.session() === undefined ? failure : `the job did not finish on this peer: ${failure}`}; exiting with code 1 (--exit-when-done)`)
          return await stop('job failed')
        }
        if (result === undefined && !stopping) {
          // `p2pmld job stop`: stopped as asked, as the daemon's own stop is
          screen.line('the job was stopped before it finished (p2pmld job stop): exiting (--exit-when-done)')
          return await stop('job stopped')
        }
        await daemon.settleAfterJob()
        await stop('job finished')
      })
    }
    await daemon.shutdownRequested()
    await stop('shutdown requested')
    // every component has stopped; what is left are timers libp2p's address manager and gossipsub
    // set while they stop (~1 s: a debounced address update, the next heartbeat), which would
    // hold the process that long. Output is written through (stdout flushed first)
    await new Promise<void>((resolve) => process.stdout.write('', () => { resolve() }))
    process.exit()
  }))
}
