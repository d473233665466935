/**
 * One peer daemon: its libp2p node, control socket, the job it hosts or joined, checkpoints.
 * start()/stop() are idempotent; a stopped daemon leaves no sockets, timers or listeners, so
 * tests and the demo run several in one process.
 */
import { randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { DaemonConfig } from '../../config/daemon-config.js'
import { parseJobConfig, type JobConfig } from '../../config/job-config.js'
import { JOB_PROTOCOL, JobInfoSchema, JobRequestSchema, JoinReplySchema, type JobInfo } from '../../protocols/job/job-protocol.js'
import type { ExchangeMode, FaultInjection } from '../../protocols/gradient-exchange/index.js'
import { closedByPeer, createPeerNode, createTrafficMeter, loadOrCreatePeerKey, parseMultiaddr, PEER_CLOSED_HINT, type PeerNode } from '../../protocols/node/index.js'
import { handleJsonRequests, requestJson } from '../../protocols/request/json-request.js'
import { fetchSnapshot, registerStateSyncServer, StateSyncRefusedError, type StateSyncServer } from '../../protocols/state-sync/index.js'
import { readCheckpoint, writeCheckpoint } from '../checkpoint/index.js'
import { createControlServer, type ControlServer } from '../control/index.js'
import type { JobResult, JobRunnerEvents, JobSnapshot } from '../job/job-runner.js'
import { fromTrainingSnapshot, toTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import { createControlHandlers } from './control-handlers.js'
import { createJobSession, type JobSession } from './job-session.js'
import { createRejectionLog } from './rejection-log.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { JobDatasetLoader } from '../../ml/data/job-datasets.js'

export interface PeerDaemonOptions {
  readonly config: DaemonConfig
  readonly log: Logger
  /** host this job from the start */
  readonly job?: JobConfig
  /** serve the control socket (default true) */
  readonly controlSocket?: boolean
  /** a name the demo gives this peer (attack configs may name it) */
  readonly name?: string
  readonly events?: JobRunnerEvents
  /** test-only network faults on inbound gradients */
  readonly faults?: FaultInjection
  /** the private-network key itself (instead of config.pskFile) */
  readonly psk?: Uint8Array
  /** how gradients travel (default: direct streams) */
  readonly exchangeMode?: ExchangeMode
  /** where job datasets come from (default: loaded per job; peers in one process can share a cache) */
  readonly loadDatasets?: JobDatasetLoader
}

export interface PeerDaemon {
  start(): Promise<void>
  stop(): Promise<void>
  readonly peerId: string
  readonly startedAt: number
  addresses(): string[]
  node(): PeerNode
  session(): JobSession | undefined
  submitJob(config: JobConfig): Promise<string>
  stopJob(): Promise<void>
  /** resolves with the result when the current (or next) job finishes */
  jobDone(): Promise<JobResult | undefined>
  /**
   * After the job finished: keep serving for a moment, so members still agreeing on the final
   * state can fetch it, and until state transfers in progress end (at most maxMs).
   */
  settleAfterJob(options?: { minMs?: number, maxMs?: number }): Promise<void>
  saveCheckpoint(path?: string): Promise<{ path: string, step: number, bytes: number }>
  /** resolves when something asked the daemon to shut down (control socket) */
  shutdownRequested(): Promise<void>
  /**
   * inbound input refused, by reason: job-protocol and state-sync requests ('job-*', 'state-*'),
   * and the job's gradient and membership messages (see JobSession.rejectionCounts)
   */
  rejectionCounts(): Record<string, number>
}

const CHECKPOINT_DIR = 'checkpoint'
/** a digest question for a step this peer has not reached waits this long at most */
const DIGEST_WAIT_MS = 25_000

export async function createPeerDaemon(options: PeerDaemonOptions): Promise<PeerDaemon> {
  const { config, log } = options
  const privateKey = await loadOrCreatePeerKey(config.dataDir)
  const psk = options.psk ?? (config.pskFile !== undefined ? await readPsk(config.pskFile) : undefined)
  const bootstrapAddrs: Multiaddr[] = config.bootstrap.map((a) => parseMultiaddr(a, 'bootstrap address'))
  const traffic = createTrafficMeter()
  const node = await createPeerNode({
    privateKey,
    listen: config.listen,
    bootstrap: config.bootstrap,
    psk,
    allowlist: config.allowlist,
    logger: log,
    metrics: traffic.metricsFactory
  })
  const peerId = node.peerId.toString()
  /** job-protocol and state-sync requests refused, counted and logged without flooding */
  const requestRejections = createRejectionLog(log)
  const checkpointDir = join(config.dataDir, CHECKPOINT_DIR)
  let session: JobSession | undefined
  let stateSync: StateSyncServer | undefined
  let control: ControlServer | undefined
  let joinAbort = new AbortController()
  let started = false
  let stopping: Promise<void> | undefined
  const shutdown = Promise.withResolvers<void>()
  let jobWaiters: Array<(r: JobResult | undefined) => void> = []

  const events: JobRunnerEvents = {
    ...options.events,
    onFinished: (result) => {
      options.events?.onFinished?.(result)
      const waiters = jobWaiters
      jobWaiters = []
      for (const w of waiters) w(result)
      const snapshot = session?.runner()?.currentSnapshot()
      if (snapshot !== undefined) persist(snapshot).catch(() => {})
    },
    onFailed: (error) => {
      options.events?.onFailed?.(error)
      const waiters = jobWaiters
      jobWaiters = []
      for (const w of waiters) w(undefined)
    },
    onEvicted: () => {
      options.events?.onEvicted?.(0)
      void rejoin()
    },
    onCheckpoint: async (snapshot) => {
      await persist(snapshot)
      await options.events?.onCheckpoint?.(snapshot)
    }
  }

  // one checkpoint write at a time; stop() waits for the last one
  let persisting: Promise<unknown> = Promise.resolve()
  const persist = (snapshot: JobSnapshot, dir = checkpointDir): Promise<{ path: string, bytes: number }> => {
    const write = persisting.then(async () => {
      const path = await writeCheckpoint(dir, toTrainingSnapshot(snapshot))
      return { path, bytes: (await stat(path)).size }
    })
    persisting = write.catch((error: unknown) => {
      log.error({ err: error, dir }, 'could not write checkpoint')
    })
    return write
  }

  const openSession = async (jobId: string, jobConfig: JobConfig, host: boolean, snapshot?: JobSnapshot): Promise<JobSession> => {
    const s = createJobSession({
      node,
      jobId,
      config: jobConfig,
      log: log.child({ job: jobId }),
      computeThreads: config.computeThreads,
      host,
      snapshot,
      selfNames: options.name !== undefined ? [options.name] : [],
      events,
      faults: options.faults,
      exchangeMode: options.exchangeMode,
      traffic,
      loadDatasets: options.loadDatasets
    })
    session = s
    try {
      await s.start()
    } catch (error) {
      // a job that cannot start (e.g. an unknown model) must not stay as the daemon's job
      if (session === s) session = undefined
      await s.stop().catch(() => {})
      throw error
    }
    return s
  }

  const hostJob = async (jobConfig: JobConfig, snapshot?: JobSnapshot): Promise<string> => {
    const jobId = jobConfig.id ?? `job-${randomBytes(4).toString('hex')}`
    const withId = { ...jobConfig, id: jobId }
    await openSession(jobId, withId, true, snapshot)
    log.info({ job: jobId, model: withId.model, dataset: withId.dataset, minPeers: withId.minPeers }, snapshot === undefined ? 'hosting job' : 'resumed job from checkpoint')
    return jobId
  }

  /** Find the job through a bootstrap peer, get admitted by its coordinator, fetch the state. */
  const joinThroughBootstrap = async (signal: AbortSignal): Promise<void> => {
    let delay = 500
    while (!signal.aborted) {
      try {
        const info = await askForJob(signal)
        await joinJob(info, signal)
        return
      } catch (error) {
        if (signal.aborted) return
        log.warn({ err: (error as Error).message, retryInMs: delay }, closedByPeer(error) ? `could not join a job yet: ${PEER_CLOSED_HINT}; retrying` : 'could not join a job yet; retrying')
        await session?.stop().catch(() => {})
        session = undefined
        await new Promise((resolve) => setTimeout(resolve, delay))
        delay = Math.min(10_000, delay * 2)
      }
    }
  }

  /** Evicted (e.g. after a stall or a cut link): leave the old session and join again through the members we know. */
  const rejoin = async (): Promise<void> => {
    const old = session
    if (old === undefined) return
    const known = [...old.sightings.entries()].filter(([id]) => id !== peerId).map(([id, s]) => ({ id, addrs: s.addrs }))
    const members = old.runner()?.membership().membersAt(old.runner()?.progress().step ?? 0) ?? []
    rejoinTargets = [...known.filter((k) => members.includes(k.id)), ...known.filter((k) => !members.includes(k.id))]
      .flatMap((k) => k.addrs.map((a) => parseMultiaddr(a, 'member address')))
    await old.stop().catch(() => {})
    session = undefined
    joinAbort.abort()
    joinAbort = new AbortController()
    void joinThroughBootstrap(joinAbort.signal)
  }
  let rejoinTargets: Multiaddr[] = []

  const askForJob = async (signal: AbortSignal): Promise<JobInfo> => {
    let lastError: unknown
    for (const address of [...rejoinTargets, ...bootstrapAddrs]) {
      try {
        return await requestJson(node.libp2p, address, JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema, { signal })
      } catch (error) {
        lastError = error
      }
    }
    throw lastError ?? new Error('no bootstrap peer to ask for the job')
  }

  const joinJob = async (info: JobInfo, signal: AbortSignal): Promise<void> => {
    const jobConfig = parseJobConfig(info.config, `job config from peer ${info.coordinator.peerId}`)
    const coordinator = peerIdFromString(info.coordinator.peerId)
    if (info.coordinator.addrs.length > 0) {
      await node.libp2p.peerStore.merge(coordinator, { multiaddrs: info.coordinator.addrs.map((a) => parseMultiaddr(a, 'coordinator address')) })
    }
    const s = await openSession(info.jobId, jobConfig, false)
    const reply = await requestJson(node.libp2p, coordinator, JOB_PROTOCOL, { v: 1, type: 'join', jobId: info.jobId, addrs: node.dialableAddrs() }, JoinReplySchema, { signal, timeoutMs: 30_000 })
    log.info({ job: info.jobId, effectiveStep: reply.effectiveStep, coordinator: info.coordinator.peerId }, 'admitted to job: fetching its state')
    const raw = await fetchSnapshot(node.libp2p, coordinator, { jobId: info.jobId, minStep: reply.effectiveStep }, { signal })
    const snapshot = fromTrainingSnapshot(raw, `peer ${info.coordinator.peerId}`)
    s.adoptMembership(reply.membership, reply.addresses)
    s.startFromSnapshot(snapshot)
    s.adoptMembership(reply.membership)
    log.info({ job: info.jobId, step: snapshot.step, epoch: snapshot.epoch }, 'joined job')
  }

  const daemon: PeerDaemon = {
    peerId,
    startedAt: Date.now(),
    addresses: () => node.dialableAddrs(),
    node: () => node,
    session: () => session,
    async start() {
      if (started) return
      started = true
      await node.start()
      await handleJsonRequests(node.libp2p, JOB_PROTOCOL, JobRequestSchema, async (request, remote) => {
        const s = session
        if (s === undefined) throw new Error('this peer runs no job')
        if (request.type === 'info') return s.info()
        if (request.jobId !== s.jobId) throw new Error(`this peer runs job ${s.jobId}, not ${request.jobId}`)
        if (request.type === 'join') return s.admit(remote.toString(), request.addrs)
        if (request.type === 'digest') return await s.digestFor(request.step, AbortSignal.timeout(DIGEST_WAIT_MS))
        s.memberLeaving(remote.toString(), request.effectiveStep)
        return { membership: s.info().membership }
      }, {
        onError: (error) => log.debug({ err: error }, 'job request failed'),
        onRejected: (reason, remote, message) => requestRejections.reject(`job-${reason}`, { from: remote.toString() }, `job request: ${message}`)
      })
      stateSync = await registerStateSyncServer(node.libp2p, {
        getSnapshot: async (request) => {
          const s = session
          if (s === undefined || s.jobId !== request.jobId) throw new StateSyncRefusedError('unknown-job', `this peer does not run job ${request.jobId}`)
          try {
            return toTrainingSnapshot(await s.snapshotFor(request.minStep ?? 0, AbortSignal.timeout(120_000)))
          } catch (error) {
            throw new StateSyncRefusedError('not-ready', (error as Error).message)
          }
        },
        onRejected: (reason, remote, message) => requestRejections.reject(`state-${reason}`, { from: remote.toString() }, `state-sync request: ${message}`)
      })
      if (options.controlSocket !== false) {
        control = createControlServer({ socketPath: config.socketPath, handlers: createControlHandlers(daemon, () => shutdown.resolve()), logger: log })
        await control.start()
      }
      if (options.job !== undefined) {
        await hostJob(options.job)
      } else if (bootstrapAddrs.length > 0) {
        void joinThroughBootstrap(joinAbort.signal)
      } else {
        const saved = await readCheckpoint(checkpointDir)
        if (saved !== undefined) {
          const snapshot = fromTrainingSnapshot(saved, `checkpoint in ${checkpointDir}`)
          await hostJob(snapshot.jobConfig, snapshot)
        }
      }
    },
    async stop() {
      if (!started) return
      stopping ??= (async () => {
        joinAbort.abort()
        const s = session
        if (s !== undefined) {
          await s.stop({ leave: true })
          // after the stop: the step in progress was finished first
          const snapshot = s.runner()?.currentSnapshot()
          if (snapshot !== undefined) await persist(snapshot).catch(() => {})
        }
        await persisting
        await control?.stop()
        await stateSync?.stop()
        await node.stop()
        for (const w of jobWaiters) w(undefined)
        jobWaiters = []
        shutdown.resolve()
      })()
      await stopping
    },
    async submitJob(jobConfig: JobConfig): Promise<string> {
      const current = session?.runner()?.state()
      if (session !== undefined && current !== 'finished' && current !== 'failed') {
        throw new Error(`job ${session.jobId} is ${current ?? 'starting'}: stop it first with 'p2pmld job stop'`)
      }
      joinAbort.abort()
      joinAbort = new AbortController()
      await session?.stop()
      return hostJob(jobConfig)
    },
    async stopJob() {
      await session?.runner()?.stop()
    },
    jobDone(): Promise<JobResult | undefined> {
      const result = session?.runner()?.result()
      if (result !== undefined) return Promise.resolve(result)
      return new Promise((resolve) => jobWaiters.push(resolve))
    },
    async settleAfterJob({ minMs = 2_000, maxMs = 60_000 } = {}) {
      const started = Date.now()
      await new Promise((resolve) => setTimeout(resolve, minMs))
      while ((stateSync?.active ?? 0) > 0 && Date.now() - started < maxMs) {
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    },
    async saveCheckpoint(path?: string) {
      const runner = session?.runner()
      if (runner === undefined) throw new Error('no job state to checkpoint')
      const snapshot = runner.currentSnapshot()
      const written = await persist(snapshot, path ?? checkpointDir)
      return { path: written.path, step: snapshot.step, bytes: written.bytes }
    },
    shutdownRequested: () => shutdown.promise,
    rejectionCounts() {
      const counts: Record<string, number> = { ...requestRejections.counts() }
      for (const [reason, n] of Object.entries(session?.rejectionCounts() ?? {})) counts[reason] = (counts[reason] ?? 0) + n
      return counts
    }
  }
  return daemon
}

async function readPsk(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path)
  } catch (error) {
    throw new Error(`cannot read the pre-shared key file ${path}: ${(error as Error).message}`)
  }
}
