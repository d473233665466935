/**
 * A daemon's libp2p node: TCP, Noise (always), yamux, identify, bootstrap discovery and
 * gossipsub with strict signing; optionally a pre-shared-key private network and an allowlist
 * of peer ids enforced before any stream opens.
 */
import { gossipsub } from '@libp2p/gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

export type PubSub = ReturnType<ReturnType<typeof gossipsub>>
export type PeerNode = Libp2p<{ identify: unknown, pubsub: PubSub }>

export class InvalidMultiaddrError extends Error {
  override name = 'InvalidMultiaddrError'
}

export interface PeerNodeOptions {
  readonly privateKey: PrivateKey
  /** default ['/ip4/0.0.0.0/tcp/4001'] */
  readonly listen?: readonly string[]
  /** peers to discover the network through (@libp2p/bootstrap; the daemon also re-dials them with backoff) */
  readonly bootstrap?: readonly string[]
  readonly psk?: Uint8Array
  /** peer ids allowed to connect (others are refused); absent: anyone */
  readonly allowlist?: readonly string[]
  /** largest gossip message accepted */
  readonly maxGossipBytes?: number
}

/** Parse a user-given multiaddr, naming it in the error. */
export function parseMultiaddr(text: string, what = 'address'): Multiaddr {
  try {
    return multiaddr(text)
  } catch (error) {
    throw new InvalidMultiaddrError(`${what} '${text}' is not a multiaddr (expected e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...): ${(error as Error).message}`)
  }
}

export async function createPeerNode(options: PeerNodeOptions): Promise<PeerNode> {
  const listen = options.listen ?? ['/ip4/0.0.0.0/tcp/4001']
  for (const address of listen) parseMultiaddr(address, 'listen address')
  const allowed = options.allowlist === undefined ? undefined : new Set(options.allowlist)
  const bootstrapList = (options.bootstrap ?? []).map((a) => parseMultiaddr(a, 'bootstrap address'))
    .filter((ma) => ma.getComponents().some((c) => c.name === 'p2p')).map((ma) => ma.toString())
  const denied = (peer: PeerId): boolean => allowed !== undefined && !allowed.has(peer.toString())
  const node = await createLibp2p({
    privateKey: options.privateKey,
    start: false,
    addresses: { listen: [...listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList })] : [],
    ...(options.psk !== undefined ? { connectionProtector: preSharedKey({ psk: options.psk }) } : {}),
    connectionGater: {
      // loopback and private addresses are where tests and LAN clusters live
      denyDialMultiaddr: () => false,
      denyDialPeer: (peer) => denied(peer),
      denyInboundEncryptedConnection: (peer) => denied(peer),
      denyOutboundEncryptedConnection: (peer) => denied(peer)
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        emitSelf: false,
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        maxInboundDataLength: options.maxGossipBytes ?? 1024 * 1024
      })
    }
  })
  return node as unknown as PeerNode
}

/** The node's dialable addresses, each ending in /p2p/<id>. */
export function dialableAddresses(node: Libp2p): string[] {
  return node.getMultiaddrs().map((ma) => ma.toString())
}
