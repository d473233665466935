/** An in-memory daemon behind the control server: the server, not this, is under test. */
import { parseJobConfig, type JobConfig } from '../../config/job-config.js'
import { buildRunReport } from '../../daemon/report/build-report.js'
import {
  invalidStateError,
  jobNotFoundError,
  noJobRunningError,
  type ControlHandlers,
  type JobControlParams,
  type JobState,
  type MetricsResult,
  type PeerInfo
} from '../../daemon/control/methods.js'

export interface MemoryDaemon extends ControlHandlers {
  readonly submitted: JobConfig[]
  shutdownCalls: number
  /** makes the next status() wait this long (a slow handler) */
  statusDelayMs: number
  /** makes metrics() throw a plain Error (an internal failure) */
  failMetrics: boolean
}

export const PEER_ID = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'

export function createMemoryDaemon(): MemoryDaemon {
  let jobId: string | null = null
  let state: JobState = 'idle'
  let step = 0
  let jobCounter = 0
  const peers: PeerInfo[] = [
    { id: PEER_ID, addresses: ['/ip4/127.0.0.1/tcp/4001'], connected: true, member: true, lastSeen: 1_700_000_000_000, suspected: false },
    { id: '12D3KooWBadPeerXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX', addresses: [], connected: false, member: false, lastSeen: null, suspected: true }
  ]

  const requireJob = (params: JobControlParams): string => {
    if (jobId === null) throw noJobRunningError()
    if (params.jobId !== undefined && params.jobId !== jobId) throw jobNotFoundError(params.jobId, jobId)
    return jobId
  }

  const daemon: MemoryDaemon = {
    submitted: [],
    shutdownCalls: 0,
    statusDelayMs: 0,
    failMetrics: false,
    async status() {
      if (daemon.statusDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, daemon.statusDelayMs))
      step++
      return {
        peerId: PEER_ID,
        addresses: ['/ip4/127.0.0.1/tcp/4001'],
        jobId,
        state,
        step,
        epoch: Math.floor(step / 100),
        epochs: jobId === null ? null : 10,
        stepInEpoch: jobId === null ? null : step % 100,
        stepsInEpoch: jobId === null ? null : 100,
        samplesPerSecond: null,
        etaMs: null,
        earlyStopping: null,
        loss: jobId === null ? null : 0.25,
        accuracy: jobId === null ? null : 0.9,
        testAccuracy: null,
        stopReason: null,
        learningRate: jobId === null ? null : 0.05,
        liveMembers: 1,
        waiting: null,
        uptimeMs: 1234
      }
    },
    peers: () => ({ peers }),
    submitJob(config) {
      if (jobId !== null && (state === 'training' || state === 'paused')) throw invalidStateError('replace', jobId, state)
      daemon.submitted.push(config)
      jobId = config.id ?? `job-${++jobCounter}`
      state = 'training'
      return { jobId, state }
    },
    stopJob(params) {
      const id = requireJob(params)
      // as a daemon's: this member left the job before its end
      state = 'stopped'
      return { jobId: id, state }
    },
    pauseJob(params) {
      const id = requireJob(params)
      if (state !== 'training') throw invalidStateError('pause', id, state)
      state = 'paused'
      return { jobId: id, state }
    },
    resumeJob(params) {
      const id = requireJob(params)
      if (state !== 'paused') throw invalidStateError('resume', id, state)
      state = 'training'
      return { jobId: id, state }
    },
    metrics(): MetricsResult {
      if (daemon.failMetrics) throw new Error('stage recorder exploded')
      return {
        jobId,
        step,
        stages: [
          { stage: 'compute', count: 10, totalMs: 500, meanMs: 50, medianMs: 48, p95Ms: 75, maxMs: 91, cpuPercent: 180, rssMiB: 210 },
          { stage: 'aggregate', count: 10, totalMs: 2, meanMs: 0.2, medianMs: 0.2, p95Ms: 0.4, maxMs: 0.5, cpuPercent: null, rssMiB: 211 }
        ],
        network: { bytesSent: 123456, bytesReceived: 654321, messagesSent: 10, messagesReceived: 30 },
        contributors: { last: 3, mean: 2.9, min: 2, max: 3 },
        rssMiB: 211,
        uptimeMs: 1234,
        refusedConnections: {},
        rejectedInputs: {},
        droppedInputs: {}
      }
    },
    saveCheckpoint(params) {
      if (jobId === null) throw noJobRunningError()
      return { path: params.path ?? `/tmp/checkpoints/${jobId}-${step}.ckpt`, step, bytes: 4096 }
    },
    exportModel(params) {
      if (jobId === null) throw noJobRunningError()
      return { path: params.path, step, bytes: 2048, format: params.format }
    },
    report() {
      if (jobId === null) throw noJobRunningError()
      return buildRunReport({ source: 'daemon', peerId: PEER_ID, jobId, config: parseJobConfig({ id: jobId }, 'memory job'), state, progress: { step, epoch: 0, lr: 0.05 }, history: [], stages: [] })
    },
    shutdown() {
      daemon.shutdownCalls++
      return { stopping: true as const }
    }
  }
  return daemon
}
