/**
 * Who a daemon is on the network, from its config: its key (kept in the data dir), the private
 * network's pre-shared key, and the bootstrap peers it dials, without its own address (one env
 * file copied to every host lists every host: the daemon dialed itself for ever, logging a
 * --psk-file or allowlist problem at every retry).
 */
import { readFile } from 'node:fs/promises'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { DaemonConfig } from '../../config/daemon-config.js'
import { loadOrCreatePeerKey, parseMultiaddr } from '../../protocols/node/index.js'
import type { Logger } from '../logger.js'

export interface PeerIdentity {
  readonly privateKey: PrivateKey
  /** the private network's key (libp2p pnet), if the daemon runs in one */
  readonly psk?: Uint8Array
  /** the bootstrap addresses other than the daemon's own, as given */
  readonly bootstrap: readonly string[]
  /** the same, parsed */
  readonly bootstrapAddrs: readonly Multiaddr[]
}

/**
 * Loads (or creates) the key in `config.dataDir` and reads `config.pskFile` unless `psk` is given.
 * Throws naming the file when the key file cannot be read, or the address when a bootstrap
 * address does not parse. Skipped own addresses are logged and told through `notice`.
 */
export async function loadPeerIdentity(config: Pick<DaemonConfig, 'dataDir' | 'pskFile' | 'bootstrap'>, psk: Uint8Array | undefined, log: Logger, notice?: (text: string) => void): Promise<PeerIdentity> {
  const privateKey = await loadOrCreatePeerKey(config.dataDir)
  const ownId = peerIdFromPrivateKey(privateKey).toString()
  const ownAddresses = config.bootstrap.filter((a) => a.split('/p2p/')[1] === ownId)
  const bootstrap = config.bootstrap.filter((a) => !ownAddresses.includes(a))
  if (ownAddresses.length > 0) {
    log.warn({ skipped: ownAddresses }, 'a bootstrap address is this daemon\'s own: skipped')
    notice?.(`--bootstrap ${ownAddresses.join(', ')} is this daemon itself (its peer id): skipped${bootstrap.length === 0 ? '; give another daemon\'s address to join it' : ''}`)
  }
  return {
    privateKey,
    psk: psk ?? (config.pskFile !== undefined ? await readPsk(config.pskFile) : undefined),
    bootstrap,
    bootstrapAddrs: bootstrap.map((a) => parseMultiaddr(a, 'bootstrap address'))
  }
}

async function readPsk(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path)
  } catch (error) {
    throw new Error(`cannot read the pre-shared key file ${path}: ${(error as Error).message}`)
  }
}
