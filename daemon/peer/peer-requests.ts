/**
 * What a peer daemon answers other peers outside the gradient exchange: job requests (info, join,
 * digest, pause/resume decisions, leave; protocols/job) and state-sync requests (a snapshot of
 * the job's state at a step, or one range of it). Both go to the daemon's current job session;
 * refusals are counted and logged through the daemon's rejection log.
 */
import type { Libp2p } from '@libp2p/interface'
import { JOB_PROTOCOL, JobRequestSchema, NO_JOB_HERE } from '../../protocols/job/job-protocol.js'
import { ExpectedRefusal, handleJsonRequests } from '../../protocols/request/json-request.js'
import { registerStateSyncServer, StateSyncRefusedError, type StateSyncServer } from '../../protocols/state-sync/index.js'
import { budgetSignal } from '../job/budget-signal.js'
import { toTrainingSnapshot } from '../job/snapshot-conversion.js'
import type { Logger } from '../logger.js'
import type { JobSession } from './job-session.js'
import type { RejectionLog } from './rejection-log.js'

/** a digest question (or a held join reply) for a step this peer has not reached waits this long at most, ms */
const DIGEST_WAIT_MS = 25_000
/** a snapshot request waits this long at most for the step it asks for, ms */
const SNAPSHOT_WAIT_MS = 120_000

export interface PeerRequestsOptions {
  readonly libp2p: Libp2p
  /** the daemon's job session now (undefined: it runs none) */
  readonly session: () => JobSession | undefined
  readonly rejections: RejectionLog
  readonly log: Logger
}

/**
 * Registers the job-protocol handler and the state-sync server on `libp2p`; resolves with the
 * state-sync server (its `active` transfers; stop() it before the node stops).
 */
export async function servePeerRequests(options: PeerRequestsOptions): Promise<StateSyncServer> {
  const { libp2p, session, rejections, log } = options
  await handleJsonRequests(libp2p, JOB_PROTOCOL, JobRequestSchema, async (request, remote, requesterGone) => {
    const s = session()
    if (s === undefined) throw new ExpectedRefusal(NO_JOB_HERE)
    if (request.type === 'info') return s.info()
    if (request.jobId !== s.jobId) throw new Error(`this peer runs job ${s.jobId}, not ${request.jobId}`)
    // a reply held until the start ends when the joiner goes away: it must not count (admission-reply.ts)
    if (request.type === 'join') {
      const wait = budgetSignal(DIGEST_WAIT_MS, requesterGone)
      try {
        return await s.admit(remote.toString(), request.addrs, wait.signal)
      } finally {
        wait.dispose()
      }
    }
    if (request.type === 'digest') return await s.digestFor(request.step, AbortSignal.timeout(DIGEST_WAIT_MS), remote.toString())
    if (request.type === 'control') return s.decideControl(request.action)
    s.memberLeaving(remote.toString(), request.effectiveStep)
    return { membership: s.info().membership }
  }, {
    onError: (error) => log.debug({ err: error }, 'job request failed'),
    onRejected: (reason, remote, message, expected) => rejections.reject(`job-${reason}`, { from: remote.toString() }, `job request: ${message}`, { expected })
  })
  return await registerStateSyncServer(libp2p, {
    getSnapshot: async (request, remotePeer) => {
      const s = session()
      if (s === undefined || s.jobId !== request.jobId) throw new StateSyncRefusedError('unknown-job', `this peer does not run job ${request.jobId}`)
      try {
        return toTrainingSnapshot(await s.snapshotFor(request.minStep ?? 0, AbortSignal.timeout(SNAPSHOT_WAIT_MS), remotePeer.toString(), request.range !== undefined))
      } catch (error) {
        throw new StateSyncRefusedError('not-ready', (error as Error).message)
      }
    },
    onRejected: (reason, remote, message, expected) => rejections.reject(`state-${reason}`, { from: remote.toString() }, `state-sync request: ${message}`, { expected: expected === true })
  })
}
