export { SnapshotError, type SnapshotErrorReason, type TrainingSnapshot } from './snapshot-types.js'
export { SNAPSHOT_VERSION, SNAPSHOT_HEADER_BYTES, SNAPSHOT_CHECKSUM_BYTES, snapshotByteLength } from './snapshot-format.js'
export { DEFAULT_CHUNK_BYTES, encodeSnapshot, encodeSnapshotToBytes, type EncodedSnapshot } from './encode-snapshot.js'
export {
  DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES, createSnapshotDecoder, decodeSnapshot,
  type SnapshotChunk, type SnapshotDecoder, type SnapshotDecoderOptions
} from './decode-snapshot.js'
export {
  assembleSnapshotRanges, createSnapshotRangeDecoder, encodeSnapshotRange, floatRange, stateDigest,
  type FloatRange, type SnapshotRange, type SnapshotRangeDecoder
} from './snapshot-range.js'
