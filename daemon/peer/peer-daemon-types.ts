/**
 * What a peer daemon is given (PeerDaemonOptions) and what it offers the control socket, the
 * CLI, the demo and tests (PeerDaemon); created by createPeerDaemon (peer-daemon.ts).
 */
import type { DaemonConfig } from '../../config/daemon-config.js'
import type { JobConfig } from '../../config/job-config.js'
import type { JobDatasetLoader } from '../../ml/data/job-datasets.js'
import type { ExchangeMode, FaultInjection } from '../../protocols/gradient-exchange/index.js'
import type { PeerNode } from '../../protocols/node/index.js'
import type { WrittenExport } from '../checkpoint/index.js'
import type { JobResult } from '../job/job-runner.js'
import type { Logger } from '../logger.js'
import type { PrometheusMetrics } from '../metrics/prometheus.js'
import type { RunReport } from '../report/report-schema.js'
import type { WrittenReport } from '../report/write-report.js'
import type { JobSession, JobSessionEvents } from './job-session.js'

export interface PeerDaemonOptions {
  readonly config: DaemonConfig
  readonly log: Logger
  /** host this job from the start */
  readonly job?: JobConfig
  /** serve the control socket (default true) */
  readonly controlSocket?: boolean
  /** a name the demo (or a test) gives this peer: a job's test-only attack runs on the peers it names this way only */
  readonly name?: string
  readonly events?: JobSessionEvents
  /** test-only network faults on inbound gradients */
  readonly faults?: FaultInjection
  /** the private-network key itself (instead of config.pskFile) */
  readonly psk?: Uint8Array
  /** how gradients travel (default: direct streams) */
  readonly exchangeMode?: ExchangeMode
  /** where job datasets come from (default: loaded per job; peers in one process can share a cache) */
  readonly loadDatasets?: JobDatasetLoader
  /** while idle (no job, or a finished one), join a job a connected peer runs (default false; `p2pmld start` turns it on) */
  readonly autoJoin?: boolean
  /** a job ended and its run report was written (default: <data-dir>/reports) */
  readonly onReport?: (written: WrittenReport, report: RunReport) => void
  /**
   * a line for people about what the daemon does with the job in its data dir when it starts:
   * asking the members it knew, re-joining their job, resuming it from the checkpoint (the JSON
   * log has the details; `p2pmld start` prints these)
   */
  readonly onNotice?: (text: string) => void
  /**
   * start() has the peer listening and the control socket (and metrics) up, and goes on to the
   * job: hosting it (which can wait on a broker that cannot be reached yet) or joining one.
   * `p2pmld start` prints the daemon's id and addresses here, not after the job's start
   */
  readonly onListening?: () => void
  /** where job-end reports go (default <data-dir>/reports); null: write none */
  readonly reportsDir?: string | null
  /** the only job to join: through bootstrap peers, the broker or auto-join (default: the first one that answers) */
  readonly joinJobId?: string
  /**
   * evicted from its job: stop re-joining once no member has answered for the job for this long
   * (ms); jobDone() then resolves undefined and jobFailure() says why (default: re-join for ever)
   */
  readonly rejoinGiveUpMs?: number
  /**
   * started with --bootstrap: stop trying to join once no bootstrap peer (nor the broker) could be
   * reached for this long (ms); jobDone() then resolves undefined and jobFailure() says why. A peer
   * that answers it runs no job yet counts as reached (it may get a `job submit`). Default: try for ever
   */
  readonly joinGiveUpMs?: number
  /**
   * the process that ends when this daemon stops (`p2pmld start` passes its own): the reply to the
   * control socket's `shutdown` names it, so `p2pmld stop` returns once it has exited
   */
  readonly exitingProcessId?: number
}

export interface PeerDaemon {
  start(): Promise<void>
  /**
   * Stops everything; idempotent. By default a training member first finishes the step in
   * progress (bounded: see JobRunner.stop) and tells the others it leaves; `leave: false` skips
   * both, for members that all stop at once (the demo's Ctrl-C), where no step can finish.
   */
  stop(options?: { leave?: boolean }): Promise<void>
  readonly peerId: string
  readonly startedAt: number
  addresses(): string[]
  node(): PeerNode
  session(): JobSession | undefined
  /** joining (or re-joining) a job: asking for admission or fetching its state, between sessions too */
  joining(): boolean
  /** where that join stands, in words (JobJoiner.stage) */
  joinStage(): string | undefined
  submitJob(config: JobConfig): Promise<string>
  stopJob(): Promise<void>
  /** resolves with the result when the current (or next) job finishes; undefined: it failed here (see jobFailure), was stopped (stopJob), or the daemon stopped */
  jobDone(): Promise<JobResult | undefined>
  /** why the last job did not finish on this daemon: it failed, or, evicted, the daemon gave up re-joining it; undefined otherwise */
  jobFailure(): string | undefined
  /**
   * the job its checkpoint holds had finished before this start: the daemon started idle and runs
   * nothing of it again (no second end, no second report). `members`: the other members it knew,
   * which it dials, so that auto-join takes up the job they run now (0: the job was its own)
   */
  finishedBeforeStart(): { readonly jobId: string, readonly step: number, readonly members: number } | undefined
  /**
   * whether start() hosts PeerDaemonOptions.job as a new job; false when that job was the one in
   * the data dir's checkpoint and the daemon went on from it instead (or was given none)
   */
  hostsGivenJob(): boolean
  /**
   * After the job finished: keep serving for a moment (minMs, or until every other member of the
   * last step announced it finished), so members still agreeing on the final state can fetch it,
   * and until state transfers in progress end (at most maxMs).
   */
  settleAfterJob(options?: { minMs?: number, maxMs?: number }): Promise<void>
  /** the Prometheus endpoint (with config.metricsPort), once started */
  metrics(): PrometheusMetrics | undefined
  saveCheckpoint(path?: string): Promise<{ path: string, step: number, bytes: number }>
  /** write the job's current parameters as a forward ONNX model at `path` */
  exportModel(path: string): Promise<WrittenExport & { step: number }>
  /** the run report of the current job as this peer sees it now; undefined without a job */
  runReport(source?: RunReport['source']): RunReport | undefined
  /** resolves when something asked the daemon to shut down (control socket) */
  shutdownRequested(): Promise<void>
  /**
   * inbound input refused, by reason: job-protocol and state-sync requests ('job-*', 'state-*'),
   * and the job's gradient and membership messages (see JobSession.rejectionCounts); refusals
   * the protocol expects are in droppedCounts instead
   */
  rejectionCounts(): Record<string, number>
  /** inbound input refused as the protocol expects, by reason (a job request to a peer still joining, an async job's stale gradient) */
  droppedCounts(): Record<string, number>
}
