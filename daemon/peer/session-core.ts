/**
 * What a job session is whatever carries its messages: the runner and its runtime, decoding and
 * handing over gradients (kept while a joining peer has no runner yet), the membership messages
 * every transport delivers (membership, leave, pause/resume decisions), gradient re-sends, the
 * clean leave at stop, and the JobSession methods that only read the runner. A transport
 * (job-session.ts over libp2p, amqp-job-session.ts over the broker) gives it a JobWire and adds
 * what is its own: discovery, heartbeats, addresses, connections.
 */
import type { z } from 'zod'
import { minimumPeersFor, type JobConfig } from '../../config/job-config.js'
import type { OffloadConfig } from '../../config/offload-config.js'
import { createCodec, type GradientCodec } from '../../ml/compress/index.js'
import type { JobDatasetLoader } from '../../ml/data/job-datasets.js'
import type { FaultInjection } from '../../protocols/gradient-exchange/index.js'
import {
  LeaveReplySchema, type ControlDecision, type JobControlAction, type JobInfo, type MembershipState
} from '../../protocols/job/job-protocol.js'
import type { GradientMessage } from '../../protocols/messages/index.js'
import { ExpectedRefusal } from '../../protocols/request/json-request.js'
import type { TrainingSnapshot } from '../../protocols/snapshot/index.js'
import { createJobRunner, type DigestAtStep, type JobRunner, type JobRunnerEvents, type JobSnapshot } from '../job/job-runner.js'
import { vouchesTo } from './vouching.js'
import { createAnnouncementHandler, type AnnouncementOutcome } from './announcement-handler.js'
import { createMembershipPull } from './membership-pull.js'
import type { Logger } from '../logger.js'
import { createJobRuntime, type JobRuntime } from '../training/job-runtime.js'
import { layoutFingerprint } from '../training/training-state.js'
import type { JobSession, JobSessionEvents, JoinedWith, PeerSighting } from './job-session.js'
import { createMembershipChangeTracker } from './membership-changes.js'
import { createInboundDecoder } from './inbound-gradient.js'
import { createEarlyInbox } from './early-inbox.js'
import { createRejectionLog, type RejectionLog } from './rejection-log.js'
import { createRunnerNetwork } from './runner-network.js'

/** how often the membership's version is checked for changes no step report shows */
const MEMBERSHIP_WATCH_MS = 500

/** How a session's messages leave this peer (libp2p streams and gossip, or the broker). */
export interface JobWire {
  /**
   * Sends a gradient to `recipients`; resolves with those it did not reach (to retry). The
   * payload is read before the first await (encoded into the wire format): the trainer reuses
   * its buffer a few steps later.
   */
  publishGradient(message: GradientMessage, recipients: readonly string[]): Promise<{ readonly missed: readonly string[] }>
  /** a message to every peer of the job (membership, control, leave, heartbeat) */
  broadcast(message: object): Promise<void>
  /** one request to one peer, its reply checked with `schema` */
  request<T>(peer: string, request: unknown, schema: z.ZodType<T>, options?: { timeoutMs?: number, signal?: AbortSignal }): Promise<T>
  /** the job's state as of `minStep` (or later) from `peer` */
  fetchSnapshot(peer: string, minStep: number, options?: { signal?: AbortSignal }): Promise<TrainingSnapshot>
  /**
   * `peer` is known gone and nothing since says it is back: over libp2p the last gradient sent to
   * it found its port refusing connections (its host is up, its process gone) and no connection
   * from it or send that reached it came after; over the broker its queue of this peer's
   * gradients went with its broker connection and no heartbeat came after. Absent: the transport
   * cannot tell (libp2p with a broker fallback)
   */
  refusing?(peer: string): boolean
}

/** What every job session is started with, whatever its transport. */
export interface SessionJobOptions {
  readonly jobId: string
  readonly config: JobConfig
  readonly log: Logger
  readonly computeThreads: number
  /** where gradients are computed (the daemon's `offload` setting; absent: in process) */
  readonly offload?: OffloadConfig
  readonly host: boolean
  readonly snapshot?: JobSnapshot
  /**
   * a host resuming `snapshot` because none of the members it knew runs the job (they restarted
   * too, or cannot be reached): the members the snapshot lists count toward minPeers once they
   * re-join (JobMembership.awaitStart)
   */
  readonly membersRestarting?: boolean
  readonly selfNames?: readonly string[]
  readonly events?: JobSessionEvents
  readonly faults?: FaultInjection
  readonly loadDatasets?: JobDatasetLoader
}

export interface SessionCoreOptions extends SessionJobOptions {
  readonly selfId: string
  /** where a peer can be dialed, for JobInfo (libp2p); absent: none (the broker needs no address) */
  readonly addressesOf?: (peerId: string) => string[]
  /** what a membership announcement carries besides the membership (libp2p: the address book) */
  readonly membershipExtras?: (membership: MembershipState) => object
}

/** The shared part of a session; the transport wraps it into a JobSession. */
export interface SessionCore extends Pick<JobSession,
  'jobId' | 'config' | 'rejections' | 'sightings' | 'startFromSnapshot' | 'runner' | 'info' | 'memberLeaving' |
  'decideControl' | 'snapshotFor' | 'digestFor' | 'announcedLeaves' | 'othersFinished' | 'runtimeInfo'> {
  readonly sightings: Map<string, PeerSighting>
  readonly rejections: RejectionLog
  readonly codec: GradientCodec
  /** model, data and gradient computer; then the runner starts for a host or a restored peer once `attach` gave the wire */
  startRuntime(onOffloadFallback?: (info: { index: number, error: string }) => void): Promise<JobRuntime>
  /** the transport the runner sends through; call before the runner starts */
  attach(wire: JobWire): void
  /** start the runner now if this peer hosts the job or resumes it from a snapshot */
  startIfOwned(): void
  /** number of parameters (0 before startRuntime) */
  parameterCount(): number
  /** a gradient that passed the transport's wire checks: decode and hand it to the runner */
  onGradient(message: GradientMessage, from: string): void
  /** `from` sent a gradient for `step` again (a duplicate): if this peer is past that step, `from` is behind (JobRunner.replay) */
  onRepeat(step: number, from: string): void
  /**
   * A membership-topic message from `from` (decoded JSON), already authenticated by the
   * transport: checked against the schema and the job, then applied (membership adopted from a member,
   * leaves, a member's pause/resume decision). Returns the announcement and whether a membership
   * was adopted, for the transport's own follow-up (addresses, heartbeats); undefined if refused.
   */
  onAnnouncement(from: string, message: unknown): AnnouncementOutcome
  /** stops the runner (finishing the step in progress and telling the members when leaving) */
  stopRunner(leave: boolean): Promise<JobRunner | undefined>
  /** the runtime's resources */
  close(): Promise<void>
  isStopped(): boolean
}

/** a peer whose heartbeat or other membership message came this recently is alive (heartbeats: 1 s) */
const HEARD_WITHIN_MS = 3_000

export function createSessionCore(options: SessionCoreOptions): SessionCore {
  const { jobId, config, log, selfId } = options
  const rejections = createRejectionLog(log)
  const sightings = new Map<string, PeerSighting>()
  // replaced by the runtime's once the model is known (its running statistics travel exactly)
  let codec: GradientCodec = createCodec(config.compression)
  let runtime: JobRuntime | undefined
  let runner: JobRunner | undefined
  let wire: JobWire | undefined
  let stopped = false
  /**
   * a leaving member finishes the step in progress (JobRunner.stop's finishStep): its gradient
   * for that step still goes out (it was dropped once the session stopped, so the others waited
   * out a deadline for it and recorded the leave a step before the one announced)
   */
  let finishingLastStep = false
  /** the step the runner started at (a joiner's state's step; 0 for a host) */
  let firstStep = 0
  /** gradients and memberships that came before the runner (a joiner fetching its state) */
  const early = createEarlyInbox()
  let parameterCount = 0
  /** the step each peer last announced it leaves from: a member gone without one was evicted */
  const leaveAnnounced = new Map<string, number>()
  /** peers that announced their job finished (othersFinished) */
  const finishedPeers = new Set<string>()
  const memberChanges = createMembershipChangeTracker((peer) => leaveAnnounced.get(peer), (peer) => runner?.membership().record(peer))
  const runnerEvents: JobRunnerEvents = {
    ...options.events,
    onStep: (report) => {
      options.events?.onStep?.(report)
      for (const change of memberChanges.observe(report.step, report.members)) options.events?.onMembershipChange?.(change)
    }
  }
  const noteLeave = (peerId: string, effectiveStep: number): void => {
    // not one the membership ignores (an earlier process's leave of a member that re-joined): the
    // run report and the change counts would list a leave that did not happen
    if (runner?.memberLeaving(peerId, effectiveStep) === false) return
    leaveAnnounced.set(peerId, effectiveStep)
  }

  const createRunner = (snapshot: JobSnapshot | undefined, provisional: boolean, warmupDeadlineMs?: number): JobRunner => {
    if (runtime === undefined) throw new Error('job runtime not ready')
    return createJobRunner({
      selfId,
      selfNames: options.selfNames,
      runtime,
      log,
      events: runnerEvents,
      host: options.host,
      snapshot,
      // the snapshot resumed at start, not one a re-sync adopts later
      membersRestarting: options.membersRestarting === true && snapshot !== undefined && snapshot === options.snapshot,
      provisional,
      ...(warmupDeadlineMs === undefined ? {} : { warmupDeadlineMs }),
      recentlyHeard: (peer) => Date.now() - (sightings.get(peer)?.lastSeen ?? 0) < HEARD_WITHIN_MS,
      unreachable: (peer) => wire?.refusing?.(peer) === true,
      network: createRunnerNetwork({
        jobId,
        selfId,
        log,
        wire: () => wire,
        // a leaving member's last step is finished with its sends (stopRunner)
        stopped: () => stopped && !finishingLastStep,
        codecId: () => codec.id,
        parameterCount: () => parameterCount,
        currentStep: () => runner?.progress().step ?? 0,
        ...(options.membershipExtras === undefined ? {} : { membershipExtras: options.membershipExtras })
      })
    })
  }

  // membership changes also while no step completes (below the aggregation floor a member is
  // evicted and re-joins between two steps, which then list the same members): checked on the
  // membership's version
  let membershipWatch: NodeJS.Timeout | undefined
  let watchedVersion = -1
  const watchMembership = (): void => {
    const r = runner
    if (r === undefined || r.membershipVersion() === watchedVersion || r.state() === 'waiting') return
    watchedVersion = r.membershipVersion()
    const step = r.progress().step
    for (const change of memberChanges.observe(step, r.membership().membersAt(step), 'membership')) options.events?.onMembershipChange?.(change)
  }

  /** the payload decoded (a whole vector, or the slices of a reduce-scatter message); undefined when refused */
  const decodeInbound = createInboundDecoder({
    exchange: config.exchange,
    rejections,
    codec: () => codec,
    parameterCount: () => parameterCount,
    slicePlan: () => runtime?.slicePlan,
    membersKnown: () => runner?.membership().toSnapshot().members.length
  })

  const membershipPull = createMembershipPull({ jobId, log, runner: () => runner, wire: () => wire })
  const onAnnouncement = createAnnouncementHandler({
    jobId,
    rejections,
    sightings,
    early,
    finishedPeers,
    runner: () => runner,
    stopping: () => stopped,
    noteLeave,
    announcedLeave: (from) => leaveAnnounced.has(from),
    refusedNewer: membershipPull.refusedNewer
  })

  const refuseUnconfirmed = (r: JobRunner, requester: string | undefined): Promise<never> | undefined =>
    vouchesTo(r, requester) ? undefined : Promise.reject(new Error('this peer took its state unchecked at join and no f+1 members have confirmed it yet: ask another member'))

  const startRunner = (snapshot: JobSnapshot | undefined, provisional = false, warmupDeadlineMs?: number, control?: ControlDecision): void => {
    runner = createRunner(snapshot, provisional, warmupDeadlineMs)
    firstStep = snapshot?.step ?? 0
    const r = runner
    // a joiner of a paused job: paused before its first step, as the members are
    if (control !== undefined) r.control().adopt(control)
    early.adoptMemberships(r)
    // the leaves heard before the runner existed (while this peer fetched its state), as the
    // memberships above. A coordinator that admits a joiner and then stops replies with a
    // membership that still lists it: without its leave, the joiner took it for the coordinator,
    // refused the next one's memberships and waited for its gradient a whole first deadline (30 s),
    // evicted meanwhile (a CI run of rejoin.test.ts). Safe to replay: the membership ignores a leave
    // from before a member's (re-)join. This peer's own entry (its leave as it stops) is kept, not
    // replayed (memberLeaving refuses one naming this peer, and a refused one is dropped here)
    for (const [peer, step] of leaveAnnounced) if (peer !== selfId && !r.memberLeaving(peer, step)) leaveAnnounced.delete(peer)
    early.offerGradients(r)
    runner.start()
    membershipWatch = setInterval(watchMembership, MEMBERSHIP_WATCH_MS)
  }

  return {
    jobId,
    config,
    rejections,
    sightings,
    get codec() { return codec },
    async startRuntime(onOffloadFallback) {
      runtime = await createJobRuntime(config, { computeThreads: options.computeThreads, loadDatasets: options.loadDatasets, offload: options.offload, onOffloadFallback })
      for (const warning of runtime.model.warnings ?? []) options.log.warn({ model: config.model }, warning)
      parameterCount = runtime.model.layout.totalSize
      codec = runtime.codec
      return runtime
    },
    attach(w) {
      wire = w
    },
    startIfOwned() {
      // stopped while starting (a daemon told to stop during its start-up): never start training
      if (stopped) return
      if (options.host || options.snapshot !== undefined) startRunner(options.snapshot)
    },
    parameterCount: () => parameterCount,
    onRepeat(step, from) {
      runner?.replay(step, from)
    },
    onGradient(message, from) {
      const inbound = decodeInbound(message, from)
      if (inbound === undefined) return
      if (runner === undefined) {
        early.keepGradient(inbound)
        return
      }
      if (runner.offerGradient(inbound)) return
      // async: a gradient older than the staleness bound is dropped by design, not an anomaly. One
      // for a step past the window is this peer lagging behind its sender, not a stale message. One
      // for a step before this peer's first is no anomaly either: a joiner admitted at step s whose
      // state came from a donor already past s gets the members' gradients of the steps between
      const now = runner.progress().step
      if (message.step > now) rejections.reject('ahead', { from, step: message.step }, `gradient for step ${message.step} is further ahead than the steps this peer collects (now at step ${now}): this peer lags behind its sender`, { expected: runner.config.mode === 'async' })
      else rejections.reject('stale', { from, step: message.step }, `gradient for step ${message.step} is outside the window this peer collects (now at step ${now})`, { expected: runner.config.mode === 'async' || message.step < firstStep })
    },
    onAnnouncement,
    startFromSnapshot(snapshot: JobSnapshot, joined: JoinedWith = {}) {
      if (runner !== undefined) return
      startRunner(snapshot, joined.provisional, joined.warmupDeadlineMs, joined.control)
    },
    runner: () => runner,
    info(): JobInfo {
      // asked by members restarting with this one: they ask the next (job-discovery.ts)
      if (runner === undefined) throw new ExpectedRefusal('this peer is still joining the job: ask another member')
      const coordinator = runner.membership().coordinatorAt(runner.progress().step) ?? selfId
      const state = runner.state()
      return {
        jobId,
        config,
        phase: state === 'finished' || state === 'failed' ? 'finished' : state === 'waiting' ? 'waiting' : 'training',
        step: runner.progress().step,
        coordinator: { peerId: coordinator, addrs: options.addressesOf?.(coordinator) ?? [] },
        membership: { version: runner.membershipVersion(), ...runner.membership().toSnapshot() },
        ...(runtime === undefined ? {} : { model: { parameters: parameterCount, layout: layoutFingerprint(runtime.model.layout.specs) } })
      }
    },
    memberLeaving(peerId: string, effectiveStep: number) {
      noteLeave(peerId, effectiveStep)
    },
    decideControl(action: JobControlAction): ControlDecision {
      if (runner === undefined) throw new Error('this peer is still joining the job')
      return runner.control().decide(action)
    },
    snapshotFor(minStep: number, signal?: AbortSignal, requester?: string, range?: boolean): Promise<JobSnapshot> {
      if (runner === undefined) return Promise.reject(new Error('this peer has no state yet'))
      const unconfirmed = refuseUnconfirmed(runner, requester)
      return unconfirmed ?? runner.snapshotAt(minStep, signal, requester, range)
    },
    digestFor(minStep: number, signal?: AbortSignal, requester?: string): Promise<DigestAtStep> {
      if (runner === undefined) return Promise.reject(new Error('this peer has no state yet'))
      const unconfirmed = refuseUnconfirmed(runner, requester)
      return unconfirmed ?? runner.digestAt(minStep, signal)
    },
    announcedLeaves: () => leaveAnnounced,
    othersFinished() {
      const r = runner
      const result = r?.result()
      if (r === undefined || result === undefined) return false
      return r.membership().membersAt(result.step - 1).every((id) => id === selfId || finishedPeers.has(id))
    },
    runtimeInfo: () => runtime === undefined ? undefined : { parameterCount, trainSamples: runtime.train.size, layout: layoutFingerprint(runtime.model.layout.specs) },
    isStopped: () => stopped,
    async stopRunner(leave) {
      stopped = true
      clearInterval(membershipWatch)
      membershipPull.stop()
      const r = runner
      if (r === undefined) return undefined
      // a member paused job-wide leaves too: it would run the paused step, which the others
      // run without it once resumed (they would otherwise wait on it until they evict it). So does
      // a member admitted before the start (Ctrl-C while the host waits for minPeers): still
      // listed, it counted toward the start and held step 0 to its deadline until evicted. Not the
      // coordinator before its start: started again, it resumes the job and asks its members back
      const state = r.state()
      const leaving = leave && (state === 'training' || state === 'paused' || (state === 'waiting' && !r.isCoordinator()))
      finishingLastStep = leaving
      try {
        await r.stop({ finishStep: leaving })
      } finally {
        finishingLastStep = false
      }
      if (leaving && wire !== undefined) {
        // the step in progress was finished (or, past the timeout, abandoned): the others stop
        // counting on this peer from the next step it would run
        const effectiveStep = r.progress().step
        leaveAnnounced.set(selfId, effectiveStep)
        const w = wire
        await w.broadcast({ v: 1, type: 'leave', jobId, effectiveStep }).catch(() => {})
        // a broadcast can still be queued when the transport stops right after (seen over gossip:
        // the others waited out deadlines and evicted a host that had left); a request is
        // answered only once the member has recorded the leave
        const others = r.membership().membersAt(effectiveStep).filter((id) => id !== selfId)
        await Promise.allSettled(others.map(async (id) => await w.request(id, { v: 1, type: 'leave', jobId, effectiveStep }, LeaveReplySchema, { timeoutMs: 2000 })))
        options.events?.onLeft?.(effectiveStep, others.length, minimumPeersFor(config.aggregation.rule, config.aggregation.f), state === 'waiting')
      }
      return r
    },
    async close() {
      await runtime?.close()
    }
  }
}
