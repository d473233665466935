/**
 * The broker transport keeps a member's gradient queue while it expects that member's gradients:
 * when the queue is deleted by someone else (a reviewer's broker run: a joiner's session that
 * stopped mid-job deleted the coordinator's queue of its gradients), the consumer declares it
 * again. Without that, the sender's next gradients went to a queue nobody read (or nowhere), and
 * every step of the coordinator waited out its deadline. A peer whose broker connection closed
 * (its process died) is told from one still there by a gradient or a probe coming back unroutable.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { createAmqpJobTransport, createBrokerConnection, jobNames, type AmqpJobTransport, type BrokerConnection } from '../../protocols/amqp/index.js'
import type { GradientMessage } from '../../protocols/messages/gradient-message.js'
import { BROKER_URL, queueConsumers as consumersOf } from './broker-names.js'

const PARAMETERS = 4
const until = async (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('the broker transport', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  const peer = async (jobId: string): Promise<{ id: string, transport: AmqpJobTransport, connection: BrokerConnection, received: GradientMessage[] }> => {
    const key = await generateKeyPair('Ed25519')
    const id = peerIdFromPrivateKey(key).toString()
    const connection = createBrokerConnection({ url: BROKER_URL, logger: silentLogger() })
    const transport = createAmqpJobTransport({
      connection, jobId, selfId: id, key, logger: silentLogger(),
      expect: { jobId, parameterCount: PARAMETERS, codec: 'none', payloadBytes: 4 * PARAMETERS }
    })
    const received: GradientMessage[] = []
    transport.onGradient((message) => { received.push(message) })
    await transport.start()
    await connection.start()
    cleanups.push(async () => { await transport.stop({ deleteJob: true }); await connection.stop() })
    return { id, transport, connection, received }
  }
  const gradient = (jobId: string, sender: string, step: number): GradientMessage => ({
    jobId, step, sender, codec: 'none', parameterCount: PARAMETERS, digest: new Uint8Array(32), payload: new Uint8Array(4 * PARAMETERS)
  })

  it('declares a watched sender\'s gradient queue again when it is deleted on the broker, and gets that sender\'s next gradient', async () => {
    const jobId = `requeue-${process.pid}-${Date.now()}`
    const receiver = await peer(jobId)
    const sender = await peer(jobId)
    receiver.transport.watchSender(sender.id)
    const queue = jobNames(jobId).gradientQueue(receiver.id, sender.id)
    await until('the gradient queue consumed', () => consumersOf(queue) === 1)

    expect((await sender.transport.publishGradient(gradient(jobId, sender.id, 0), [receiver.id])).missed).toEqual([])
    await until('gradient of step 0 received', () => receiver.received.length === 1)

    // a third party deletes the queue (what a stopping session of the sender used to do)
    const other = createBrokerConnection({ url: BROKER_URL, logger: silentLogger() })
    await other.start()
    try {
      await other.withScratchChannel(async (ch) => { await ch.deleteQueue(queue) })
    } finally {
      await other.stop()
    }
    // the receiver still expects the sender's gradients: the queue is back and consumed
    await until('the gradient queue consumed again', () => consumersOf(queue) === 1)
    expect((await sender.transport.publishGradient(gradient(jobId, sender.id, 1), [receiver.id])).missed).toEqual([])
    await until('gradient of step 1 received', () => receiver.received.length === 2)
    expect(receiver.received.map((m) => m.step)).toEqual([0, 1])
  }, 60_000)

  it('tells a peer whose broker connection closed (its process died) from one still there: gradient and probe come back unroutable', async () => {
    const jobId = `gone-${process.pid}-${Date.now()}`
    const sender = await peer(jobId)
    const receiver = await peer(jobId)
    receiver.transport.watchSender(sender.id)
    const queue = jobNames(jobId).gradientQueue(receiver.id, sender.id)
    await until('the gradient queue consumed', () => consumersOf(queue) === 1)
    expect(await sender.transport.probeGone(receiver.id)).toBe(false)
    expect(await sender.transport.publishGradient(gradient(jobId, sender.id, 0), [receiver.id])).toEqual({ missed: [], unroutable: [] })
    await until('gradient of step 0 received', () => receiver.received.length === 1)
    // the probe reached the live peer, which ignores it (no bad envelope counted)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(receiver.transport.stats().badEnvelopes).toBe(0)

    // the receiver's connection closes as a killed process's does (no stop(): its queues are
    // not deleted by it, the broker drops the exclusive and auto-delete ones)
    await receiver.connection.stop()
    await until('the gradient queue gone', () => consumersOf(queue) === undefined)
    expect(await sender.transport.probeGone(receiver.id)).toBe(true)
    expect(await sender.transport.publishGradient(gradient(jobId, sender.id, 1), [receiver.id])).toEqual({ missed: [receiver.id], unroutable: [receiver.id] })
  }, 60_000)
})
