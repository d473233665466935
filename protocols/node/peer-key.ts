/**
 * The peer's identity: a private key stored protobuf-encoded (mode 0600) in the data directory,
 * so the peer id survives restarts.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { PeerKeyError } from './errors.js'

export const PEER_KEY_FILE = 'peer-key.pb'

export function peerKeyPath (dataDir: string): string {
  return join(dataDir, PEER_KEY_FILE)
}

export async function loadOrCreatePeerKey (dataDir: string): Promise<PrivateKey> {
  const path = peerKeyPath(dataDir)
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    // it said to check the permissions of what is a file
    if (code === 'ENOTDIR') throw new PeerKeyError(`the data directory ${dataDir} is a file, not a directory: give a directory (created if missing) with --data-dir`)
    if (code !== 'ENOENT') {
      throw new PeerKeyError(`cannot read the peer key ${path}: ${(error as Error).message} (check the data directory's permissions)`)
    }
  }
  if (bytes !== undefined) {
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (error) {
      throw new PeerKeyError(`${path} is not a libp2p private key (${(error as Error).message}); restore it from a backup, or move it away to start with a new peer id`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  // write-then-rename: a crash never leaves a half-written key behind
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
  return key
}
