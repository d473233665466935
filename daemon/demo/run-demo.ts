/**
 * `p2pmld demo`: several peer daemons in this process on 127.0.0.1, real libp2p over real TCP,
 * training the bundled MNIST end to end. The first hosts the job; the others bootstrap from it.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_AMQP_URL, type DaemonConfig } from '../../config/daemon-config.js'
import { parseJobConfig, type JobConfig } from '../../config/job-config.js'
import type { JobResult, JobRunnerEvents } from '../job/job-runner.js'
import type { Logger } from '../logger.js'
import type { StageSummary } from '../metrics/stage-metrics.js'
import { createPeerDaemon, type PeerDaemon } from '../peer/peer-daemon.js'
import { sumCounts } from '../peer/rejection-log.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { writeRunReport, type WrittenReport } from '../report/write-report.js'
import { probeBroker } from '../../protocols/amqp/index.js'
import type { FaultInjection } from '../../protocols/gradient-exchange/index.js'

export interface DemoOptions {
  readonly peers: number
  readonly job: JobConfig
  readonly log: Logger
  /** ORT threads per peer (default: 2 cores shared by all peers -> 1) */
  readonly computeThreads?: number
  /** events of the first peer (progress display) */
  readonly events?: JobRunnerEvents
  readonly faults?: FaultInjection
  /** aborted: every peer stops at once, whatever its state (start-up included); the result then holds no finished peer, or runDemo throws the abort reason if it came before the peers started */
  readonly signal?: AbortSignal
  /** keep the data directories (default: removed) */
  readonly keepDataDirs?: boolean
  /** write peer-0's run report here (JSON + HTML); absent: none */
  readonly reportDir?: string
  /** the broker of jobs with transport amqp/auto (default RabbitMQ on 127.0.0.1:5672) */
  readonly amqpUrl?: string
}

export interface DemoPeerResult {
  readonly name: string
  readonly peerId: string
  readonly result: JobResult | undefined
  /** why the job did not finish on this peer (it failed, e.g. diverged); undefined when it finished or was stopped */
  readonly failure: string | undefined
}

export interface DemoResult {
  readonly peers: DemoPeerResult[]
  readonly wallMs: number
  /** every finished peer ended with bit-identical parameters */
  readonly identicalParameters: boolean
  readonly stages: StageSummary[]
  readonly bytesSentPerPeer: number[]
  readonly rejected: number
  /** rejected inbound messages of all peers, by reason */
  readonly rejectedByReason: Record<string, number>
  /** inbound messages of all peers dropped as the protocol expects (an async job's stale gradients), by reason */
  readonly droppedByReason: Record<string, number>
  /** each peer's data directory (checkpoints); only still there with keepDataDirs */
  readonly dataDirs: string[]
  /** peer-0's run report, when reportDir was given */
  readonly report?: WrittenReport
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = performance.now()
  // over the broker alone the peers would retry an unreachable broker for ever: say so at once
  // (auto trains over libp2p without it and warns)
  if (options.job.transport === 'amqp') {
    await probeBroker(options.amqpUrl ?? DEFAULT_AMQP_URL).catch((error: unknown) => {
      const refused = /ACCESS-REFUSED|403/.test((error as Error).message)
      throw new Error(`${(error as Error).message}: ${refused ? 'check the user and password in --amqp-url / P2PMLD_AMQP_URL' : 'start RabbitMQ (e.g. rabbitmq-server -detached) or name it with --amqp-url / P2PMLD_AMQP_URL'}`)
    })
  }
  const root = await mkdtemp(join(tmpdir(), 'p2pmld-demo-'))
  const daemons: PeerDaemon[] = []
  const threads = options.computeThreads ?? 1
  // the peers share one process: load the data set once for all of them
  const loadDatasets = createCachedDatasetLoader()
  // re-validated: the peer count must suit the aggregation rule's f
  // named, so peers joining through a shared broker find this demo's job and no other
  const job = parseJobConfig({ ...options.job, minPeers: options.peers, id: options.job.id ?? `demo-${randomBytes(4).toString('hex')}` }, 'demo job')
  const overBroker = job.transport === 'amqp'
  const configFor = (i: number, bootstrap: string[]): DaemonConfig => ({
    dataDir: join(root, `peer-${i}`),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    // over the broker only: peers find the job there, not through a libp2p bootstrap peer
    bootstrap: overBroker ? [] : bootstrap,
    socketPath: join(root, `peer-${i}`, 'p2pmld.sock'),
    logLevel: 'warn',
    computeThreads: threads,
    ...(job.transport !== 'libp2p' ? { amqpUrl: options.amqpUrl ?? DEFAULT_AMQP_URL } : {})
  })
  // Ctrl-C (options.signal) stops every peer in whatever state it is, start-up included
  const aborted = (): boolean => options.signal?.aborted === true
  // all peers stop at once: none waits to finish a step the others will not
  const onAbort = (): void => { for (const d of daemons) void d.stop({ leave: false }).catch(() => {}) }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    options.signal?.throwIfAborted()
    const host = await createPeerDaemon({
      config: configFor(0, []),
      log: options.log.child({ peer: 'peer-0' }),
      job,
      controlSocket: false,
      name: 'peer-0',
      events: options.events,
      faults: options.faults,
      loadDatasets,
      // the demo's data dirs are temporary: peer-0's report goes to options.reportDir below
      reportsDir: null
    })
    daemons.push(host)
    if (aborted()) onAbort()
    await host.start()
    const bootstrap = host.addresses().filter((a) => a.includes('/tcp/'))
    for (let i = 1; i < options.peers && !aborted(); i++) {
      const peer = await createPeerDaemon({
        config: configFor(i, bootstrap),
        log: options.log.child({ peer: `peer-${i}` }),
        controlSocket: false,
        name: `peer-${i}`,
        faults: options.faults,
        loadDatasets,
        reportsDir: null,
        joinJobId: job.id
      })
      daemons.push(peer)
      if (aborted()) onAbort()
      await peer.start()
    }
    // a stopped daemon's jobDone() resolves (undefined: its job did not finish)
    const results = await Promise.all(daemons.map((d) => d.jobDone()))
    const finished = results.filter((r): r is JobResult => r !== undefined)
    const digests = new Set(finished.map((r) => r.digest))
    const hostReport = options.reportDir === undefined ? undefined : host.runReport('demo')
    return {
      peers: daemons.map((d, i) => ({ name: `peer-${i}`, peerId: d.peerId, result: results[i], failure: results[i] === undefined ? d.jobFailure() : undefined })),
      wallMs: performance.now() - started,
      identicalParameters: finished.length === daemons.length && digests.size === 1,
      stages: host.session()?.runner()?.stages.summary() ?? [],
      bytesSentPerPeer: daemons.map((d) => d.session()?.networkCounters().bytesSent ?? 0),
      rejected: daemons.reduce((n, d) => n + Object.values(d.session()?.rejectionCounts() ?? {}).reduce((a, b) => a + b, 0), 0),
      rejectedByReason: sumCounts(...daemons.map((d) => d.session()?.rejectionCounts() ?? {})),
      droppedByReason: sumCounts(...daemons.map((d) => d.session()?.droppedCounts() ?? {})),
      dataDirs: daemons.map((_, i) => configFor(i, []).dataDir),
      report: hostReport === undefined || options.reportDir === undefined ? undefined : await writeRunReport(options.reportDir, hostReport)
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    await Promise.all(daemons.map((d) => d.stop().catch(() => {})))
    if (options.keepDataDirs !== true) await rm(root, { recursive: true, force: true })
  }
}
