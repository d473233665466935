/**
 * Finding a job to join without --bootstrap: asking the members a restarted daemon knew
 * (known-members.ts) whether the job still runs, and, for idle daemons, asking the peers they
 * are connected to whether one hosts a job (auto-join). Both ask with the job protocol's `info`
 * request; a peer that answers with an error is reachable but runs no job (yet).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { JOB_PROTOCOL, JobInfoSchema, type JobInfo } from '../../protocols/job/job-protocol.js'
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
  /** nobody ranked before this daemon is reachable: resume the job from the checkpoint */
  | { readonly kind: 'resume' }

async function askInfo(node: PeerNode, member: KnownMembers['members'][number], signal: AbortSignal): Promise<JobInfo | 'reachable' | 'unreachable'> {
  const suffix = `/p2p/${member.peerId}`
  for (const addr of member.addrs) {
    try {
      const target = parseMultiaddr(addr.endsWith(suffix) ? addr : addr + suffix, 'member address')
      return await requestJson(node.libp2p, target, JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema, { signal, timeoutMs: INFO_TIMEOUT_MS })
    } catch (error) {
      if (error instanceof RemoteError) return 'reachable'
    }
  }
  return 'unreachable'
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
