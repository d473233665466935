/**
 * Wire layout of an encoded snapshot (all integers little-endian):
 *
 *   offset 0   magic        4 bytes  "P2SN"
 *          4   version      u32      SNAPSHOT_VERSION
 *          8   jsonLength   u32      bytes of the UTF-8 JSON part
 *         12   flags        u32      bit 0: no sha256 trailer (the other bits 0)
 *         16   paramCount   u64      float32 values in params
 *         24   optCount     u64      float32 values in optimizerState
 *         32   JSON         { jobConfig, step, epoch, cursor, meta }
 *              params       paramCount * 4 bytes, float32 LE
 *              optimizer    optCount * 4 bytes, float32 LE
 *              sha256       32 bytes over everything before it, unless flag bit 0 is set
 *
 * Files (checkpoints) always carry the trailer. State sync over libp2p leaves it out: Noise's
 * AEAD already authenticates every byte in transit, and a member adopting a state checks the
 * parameters against the digest f+1 members vouch for, so a second sha256 on each side (~0.7 s/GB
 * each) would only slow the transfer.
 */
import { SnapshotError } from './snapshot-types.js'

export const SNAPSHOT_MAGIC = new Uint8Array([0x50, 0x32, 0x53, 0x4e]) // "P2SN"
export const SNAPSHOT_VERSION = 1
export const SNAPSHOT_HEADER_BYTES = 32
export const SNAPSHOT_CHECKSUM_BYTES = 32
/** header flag: the encoding ends after the optimizer block, without the sha256 trailer */
export const SNAPSHOT_FLAG_NO_CHECKSUM = 1

export interface SnapshotHeader {
  readonly version: number
  readonly jsonLength: number
  readonly paramCount: number
  readonly optimizerCount: number
  /** whether the sha256 trailer follows */
  readonly checksum: boolean
}

/** Total encoded size of a snapshot with this header, trailer (if any) included. */
export function snapshotByteLength (header: Omit<SnapshotHeader, 'version'>): number {
  return SNAPSHOT_HEADER_BYTES + header.jsonLength + 4 * (header.paramCount + header.optimizerCount) + (header.checksum ? SNAPSHOT_CHECKSUM_BYTES : 0)
}

export function writeSnapshotHeader (header: Omit<SnapshotHeader, 'version'>): Uint8Array {
  const bytes = new Uint8Array(SNAPSHOT_HEADER_BYTES)
  const view = new DataView(bytes.buffer)
  bytes.set(SNAPSHOT_MAGIC, 0)
  view.setUint32(4, SNAPSHOT_VERSION, true)
  view.setUint32(8, header.jsonLength, true)
  view.setUint32(12, header.checksum ? 0 : SNAPSHOT_FLAG_NO_CHECKSUM, true)
  view.setBigUint64(16, BigInt(header.paramCount), true)
  view.setBigUint64(24, BigInt(header.optimizerCount), true)
  return bytes
}

/** Parse and check the fixed header; sizes beyond the caller's limits are refused before any allocation. */
export function readSnapshotHeader (bytes: Uint8Array, limits: { maxBytes: number, maxJsonBytes: number }): SnapshotHeader {
  if (bytes.byteLength < SNAPSHOT_HEADER_BYTES) {
    throw new SnapshotError('truncated', `snapshot header needs ${SNAPSHOT_HEADER_BYTES} bytes, got ${bytes.byteLength}`)
  }
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) {
      throw new SnapshotError('bad-magic', 'data does not start with the snapshot magic "P2SN": not a p2pmld snapshot')
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, SNAPSHOT_HEADER_BYTES)
  const version = view.getUint32(4, true)
  if (version !== SNAPSHOT_VERSION) {
    throw new SnapshotError('unsupported-version', `snapshot format version ${version} is not supported (this build reads version ${SNAPSHOT_VERSION}); upgrade the peer that reads it`)
  }
  const jsonLength = view.getUint32(8, true)
  const flags = view.getUint32(12, true)
  if ((flags & ~SNAPSHOT_FLAG_NO_CHECKSUM) !== 0) {
    throw new SnapshotError('bad-header', `snapshot header has unknown flags 0x${flags.toString(16)}: written by a newer p2pmld, or damaged`)
  }
  const checksum = (flags & SNAPSHOT_FLAG_NO_CHECKSUM) === 0
  const paramCount = view.getBigUint64(16, true)
  const optimizerCount = view.getBigUint64(24, true)
  if (jsonLength > limits.maxJsonBytes) {
    throw new SnapshotError('too-large', `snapshot JSON part of ${jsonLength} bytes exceeds the limit of ${limits.maxJsonBytes}`)
  }
  const total = BigInt(SNAPSHOT_HEADER_BYTES + jsonLength + (checksum ? SNAPSHOT_CHECKSUM_BYTES : 0)) + 4n * (paramCount + optimizerCount)
  if (total > BigInt(limits.maxBytes)) {
    throw new SnapshotError('too-large', `snapshot of ${total} bytes (${paramCount} parameters, ${optimizerCount} optimizer values) exceeds the limit of ${limits.maxBytes} bytes; raise maxBytes if this model is expected`)
  }
  return { version, jsonLength, paramCount: Number(paramCount), optimizerCount: Number(optimizerCount), checksum }
}
