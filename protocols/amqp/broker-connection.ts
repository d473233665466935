/**
 * One connection to the RabbitMQ broker, kept up: on loss (broker restart, closed by an
 * operator, missed heartbeats) it reconnects with exponential backoff and runs every registered
 * topology declaration again, so exclusive queues, bindings and consumers come back. Publishing
 * waits for the broker's confirm (publisher confirms), and a mandatory message no queue took is
 * reported as unroutable: nothing is lost silently.
 */
import amqp from 'amqplib'
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib'
import type { Logger } from 'pino'

/** the broker could not be reached, or the connection dropped before the confirm */
export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError'
}

export type PublishOutcome = 'confirmed' | 'unroutable'

/** a TCP connect to the broker that has not completed after this long fails (then retried) */
const CONNECT_TIMEOUT_MS = 10_000

/**
 * One connection attempt to the broker at `url`, closed at once: resolves when it is reachable
 * with these credentials, rejects with BrokerUnavailableError naming the host and the reason.
 */
export async function probeBroker(url: string, timeoutMs = 5_000): Promise<void> {
  try {
    const m = await amqp.connect(url, { timeout: timeoutMs })
    await m.close().catch(() => {})
  } catch (error) {
    throw new BrokerUnavailableError(`cannot reach the RabbitMQ broker at ${new URL(url).host}: ${(error as Error).message}`)
  }
}

export interface BrokerConnectionOptions {
  /** amqp://user:pass@host:port/vhost */
  readonly url: string
  readonly logger: Logger
  /** first reconnect delay, doubled per failure up to maxBackoffMs (default 200 / 5000 ms) */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
  /** AMQP heartbeat in seconds (default 5): how fast a silently dead broker is noticed */
  readonly heartbeatSeconds?: number
}

export type TopologyDeclaration = (channel: ConfirmChannel) => Promise<void>

export interface BrokerConnectionStats {
  readonly connects: number
  readonly published: number
  readonly publishedBytes: number
  readonly unroutable: number
  /** bytes written to the broker's sockets (all connections so far): payload, framing, control */
  readonly socketBytesWritten: number
  readonly socketBytesRead: number
}

export interface BrokerConnection {
  /** connect (retrying with backoff until connected or stopped) */
  start(): Promise<void>
  /** close; no timer or socket is left behind */
  stop(): Promise<void>
  connected(): boolean
  /** while connecting: how many tries failed in a row and the last one's error (undefined once connected) */
  lastFailure(): { readonly failures: number, readonly message: string } | undefined
  /** resolves once connected (immediately when it is); rejects on stop or abort */
  ready(signal?: AbortSignal): Promise<void>
  /**
   * Publish and wait for the confirm. `mandatory`: report 'unroutable' when no queue is bound
   * for the key. Throws BrokerUnavailableError when the connection is down or drops first.
   */
  publish(exchange: string, routingKey: string, body: Buffer, options?: { mandatory?: boolean }): Promise<PublishOutcome>
  /** run on every (re)connection, in registration order; returns a function that unregisters it */
  onTopology(declare: TopologyDeclaration): () => void
  /** run `fn` on the live channel (declarations made at run time); BrokerUnavailableError when down */
  withChannel<T>(fn: (channel: ConfirmChannel) => Promise<T>): Promise<T>
  /** a throwaway channel for operations that may close it (e.g. delete-if-unused) */
  withScratchChannel<T>(fn: (channel: import('amqplib').Channel) => Promise<T>): Promise<T>
  stats(): BrokerConnectionStats
}

/**
 * A connection's failing tries (BrokerConnection.lastFailure) as a user reads them, with the flag
 * to check: 'cannot reach the broker at host:port (3 tries failed, the last: ...)' + `then` + '; check
 * --amqp-url (host, port, user and password) and that the broker runs'. `then`: e.g. ': retrying'.
 */
export function describeBrokerFailure(url: string, failing: { readonly failures: number, readonly message: string }, then = ''): string {
  return `cannot reach the broker at ${new URL(url).host} (${failing.failures} tr${failing.failures === 1 ? 'y' : 'ies'} failed, the last: ${failing.message})${then}; check --amqp-url (host, port, user and password) and that the broker runs`
}

export function createBrokerConnection(options: BrokerConnectionOptions): BrokerConnection {
  const { logger } = options
  const minBackoff = options.minBackoffMs ?? 200
  const maxBackoff = options.maxBackoffMs ?? 5000
  const declarations: TopologyDeclaration[] = []
  let model: ChannelModel | undefined
  let channel: ConfirmChannel | undefined
  let up = false
  let stopped = false
  let connecting: Promise<void> | undefined
  /** the tries failed in a row (BrokerConnection.lastFailure) */
  let failing: { failures: number, message: string } | undefined
  let retryTimer: NodeJS.Timeout | undefined
  let wakeRetry: (() => void) | undefined
  let waiters: Array<{ resolve: () => void, reject: (e: Error) => void }> = []
  let nextId = 0
  const returned = new Set<string>()
  const counters = { connects: 0, published: 0, publishedBytes: 0, unroutable: 0 }
  /** socket byte counts of closed connections, plus the live socket's */
  const closedBytes = { written: 0, read: 0 }
  let socket: { bytesWritten: number, bytesRead: number } | undefined

  const url = (): string => {
    const u = new URL(options.url)
    if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(options.heartbeatSeconds ?? 5))
    return u.toString()
  }

  const connectOnce = async (): Promise<void> => {
    const m = await amqp.connect(url(), { timeout: CONNECT_TIMEOUT_MS })
    // stopped while connecting: this connection is nobody's
    if (stopped) {
      await m.close().catch(() => {})
      return
    }
    try {
      const ch = await m.createConfirmChannel()
      ch.on('return', (msg: ConsumeMessage) => {
        const id = msg.properties.messageId as string | undefined
        if (id !== undefined) returned.add(id)
      })
      ch.on('error', (error: Error) => logger.debug({ err: error.message }, 'broker channel error'))
      for (const declare of [...declarations]) await declare(ch)
      m.on('error', (error: Error) => logger.debug({ err: error.message }, 'broker connection error'))
      m.on('close', () => onLost(m))
      socket = (m as unknown as { connection: { stream: { bytesWritten: number, bytesRead: number } } }).connection.stream
      model = m
      channel = ch
      up = true
      counters.connects++
      const ws = waiters
      waiters = []
      for (const w of ws) w.resolve()
    } catch (error) {
      await m.close().catch(() => {})
      throw error
    }
  }

  const connectWithBackoff = (): Promise<void> => {
    connecting ??= (async () => {
      let delay = minBackoff
      let failures = 0
      while (!stopped) {
        try {
          await connectOnce()
          failing = undefined
          if (stopped) return
          if (counters.connects > 1) logger.info({ connects: counters.connects }, 'reconnected to the broker')
          return
        } catch (error) {
          if (stopped) return
          // the first failure and then about once a minute (every 12th at the 5 s cap) at warn
          failures++
          failing = { failures, message: (error as Error).message }
          logger[failures % 12 === 1 ? 'warn' : 'debug']({ err: (error as Error).message, retryInMs: delay, failures }, 'cannot reach the broker; retrying')
          // stop() ends the wait at once (clearing the timer alone would leave this await hanging)
          await new Promise<void>((resolve) => {
            wakeRetry = resolve
            retryTimer = setTimeout(resolve, delay)
          })
          retryTimer = undefined
          wakeRetry = undefined
          delay = Math.min(maxBackoff, delay * 2)
        }
      }
    })().finally(() => { connecting = undefined })
    return connecting
  }

  const onLost = (m: ChannelModel): void => {
    if (model !== m) return
    retireSocket()
    up = false
    model = undefined
    channel = undefined
    returned.clear()
    if (stopped) return
    logger.warn('lost the broker connection; reconnecting')
    void connectWithBackoff()
  }

  const retireSocket = (): void => {
    closedBytes.written += socket?.bytesWritten ?? 0
    closedBytes.read += socket?.bytesRead ?? 0
    socket = undefined
  }

  const live = (): ConfirmChannel => {
    if (!up || channel === undefined) throw new BrokerUnavailableError('not connected to the broker (reconnecting)')
    return channel
  }

  return {
    async start() {
      stopped = false
      if (up) return
      await connectWithBackoff()
      if (!up) throw new BrokerUnavailableError(`could not connect to the broker at ${new URL(options.url).host}`)
    },
    async stop() {
      stopped = true
      if (retryTimer !== undefined) clearTimeout(retryTimer)
      wakeRetry?.()
      const ws = waiters
      waiters = []
      for (const w of ws) w.reject(new BrokerUnavailableError('broker connection stopped'))
      const m = model
      model = undefined
      channel = undefined
      up = false
      await m?.close().catch(() => {})
      retireSocket()
      // an attempt in flight (a host that drops packets answers only at the connect timeout)
      // closes its connection itself when it completes: not waited for longer than a moment
      let grace: NodeJS.Timeout | undefined
      await Promise.race([connecting?.catch(() => {}), new Promise((resolve) => { grace = setTimeout(resolve, 1_000) })])
      clearTimeout(grace)
    },
    connected: () => up,
    lastFailure: () => failing,
    ready(signal?: AbortSignal): Promise<void> {
      if (up) return Promise.resolve()
      if (stopped) return Promise.reject(new BrokerUnavailableError('broker connection stopped'))
      return new Promise((resolve, reject) => {
        const waiter = { resolve, reject }
        waiters.push(waiter)
        signal?.addEventListener('abort', () => {
          waiters = waiters.filter((w) => w !== waiter)
          reject(signal.reason as Error)
        }, { once: true })
      })
    },
    publish(exchange, routingKey, body, publishOptions = {}) {
      const ch = live()
      const messageId = String(++nextId)
      counters.published++
      counters.publishedBytes += body.byteLength
      return new Promise((resolve, reject) => {
        try {
          ch.publish(exchange, routingKey, body, { mandatory: publishOptions.mandatory === true, messageId }, (error) => {
            if (error !== null && error !== undefined) {
              reject(new BrokerUnavailableError(`broker did not confirm the message: ${(error as Error).message}`))
              return
            }
            if (returned.delete(messageId)) {
              counters.unroutable++
              resolve('unroutable')
            } else {
              resolve('confirmed')
            }
          })
        } catch (error) {
          reject(new BrokerUnavailableError(`cannot publish: ${(error as Error).message}`))
        }
      })
    },
    onTopology(declare) {
      declarations.push(declare)
      return () => {
        const i = declarations.indexOf(declare)
        if (i >= 0) declarations.splice(i, 1)
      }
    },
    async withChannel(fn) {
      return await fn(live())
    },
    async withScratchChannel(fn) {
      if (!up || model === undefined) throw new BrokerUnavailableError('not connected to the broker (reconnecting)')
      const ch = await model.createChannel()
      ch.on('error', () => {})
      try {
        return await fn(ch)
      } finally {
        await ch.close().catch(() => {})
      }
    },
    stats: () => ({ ...counters, socketBytesWritten: closedBytes.written + (socket?.bytesWritten ?? 0), socketBytesRead: closedBytes.read + (socket?.bytesRead ?? 0) })
  }
}
