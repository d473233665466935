/**
 * A joiner's last part: with its admission (or what stands for one), fetch the job's state from
 * the members the coordinator named, one range from each where they hold the same state, else
 * the whole state from one, checked against the digest f+1 donors announce where they can vouch
 * (protocols/state-sync: fetchStateFromDonors), and start the session on it with the
 * coordinator's membership, never a donor's.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { JobConfig } from '../../config/job-config.js'
import type { JobInfo, JoinReply, MembershipState } from '../../protocols/job/job-protocol.js'
import { parseMultiaddr, type PeerNode } from '../../protocols/node/index.js'
import { fetchStateFromDonors, StateSyncError, type DonorFetch } from '../../protocols/state-sync/index.js'
import { fromTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import { MembershipView } from '../membership/membership-view.js'
import type { JobSession } from './job-session.js'

/**
 * A joiner's console line once it holds the job's state at `step` (0-based `epoch`) with the
 * coordinator's `membership`. Before the start (step 0 with fewer than `minPeers` members: the
 * same test the member's runner waits on) it says the job waits for its host to start it, with
 * how many have joined: 'joined at step 0' read as training while the host still waited.
 * `via`: ' over the broker', or ''.
 */
export function joinedNotice(jobId: string, step: number, epoch: number, membership: MembershipState, minPeers: number, via = ''): string {
  const members = MembershipView.fromSnapshot(membership).membersAt(step).length
  if (step === 0 && members < minPeers) return `joined job ${jobId}${via}: it waits for its host to start it, at ${minPeers} members (minPeers); ${members} have joined, this one included`
  return `joined job ${jobId} at step ${step} (epoch ${epoch + 1})${via}`
}

export interface TakeStateDeps {
  readonly node: PeerNode
  readonly log: Logger
  readonly peerId: string
  /** where the join stands now, in words (JobJoiner.stage) */
  onStage(text: string): void
  /** a line for people (PeerDaemonOptions.onNotice) */
  notice?(text: string): void
  /** the job's members changed: record them for a restart */
  rememberMembers(): Promise<void>
}

/** the session the state goes to, the job it joins and the reply that admitted it */
export interface JoinedState {
  readonly session: JobSession
  readonly info: JobInfo
  readonly jobConfig: JobConfig
  readonly reply: JoinReply
  /** the peer whose state is taken where no f+1 donors vouch for one (the admitting coordinator) */
  readonly decidedBy: string
  /** the reply is an admission (not the final state of a finished job) */
  readonly admitted: boolean
}

/**
 * Fetches the state `join.reply` (a join reply, or what stands for one) points to and starts
 * `join.session` on it, with the reply's membership. A state no f+1 donors vouched for starts
 * provisional (the session does not vouch for it until f+1 members confirm it).
 * @throws StateSyncError when no donor, nor then the coordinator, serves it (`corrupt`: a donor's
 *   state did not match what the others vouch for; the coordinator is not asked then)
 */
export async function takeJobState(deps: TakeStateDeps, join: JoinedState, signal: AbortSignal): Promise<void> {
  const { node, log, peerId } = deps
  const { session: s, info, jobConfig, reply, decidedBy, admitted } = join
  // the coordinator names the members to fetch from, one range of the state from each (it
  // spreads a crowd of joiners over them: the first named is a different member for each)
  const donor = reply.donor ?? info.coordinator.peerId
  // in ranges only where every member holds the same state at a step (not in asynchronous mode)
  // (never this peer itself: a member restarted from its checkpoint may still be listed)
  const named = jobConfig.mode === 'async' ? [donor] : (reply.donors ?? [donor]).filter((id) => id !== peerId)
  const donors = named.length > 0 ? named : [info.coordinator.peerId]
  log.info({ job: info.jobId, effectiveStep: reply.effectiveStep, coordinator: info.coordinator.peerId, donor, donors: donors.length }, admitted ? 'admitted to job: fetching its state' : 'fetching the job\'s state')
  deps.onStage(`${admitted ? `admitted at step ${reply.effectiveStep}: ` : ''}fetching the job's state from ${donors.length === 1 ? `member ${donors[0]}` : `${donors.length} members, a range from each`}`)
  for (const from of donors) {
    const addrs = reply.addresses?.[from] ?? []
    if (from !== info.coordinator.peerId && from !== peerId && addrs.length > 0) await node.libp2p.peerStore.merge(peerIdFromString(from), { multiaddrs: addrs.map((a) => parseMultiaddr(a, 'donor address')) })
  }
  // a donor serving other joiners queues this one and says where it stands
  const onQueued = (position: number): void => { log.info({ job: info.jobId, position }, 'waiting for the state transfer: a donor serves other peers first') }
  let fallbacks = 0
  const fetchFrom = async (from: readonly string[]): Promise<DonorFetch> => await fetchStateFromDonors(node.libp2p, from, { jobId: info.jobId, minStep: reply.effectiveStep }, {
    signal,
    onQueued,
    // a state f+1 donors announce has at least one honest member behind it
    vouchers: jobConfig.aggregation.f + 1,
    // where no f+1 can vouch (members at different steps), the state at the admission step is
    // the coordinator's: it decides the membership already
    admittedBy: decidedBy,
    onFallback: (reason, next) => {
      // the first says why the ranges failed; the rest why the donor before did not serve. Info,
      // not warn: the join usually goes on to succeed (its outcome is logged), and a join that
      // fails altogether says so where it gives up
      if (fallbacks++ === 0) log.info({ job: info.jobId, reason, from: next }, 'state transfer in ranges failed; fetching the whole state from one donor')
      else log.info({ job: info.jobId, reason, from: next }, 'fetching the whole state from the next donor')
    }
  })
  let fetched: DonorFetch
  try {
    fetched = await fetchFrom(donors)
  } catch (error) {
    // no donor served (they left, or cannot be reached from here): the coordinator has the state
    // too. Not after a donor lied: then only a state enough donors vouch for is taken
    const lied = error instanceof StateSyncError && error.code === 'corrupt'
    if (signal.aborted || lied || donors.includes(decidedBy)) throw error
    log.info({ job: info.jobId, donor, err: (error as Error).message }, 'state transfer from the named donors failed; fetching from the coordinator')
    fetched = await fetchFrom([decidedBy])
  }
  // the membership is the coordinator's to decide: its reply's, not a donor's (one donor could
  // otherwise hand the joiner, and through it the job, a membership of its own making)
  const raw = { ...fetched.snapshot, meta: { ...fetched.snapshot.meta, membership: reply.membership } }
  const how = fetched.from.length > 1
    ? `fetched the state in ${fetched.from.length} ranges, one from each donor`
    : fetched.unchecked !== undefined
      ? 'fetched the admitting coordinator\'s state (unchecked: the members stand at different steps; the per-step digest comparison checks it)'
      : fetched.verified ? 'fetched the state from one donor, checked against the digest other donors announced' : 'fetched the state from one donor (unchecked: no other donor announced one; the per-step digest comparison checks it)'
  log.info({ job: info.jobId, step: raw.step, from: fetched.from, verified: fetched.verified, ...(fetched.unchecked === undefined ? {} : { why: fetched.unchecked }) }, how)
  const snapshot = fromTrainingSnapshot(raw, `peer ${fetched.from.join(', ')}`)
  s.adoptMembership(reply.membership, reply.addresses)
  // a state no f+1 donors vouched for: this peer does not vouch for it to joiners until f+1 members confirm it
  s.startFromSnapshot(snapshot, { provisional: !fetched.verified, ...(reply.deadlineMs === undefined ? {} : { warmupDeadlineMs: reply.deadlineMs }), ...(reply.control === undefined ? {} : { control: reply.control }) })
  s.adoptMembership(reply.membership)
  if (snapshot.meta.finished) log.info({ job: info.jobId, step: snapshot.step, admittedAt: reply.effectiveStep }, 'the job finished before this peer\'s admission took effect: took its final state')
  else {
    log.info({ job: info.jobId, step: snapshot.step, epoch: snapshot.epoch + 1 }, 'joined job')
    // the console said it asked for admission; say where it got in (a reviewer's joiner went
    // from 'asked its coordinator' straight to an epoch's progress)
    deps.notice?.(joinedNotice(info.jobId, snapshot.step, snapshot.epoch, reply.membership, jobConfig.minPeers))
  }
  await deps.rememberMembers()
}
