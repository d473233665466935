/**
 * Asking for a job to join: the job protocol's `info` request to each address in turn (the
 * members a daemon knew before an eviction, then its bootstrap peers), then, if none names a job
 * still going, the broker. One pass; the joiner (job-joiner.ts) retries with backoff.
 */
import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { JOB_PROTOCOL, NO_JOB_HERE, JobInfoSchema, type JobInfo } from '../../protocols/job/job-protocol.js'
import type { PeerNode } from '../../protocols/node/index.js'
import { RemoteError, requestJson } from '../../protocols/request/json-request.js'
import { budgetSignal } from '../job/budget-signal.js'
import type { Logger } from '../logger.js'
import { askBrokerForJob, BrokerUnreachableError } from './broker-join.js'
import { tellPreviousProcessLeft } from './job-discovery.js'

/** a question to the broker for a job's coordinator (a joiner's, a restarted member's): at most this long (ms) */
export const BROKER_PROBE_MS = 3_000

/** every peer asked answered that it runs no job (yet): the normal wait before a `job submit`, not a problem */
export class NoJobYetError extends Error {
  override name = 'NoJobYetError'
}

export interface AskForJobOptions {
  readonly node: PeerNode
  readonly log: Logger
  /** this daemon's peer id */
  readonly peerId: string
  /** signs the broker question */
  readonly privateKey: PrivateKey
  /** asked in this order */
  readonly addresses: readonly Multiaddr[]
  /** asked when no address names a job still going (bounded by BROKER_PROBE_MS) */
  readonly amqpUrl?: string
  /** the only job to take (default: the first one an address names) */
  readonly wanted?: string
  /** for the error naming a peer that runs another job: this daemon "<wantedBecause>" `wanted` */
  readonly wantedBecause: string
}

/**
 * The first job still going that an address names (`wanted` only, if given); else the first
 * finished one named; else the broker's answer. Throws NoJobYetError when every address answered
 * that it runs no job, else an Error naming every address's failure; aborts with `signal`.
 */
export async function askPeersForJob(options: AskForJobOptions, signal: AbortSignal): Promise<JobInfo> {
  const { node, peerId, wanted } = options
  // every address's failure, not only the last one's: a re-join after an eviction asks the
  // members it knew first, and their dial errors are what says why it cannot get back
  const failures: string[] = []
  /** of those, peers that answered that they run no job */
  let idle = 0
  /** the first answer naming a finished job: taken only when no peer asked runs one still going */
  let finished: JobInfo | undefined
  for (const address of options.addresses) {
    try {
      const info = await requestJson(node.libp2p, address, JOB_PROTOCOL, { v: 1, type: 'info' }, JobInfoSchema, { signal })
      // a member that missed this peer's leave (it joined as this peer stopped) still names it
      // as the coordinator: joining through it would dial this peer itself
      if (info.coordinator.peerId === peerId) {
        // or one that counts this daemon's previous process, killed without a leave: told, it
        // names its new coordinator when asked again
        const told = info.phase === 'training' && await tellPreviousProcessLeft(node, address, info.jobId, info.step, signal)
        failures.push(`the peer at ${address.toString()} names this peer as job ${info.jobId}'s coordinator (it has not heard that this peer left${told ? ': told it now' : ''})`)
        continue
      }
      if (wanted === undefined || info.jobId === wanted) {
        // a bootstrap peer that finished its job (and runs no other yet) is not the only one
        // to ask: a peer later in the list may run the job to join
        if (info.phase !== 'finished') return info
        finished ??= info
        continue
      }
      failures.push(`the peer at ${address.toString()} ${info.phase === 'finished' ? `ran job ${info.jobId} (finished at step ${info.step})` : `runs job ${info.jobId}`}, not ${wanted} (the job this daemon ${options.wantedBecause})`)
    } catch (error) {
      signal.throwIfAborted()
      if (error instanceof RemoteError && error.message === NO_JOB_HERE) idle++
      failures.push(`${address.toString()}: ${(error as Error).message}`)
    }
  }
  // (the broker is not asked then: its bounded question would delay every such join)
  if (finished !== undefined) return finished
  const described = failures.length === 1 ? failures[0] : `no peer answered for the job: ${failures.join('; ')}`
  const lastError = failures.length === 0 ? undefined : idle === failures.length ? new NoJobYetError(described) : new Error(described)
  if (options.amqpUrl !== undefined) {
    // bounded, as the bootstrap peers are: the next try asks them again
    const budget = budgetSignal(BROKER_PROBE_MS, signal)
    try {
      return await askBrokerForJob(options.amqpUrl, options.privateKey, peerId, options.log, { jobId: wanted, signal: budget.signal })
    } catch (error) {
      signal.throwIfAborted()
      // a broker that refused the connection says why, whether or not the budget ran out
      if (error instanceof BrokerUnreachableError) throw new Error(`${error.message}${lastError === undefined ? '' : ` (and the bootstrap peers: ${lastError.message})`}`)
      throw budget.signal.aborted ? new Error(`no answer from the broker at ${new URL(options.amqpUrl).host} within ${BROKER_PROBE_MS} ms${lastError === undefined ? '' : ` (and the bootstrap peers: ${lastError.message})`}`) : error
    } finally {
      budget.dispose()
    }
  }
  throw lastError ?? new Error('no bootstrap peer to ask for the job')
}
