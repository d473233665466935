/**
 * Keeps the bootstrap peers reachable: an unreachable one is logged with the reason and
 * re-dialed with capped exponential backoff; a connected one is re-checked at the cap. Never
 * throws: a missing bootstrap peer degrades discovery, it does not stop the node.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { peerIdOf } from './multiaddrs.js'

export interface BootstrapDialerOptions {
  readonly libp2p: Libp2p
  readonly addresses: readonly Multiaddr[]
  readonly logger: Logger
  /** first retry delay; doubles per failure up to maxDelayMs */
  readonly initialDelayMs?: number
  readonly maxDelayMs?: number
  readonly dialTimeoutMs?: number
}

export interface BootstrapDialer {
  start(): void
  stop(): void
  /** failed dial attempts per address since start */
  failures(): ReadonlyMap<string, number>
}

/** nothing answered at the address (vs. a peer that answered and then closed the connection) */
const UNREACHABLE = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EADDRNOTAVAIL|no valid addresses/i
/**
 * the dial ran out of time: a host that drops packets, or one that accepted the TCP connection
 * and never finished the handshake, which is what a private network with another key does
 * (seen on loopback: "The operation was aborted due to timeout")
 */
const TIMED_OUT = /ETIMEDOUT|timed out|timeout|aborted/i

/**
 * What a failed dial probably means, for people: unreachable (the address, or the peer is not
 * running); out of time (either that, or a private network with another key, which leaves the
 * handshake unanswered); or reached and closed during or right after the handshake, which is how
 * a private network with another key, or an allowlist without this peer, refuses it.
 */
export const PEER_CLOSED_HINT = 'the peer closed the connection: check that both use the same --psk-file and that this peer id is on its allowlist'

/**
 * the remote end closed or reset the connection during or right after the handshake, or its
 * handshake could not be read: a private network with another key decrypts the peer's bytes to
 * noise, whose length prefix then reads as absurd ('Message length too long - 6329 > 1024')
 */
export function closedByPeer (error: unknown): boolean {
  const err = error as { name?: string, message?: string, code?: string }
  return /ECONNRESET|EPIPE|UnexpectedEOF|StreamReset|ConnectionClosed|EncryptionFailed|stream closed|reset|Message length (length )?too long/i.test(`${err.name ?? ''} ${err.code ?? ''} ${err.message ?? ''}`)
}

export function describeDialFailure (error: unknown): string {
  const err = error as { name?: string, message?: string, code?: string }
  const text = `${err.name ?? ''} ${err.code ?? ''} ${err.message ?? ''}`
  if (UNREACHABLE.test(text)) return 'cannot reach bootstrap peer; retrying (check the address and that the peer is running)'
  if (TIMED_OUT.test(text)) return 'no answer from the bootstrap peer in time; retrying (check that both use the same --psk-file, that this peer id is on its allowlist, the address and that the peer is running; on a machine short of CPU it may only be slow to answer)'
  return `${PEER_CLOSED_HINT}; retrying`
}

export function createBootstrapDialer (options: BootstrapDialerOptions): BootstrapDialer {
  const initial = options.initialDelayMs ?? 500
  const max = Math.max(initial, options.maxDelayMs ?? 30_000)
  const timers = new Set<NodeJS.Timeout>()
  const failures = new Map<string, number>()
  let running = false
  let generation = 0

  const isConnected = (address: Multiaddr): boolean => {
    const peer = peerIdOf(address)
    return peer !== undefined && options.libp2p.getConnections().some((c) => c.remotePeer.toString() === peer)
  }

  const schedule = (address: Multiaddr, delay: number, gen: number): void => {
    if (!running || gen !== generation) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (isConnected(address)) schedule(address, max, gen)
      else attempt(address, delay, gen)
    }, delay)
    timers.add(timer)
  }

  const attempt = (address: Multiaddr, delay: number, gen: number): void => {
    if (!running || gen !== generation) return
    const text = address.toString()
    options.libp2p.dial(address, { signal: AbortSignal.timeout(options.dialTimeoutMs ?? 10_000) }).then(() => {
      if (!running || gen !== generation) return
      options.logger.info({ address: text }, 'connected to bootstrap peer')
      schedule(address, max, gen)
    }, (error: unknown) => {
      if (!running || gen !== generation) return
      const count = (failures.get(text) ?? 0) + 1
      failures.set(text, count)
      options.logger.warn({ address: text, attempt: count, retryInMs: delay, err: (error as Error).message }, describeDialFailure(error))
      schedule(address, Math.min(max, delay * 2), gen)
    })
  }

  return {
    start () {
      if (running) return
      running = true
      generation++
      for (const address of options.addresses) attempt(address, initial, generation)
    },
    stop () {
      if (!running) return
      running = false
      generation++
      for (const t of timers) clearTimeout(t)
      timers.clear()
    },
    failures: () => failures
  }
}
