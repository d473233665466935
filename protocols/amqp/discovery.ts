/**
 * How a peer with a broker but no job (and no libp2p bootstrap peer) finds one: it asks on the
 * broker's discovery fanout exchange; the coordinator of each running job answers, signed, into
 * the asker's own exclusive reply queue. The answers are returned unparsed (the caller validates
 * them as JobInfo).
 */
import { randomBytes } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { BrokerConnection } from './broker-connection.js'
import { DiscoverReplyHeaderSchema } from './control-messages.js'
import { openEnvelope, sealEnvelope } from './envelope.js'
import { DISCOVERY_EXCHANGE } from './names.js'

export interface DiscoveredJob {
  /** the (signature-checked) peer that answered */
  readonly from: string
  readonly info: unknown
}

/** Ask who runs a job; resolves with the answers received within `waitMs` (possibly none). */
export async function discoverJobs(connection: BrokerConnection, key: PrivateKey, selfId: string, options: { waitMs?: number, logger: Logger }): Promise<DiscoveredJob[]> {
  const id = randomBytes(8).toString('hex')
  const found: DiscoveredJob[] = []
  return await connection.withScratchChannel(async (ch) => {
    await ch.assertExchange(DISCOVERY_EXCHANGE, 'fanout', { durable: false, autoDelete: true })
    const { queue } = await ch.assertQueue('', { exclusive: true, durable: false, autoDelete: true })
    // bound too, so the auto-delete exchange goes away with the last queue (an ask of our own is ignored)
    await ch.bindQueue(queue, DISCOVERY_EXCHANGE, '')
    await ch.consume(queue, (msg) => {
      if (msg === null) return
      openEnvelope(msg.content).then((envelope) => {
        const parsed = DiscoverReplyHeaderSchema.safeParse(envelope.header)
        if (parsed.success && parsed.data.id === id) found.push({ from: envelope.header.from, info: parsed.data.info })
      }).catch((error: unknown) => options.logger.debug({ err: (error as Error).message }, 'dropped a discovery answer'))
    }, { noAck: true })
    const ask = await sealEnvelope(key, { kind: 'discover', job: '', from: selfId, id, replyTo: queue })
    ch.publish(DISCOVERY_EXCHANGE, '', ask)
    await new Promise((resolve) => setTimeout(resolve, options.waitMs ?? 1000))
    await ch.deleteQueue(queue)
    return found
  })
}
