/**
 * Finding a job to join without --bootstrap: asking the members a restarted daemon knew
 * (known-members.ts) whether the job still runs, and, for idle daemons, asking the peers they
 * are connected to whether one hosts a job (auto-join). Both ask with the job protocol's `info`
 * request; a peer that answers with an error is reachable but runs no job (yet).
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { JOB_PROTOCOL, JobInfoSchema, LeaveReplySchema, type JobInfo } from '../../protocols/job/job-protocol.js'
import { parseMultiaddr, type PeerNode } from '../../protocols/node/index.js'
import { RemoteError, requestJson } from '../../protocols/request/json-request.js'
import type { Logger } from '../logger.js'
import type { KnownMembers } from './known-members.js'

const INFO_TIMEOUT_MS = 5_000

export type MemberProbe =
  /** a member runs the job: join it */
  | { readonly kind: 'running', readonly info: JobInfo }
  /** none runs it and the members `from` (admission order) say it finished: take its final state */
  | { readonly kind: 'finished', readonly info: JobInfo, readonly from: readonly string[] }
  /** a member ranked before this daemon answered without running the job: it will resume it */
  | { readonly kind: 'senior-restarting' }
  /**
   * members train the job (past its start) still counting this daemon's previous process, which
   * stopped without leaving, as their coordinator, the most advanced at `step`: it must tell them
   * it left (releaseOldMembership) before they can take it back. Where that process held exactly
   * half of the members they wait for it and never evict it (step-quorum.ts)
   */
  | { readonly kind: 'counted-as-coordinator', readonly members: KnownMembers['members'], readonly step: number }
  /** nobody ranked before this daemon is reachable: resume the job from the checkpoint */
  | { readonly kind: 'resume' }

/** the member's addresses, each ending in its peer id (parsed by the caller, inside its try: one may be malformed) */
const targetsOf = (member: KnownMembers['members'][number]): string[] => {
  const suffix = `/p2p/${member.peerId}`
  return member.addrs.map((addr) => addr.endsWith(suffix) ? addr : addr + suffix)
}

async function askInfo(node: PeerNode, member: KnownMembers['members'][number], signal: AbortSignal): Promise<JobInfo | 'reachable' | 'unreachable'> {
  for (const target of targetsOf(member)) {
    try {
      return await requestJson(node.libp2p, parseMultiaddr(target, 'member address'), JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema, { signal, timeoutMs: INFO_TIMEOUT_MS })
    } catch (error) {
      if (error instanceof RemoteError) return 'reachable'
    }
  }
  return 'unreachable'
}

/**
 * Tell the member at `target` that this daemon's previous process left job `jobId` from `step`
 * (the leave a clean stop sends, job-protocol 'leave'): a member still counting on that process,
 * which stopped without leaving (killed, crashed), goes on without it and takes this daemon back
 * as a joiner. Where that process held exactly half of the members, with the most senior among
 * them, the others waited for it and never evicted it (step-quorum.ts). Resolves false when the
 * member could not be told.
 */
export async function tellPreviousProcessLeft(node: PeerNode, target: PeerId | Multiaddr, jobId: string, step: number, signal: AbortSignal): Promise<boolean> {
  try {
    await requestJson(node.libp2p, target, JOB_PROTOCOL, { v: 1, type: 'leave', jobId, effectiveStep: step }, LeaveReplySchema, { signal, timeoutMs: INFO_TIMEOUT_MS })
    return true
  } catch {
    signal.throwIfAborted()
    return false
  }
}

/** tellPreviousProcessLeft for each of `members` (by their known addresses); resolves with how many were told */
export async function releaseOldMembership(node: PeerNode, members: KnownMembers['members'], jobId: string, step: number, signal: AbortSignal): Promise<number> {
  const told = await Promise.all(members.map(async (member) => {
    for (const target of targetsOf(member)) {
      let addr: Multiaddr
      try {
        addr = parseMultiaddr(target, 'member address')
      } catch {
        continue
      }
      if (await tellPreviousProcessLeft(node, addr, jobId, step, signal)) return true
    }
    return false
  }))
  return told.filter(Boolean).length
}

/**
 * Ask the known members of `jobId` (in admission order) whether the job runs. Members that run
 * another job count as reachable but not running it; one that finished it ends the search when
 * none runs it ('finished').
 */
export async function probeKnownMembers(node: PeerNode, known: KnownMembers, jobId: string, signal: AbortSignal): Promise<MemberProbe> {
  const selfId = node.peerId.toString()
  const selfRank = known.members.findIndex((m) => m.peerId === selfId)
  const answers = await Promise.all(known.members.map(async (member, rank) => {
    if (member.peerId === selfId) return { rank, answer: 'unreachable' as const }
    return { rank, answer: await askInfo(node, member, signal) }
  }))
  for (const { answer } of answers) {
    // not one naming this daemon as the coordinator: a member that missed its leave (joining as it
    // stopped) says so, and joining through it would dial this daemon itself
    if (typeof answer === 'object' && answer.jobId === jobId && answer.phase !== 'finished' && answer.coordinator.peerId !== selfId) return { kind: 'running', info: answer }
  }
  const finished = answers.filter(({ answer }) => typeof answer === 'object' && answer.jobId === jobId && answer.phase === 'finished')
  const first = finished[0]?.answer
  if (typeof first === 'object') return { kind: 'finished', info: first, from: finished.map(({ rank }) => known.members[rank].peerId) }
  // past the start only: before it, members wait for their host to come back and start the job
  const holding = answers.filter(({ answer }) => typeof answer === 'object' && answer.jobId === jobId && answer.phase === 'training' && answer.coordinator.peerId === selfId)
  if (holding.length > 0) {
    const step = Math.max(...holding.map(({ answer }) => (answer as JobInfo).step))
    return { kind: 'counted-as-coordinator', members: holding.map(({ rank }) => known.members[rank]), step }
  }
  const seniorReachable = answers.some(({ rank, answer }) => answer !== 'unreachable' && (selfRank < 0 || rank < selfRank))
  return seniorReachable ? { kind: 'senior-restarting' } : { kind: 'resume' }
}

export interface AutoJoinOptions {
  readonly node: PeerNode
  readonly log: Logger
  /** no job, or a finished/failed one, and no join in progress */
  isIdle(): boolean
  /** the job this daemon runs or ran last */
  currentJobId(): string | undefined
  /** join the job `info` describes (throws if that fails) */
  join(info: JobInfo): Promise<void>
  /** the only job to join (default: any job a connected peer runs) */
  readonly joinJobId?: string
  readonly intervalMs?: number
  /** a line for the console */
  notice?(text: string): void
}

export interface AutoJoin {
  start(): void
  stop(): void
}

/**
 * connected peers asked per poll, in turn: asking all of them every poll cost 16 idle daemons two
 * whole cores (P x (P-1) requests every 2 s); in turn, each daemon's cost stays the same at any P
 * and a peer is asked at least every ceil((P-1) / 3) polls
 */
const PEERS_PER_POLL = 3

/**
 * While idle, ask connected peers, PEERS_PER_POLL of them in turn every `intervalMs` (default
 * 2 s), whether they host or run a job that is not over; join the first such job that is not the
 * one this daemon ran last.
 */
export function createAutoJoin(options: AutoJoinOptions): AutoJoin {
  const { node, log } = options
  let timer: NodeJS.Timeout | undefined
  let busy = false
  let abort = new AbortController()
  /** where the next poll starts in the (sorted) connected peers */
  let cursor = 0
  const nextPeers = (): string[] => {
    const peers = [...node.connectedPeers()].sort()
    if (peers.length <= PEERS_PER_POLL) return peers
    const start = cursor % peers.length
    cursor = start + PEERS_PER_POLL
    return Array.from({ length: PEERS_PER_POLL }, (_, k) => peers[(start + k) % peers.length])
  }

  const poll = async (): Promise<void> => {
    if (busy || !options.isIdle()) return
    busy = true
    try {
      for (const peer of nextPeers()) {
        if (!options.isIdle()) return
        let info: JobInfo
        try {
          info = await requestJson(node.libp2p, peerIdFromString(peer), JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema, { signal: abort.signal, timeoutMs: INFO_TIMEOUT_MS })
        } catch {
          continue
        }
        if (info.phase === 'finished' || info.jobId === options.currentJobId()) continue
        if (options.joinJobId !== undefined && info.jobId !== options.joinJobId) continue
        // it counts this daemon's previous process as its coordinator (joining through it dialed
        // this daemon itself, for ever): told that process left, it names its new one
        if (info.coordinator.peerId === node.peerId.toString() && info.phase === 'training') {
          const told = await tellPreviousProcessLeft(node, peerIdFromString(peer), info.jobId, info.step, abort.signal)
          log.info({ job: info.jobId, peer, step: info.step, told }, 'a member of the job counts this daemon\'s previous process as its coordinator: told it that process left')
          if (!told) continue
          options.notice?.(`peer ${peer} counts this daemon's previous process (it stopped without leaving) as the coordinator of job ${info.jobId}, at step ${info.step}: told it that process left; joining with its state`)
          // asked again at once, it names its new coordinator (it goes on meanwhile, alone if it was the only other member)
          try {
            info = await requestJson(node.libp2p, peerIdFromString(peer), JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema, { signal: abort.signal, timeoutMs: INFO_TIMEOUT_MS })
          } catch {
            continue
          }
          if (info.phase === 'finished' || info.coordinator.peerId === node.peerId.toString()) continue
        }
        log.info({ job: info.jobId, peer, coordinator: info.coordinator.peerId }, 'joining a job a connected peer runs (auto-join)')
        try {
          await options.join(info)
          return
        } catch (error) {
          if (abort.signal.aborted) return
          log.warn({ job: info.jobId, err: (error as Error).message }, 'could not auto-join the job; trying again later')
        }
      }
    } finally {
      busy = false
    }
  }

  return {
    start() {
      if (timer !== undefined) return
      abort = new AbortController()
      timer = setInterval(() => { void poll() }, options.intervalMs ?? 2_000)
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      abort.abort()
    }
  }
}
