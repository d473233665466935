/**
 * A daemon's libp2p node: TCP, Noise (always), yamux, identify, bootstrap discovery and
 * gossipsub (strict signing, no self delivery); optionally a pre-shared-key private network
 * and an allowlist of peer ids enforced by the connection gater.
 *
 * libp2p 3 does not dial discovered peers by itself, so the node dials on `peer:discovery`,
 * keeps its bootstrap peers reachable with backoff, and offers `connectTo` for the membership
 * layer, whose heartbeats carry every member's addresses: that is what turns the bootstrap
 * star into a full mesh among job members.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { generateKey, preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { pino, type Logger } from 'pino'
import { createBootstrapDialer, type BootstrapDialer } from './bootstrap-dialer.js'
import { fastMessageId } from './fast-message-id.js'
import { addressesInUse, ListenAddressInUseError, listenProblems, PeerNodeError } from './errors.js'
import { parseMultiaddr, peerIdOf } from './multiaddrs.js'
import { createRefusedConnections } from './refused-connections.js'
import { watchInboundHandshakes } from './inbound-handshakes.js'
import { createTrafficMeter } from './traffic-meter.js'

export type P2pmldLibp2p = Libp2p<{ identify: Identify, pubsub: GossipSub }>

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/4001'

export interface PeerNodeOptions {
  readonly privateKey: PrivateKey
  /** default [DEFAULT_LISTEN]; tests use '/ip4/127.0.0.1/tcp/0' */
  readonly listen?: readonly string[]
  /**
   * addresses to give other peers instead of the listen addresses (identify, dialableAddrs):
   * a host behind NAT announces the public address that forwards to its listen port
   */
  readonly announce?: readonly string[]
  /** multiaddrs of peers to join the network through (with /p2p/<id> for peer discovery) */
  readonly bootstrap?: readonly string[]
  /** a private network key (see createPsk); peers with another key cannot connect */
  readonly psk?: Uint8Array
  /** peer ids allowed to connect, in or out; absent: anyone (with the PSK, if set) */
  readonly allowlist?: readonly string[]
  readonly logger?: Logger
  /** bootstrap re-dial backoff */
  readonly bootstrapInitialDelayMs?: number
  readonly bootstrapMaxDelayMs?: number
  /** largest inbound gossipsub RPC accepted (default 4 MiB, gossipsub's own outbound cap) */
  readonly maxGossipBytes?: number
  /** libp2p metrics component factory, e.g. a TrafficMeter's */
  readonly metrics?: () => unknown
}

export interface PeerNode {
  readonly libp2p: P2pmldLibp2p
  readonly peerId: PeerId
  readonly pubsub: GossipSub
  /** idempotent; throws PeerNodeError when a listen address cannot be bound */
  start(): Promise<void>
  stop(): Promise<void>
  isStarted(): boolean
  /** the addresses other peers dial, with /p2p/<id>: the announced ones when set, else the listen addresses */
  dialableAddrs(): string[]
  /** dial a peer unless already connected; false (logged at debug) when it cannot be reached */
  connectTo(peerId: string, addrs?: readonly string[]): Promise<boolean>
  connectedPeers(): string[]
  /** inbound connections refused since start, by reason (see refused-connections.ts) */
  refusedConnections(): Record<string, number>
}

/** a fresh private-network key in the go-ipfs swarm.key format @libp2p/pnet reads */
export function createPsk (): Uint8Array {
  const key = new Uint8Array(95)
  generateKey(key)
  return key
}

export async function createPeerNode (options: PeerNodeOptions): Promise<PeerNode> {
  const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'peer-node' })
  const listen = options.listen ?? [DEFAULT_LISTEN]
  for (const address of listen) parseMultiaddr(address, 'listen address')
  const announce = options.announce ?? []
  for (const address of announce) parseMultiaddr(address, 'announce address')
  const bootstrapAddrs: Multiaddr[] = (options.bootstrap ?? []).map((a) => parseMultiaddr(a, 'bootstrap address'))
  const withPeerId = bootstrapAddrs.filter((ma) => peerIdOf(ma) !== undefined).map((ma) => ma.toString())
  const allowed = options.allowlist === undefined ? undefined : new Set(options.allowlist)
  if (allowed !== undefined) {
    for (const id of allowed) {
      try {
        peerIdFromString(id)
      } catch {
        throw new PeerNodeError(`allowlist entry '${id}' is not a peer id (expected e.g. 12D3KooW...)`)
      }
    }
  }
  let protector: Libp2pOptions['connectionProtector']
  if (options.psk !== undefined) {
    const psk = options.psk
    try {
      // construct once to validate the key now rather than on the first connection
      preSharedKey({ psk })()
    } catch (error) {
      // the key file's format (the README's recipe), not pnet's JavaScript API (createPsk())
      throw new PeerNodeError(`the private network key is invalid (${(error as Error).message}): a key file holds three lines, /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits; make one with: printf '/key/swarm/psk/1.0.0/\\n/base16/\\n%s\\n' "$(openssl rand -hex 32)" > swarm.key`)
    }
    protector = preSharedKey({ psk })
  }
  const denied = (peer: PeerId): boolean => allowed !== undefined && !allowed.has(peer.toString())
  const refused = createRefusedConnections(logger, options.psk !== undefined
    ? 'the handshake failed (a peer with another pre-shared key, not a libp2p peer, or a handshake that timed out on a busy machine)'
    : 'the handshake failed (not a libp2p peer, a peer that uses a pre-shared key, or a handshake that timed out on a busy machine)')
  // a raw inbound connection that closes before libp2p opened a connection on it was refused
  // by its handshake (another pre-shared key, or not libp2p)
  const handshakes = watchInboundHandshakes((options.metrics ?? createTrafficMeter().metricsFactory)() as Record<string, unknown>, (address) => {
    refused.refuse('handshake-failed', address)
  })

  const libp2p = await createLibp2p({
    privateKey: options.privateKey,
    start: false,
    addresses: { listen: [...listen], announce: [...announce] },
    transports: [tcp()],
    // every member dials every other at a job's start: 16 peers behind one address (loopback, a
    // NAT) passed libp2p's defaults (5 inbound connections a second per address, 10 pending)
    // and were reset, retried and logged as refused handshakes
    connectionManager: { inboundConnectionThreshold: 32, maxIncomingPendingConnections: 32 },
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(protector !== undefined ? { connectionProtector: protector } : {}),
    metrics: handshakes.metrics as Libp2pOptions['metrics'],
    peerDiscovery: withPeerId.length > 0 ? [bootstrap({ list: withPeerId })] : [],
    connectionGater: {
      // loopback and private addresses are where tests and LAN clusters live
      denyDialMultiaddr: () => false,
      denyDialPeer: (peer) => denied(peer),
      denyInboundEncryptedConnection: (peer, maConn) => {
        if (!denied(peer)) return false
        handshakes.settled(maConn.remoteAddr.toString())
        refused.refuse('not-allowlisted', maConn.remoteAddr.toString(), { peer: peer.toString() })
        return true
      },
      denyOutboundEncryptedConnection: (peer) => denied(peer)
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        emitSelf: false,
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        maxInboundDataLength: options.maxGossipBytes ?? 4 * 1024 * 1024,
        // no penalty for many peers behind one IP address (gossipsub's IP colocation factor: -5 x
        // (peers - 10)^2): the job's topics take only members' signed messages, and with more than
        // 13 peers on one address (loopback, a NAT, containers on one host) the penalty crossed
        // the graylist threshold, the host's membership announcements stopped reaching 10 of 16
        // peers and the job never left step 0
        scoreParams: { IPColocationFactorWeight: 0 },
        // a copy of a message already seen is dropped before its signature is checked: without
        // this gossipsub verifies every copy each mesh neighbour forwards (up to D = 6) and only
        // then finds it a duplicate
        fastMsgIdFn: fastMessageId
      })
    }
  }) as unknown as P2pmldLibp2p

  let dialer: BootstrapDialer | undefined
  const self = libp2p.peerId.toString()
  const isConnected = (peer: string): boolean => libp2p.getConnections().some((c) => c.remotePeer.toString() === peer)

  const onDiscovery = (event: CustomEvent<{ id: PeerId, multiaddrs: Multiaddr[] }>): void => {
    const peer = event.detail.id.toString()
    if (peer === self || isConnected(peer) || denied(event.detail.id)) return
    libp2p.dial(event.detail.id, { signal: AbortSignal.timeout(10_000) }).catch((error: unknown) => {
      logger.debug({ peer, err: (error as Error).message }, 'could not dial a discovered peer')
    })
  }

  const onConnectionOpen = (event: CustomEvent<Connection>): void => { handshakes.upgraded(event.detail.remoteAddr.toString()) }

  let started = false
  const node: PeerNode = {
    libp2p,
    peerId: libp2p.peerId,
    pubsub: libp2p.services.pubsub,
    async start () {
      if (started) return
      libp2p.addEventListener('peer:discovery', onDiscovery)
      libp2p.addEventListener('connection:open', onConnectionOpen)
      try {
        await libp2p.start()
      } catch (error) {
        libp2p.removeEventListener('peer:discovery', onDiscovery)
        libp2p.removeEventListener('connection:open', onConnectionOpen)
        await Promise.resolve(libp2p.stop()).catch(() => {})
        const busy = addressesInUse(error)
        if (busy.length > 0) throw new ListenAddressInUseError(busy)
        // libp2p's own words (its stack trace, a transportManager setting) are for the log
        throw new PeerNodeError(listenProblems(error) ?? `cannot start the libp2p node on ${listen.join(', ')}: ${(error as Error).message}`, { cause: error })
      }
      started = true
      dialer = createBootstrapDialer({
        libp2p,
        addresses: bootstrapAddrs,
        logger,
        initialDelayMs: options.bootstrapInitialDelayMs,
        maxDelayMs: options.bootstrapMaxDelayMs
      })
      dialer.start()
      logger.info({ peerId: self, addrs: node.dialableAddrs() }, 'libp2p node started')
    },
    async stop () {
      if (!started) return
      started = false
      dialer?.stop()
      dialer = undefined
      libp2p.removeEventListener('peer:discovery', onDiscovery)
      libp2p.removeEventListener('connection:open', onConnectionOpen)
      await libp2p.stop()
      logger.info({ peerId: self }, 'libp2p node stopped')
    },
    isStarted: () => started,
    dialableAddrs () {
      return libp2p.getMultiaddrs().map((ma) => ma.toString())
        .map((text) => (text.includes('/p2p/') ? text : `${text}/p2p/${self}`))
    },
    async connectTo (peerId, addrs = []) {
      if (!started || peerId === self) return false
      if (isConnected(peerId)) return true
      let id: PeerId
      try {
        id = peerIdFromString(peerId)
      } catch {
        logger.debug({ peer: peerId }, 'not dialing: not a peer id')
        return false
      }
      if (denied(id)) return false
      const targets: Array<PeerId | Multiaddr> = []
      for (const text of addrs) {
        try {
          const ma = parseMultiaddr(text)
          const owner = peerIdOf(ma)
          if (owner === undefined || owner === peerId) targets.push(owner === undefined ? ma.encapsulate(`/p2p/${peerId}`) : ma)
        } catch {
          logger.debug({ peer: peerId, address: text }, 'skipping an invalid member address')
        }
      }
      if (targets.length === 0) targets.push(id)
      for (const target of targets) {
        try {
          await libp2p.dial(target as PeerId, { signal: AbortSignal.timeout(10_000) })
          return true
        } catch (error) {
          logger.debug({ peer: peerId, target: target.toString(), err: (error as Error).message }, 'could not dial member')
        }
      }
      return false
    },
    connectedPeers () {
      return [...new Set(libp2p.getConnections().map((c) => c.remotePeer.toString()))]
    },
    refusedConnections: () => refused.counts()
  }
  return node
}
