/**
 * How a daemon gets into a job it does not host: through its bootstrap peers (or the broker),
 * again through the members it knew after an eviction, and, restarted from a checkpoint without
 * --bootstrap, by re-joining the members that carried on or resuming the job if none is left.
 * One join at a time per signal; `abort()` ends the join in progress (a job submitted, a stop).
 */
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_RESTART_TIMINGS, type RestartTimings } from '../../config/daemon-config.js'
import type { JobConfig } from '../../config/job-config.js'
import { parseJobConfig } from '../../config/job-config.js'
import { JOB_NOT_STARTED, JOB_PROTOCOL, NOT_THE_COORDINATOR, NOTHING_TO_JOIN, JoinReplySchema, type JobInfo, type JoinReply } from '../../protocols/job/job-protocol.js'
import { closedByPeer, parseMultiaddr, PEER_CLOSED_HINT, type PeerNode } from '../../protocols/node/index.js'
import { requestJson } from '../../protocols/request/json-request.js'
import { abortableSleep } from '../job/abortable-sleep.js'
import type { JobSnapshot } from '../job/job-runner.js'
import type { Logger } from '../logger.js'
import { budgetSignal } from '../job/budget-signal.js'
import { askBrokerForJob } from './broker-join.js'
import { askPeersForJob, BROKER_PROBE_MS, NoJobYetError } from './ask-for-job.js'
import { probeKnownMembers, releaseOldMembership, tellPreviousProcessLeft, type MemberProbe } from './job-discovery.js'
import type { JobSession } from './job-session.js'
import type { KnownMembers } from './known-members.js'
import { createBlockerNotices } from './join-blockers.js'
import { checkSameModel } from './same-model.js'
import { joinedNotice, takeJobState } from './take-state.js'

export interface JobJoinerOptions {
  readonly node: PeerNode
  readonly log: Logger
  readonly peerId: string
  readonly privateKey: PrivateKey
  readonly bootstrapAddrs: readonly Multiaddr[]
  /** ask this broker for the job when no bootstrap peer answers */
  readonly amqpUrl?: string
  /** the only job to join, through bootstrap peers or the broker (default: the first one that answers) */
  readonly joinJobId?: string
  /**
   * restarted from a checkpoint: how long a junior member waits for its seniors before it resumes
   * the job (default DEFAULT_RESTART_TIMINGS: 15 s of grace, 5 s more per rank, 60 s at most for a
   * senior that is up). A member restarted without its seniors waits the grace; each rank after
   * the first junior the stagger longer (juniors that cannot see each other, over the broker,
   * resumed their checkpoints at one moment, two jobs under one id that never merged; one rank at
   * a time, the next finds the first one's job); and a senior that is up but runs no job gets the
   * senior wait at most
   */
  readonly restart?: RestartTimings
  /** the daemon's current session, if any */
  session(): JobSession | undefined
  /** open (and make current) a session for a job this daemon joins (host = false) */
  openSession(jobId: string, config: JobConfig, host: false): Promise<JobSession>
  /** stop the current session and forget it */
  dropSession(): Promise<void>
  /** host a job resumed from this daemon's checkpoint */
  resume(snapshot: JobSnapshot): Promise<unknown>
  /** the job's members changed: record them for a restart */
  rememberMembers(): Promise<void>
  /** a line for people about what a restarted daemon does (PeerDaemonOptions.onNotice) */
  notice?(text: string): void
  /**
   * evicted: stop re-joining once no member or bootstrap peer (nor the broker) has answered for the
   * job for this long (ms), e.g. because its members finished it and exited (default: never give up)
   */
  readonly rejoinGiveUpMs?: number
  /** the first join through the bootstrap peers: give up once none could be reached for this long (ms; default: never) */
  readonly joinGiveUpMs?: number
  /** the first join gave up (joinGiveUpMs): `reason` is what the last try found */
  onJoinGaveUp?(reason: string): void
  /** re-joining gave up (rejoinGiveUpMs): `reason` is what the last try found */
  onRejoinGaveUp?(jobId: string, reason: string): void
}

export interface JobJoiner {
  /** find the job through a bootstrap peer (or the broker), get admitted, fetch its state; retries with backoff until it joins or is aborted */
  joinThroughBootstrap(): Promise<void>
  /** evicted: leave the old session and join again, asking the members we knew first; with rejoinGiveUpMs, until nobody answered for that long */
  rejoin(): Promise<void>
  /** restarted from a checkpoint (or known members) without --bootstrap: re-join the members that carry on, or resume */
  resumeOrRejoin(snapshot: JobSnapshot | undefined, known: KnownMembers): Promise<void>
  /** join the job `info` describes (admission, then state sync); throws if that fails */
  joinJob(info: JobInfo): Promise<void>
  /** a join is in progress */
  busy(): boolean
  /** where the join in progress stands, in words (for `p2pmld status`), e.g. waiting for the coordinator's answer */
  stage(): string | undefined
  /** end the join in progress, if any */
  abort(): void
}

/**
 * the coordinator held the join's reply until the job's start, which had not come when its wait
 * ran out (admission-reply.ts): not a failure, the joiner asks again at once
 */
const notStartedYet = (error: unknown): boolean => error instanceof Error && error.message.includes(JOB_NOT_STARTED)

export function createJobJoiner(options: JobJoinerOptions): JobJoiner {
  const { node, log, peerId } = options
  const timings = options.restart ?? DEFAULT_RESTART_TIMINGS
  let abort = new AbortController()
  let joining = 0
  /** the job a line on stdout last said this daemon joins (one line per job, not one per try) */
  let announcedJob: string | undefined
  const announceJoin = (jobId: string, text: string): void => {
    if (announcedJob === jobId) return
    announcedJob = jobId
    options.notice?.(text)
  }
  /** a failure only the user can fix here (the job's model file missing, ...): said on stdout once */
  const blockers = createBlockerNotices(options.notice)
  /** the members we knew before an eviction, asked before the bootstrap peers */
  let rejoinTargets: Multiaddr[] = []
  /** where the join in progress stands (JobJoiner.stage) */
  let stage: string | undefined
  /** why the last try failed, kept while the next one asks (status read only 'asking ...' then) */
  let lastFailure: string | undefined
  const retrying = (error: unknown, delayMs: number): void => {
    lastFailure = (error as Error).message
    stage = `the last try failed (${lastFailure}); the next try at ${new Date(Date.now() + delayMs).toISOString()}`
  }

  /** `wanted`: the only job to take (--join-job, or the job this daemon was evicted from) */
  const askForJob = async (signal: AbortSignal, wanted: string | undefined): Promise<JobInfo> => {
    const peers = rejoinTargets.length + options.bootstrapAddrs.length > 0
    const asking = options.amqpUrl === undefined ? 'asking the bootstrap peers for the job' : peers ? 'asking the bootstrap peers, then the broker, for the job' : 'asking the broker for the job'
    stage = lastFailure === undefined ? asking : `${asking} (the last try failed: ${lastFailure})`
    const info = await askPeersForJob({
      node,
      log,
      peerId,
      privateKey: options.privateKey,
      addresses: [...rejoinTargets, ...options.bootstrapAddrs],
      amqpUrl: options.amqpUrl,
      wanted,
      wantedBecause: wanted === options.joinJobId ? 'was told to join' : 'was evicted from and re-joins'
    }, signal)
    lastFailure = undefined
    return info
  }

  const joinJob = async (info: JobInfo, signal: AbortSignal): Promise<void> => {
    const jobConfig = parseJobConfig(info.config, `job config from peer ${info.coordinator.peerId}`)
    const coordinator = peerIdFromString(info.coordinator.peerId)
    if (info.coordinator.addrs.length > 0) {
      await node.libp2p.peerStore.merge(coordinator, { multiaddrs: info.coordinator.addrs.map((a) => parseMultiaddr(a, 'coordinator address')) })
    }
    const s = await options.openSession(info.jobId, jobConfig, false)
    checkSameModel(s, info, jobConfig)
    announceJoin(info.jobId, `joining job ${info.jobId}: asked its coordinator ${info.coordinator.peerId} for admission${info.phase === 'waiting' ? ` (the job has not started: its host starts it at ${jobConfig.minPeers} members, minPeers)` : ''}`)
    stage = `asked the coordinator ${info.coordinator.peerId} for admission to job ${info.jobId}${s.join !== undefined ? ' over the broker' : ''}: waiting for its answer (held until the start once the job has its minPeers members)`
    if (s.join !== undefined) {
      const joined = await s.join(info.coordinator.peerId, signal)
      // as over libp2p (takeState): the console said it asked; say where it got in
      if (!joined.finished) options.notice?.(joinedNotice(info.jobId, joined.step, joined.epoch, joined.membership, jobConfig.minPeers, ' over the broker'))
      return
    }
    const reply = await requestJson(node.libp2p, coordinator, JOB_PROTOCOL, { v: 1, type: 'join', jobId: info.jobId, addrs: node.dialableAddrs() }, JoinReplySchema, { signal, timeoutMs: 30_000 }).catch(async (error: unknown) => {
      throw await unlessPreviousCoordinator(error, coordinator, info, signal)
    })
    await takeState(s, info, jobConfig, reply, { decidedBy: info.coordinator.peerId, admitted: true }, signal)
  }

  /**
   * A join refused with 'send the join request to <this daemon>': the member asked still counts
   * this daemon's previous process (killed without a leave) as the coordinator. Told that it left,
   * it takes the coordinator's place if it is next in seniority and announces the members, so the
   * others drop that process too; only the member that named this daemon in its job info was told
   * before, and the members' views never met again (a coordinator killed and restarted with
   * --bootstrap: every member waited for good). Returns the error to retry on.
   */
  const unlessPreviousCoordinator = async (error: unknown, member: ReturnType<typeof peerIdFromString>, info: JobInfo, signal: AbortSignal): Promise<unknown> => {
    if (!(error instanceof Error) || !error.message.includes(`${NOT_THE_COORDINATOR} ${peerId}`)) return error
    const told = await tellPreviousProcessLeft(node, member, info.jobId, info.step, signal)
    log.info({ job: info.jobId, member: member.toString(), step: info.step, told }, 'a member counts this daemon\'s previous process as its coordinator: told it that process left')
    return new Error(`the member ${member.toString()} counts this daemon's previous process as the coordinator of job ${info.jobId} (it has not heard that it left${told ? ': told it now' : ''})`)
  }

  const takeState = async (s: JobSession, info: JobInfo, jobConfig: JobConfig, reply: JoinReply, from: { decidedBy: string, admitted: boolean }, signal: AbortSignal): Promise<void> => {
    await takeJobState({ node, log, peerId, onStage: (text) => { stage = text }, notice: options.notice, rememberMembers: options.rememberMembers }, { session: s, info, jobConfig, reply, ...from }, signal)
  }

  /**
   * the job finished while this daemon was away (members it knew say so): take its final state
   * from them, as a joiner admitted after the end does, instead of resuming the checkpoint alone
   * (it waited for members for ever, with --exit-when-done too). With f+1 of them the state is
   * checked against the digest they announce; from fewer it is taken unchecked and not vouched
   * for, as a joiner's from its coordinator. Over libp2p only; a broker session joins through the broker
   */
  const takeFinalState = async (info: JobInfo, from: readonly string[], signal: AbortSignal): Promise<void> => {
    const jobConfig = parseJobConfig(info.config, `job config from peer ${from[0]}`)
    const s = await options.openSession(info.jobId, jobConfig, false)
    checkSameModel(s, info, jobConfig)
    if (s.join !== undefined) {
      await s.join(from[0], signal)
      return
    }
    log.info({ job: info.jobId, step: info.step, from }, 'the job finished while this daemon was away: taking its final state')
    await takeState(s, info, jobConfig, { effectiveStep: info.step, membership: info.membership, donor: from[0], donors: [...from] }, { decidedBy: from[0], admitted: false }, signal)
  }

  /**
   * Asks and joins until it joins or `signal` aborts; with `giveUpMs`, also stops once nobody has
   * answered for the job for that long, and returns the last try's error (else undefined).
   */
  /**
   * Ask the bootstrap peers (or the broker) for the job and join it, retrying with back-off. With
   * `giveUp`, return the last error once no try was answered for `afterMs`; with `idleAnswers`, a
   * peer that says it runs no job yet answered (it is up, and may get one)
   */
  const joinThroughBootstrap = async (signal: AbortSignal, wanted = options.joinJobId, giveUp?: { afterMs: number, idleAnswers: boolean }): Promise<Error | undefined> => {
    let delay = 500
    /** since when no try found the job (undefined: the last one did) */
    let unansweredSince: number | undefined
    joining++
    try {
      while (!signal.aborted) {
        let answered: JobInfo | undefined
        try {
          answered = await askForJob(signal, wanted)
          await joinJob(answered, signal)
          return undefined
        } catch (error) {
          if (signal.aborted) return undefined
          await options.dropSession()
          if (notStartedYet(error)) {
            log.info({ err: (error as Error).message }, 'the job waits to start: asking again')
            continue
          }
          blockers.failed(answered?.jobId, error)
          // peers that run no job yet are the wait for a `job submit` (info); anything else may need a look
          const idle = error instanceof NoJobYetError || (error as Error).message.includes(NOTHING_TO_JOIN)
          unansweredSince = answered !== undefined || (idle && giveUp?.idleAnswers === true) ? undefined : unansweredSince ?? Date.now()
          if (giveUp !== undefined && unansweredSince !== undefined && Date.now() - unansweredSince >= giveUp.afterMs) return error as Error
          if (idle) log.info({ err: (error as Error).message, retryInMs: delay }, 'no job to join yet; asking again')
          else log.warn({ err: (error as Error).message, retryInMs: delay }, closedByPeer(error) ? `could not join a job yet: ${PEER_CLOSED_HINT}; retrying` : 'could not join a job yet; retrying')
          retrying(error, delay)
          // a stop aborts the wait too: the daemon does not outlive `p2pmld stop` by the back-off
          await abortableSleep(delay, signal)
          delay = Math.min(10_000, delay * 2)
        }
      }
      return undefined
    } finally {
      joining--
    }
  }

  /**
   * Re-join the job through the members this daemon knew if one still runs it; resume it from the
   * checkpoint only if no member ranked before this one (admission order) is reachable, so the
   * members restarted together resume one job, not one each.
   */
  const resumeOrRejoin = async (snapshot: JobSnapshot | undefined, known: KnownMembers, signal: AbortSignal): Promise<void> => {
    const jobId = snapshot?.jobConfig.id ?? known.jobId
    const started = Date.now()
    const senior = known.members[0]?.peerId === peerId
    const rank = known.members.findIndex((m) => m.peerId === peerId)
    // each rank after the first junior decides one stagger later, in both waits below: the senior
    // wait alone (a bound for every rank) let juniors past it resume at one moment, two jobs (a
    // reviewer: grace = senior wait = 1 s, stagger 3 s, two juniors resumed 1 ms apart; with the
    // defaults, ranks 11 and up)
    const stagger = Math.max(0, (rank < 0 ? known.members.length : rank) - 1) * timings.staggerMs
    const grace = timings.graceMs + stagger
    const seniorWait = timings.seniorWaitMs + stagger
    // a job over the broker: its members may not reach each other over libp2p (members.json
    // then lists no address for them), but its coordinator answers on the broker
    const amqpUrl = options.amqpUrl
    const viaBroker = amqpUrl !== undefined && snapshot?.jobConfig.transport !== 'libp2p'
    const askBroker = async (fallback: MemberProbe): Promise<MemberProbe> => {
      if (amqpUrl === undefined) return fallback
      // bounded: a broker that cannot be reached is retried until the ask is aborted, and the
      // members of a transport auto job go on over libp2p without it
      const budget = budgetSignal(BROKER_PROBE_MS, signal)
      try {
        const info = await askBrokerForJob(amqpUrl, options.privateKey, peerId, log, { jobId, signal: budget.signal }).catch(() => undefined)
        return info === undefined ? fallback : { kind: 'running', info }
      } finally {
        budget.dispose()
      }
    }
    options.notice?.(`restarted from its data dir: asking the members it knew whether job ${jobId} still runs${snapshot === undefined ? '' : ` (this peer's checkpoint is at step ${snapshot.step})`}`)
    let delay = 500
    joining++
    try {
      while (!signal.aborted) {
        stage = `asking the members it knew (${known.members.length - 1} in members.json${viaBroker ? ', and the broker' : ''}) whether job ${jobId} still runs${snapshot === undefined ? '' : ` (its checkpoint is at step ${snapshot.step})`}`
        // the broker only when no member it knew was reachable over libp2p
        const probe = await probeKnownMembers(node, known, jobId, signal).then(async (p) => p.kind === 'resume' && viaBroker ? await askBroker(p) : p)
        if (signal.aborted) return
        if (probe.kind === 'finished') {
          try {
            await takeFinalState(probe.info, probe.from, signal)
            return
          } catch (error) {
            if (signal.aborted) return
            await options.dropSession()
            log.warn({ err: (error as Error).message, from: probe.from, retryInMs: delay }, 'could not take the finished job\'s final state yet; retrying')
            retrying(error, delay)
          }
        } else if (probe.kind === 'counted-as-coordinator') {
          // the process they count on is gone: told, they go on without it, and the next probe
          // names the coordinator that takes this daemon back with their state (it resumed its
          // older checkpoint instead, and they lost their steps since; where it held half of the
          // members they waited for it, never evicting it)
          const told = await releaseOldMembership(node, probe.members, jobId, probe.step, signal)
          log.info({ job: jobId, step: probe.step, members: probe.members.map((m) => m.peerId), told }, 'the members still count this daemon\'s previous process as their coordinator: told them it left, to re-join with their state')
          if (told > 0) {
            options.notice?.(`the members of job ${jobId} still count this daemon's previous process (it stopped without leaving) as their coordinator, at step ${probe.step}: told them it left; re-joining with their state`)
            continue
          }
        } else if (probe.kind === 'running') {
          try {
            log.info({ job: jobId, coordinator: probe.info.coordinator.peerId, checkpointStep: snapshot?.step ?? null }, 're-joining the job its members carry on')
            announceJoin(jobId, `re-joining job ${jobId}: coordinated by ${probe.info.coordinator.peerId}${probe.info.phase === 'waiting' ? ', which waits for its members to come back' : ''}`)
            await joinJob(probe.info, signal)
            return
          } catch (error) {
            if (signal.aborted) return
            await options.dropSession()
            if (notStartedYet(error)) {
              log.info({ err: (error as Error).message }, 'the job waits to start: asking again')
              continue
            }
            blockers.failed(jobId, error)
            log.warn({ err: (error as Error).message, retryInMs: delay }, 'could not re-join the job yet; retrying')
            retrying(error, delay)
          }
        } else if (snapshot !== undefined && ((probe.kind === 'resume' && (senior || Date.now() - started > grace)) || Date.now() - started > seniorWait)) {
          await options.resume(snapshot)
          return
        } else {
          stage = snapshot === undefined
            ? 'no member it knew runs the job, and it has no checkpoint to resume it from: asking them again'
            : probe.kind === 'senior-restarting'
              ? `a member admitted before it is up but runs no job: waiting for that one to resume the job (this daemon resumes its own checkpoint ${Math.round((started + seniorWait - Date.now()) / 1000)} s from now otherwise)`
              : `no member admitted before it is reachable: it resumes its checkpoint ${Math.round((started + grace - Date.now()) / 1000)} s from now unless one comes up`
        }
        await abortableSleep(delay, signal)
        delay = Math.min(5_000, delay * 2)
      }
    } catch (error) {
      if (!signal.aborted) log.error({ err: error }, 'could not resume the job from the checkpoint')
    } finally {
      joining--
    }
  }

  const restart = (): AbortSignal => {
    abort.abort()
    abort = new AbortController()
    return abort.signal
  }

  return {
    async joinThroughBootstrap() {
      const giveUpMs = options.joinGiveUpMs
      if (giveUpMs === undefined) {
        await joinThroughBootstrap(abort.signal)
        return
      }
      const gaveUp = await joinThroughBootstrap(abort.signal, options.joinJobId, { afterMs: giveUpMs, idleAnswers: true })
      if (gaveUp === undefined) return
      const reason = `no bootstrap peer${options.amqpUrl === undefined ? '' : ' nor the broker'} could be reached for ${Math.round(giveUpMs / 1000)} s (check the --bootstrap address and that its daemon runs): ${gaveUp.message}`
      log.error({ err: gaveUp.message }, 'could not join a job: giving up')
      options.onJoinGaveUp?.(reason)
    },
    async rejoin() {
      const old = options.session()
      if (old === undefined) return
      // busy from the eviction on: while the old session is dropped the daemon looked idle, and
      // auto-join started a second join whose failure dropped this one's new session mid-step
      joining++
      try {
        const known = [...old.sightings.entries()].filter(([id]) => id !== peerId).map(([id, s]) => ({ id, addrs: s.addrs }))
        const members = old.runner()?.membership().membersAt(old.runner()?.progress().step ?? 0) ?? []
        rejoinTargets = [...known.filter((k) => members.includes(k.id)), ...known.filter((k) => !members.includes(k.id))]
          .flatMap((k) => k.addrs.map((a) => parseMultiaddr(a, 'member address')))
        await options.dropSession()
        // the job it was evicted from, not another one a bootstrap peer or the broker runs (a
        // reviewer's evicted broker member joined another host's job on the same broker)
        const gaveUp = await joinThroughBootstrap(restart(), old.jobId, options.rejoinGiveUpMs === undefined ? undefined : { afterMs: options.rejoinGiveUpMs, idleAnswers: false })
        if (gaveUp !== undefined) {
          const reason = `no member answered for job ${old.jobId} for ${Math.round((options.rejoinGiveUpMs ?? 0) / 1000)} s (its members may have finished it and stopped): ${gaveUp.message}`
          log.error({ job: old.jobId, err: gaveUp.message }, 'evicted from the job and could not re-join it: giving up')
          options.onRejoinGaveUp?.(old.jobId, reason)
        }
      } finally {
        joining--
      }
    },
    resumeOrRejoin: (snapshot, known) => resumeOrRejoin(snapshot, known, abort.signal),
    async joinJob(info) {
      joining++
      try {
        await options.dropSession()
        await joinJob(info, abort.signal)
      } catch (error) {
        await options.dropSession()
        throw error
      } finally {
        joining--
      }
    },
    busy: () => joining > 0,
    stage: () => joining > 0 ? stage : undefined,
    abort: () => { restart() }
  }
}
