/**
 * Keeps trying to reach the bootstrap peers: an unreachable one is logged with the reason and
 * re-dialed with capped exponential backoff; it never stops the daemon.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface BootstrapDialerOptions {
  readonly node: Libp2p
  readonly addresses: readonly Multiaddr[]
  readonly log: { info(obj: object, msg: string): void, warn(obj: object, msg: string): void }
  readonly initialDelayMs?: number
  readonly maxDelayMs?: number
}

export interface BootstrapDialer {
  start(): void
  stop(): void
  /** resolves once any bootstrap peer is connected */
  connected(signal?: AbortSignal): Promise<void>
}

export function createBootstrapDialer(options: BootstrapDialerOptions): BootstrapDialer {
  const initial = options.initialDelayMs ?? 500
  const max = options.maxDelayMs ?? 30_000
  const timers = new Set<NodeJS.Timeout>()
  const waiters = new Set<() => void>()
  let running = false
  let anyConnected = false

  const attempt = (address: Multiaddr, delay: number): void => {
    if (!running) return
    options.node.dial(address, { signal: AbortSignal.timeout(10_000) }).then(() => {
      if (!anyConnected) options.log.info({ address: address.toString() }, 'connected to bootstrap peer')
      anyConnected = true
      for (const w of waiters) w()
      waiters.clear()
      // stay watchful: if it drops, dial again later
      schedule(address, max)
    }, (error: unknown) => {
      if (!running) return
      options.log.warn({ address: address.toString(), retryInMs: delay, err: (error as Error).message }, 'cannot reach bootstrap peer; retrying')
      schedule(address, Math.min(max, delay * 2))
    })
  }

  const schedule = (address: Multiaddr, delay: number): void => {
    if (!running) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      const peer = address.getComponents().find((c) => c.name === 'p2p')?.value
      const connected = peer !== undefined && options.node.getConnections().some((c) => c.remotePeer.toString() === peer)
      if (connected) schedule(address, max)
      else attempt(address, delay)
    }, delay)
    timers.add(timer)
  }

  return {
    start() {
      if (running) return
      running = true
      for (const address of options.addresses) attempt(address, initial)
    },
    stop() {
      running = false
      for (const t of timers) clearTimeout(t)
      timers.clear()
      for (const w of waiters) w()
      waiters.clear()
    },
    connected(signal?: AbortSignal): Promise<void> {
      if (anyConnected || options.addresses.length === 0) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const done = (): void => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
        const onAbort = (): void => {
          waiters.delete(done)
          reject(signal?.reason)
        }
        waiters.add(done)
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
  }
}
