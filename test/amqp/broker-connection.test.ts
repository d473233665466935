/**
 * A broker connection that cannot reach its broker keeps retrying, and stop() ends it at once
 * (it used to clear the retry timer and then wait for ever on the retry loop: a daemon or demo
 * whose broker was unreachable never exited, Ctrl-C included).
 */
import { createServer, type Server } from 'node:net'
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { BrokerUnavailableError, createBrokerConnection, probeBroker } from '../../protocols/amqp/index.js'

describe('a broker connection without a broker', () => {
  it('stops within a second while retrying, and its start() ends with an error', async () => {
    // a port nothing listens on: connection refused at once, then backoff waits
    const connection = createBrokerConnection({ url: 'amqp://guest:guest@127.0.0.1:1', logger: silentLogger(), minBackoffMs: 2_000 })
    const started = connection.start()
    started.catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(connection.connected()).toBe(false)
    const t0 = performance.now()
    await connection.stop()
    expect(performance.now() - t0).toBeLessThan(1_000)
    await expect(started).rejects.toBeInstanceOf(BrokerUnavailableError)
  })

  it('stops within a second and a half while a connect hangs (a host that never answers)', async () => {
    // accepts TCP but never speaks AMQP: the attempt hangs until amqplib's handshake timeout
    const server: Server = createServer(() => {})
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    try {
      const connection = createBrokerConnection({ url: `amqp://guest:guest@127.0.0.1:${port}`, logger: silentLogger() })
      const started = connection.start()
      started.catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 300))
      const t0 = performance.now()
      await connection.stop()
      expect(performance.now() - t0).toBeLessThan(1_500)
    } finally {
      server.close()
    }
  })

  it('probeBroker names the host and the reason', async () => {
    await expect(probeBroker('amqp://guest:guest@127.0.0.1:1', 1_000)).rejects.toThrow(/cannot reach the RabbitMQ broker at 127\.0\.0\.1:1: .*ECONNREFUSED/)
  })
})
