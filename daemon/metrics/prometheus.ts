/**
 * Prometheus metrics of one daemon, served over HTTP (`GET /metrics`, text exposition format
 * 0.0.4) with prom-client. Off unless `--metrics-port` is given. One `Registry` per daemon (no
 * global registry), so several daemons in one process (tests, the demo) keep theirs apart.
 *
 * Sources: the job's step reports, epoch records and membership changes (events), its stage
 * recorder (every compute/compress/send/receive/aggregate/update/validate timing), and at scrape
 * time the runner's progress, the node's traffic per connection and the session's rejections.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { PeerNode } from '../../protocols/node/index.js'
import { timeLeftAt } from '../job/step-pace.js'
import { RUNNER_STATES } from '../job/job-types.js'
import type { Logger } from '../logger.js'
import type { JobSession, JobSessionEvents } from '../peer/job-session.js'
import type { StageRecorder } from './stage-metrics.js'

/**
 * What other components count into the metrics, through this interface only (the node's
 * connection gater counts refused connections here).
 */
export interface MetricsSink {
  /** an inbound or outbound connection was refused; `reason` e.g. 'allowlist', 'psk', 'limit' */
  connectionRefused(reason: string): void
}

export interface PrometheusMetricsOptions {
  /** TCP port (0: any free one; see address()) */
  readonly port: number
  /** default 0.0.0.0 */
  readonly host?: string
  readonly log: Logger
  /** read at scrape time: the daemon's node (absent before it exists) and its current job */
  readonly node: () => PeerNode | undefined
  readonly session: () => JobSession | undefined
  /**
   * inbound messages rejected / dropped by design, by reason, read at scrape time: the daemon's
   * (its job session's and the job-protocol and state-sync requests it refused; default: the
   * session's alone)
   */
  rejectionCounts?(): Record<string, number>
  droppedCounts?(): Record<string, number>
  /** TCP bytes by remote peer id since the daemon started (closed connections included) */
  bytesByPeer?(): ReadonlyArray<{ peer: string, bytesSent: number, bytesReceived: number }>
}

export interface PrometheusMetrics {
  readonly registry: Registry
  /** hand these to the job session: they feed the step, loss, accuracy and membership metrics */
  readonly events: JobSessionEvents
  readonly sink: MetricsSink
  start(): Promise<void>
  stop(): Promise<void>
  /** where it listens, once started */
  address(): { host: string, port: number } | undefined
}

/** step and stage durations: 1 ms to ~66 s (QSGD of a small model to a VGG-sized step) */
const DURATION_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 66]

export function createPrometheusMetrics(options: PrometheusMetricsOptions): PrometheusMetrics {
  const log = options.log.child({ component: 'metrics' })
  const registry = new Registry()
  const registers = [registry]
  const runner = (): ReturnType<JobSession['runner']> => options.session()?.runner()

  const stepSeconds = new Histogram({ name: 'p2pmld_step_duration_seconds', help: 'wall time of a training step on this peer (compute to update)', buckets: DURATION_BUCKETS_S, registers })
  const stageSeconds = new Histogram({ name: 'p2pmld_stage_duration_seconds', help: 'wall time of one training stage (Table I of the paper)', labelNames: ['stage'], buckets: DURATION_BUCKETS_S, registers })
  const steps = new Counter({ name: 'p2pmld_steps_total', help: 'training steps this peer completed', registers })
  const epochs = new Counter({ name: 'p2pmld_epochs_total', help: 'epochs this peer completed', registers })
  const membershipChanges = new Counter({ name: 'p2pmld_membership_changes_total', help: 'members that joined, left (announced) or were evicted', labelNames: ['kind'], registers })
  const evictions = new Counter({ name: 'p2pmld_evictions_total', help: 'members evicted for missing steps', registers })
  const refused = new Counter({ name: 'p2pmld_refused_connections_total', help: 'connections refused, by reason', labelNames: ['reason'], registers })

  /**
   * A gauge of the current job read at scrape time, labelled with the job id; absent while the
   * daemon runs no job or before the value exists (an unlabelled gauge would read 0 instead).
   */
  const jobGauge = (name: string, help: string, read: (r: NonNullable<ReturnType<typeof runner>>) => number | undefined): void => {
    new Gauge({
      name,
      help,
      labelNames: ['job'],
      registers,
      collect() {
        this.reset()
        const session = options.session()
        const r = session?.runner()
        const value = r === undefined ? undefined : read(r)
        if (session !== undefined && value !== undefined && Number.isFinite(value)) this.set({ job: session.jobId }, value)
      }
    })
  }
  jobGauge('p2pmld_step', 'the next global step this peer runs', (r) => r.progress().step)
  jobGauge('p2pmld_epoch', 'epochs completed', (r) => r.progress().epoch)
  jobGauge('p2pmld_membership_size', 'members of the job at the current step', (r) => r.membership().membersAt(r.progress().step).length)
  jobGauge('p2pmld_learning_rate', 'learning rate in force', (r) => r.progress().lr)
  jobGauge('p2pmld_training_loss', "this peer's batch loss at its last step", (r) => r.lastReport()?.loss)
  jobGauge('p2pmld_validation_loss', 'validation loss at the last epoch end', (r) => r.lastValidation()?.loss)
  jobGauge('p2pmld_validation_accuracy', 'validation accuracy (0-1) at the last epoch end', (r) => r.lastValidation()?.accuracy)
  // JobRunner.pace: while it steps only (a pause or a wait is no step's time)
  jobGauge('p2pmld_samples_per_second', "samples per second over this peer's recent steps, all members' samples (while training, once a few steps were timed)", (r) => r.pace()?.samplesPerSecond)
  jobGauge('p2pmld_time_left_seconds', 'seconds until the last epoch ends at that pace, every epoch run (early stopping may end the job sooner)', (r) => {
    const ms = timeLeftAt(r.pace(), r.lastReport(), r.config.epochs)
    return ms === undefined ? undefined : ms / 1000
  })
  jobGauge('p2pmld_test_accuracy', 'test accuracy (0-1) of the finished job', (r) => r.result()?.test.accuracy)
  // a state set (one sample per state, 1 for the current one): an alert on a job stuck waiting,
  // or a dashboard of paused peers, needs no other metric's absence to read it
  new Gauge({
    name: 'p2pmld_job_state',
    help: `the job's state on this peer: 1 for the current one of ${RUNNER_STATES.join(', ')} (waiting: for members, the start or a step's floor; syncing: fetching the job's state)`,
    labelNames: ['job', 'state'],
    registers,
    collect() {
      this.reset()
      const session = options.session()
      const current = session?.runner()?.state()
      if (session === undefined || current === undefined) return
      for (const state of RUNNER_STATES) this.set({ job: session.jobId, state }, state === current ? 1 : 0)
    }
  })
  // totals kept elsewhere (socket counters, the session's rejection log): copied at scrape time
  new Counter({
    name: 'p2pmld_rejected_messages_total',
    help: 'inbound messages rejected, by reason: malformed (wire, codec, ...), forged (unsigned, ...), duplicate; stale: a sync job\'s gradient for a step before the ones it collects, ahead: for a step past them (this peer lags); job-* and state-*: requests of those protocols',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const [reason, n] of Object.entries(options.rejectionCounts?.() ?? options.session()?.rejectionCounts() ?? {})) this.inc({ reason }, n)
    }
  })
  new Counter({
    name: 'p2pmld_dropped_messages_total',
    help: 'inbound messages dropped as the protocol expects, by reason: stale: an async job\'s gradient past maxStaleness, ahead: one too far ahead of this peer; job-refused: a job request while this daemon runs no job or is still joining',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const [reason, n] of Object.entries(options.droppedCounts?.() ?? options.session()?.droppedCounts() ?? {})) this.inc({ reason }, n)
    }
  })
  const bytesByPeer = (direction: 'bytesSent' | 'bytesReceived') => function (this: Counter<'peer'>): void {
    this.reset()
    for (const entry of options.bytesByPeer?.() ?? []) this.inc({ peer: entry.peer }, entry[direction])
  }
  new Counter({ name: 'p2pmld_sent_bytes_total', help: 'bytes written to TCP connections, by remote peer', labelNames: ['peer'], registers, collect: bytesByPeer('bytesSent') })
  new Counter({ name: 'p2pmld_received_bytes_total', help: 'bytes read from TCP connections, by remote peer', labelNames: ['peer'], registers, collect: bytesByPeer('bytesReceived') })


  let stages: { recorder: StageRecorder, unsubscribe: () => void } | undefined
  const followStages = (): void => {
    const recorder = runner()?.stages
    if (recorder === undefined || stages?.recorder === recorder) return
    stages?.unsubscribe()
    // with the calls recorded before: a runner is followed from its first step report, after
    // that step's stages (the compute count read one below steps_total)
    stages = { recorder, unsubscribe: recorder.onRecord((stage, wallMs) => stageSeconds.observe({ stage }, wallMs / 1000), true) }
  }

  let server: Server | undefined
  let bound: { host: string, port: number } | undefined

  return {
    registry,
    sink: {
      connectionRefused(reason) { refused.inc({ reason }) }
    },
    events: {
      onStep(report) {
        followStages()
        steps.inc()
        stepSeconds.observe(report.stepMs / 1000)
      },
      onEpoch() {
        epochs.inc()
      },
      onMembershipChange(change) {
        membershipChanges.inc({ kind: change.kind })
        if (change.kind === 'evicted') evictions.inc()
      }
    },
    async start() {
      if (server !== undefined) return
      const s = createServer((request, response) => {
        const path = (request.url ?? '/').split('?')[0]
        if (path !== '/metrics') {
          response.writeHead(404, { 'content-type': 'text/plain' }).end('p2pmld serves Prometheus metrics at GET /metrics\n')
          return
        }
        // HEAD as GET without the body (HTTP probes and `curl -I` use it)
        if (request.method !== 'GET' && request.method !== 'HEAD') {
          response.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end(`p2pmld serves Prometheus metrics at GET /metrics, not ${request.method ?? 'this method'}\n`)
          return
        }
        followStages()
        registry.metrics().then(
          (text) => { response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text) },
          (error: unknown) => {
            log.warn({ err: error }, 'could not collect metrics')
            response.writeHead(500, { 'content-type': 'text/plain' }).end('could not collect metrics\n')
          })
      })
      const host = options.host ?? '0.0.0.0'
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(options.port, host, () => {
          s.off('error', reject)
          resolve()
        })
      }).catch((error: NodeJS.ErrnoException) => {
        throw new Error(error.code === 'EADDRINUSE'
          ? `cannot serve metrics on ${host}:${options.port}: the port is already in use: pick another --metrics-port (0 lets the system choose)`
          : `cannot serve metrics on ${host}:${options.port}: ${error.message}`)
      })
      server = s
      bound = { host, port: (s.address() as AddressInfo).port }
      log.info(bound, 'serving Prometheus metrics at /metrics')
    },
    async stop() {
      stages?.unsubscribe()
      stages = undefined
      const s = server
      server = undefined
      bound = undefined
      if (s === undefined) return
      s.closeAllConnections()
      await new Promise<void>((resolve) => s.close(() => resolve()))
    },
    address: () => bound
  }
}
