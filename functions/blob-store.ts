/**
 * Where the peer and its gradient functions exchange bytes: parameters (under their content hash),
 * micro-batches, training graphs and gradients. Two implementations: local files (the worker
 * pool, functions/local-file-blob-store.ts) and S3 (Lambda, functions/s3-blob-store.ts).
 */
import { createHash } from 'node:crypto'

export interface BlobStore {
  /** writes (or overwrites) one object */
  put(key: string, bytes: Uint8Array): Promise<void>
  /**
   * reads one object
   * @throws BlobNotFoundError when the key does not exist
   */
  get(key: string): Promise<Uint8Array>
  /** removes objects; keys that do not exist are ignored */
  delete(keys: readonly string[]): Promise<void>
  /** releases clients/handles (the objects stay) */
  close(): Promise<void>
}

export class BlobNotFoundError extends Error {
  override name = 'BlobNotFoundError'
}

const KEY = /^[A-Za-z0-9!_.*'()/-]{1,900}$/

/**
 * Checks a key before it reaches a path or a URL: S3's safe characters only, no `..` segment, no
 * leading slash.
 * @throws RangeError naming the key
 */
export function checkBlobKey(key: string): string {
  if (!KEY.test(key) || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    throw new RangeError(`blob key '${key}' is not allowed: use letters, digits and !_.*'()- in '/'-separated segments, without '.', '..' or empty segments`)
  }
  return key
}

/** Lower-case hex sha256 of the bytes (content address of parameters and graphs). */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
