/**
 * Where a daemon with a broker but no libp2p bootstrap peer learns of a job: it asks on the
 * broker (protocols/amqp/discovery.ts) and takes the first coordinator's answer.
 */
import type { PrivateKey } from '@libp2p/interface'
import { createBrokerConnection, describeBrokerFailure, discoverJobs } from '../../protocols/amqp/index.js'
import { JobInfoSchema, type JobInfo } from '../../protocols/job/job-protocol.js'
import type { Logger } from '../logger.js'

/** The broker refused or did not take the connection (its last failure in the message). */
export class BrokerUnreachableError extends Error {
  override name = 'BrokerUnreachableError'
}

/**
 * Throws BrokerUnreachableError when the connection failed (its last failure named), else when
 * no coordinator (of job `jobId`, when given) answered within `waitMs` (default 1 s;
 * the caller retries with backoff).
 */
export async function askBrokerForJob(amqpUrl: string, key: PrivateKey, selfId: string, log: Logger, options: { jobId?: string, waitMs?: number, signal?: AbortSignal } = {}): Promise<JobInfo> {
  const waitMs = options.waitMs ?? 1000
  const connection = createBrokerConnection({ url: amqpUrl, logger: log })
  // the connection retries an unreachable broker until stopped: a join aborted (a job submitted,
  // the daemon stopping) stops it, and its start() then rejects
  const onAbort = (): void => { void connection.stop() }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    options.signal?.throwIfAborted()
    await connection.start().catch((error: unknown) => {
      // stopped by the caller's deadline while the broker refused us: that, not "no answer", is why
      // (ACCESS_REFUSED for a wrong password, ECONNREFUSED for a port with no broker)
      const failing = connection.lastFailure()
      if (failing !== undefined) throw new BrokerUnreachableError(describeBrokerFailure(amqpUrl, failing))
      throw error
    })
    const answers = await discoverJobs(connection, key, selfId, { waitMs, logger: log })
    for (const answer of answers) {
      const parsed = JobInfoSchema.safeParse(answer.info)
      // only a coordinator's own word about itself is taken
      if (parsed.success && parsed.data.coordinator.peerId === answer.from && (options.jobId === undefined || parsed.data.jobId === options.jobId)) return parsed.data
    }
    throw new Error(`no ${options.jobId !== undefined ? `coordinator of job ${options.jobId}` : 'job'} answered on the broker at ${new URL(amqpUrl).host} within ${waitMs} ms`)
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    await connection.stop()
  }
}
