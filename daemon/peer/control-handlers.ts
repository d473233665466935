/** The daemon side of the control socket: each method reads or drives the PeerDaemon. */
import type { JobConfig } from '../../config/job-config.js'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  ControlMethodError, RPC_ERROR, invalidStateError, jobNotFoundError, noJobRunningError,
  type ControlHandlers, type JobControlParams, type JobState, type MetricsResult, type PeersResult, type StatusResult
} from '../control/index.js'
import { timeLeftAt } from '../job/step-pace.js'
import type { StepReport } from '../training/step-types.js'
import type { PeerDaemon } from './peer-daemon.js'

function jobState(daemon: PeerDaemon): JobState {
  const session = daemon.session()
  // between two tries of a (re-)join there is no session, but the daemon is not idle
  if (session === undefined) return daemon.joining() ? 'waiting' : 'idle'
  const state = session.runner()?.state()
  if (state === undefined || state === 'syncing') return 'waiting'
  // a runner stopped before the job's end has no result
  if (state === 'finished' && session.runner()?.result() === undefined) return 'stopped'
  // training that cannot go on until a peer joins (too few members for the rule's f), or until
  // a cut link returns (this side of a cut without the most senior member), says so
  if (state === 'training' && session.runner()?.waitingFor()?.stalled === true) return 'waiting'
  return state
}

/** a pause/resume the coordinator could not be asked for is a refusal the user can act on */
async function controlRequest<T>(ask: () => Promise<T>): Promise<T> {
  try {
    return await ask()
  } catch (error) {
    throw new ControlMethodError(RPC_ERROR.INVALID_STATE, `the job's coordinator did not answer: ${(error as Error).message}; try again`)
  }
}

/**
 * The control socket's methods on a peer daemon. `requestShutdown` starts the daemon's stop (after
 * the reply is sent); `exitingProcessId` is the process that ends with it, named in the reply.
 */
export function createControlHandlers(daemon: PeerDaemon, requestShutdown: () => void, exitingProcessId?: number): ControlHandlers {
  const requireJob = (params: JobControlParams) => {
    const session = daemon.session()
    if (session === undefined) throw noJobRunningError()
    if (params.jobId !== undefined && params.jobId !== session.jobId) throw jobNotFoundError(params.jobId, session.jobId)
    return session
  }

  return {
    status(): StatusResult {
      const session = daemon.session()
      const runner = session?.runner()
      const progress = runner?.progress()
      const report = runner?.lastReport()
      const validation = runner?.lastValidation()
      /** why the job does not step now: the runner's reason (none once it ended), else the join in progress, else what holds the session's start up (a broker it cannot reach) */
      const waitingReason = (): string | null => {
        if (runner !== undefined) return runner.state() === 'finished' || runner.state() === 'failed' ? null : runner.waitingFor()?.reason ?? null
        if (daemon.joining()) return `joining a job: ${daemon.joinStage() ?? 'reaching its members'}`
        return session?.startStage?.() ?? null
      }
      const state = jobState(daemon)
      // the epoch's steps as of the last step, while the job runs
      const position = report !== undefined && (state === 'training' || state === 'paused' || state === 'waiting') ? report : undefined
      // the pace only while it trains: a pause or a wait is no step's time
      const pace = state === 'training' && position !== undefined ? runner?.pace() : undefined
      return {
        peerId: daemon.peerId,
        addresses: daemon.addresses(),
        jobId: session?.jobId ?? null,
        state,
        step: progress?.step ?? 0,
        epoch: progress?.epoch ?? 0,
        epochs: runner?.config.epochs ?? null,
        stepInEpoch: position === undefined ? null : stepsDoneInEpoch(progress?.epoch ?? 0, position),
        stepsInEpoch: position?.stepsInEpoch ?? null,
        samplesPerSecond: pace?.samplesPerSecond ?? null,
        etaMs: runner === undefined ? null : timeLeftAt(pace, position, runner.config.epochs) ?? null,
        earlyStopping: runner === undefined ? null : runner.config.earlyStopping.patience > 0,
        loss: report !== undefined && Number.isFinite(report.loss) ? report.loss : null,
        // validation accuracy only (a peer that joined a finished job has the others' history)
        accuracy: validation?.accuracy ?? runner?.result()?.history.at(-1)?.validationAccuracy ?? null,
        testAccuracy: runner?.result()?.test.accuracy ?? null,
        stopReason: runner?.result()?.reason ?? null,
        learningRate: progress?.lr ?? null,
        // a member stopped by `job stop` left the job: it counts none (it showed the others')
        liveMembers: state === 'stopped' ? 0 : runner?.liveMembers() ?? 0,
        // a stopped runner's last wait is history
        waiting: waitingReason(),
        uptimeMs: Date.now() - daemon.startedAt
      }
    },

    async peers(): Promise<PeersResult> {
      const node = daemon.node().libp2p
      const session = daemon.session()
      const runner = session?.runner()
      const step = runner?.progress().step ?? 0
      const ids = new Set<string>(node.getPeers().map(String))
      for (const id of runner?.membership().membersAt(step) ?? []) ids.add(id)
      ids.delete(daemon.peerId)
      const missing = new Set(runner?.lastReport()?.missing ?? [])
      /** where a peer listens, as identify told this node (none known: undefined) */
      const listening = async (peerId: ReturnType<typeof peerIdFromString>): Promise<string[]> => {
        try {
          return (await node.peerStore.get(peerId)).addresses.map((a) => a.multiaddr.toString())
        } catch {
          return []
        }
      }
      const peers = await Promise.all([...ids].sort().map(async (id) => {
        const peerId = peerIdFromString(id)
        const connections = node.getConnections(peerId)
        const sighting = session?.sightings.get(id)
        // where it listens: as it announced in the job, else as identify said. An inbound
        // connection's remote address is its outbound source port (a trial read tcp/54710 for a
        // peer listening on tcp/40102), the last resort
        const announced = sighting !== undefined && sighting.addrs.length > 0 ? sighting.addrs : await listening(peerId)
        return {
          id,
          addresses: announced.length > 0 ? announced : connections.map((c) => c.remoteAddr.toString()),
          connected: connections.length > 0,
          member: runner?.membership().isMemberAt(id, step) ?? false,
          lastSeen: sighting?.lastSeen ?? null,
          suspected: missing.has(id)
        }
      }))
      return { peers }
    },

    async submitJob(config: JobConfig) {
      try {
        const jobId = await daemon.submitJob(config)
        return { jobId, state: jobState(daemon) }
      } catch (error) {
        throw new ControlMethodError(RPC_ERROR.JOB_REJECTED, (error as Error).message)
      }
    },

    async stopJob(params) {
      const session = requireJob(params)
      // a second stop said 'job J stopped' again, as if it stopped now
      if (jobState(daemon) === 'stopped') return { jobId: session.jobId, state: 'stopped' as const, unchanged: true }
      await daemon.stopJob()
      return { jobId: session.jobId, state: jobState(daemon) }
    },

    // job-wide: the coordinator decides the step every member pauses before (or resumes)
    async pauseJob(params) {
      const session = requireJob(params)
      const runner = session.runner()
      const state = jobState(daemon)
      const pausing = runner?.control().latest()?.action === 'pause'
      if (runner === undefined || pausing || (state !== 'training' && state !== 'waiting')) throw invalidStateError('pause', session.jobId, pausing ? 'paused' : state)
      const decision = await controlRequest(() => runner.pause())
      return { jobId: session.jobId, state: 'paused', effectiveStep: decision.step }
    },

    async resumeJob(params) {
      const session = requireJob(params)
      const runner = session.runner()
      const state = jobState(daemon)
      // a member that left (job stop while paused) keeps the pause as its last decision: it said
      // 'resumed ... (training)' and stayed stopped
      const ended = state === 'stopped' || state === 'finished' || state === 'failed'
      if (runner === undefined || ended || (state !== 'paused' && runner.control().latest()?.action !== 'pause')) throw invalidStateError('resume', session.jobId, state)
      const decision = await controlRequest(() => runner.resume())
      return { jobId: session.jobId, state: 'training', effectiveStep: decision.step }
    },

    metrics(): MetricsResult {
      const session = daemon.session()
      const runner = session?.runner()
      const counters = session?.networkCounters()
      return {
        jobId: session?.jobId ?? null,
        step: runner?.progress().step ?? 0,
        stages: runner?.stages.summary() ?? [],
        network: {
          bytesSent: counters?.bytesSent ?? 0,
          bytesReceived: counters?.bytesReceived ?? 0,
          messagesSent: counters?.messagesSent ?? 0,
          messagesReceived: counters?.messagesReceived ?? 0
        },
        contributors: runner?.contributorStats() ?? { last: 0, mean: 0, min: 0, max: 0 },
        rssMiB: process.memoryUsage.rss() / (1024 * 1024),
        uptimeMs: Date.now() - daemon.startedAt,
        refusedConnections: daemon.node().refusedConnections(),
        rejectedInputs: daemon.rejectionCounts(),
        droppedInputs: daemon.droppedCounts()
      }
    },

    async saveCheckpoint(params) {
      if (daemon.session()?.runner() === undefined) throw noJobRunningError()
      try {
        return await daemon.saveCheckpoint(params.path)
      } catch (error) {
        throw new ControlMethodError(RPC_ERROR.CHECKPOINT_FAILED, `checkpoint failed: ${(error as Error).message}`)
      }
    },

    async exportModel(params) {
      if (daemon.session()?.runner() === undefined) throw noJobRunningError()
      try {
        return { ...await daemon.exportModel(params.path), format: params.format }
      } catch (error) {
        throw new ControlMethodError(RPC_ERROR.EXPORT_FAILED, `export failed: ${(error as Error).message}`)
      }
    },

    report() {
      const report = daemon.runReport('daemon')
      if (report === undefined) throw noJobRunningError()
      return report
    },

    shutdown() {
      setImmediate(requestShutdown)
      return { stopping: true, ...(exitingProcessId !== undefined ? { pid: exitingProcessId } : {}) }
    }
  }
}

/**
 * Steps of epoch `epoch` (0-based, the one the job is in) done as of the last step's report: 0
 * when that step was the previous epoch's last (status read 'epoch 10 of 30, 100% (62/62 steps)'
 * before the tenth epoch's first step).
 */
export function stepsDoneInEpoch(epoch: number, last: Pick<StepReport, 'epoch' | 'stepInEpoch'>): number {
  return last.epoch === epoch ? last.stepInEpoch : 0
}
