/**
 * One peer daemon: its libp2p node, control socket, the job it hosts or joined, checkpoints.
 * start()/stop() are idempotent; a stopped daemon leaves no sockets, timers or listeners, so
 * tests and the demo run several in one process.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { jobConfigWarnings, type JobConfig } from '../../config/job-config.js'
import { attackIgnored } from '../training/test-attack.js'
import { createPeerNode, createTrafficMeter, trafficSince } from '../../protocols/node/index.js'
import type { StateSyncServer } from '../../protocols/state-sync/index.js'
import { CHECKPOINT_DIR, exportSnapshotModel } from '../checkpoint/index.js'
import { createControlServer, prepareSocketPath, type ControlServer } from '../control/index.js'
import type { JobResult, JobSnapshot } from '../job/job-runner.js'
import { bytesByPeer, createConnectionBook } from '../report/session-report.js'
import { REPORTS_DIR } from '../report/write-report.js'
import { createDaemonReports } from './daemon-reports.js'
import { createControlHandlers } from './control-handlers.js'
import { createAutoJoin, type AutoJoin } from './job-discovery.js'
import { createJobJoiner } from './job-joiner.js'
import { saveKnownMembers, type KnownMembers } from './known-members.js'
import { fanOutEvents } from './fan-out-events.js'
import { createJobSession, type JobSession, type JobSessionEvents } from './job-session.js'
import { createAmqpJobSession } from './amqp-job-session.js'
import { DEFAULT_AMQP_URL, restartTimings } from '../../config/daemon-config.js'
import { createRejectionLog, sumCounts } from './rejection-log.js'
import { createCheckpointWriter } from './checkpoint-writer.js'
import { servePeerRequests } from './peer-requests.js'
import { planStartup } from './startup-plan.js'
import { checkSubmission, describeSubmitted } from './submission.js'
import { loadPeerIdentity } from './peer-identity.js'
import type { PeerDaemon, PeerDaemonOptions } from './peer-daemon-types.js'

export type { PeerDaemon, PeerDaemonOptions } from './peer-daemon-types.js'

export async function createPeerDaemon(options: PeerDaemonOptions): Promise<PeerDaemon> {
  const { config, log } = options
  const { privateKey, psk, bootstrap, bootstrapAddrs } = await loadPeerIdentity(config, options.psk, log, options.onNotice)
  const traffic = createTrafficMeter()
  let session: JobSession | undefined
  const metrics = config.metricsPort === undefined
    ? undefined
    // prom-client loads only for daemons that serve metrics
    : (await import('../metrics/prometheus.js')).createPrometheusMetrics({ port: config.metricsPort, host: config.metricsHost, log, node: () => node, session: () => session,
      // wrapped: both are declared below, once the node exists (read at scrape time only)
      rejectionCounts: () => rejectionCounts(),
      droppedCounts: () => droppedCounts(),
      bytesByPeer: () => bytesByPeer(traffic, connections)
    })
  const node = await createPeerNode({
    privateKey,
    listen: config.listen,
    announce: config.announce,
    bootstrap,
    psk,
    allowlist: config.allowlist,
    logger: log,
    metrics: traffic.metricsFactory
  })
  const peerId = node.peerId.toString()
  /** job-protocol and state-sync requests refused, counted and logged without flooding */
  const requestRejections = createRejectionLog(log)
  /** the session's counts and the refused requests', by reason (the metrics RPC, status and Prometheus read these) */
  const rejectionCounts = (): Record<string, number> => sumCounts(requestRejections.counts(), session?.rejectionCounts() ?? {})
  const droppedCounts = (): Record<string, number> => sumCounts(requestRejections.dropped(), session?.droppedCounts() ?? {})
  const checkpointDir = join(config.dataDir, CHECKPOINT_DIR)
  let stateSync: StateSyncServer | undefined
  let control: ControlServer | undefined
  let started = false
  let stopping: Promise<void> | undefined
  /** the job of the checkpoint had finished before this start (PeerDaemon.finishedBeforeStart) */
  let finishedBefore: { jobId: string, step: number, members: number } | undefined
  /** start() hosted options.job as a new job (PeerDaemon.hostsGivenJob) */
  let hostsGiven = false
  const stopped = (): boolean => stopping !== undefined
  const shutdown = Promise.withResolvers<void>()
  let jobWaiters: Array<(r: JobResult | undefined) => void> = []
  /** why the last job did not finish here (PeerDaemon.jobFailure) */
  let failure: string | undefined
  const resolveJobWaiters = (result: JobResult | undefined): void => {
    const waiters = jobWaiters
    jobWaiters = []
    for (const w of waiters) w(result)
  }
  let autoJoin: AutoJoin | undefined

  /** remember the job's members and where they listen, for a restart without --bootstrap */
  const rememberMembers = async (): Promise<void> => {
    const s = session
    const runner = s?.runner()
    if (s === undefined || runner === undefined) return
    const records = runner.membership().toSnapshot().members
    const members: KnownMembers['members'] = records.map((r) => ({
      peerId: r.peerId,
      addrs: (r.peerId === peerId ? node.dialableAddrs() : s.sightings.get(r.peerId)?.addrs ?? []).slice(0, 32)
    }))
    await saveKnownMembers(config.dataDir, { v: 1, jobId: s.jobId, members }).catch((error: unknown) => {
      log.warn({ err: (error as Error).message }, 'could not record the job members in the data dir')
    })
  }

  const connections = createConnectionBook(node.libp2p)
  const reports = createDaemonReports({
    peerId,
    peerName: options.name,
    dir: options.reportsDir === undefined ? join(config.dataDir, REPORTS_DIR) : options.reportsDir,
    log,
    connections,
    session: () => session,
    onReport: options.onReport
  })
  const fanned = fanOutEvents(options.events, metrics?.events, reports.events)
  /** the session and membership version members.json was last written for */
  let recorded: { session: JobSession | undefined, version: number } = { session: undefined, version: -1 }
  const events: JobSessionEvents = {
    ...fanned,
    onStep: (report) => {
      fanned.onStep?.(report)
      // members.json follows the membership, not only the checkpoints: a host killed before its
      // first one listed itself alone, came back as an idle daemon and told only the member it
      // asked that its previous process left, while the others went on counting it as coordinator
      const version = session?.runner()?.membershipVersion() ?? -1
      if (recorded.session !== session || recorded.version !== version) {
        recorded = { session, version }
        void rememberMembers()
      }
    },
    onFinished: (result) => {
      fanned.onFinished?.(result)
      reports.writeJobEnd()
      failure = undefined
      resolveJobWaiters(result)
      const snapshot = session?.runner()?.currentSnapshot()
      if (snapshot !== undefined) persist(snapshot).catch(() => {})
      void rememberMembers()
    },
    onFailed: (error) => {
      fanned.onFailed?.(error)
      failure = `training failed: ${error instanceof Error ? error.message : String(error)}`
      resolveJobWaiters(undefined)
    },
    onEvicted: () => {
      fanned.onEvicted?.(0)
      void joiner.rejoin()
    },
    onCheckpoint: async (snapshot) => {
      await persist(snapshot)
      await rememberMembers()
      await fanned.onCheckpoint?.(snapshot)
    }
  }

  // one checkpoint write at a time; stop() waits for the last one
  const checkpoints = createCheckpointWriter(checkpointDir, log)
  const persist = checkpoints.write

  const openSession = async (jobId: string, jobConfig: JobConfig, host: boolean, snapshot?: JobSnapshot, membersRestarting = false): Promise<JobSession> => {
    // a job that cannot start leaves the previous one (e.g. finished: its status, export and
    // report) as it was
    const previous = { session, failure }
    failure = undefined
    // this job's bytes (its session's and its report's), not the daemon's since it started
    const jobTraffic = trafficSince(traffic)
    const common = {
      jobId,
      config: jobConfig,
      log: log.child({ job: jobId }),
      computeThreads: config.computeThreads,
      offload: config.offload,
      host,
      snapshot,
      membersRestarting,
      selfNames: options.name !== undefined ? [options.name] : [],
      events,
      faults: options.faults,
      loadDatasets: options.loadDatasets
    }
    const s = jobConfig.transport === 'amqp'
      ? createAmqpJobSession({ ...common, selfId: peerId, privateKey, amqpUrl: config.amqpUrl ?? DEFAULT_AMQP_URL })
      : createJobSession({
        ...common,
        node,
        exchangeMode: options.exchangeMode,
        traffic: jobTraffic,
        ...(jobConfig.transport === 'auto' ? { brokerFallback: { amqpUrl: config.amqpUrl ?? DEFAULT_AMQP_URL, privateKey } } : {})
      })
    session = s
    const restoreReports = reports.newJob(jobTraffic)
    try {
      await s.start()
      // stop() ran while the session loaded its model and data: it must not train after the stop
      if (stopped()) throw new DaemonStoppingError()
      // where its operator reads it, not only in the log (a walk's joiner named so never saw it)
      if (attackIgnored(jobConfig.attack, common.selfNames, peerId)) options.onNotice?.(`job ${jobId} names this peer in its test-only attack (${jobConfig.attack?.kind}): ignored, only the demo's and the tests' in-process peers run attacks; this peer stays honest`)
    } catch (error) {
      // a job that cannot start (e.g. an unknown model) must not stay as the daemon's job
      if (session === s) {
        session = previous.session
        failure = previous.failure
        restoreReports()
      }
      await s.stop().catch(() => {})
      throw error
    }
    return s
  }

  /** `membersRestarting`: resumed because no member the daemon knew runs the job (see SessionJobOptions) */
  const hostJob = async (jobConfig: JobConfig, snapshot?: JobSnapshot, membersRestarting = false): Promise<string> => {
    const jobId = jobConfig.id ?? `job-${randomBytes(4).toString('hex')}`
    const withId = { ...jobConfig, id: jobId }
    await openSession(jobId, withId, true, snapshot, membersRestarting)
    void rememberMembers()
    log.info({ job: jobId, model: withId.model, dataset: withId.dataset, minPeers: withId.minPeers, ...(snapshot === undefined ? {} : { step: snapshot.step, membersRestarting }) }, snapshot === undefined ? 'hosting job' : 'resumed job from checkpoint')
    if (snapshot !== undefined) options.onNotice?.(`resumed job ${jobId} from the checkpoint at step ${snapshot.step}${membersRestarting ? ': this peer coordinates it; waiting for its members to come back (p2pmld status says who is back)' : ''}`)
    // the config's author hears it, on the daemon the job was submitted to
    for (const warning of jobConfigWarnings(withId)) log.warn({ job: jobId }, warning)
    return jobId
  }

  const dropSession = async (): Promise<void> => {
    const s = session
    session = undefined
    await s?.stop().catch(() => {})
  }
  const joiner = createJobJoiner({
    node,
    log,
    peerId,
    privateKey,
    bootstrapAddrs,
    amqpUrl: config.amqpUrl,
    joinJobId: options.joinJobId,
    restart: restartTimings(config),
    session: () => session,
    openSession,
    dropSession,
    resume: (snapshot) => hostJob(snapshot.jobConfig, snapshot, true),
    rememberMembers,
    ...(options.onNotice === undefined ? {} : { notice: options.onNotice }),
    rejoinGiveUpMs: options.rejoinGiveUpMs,
    ...(options.joinGiveUpMs === undefined ? {} : { joinGiveUpMs: options.joinGiveUpMs }),
    onJoinGaveUp: (reason) => {
      failure = `could not join a job: ${reason}`
      resolveJobWaiters(undefined)
    },
    onRejoinGaveUp: (jobId, reason) => {
      failure = `evicted from job ${jobId} and could not re-join it: ${reason}`
      resolveJobWaiters(undefined)
    }
  })

  const daemon: PeerDaemon = {
    peerId,
    startedAt: Date.now(),
    addresses: () => node.dialableAddrs(),
    node: () => node,
    session: () => session,
    joining: () => joiner.busy(),
    joinStage: () => joiner.stage(),
    async start() {
      if (started) return
      started = true
      // a data dir another daemon runs from is refused before this peer starts (its libp2p start
      // and stop were logged before the error); the control server checks again as it binds
      if (options.controlSocket !== false) await prepareSocketPath(config.socketPath)
      const plan = await planStartup({ job: options.job, dataDir: config.dataDir, checkpointDir, peerId, bootstrapCount: bootstrapAddrs.length, amqpUrl: config.amqpUrl, log, ...(options.onNotice === undefined ? {} : { notice: options.onNotice }) })
      await node.start()
      if (stopped()) return
      connections.start()
      stateSync = await servePeerRequests({ libp2p: node.libp2p, session: () => session, rejections: requestRejections, log })
      if (options.controlSocket !== false) {
        control = createControlServer({ socketPath: config.socketPath, handlers: createControlHandlers(daemon, () => shutdown.resolve(), options.exitingProcessId), logger: log })
        await control.start()
      }
      await metrics?.start()
      // told to stop while starting (SIGINT during start-up): stop() closes what started so far
      if (stopped()) return
      options.onListening?.()
      if (plan.kind === 'host') {
        await hostJob(plan.job)
        hostsGiven = true
      } else if (plan.kind === 'join-bootstrap') void joiner.joinThroughBootstrap()
      else if (plan.kind === 'resume-or-rejoin') void joiner.resumeOrRejoin(plan.snapshot, plan.known)
      else if (plan.kind === 'resume') await hostJob(plan.snapshot.jobConfig, plan.snapshot)
      else if (plan.kind === 'finished') {
        const { snapshot, others } = plan
        log.info({ job: snapshot.jobConfig.id, step: snapshot.step, members: others.length }, others.length > 0 ? 'the job in the checkpoint finished: idle, dialing its members' : 'the job in the checkpoint finished: idle')
        finishedBefore = { jobId: plan.jobId, step: snapshot.step, members: others.length }
        for (const m of others) void node.connectTo(m.peerId, m.addrs).catch(() => false)
      }
      if (options.autoJoin === true) {
        autoJoin = createAutoJoin({
          node,
          log,
          isIdle: () => {
            const state = session?.runner()?.state()
            return !joiner.busy() && !stopped() && (session === undefined || state === 'finished' || state === 'failed')
          },
          currentJobId: () => session?.jobId,
          join: (info) => joiner.joinJob(info),
          joinJobId: options.joinJobId,
          ...(options.onNotice === undefined ? {} : { notice: options.onNotice })
        })
        autoJoin.start()
      }
    },
    async stop(stopOptions = {}) {
      if (!started) return
      stopping ??= (async () => {
        autoJoin?.stop()
        joiner.abort()
        const s = session
        if (s !== undefined) {
          await s.stop({ leave: stopOptions.leave !== false })
          // a job that did not finish still gets its report (a finished one wrote it at its end)
          if (s.runner() !== undefined && s.runner()?.result() === undefined) reports.writeJobEnd()
          // after the stop: the step in progress was finished first
          const snapshot = s.runner()?.currentSnapshot()
          if (snapshot !== undefined) await persist(snapshot).catch(() => {})
          // with it, who the members were and where they listen: a host had recorded only
          // itself (at the job's start) unless a periodic checkpoint came, so restarted it
          // resumed the job without asking whether its members carry it on
          await rememberMembers()
        }
        await checkpoints.idle()
        await reports.flushed()
        connections.stop()
        await control?.stop()
        await metrics?.stop()
        await stateSync?.stop()
        await node.stop()
        for (const w of jobWaiters) w(undefined)
        jobWaiters = []
        shutdown.resolve()
      })()
      await stopping
    },
    async submitJob(jobConfig: JobConfig): Promise<string> {
      const runner = session?.runner()
      checkSubmission(jobConfig, session !== undefined
        ? { jobId: session.jobId, state: runner?.state(), inSession: true, step: runner?.progress().step }
        : finishedBefore === undefined ? undefined : { jobId: finishedBefore.jobId, state: undefined, inSession: false, step: finishedBefore.step })
      joiner.abort()
      await session?.stop()
      const jobId = await hostJob(jobConfig)
      options.onNotice?.(describeSubmitted(jobId, jobConfig))
      return jobId
    },
    async stopJob() {
      const s = session
      const runner = s?.runner()
      // this member leaves the job as `p2pmld stop` does, and stays up: it finishes the step in
      // progress and tells the others, who go on without it. A runner merely stopped stayed a
      // member: heard from (so never evicted) and sending nothing, it stalled the others for ever
      await s?.stop({ leave: true })
      if (runner !== undefined && runner.result() === undefined) {
        // stopped before its end: its report and checkpoint as at a daemon's stop; no result
        // will come (jobDone() waited for ever, and an --exit-when-done daemon with it)
        reports.writeJobEnd()
        await persist(runner.currentSnapshot()).catch(() => {})
        resolveJobWaiters(undefined)
      }
    },
    finishedBeforeStart: () => finishedBefore,
    hostsGivenJob: () => hostsGiven,
    jobFailure: () => failure,
    jobDone(): Promise<JobResult | undefined> {
      const result = session?.runner()?.result()
      if (result !== undefined) return Promise.resolve(result)
      // it failed here (a new session clears this): no result will come
      if (failure !== undefined) return Promise.resolve(undefined)
      // stopped (or stopping): no job will finish here any more
      if (stopping !== undefined) return stopping.then(() => session?.runner()?.result())
      return new Promise((resolve) => jobWaiters.push(resolve))
    },
    async settleAfterJob({ minMs = 2_000, maxMs = 60_000 } = {}) {
      const started = Date.now()
      // every other member of the last step said it finished: nobody will ask for the final state
      while (Date.now() - started < minMs && session?.othersFinished() !== true) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      while ((stateSync?.active ?? 0) > 0 && Date.now() - started < maxMs) {
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    },
    async saveCheckpoint(path?: string) {
      const runner = session?.runner()
      if (runner === undefined) throw new Error('no job state to checkpoint')
      const snapshot = runner.currentSnapshot()
      const written = await persist(snapshot, path)
      return { path: written.path, step: snapshot.step, bytes: written.bytes }
    },
    async exportModel(path: string) {
      const runner = session?.runner()
      if (runner === undefined) throw new Error('no job state to export')
      const snapshot = runner.currentSnapshot()
      const { model: _model, ...written } = await exportSnapshotModel(path, snapshot)
      return { ...written, step: snapshot.step }
    },
    runReport: (source) => reports.current(source),
    shutdownRequested: () => shutdown.promise,
    metrics: () => metrics,
    rejectionCounts,
    droppedCounts
  }
  return daemon
}

/** start() or a job's start was cut short because the daemon was told to stop meanwhile */
export class DaemonStoppingError extends Error {
  override name = 'DaemonStoppingError'
  constructor () {
    super('the daemon was told to stop while it started')
  }
}
