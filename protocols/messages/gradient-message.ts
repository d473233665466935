/**
 * The gradient message: a fixed 60-byte big-endian header, the job id and sender peer id as
 * ASCII, then the codec payload (opaque here: ml/compress encodes and decodes it).
 *
 *   0  magic 'P2GM'          4  version u8 (1)       5  flags u8 (bit 0: epoch present)
 *   6  codec u8              7  job id length u8     8  sender length u8    9  reserved u8 x3 (0)
 *  12  step u32             16  epoch u32           20  parameter count u32
 *  24  payload length u32   28  parameter digest (32 bytes: sha256 at anchor steps, a sample's hash between)
 *  60  job id, sender, [slice header], payload
 *
 * With flag bit 1 the message carries slices of the vector (the reduce-scatter exchange,
 * daemon/training/reduce-scatter-step.ts) and an 8-byte slice header precedes the payload:
 * phase u8 (1: a member's parts for a replica, 2: a replica's aggregated results), reserved u8
 * (0), total slices u16, first slice u16, slice count u16; the slices are first, first + 1, ...
 * modulo total, their encodings concatenated in that order. The parameter count stays the
 * whole model's.
 */
import { createHash } from 'node:crypto'
import type { CodecId } from '../../ml/compress/codec.js'
import { MessageEncodeError, reject, type Decoded } from './rejection.js'

export const GRADIENT_MAGIC = new Uint8Array([0x50, 0x32, 0x47, 0x4d]) // 'P2GM'
export const GRADIENT_VERSION = 1
export const GRADIENT_HEADER_BYTES = 60
export const DIGEST_BYTES = 32
export const MAX_JOB_ID_BYTES = 64
export const MAX_SENDER_BYTES = 128
/** 2^28 floats: twice VGG-11; anything larger is not a model this daemon trains */
export const MAX_PARAMETER_COUNT = 2 ** 28
const FLAG_EPOCH = 1
const FLAG_SLICES = 2
export const SLICE_HEADER_BYTES = 8
export const MAX_SLICES = 0xffff
const SLICE_PHASES = ['parts', 'results'] as const

const CODEC_IDS: readonly CodecId[] = ['none', 'fp16', 'qsgd']

export interface GradientMessage {
  readonly jobId: string
  readonly step: number
  readonly epoch?: number
  /** peer id string of the author */
  readonly sender: string
  readonly codec: CodecId
  readonly parameterCount: number
  /** sha256 of the sender's parameters before this step (see parameterDigest) */
  readonly digest: Uint8Array
  readonly payload: Uint8Array
  /** the payload holds these slices of the vector, not the whole vector (reduce-scatter) */
  readonly slices?: SliceHeader
}

/** which phase of the reduce-scatter a message belongs to, and which slices its payload holds */
export interface SliceHeader {
  /** parts: a member's values of the slices a replica aggregates; results: a replica's aggregates */
  readonly phase: typeof SLICE_PHASES[number]
  /** the number of slices the vector is cut into (one per member at the step) */
  readonly total: number
  /** slices first, first + 1, ... (mod total), `count` of them */
  readonly first: number
  readonly count: number
}

export interface GradientExpectations {
  readonly jobId: string
  /** the model's parameter count; checked when given */
  readonly parameterCount?: number
  /** the job's codec; checked when given */
  readonly codec?: CodecId
  /** the exact payload size the job's codec produces; checked when given */
  readonly payloadBytes?: number
}

/** sha256 of the parameters' bytes: peers with identical parameters have identical digests */
export function parameterDigest (params: Float32Array): Uint8Array {
  const hash = createHash('sha256')
  hash.update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength))
  return new Uint8Array(hash.digest())
}

/** the largest payload a message for `count` parameters may carry (fp32 is the widest codec) */
export function maxPayloadBytes (count: number): number {
  return 4 * count + 4096
}

export function gradientMessageSize (jobId: string, sender: string, payloadBytes: number, sliced = false): number {
  return GRADIENT_HEADER_BYTES + jobId.length + sender.length + (sliced ? SLICE_HEADER_BYTES : 0) + payloadBytes
}

/** why a slice header is invalid, or undefined */
function sliceHeaderProblem (h: SliceHeader): string | undefined {
  if (!Number.isInteger(h.total) || h.total < 1 || h.total > MAX_SLICES) return `slice total ${h.total} must be an integer in [1, ${MAX_SLICES}]`
  if (!Number.isInteger(h.first) || h.first < 0 || h.first >= h.total) return `first slice ${h.first} must be an integer in [0, ${h.total})`
  if (!Number.isInteger(h.count) || h.count < 1 || h.count > h.total) return `slice count ${h.count} must be an integer in [1, ${h.total}]`
  return undefined
}

const isUint32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff
const isPrintableAscii = (s: string): boolean => /^[\x21-\x7e]+$/.test(s)

export function encodeGradientMessage (message: GradientMessage): Uint8Array {
  const { jobId, sender, payload, digest } = message
  if (jobId.length === 0 || jobId.length > MAX_JOB_ID_BYTES || !isPrintableAscii(jobId)) {
    throw new MessageEncodeError(`job id '${jobId}' must be 1-${MAX_JOB_ID_BYTES} printable ASCII characters`)
  }
  if (sender.length === 0 || sender.length > MAX_SENDER_BYTES || !isPrintableAscii(sender)) {
    throw new MessageEncodeError(`sender '${sender}' must be a peer id string (1-${MAX_SENDER_BYTES} ASCII characters)`)
  }
  if (!isUint32(message.step)) throw new MessageEncodeError(`step ${message.step} must be an integer in [0, 2^32)`)
  if (message.epoch !== undefined && !isUint32(message.epoch)) throw new MessageEncodeError(`epoch ${message.epoch} must be an integer in [0, 2^32)`)
  if (!isUint32(message.parameterCount) || message.parameterCount > MAX_PARAMETER_COUNT) {
    throw new MessageEncodeError(`parameter count ${message.parameterCount} must be an integer in [0, ${MAX_PARAMETER_COUNT}]`)
  }
  if (digest.length !== DIGEST_BYTES) throw new MessageEncodeError(`digest must be ${DIGEST_BYTES} bytes, got ${digest.length}`)
  const codec = CODEC_IDS.indexOf(message.codec)
  if (codec < 0) throw new MessageEncodeError(`unknown codec '${message.codec}'`)
  if (payload.length > maxPayloadBytes(message.parameterCount)) {
    throw new MessageEncodeError(`payload of ${payload.length} bytes is too large for ${message.parameterCount} parameters`)
  }
  const slices = message.slices
  const sliceProblem = slices === undefined ? undefined : sliceHeaderProblem(slices)
  if (sliceProblem !== undefined) throw new MessageEncodeError(sliceProblem)
  const out = new Uint8Array(gradientMessageSize(jobId, sender, payload.length, slices !== undefined))
  const view = new DataView(out.buffer)
  out.set(GRADIENT_MAGIC, 0)
  out[4] = GRADIENT_VERSION
  out[5] = (message.epoch !== undefined ? FLAG_EPOCH : 0) | (slices !== undefined ? FLAG_SLICES : 0)
  out[6] = codec
  out[7] = jobId.length
  out[8] = sender.length
  view.setUint32(12, message.step)
  view.setUint32(16, message.epoch ?? 0)
  view.setUint32(20, message.parameterCount)
  view.setUint32(24, payload.length)
  out.set(digest, 28)
  out.set(Buffer.from(jobId, 'latin1'), GRADIENT_HEADER_BYTES)
  out.set(Buffer.from(sender, 'latin1'), GRADIENT_HEADER_BYTES + jobId.length)
  let at = GRADIENT_HEADER_BYTES + jobId.length + sender.length
  if (slices !== undefined) {
    out[at] = SLICE_PHASES.indexOf(slices.phase) + 1
    view.setUint16(at + 2, slices.total)
    view.setUint16(at + 4, slices.first)
    view.setUint16(at + 6, slices.count)
    at += SLICE_HEADER_BYTES
  }
  out.set(payload, at)
  return out
}

/**
 * Decode untrusted bytes. The returned digest and payload are views into `bytes` (no copy):
 * keep `bytes` unmodified while they are in use.
 */
export function decodeGradientMessage (bytes: Uint8Array, expect: GradientExpectations): Decoded<GradientMessage> {
  if (bytes.length < 5) return reject('truncated', `${bytes.length} bytes is shorter than a gradient message header`)
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== GRADIENT_MAGIC[i]) return reject('magic', 'not a gradient message (bad magic bytes)')
  }
  if (bytes[4] !== GRADIENT_VERSION) return reject('version', `gradient message version ${bytes[4]} is not supported (this peer speaks ${GRADIENT_VERSION}); upgrade the older peer`)
  if (bytes.length < GRADIENT_HEADER_BYTES) return reject('truncated', `${bytes.length} bytes is shorter than the ${GRADIENT_HEADER_BYTES}-byte header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const flags = bytes[5]
  if ((flags & ~(FLAG_EPOCH | FLAG_SLICES)) !== 0) return reject('malformed', `unknown flag bits 0x${flags.toString(16)}`)
  if (bytes[9] !== 0 || bytes[10] !== 0 || bytes[11] !== 0) return reject('malformed', 'reserved header bytes are not zero')
  const codec = CODEC_IDS[bytes[6]]
  if (codec === undefined) return reject('codec', `unknown codec id ${bytes[6]}`)
  const jobIdLength = bytes[7]
  const senderLength = bytes[8]
  if (jobIdLength === 0 || jobIdLength > MAX_JOB_ID_BYTES) return reject('malformed', `job id length ${jobIdLength} is outside 1-${MAX_JOB_ID_BYTES}`)
  if (senderLength === 0 || senderLength > MAX_SENDER_BYTES) return reject('malformed', `sender length ${senderLength} is outside 1-${MAX_SENDER_BYTES}`)
  const step = view.getUint32(12)
  const epoch = view.getUint32(16)
  const parameterCount = view.getUint32(20)
  const payloadLength = view.getUint32(24)
  if (parameterCount > MAX_PARAMETER_COUNT) return reject('too-large', `parameter count ${parameterCount} exceeds ${MAX_PARAMETER_COUNT}`)
  if (payloadLength > maxPayloadBytes(parameterCount)) return reject('too-large', `payload length ${payloadLength} is absurd for ${parameterCount} parameters`)
  const sliced = (flags & FLAG_SLICES) !== 0
  const idsEnd = GRADIENT_HEADER_BYTES + jobIdLength + senderLength
  if (bytes.length < idsEnd) return reject('truncated', `${bytes.length} bytes ends inside the job id / sender fields`)
  let slices: SliceHeader | undefined
  let payloadStart = idsEnd
  if (sliced) {
    if (bytes.length < idsEnd + SLICE_HEADER_BYTES) return reject('truncated', `${bytes.length} bytes ends inside the slice header`)
    const phase = SLICE_PHASES[bytes[idsEnd] - 1]
    if (phase === undefined || bytes[idsEnd + 1] !== 0) return reject('malformed', `slice phase ${bytes[idsEnd]} is neither 1 (parts) nor 2 (results), or the reserved byte is not zero`)
    slices = { phase, total: view.getUint16(idsEnd + 2), first: view.getUint16(idsEnd + 4), count: view.getUint16(idsEnd + 6) }
    const problem = sliceHeaderProblem(slices)
    if (problem !== undefined) return reject('malformed', problem)
    payloadStart += SLICE_HEADER_BYTES
  }
  const jobId = Buffer.from(bytes.buffer, bytes.byteOffset + GRADIENT_HEADER_BYTES, jobIdLength).toString('latin1')
  const sender = Buffer.from(bytes.buffer, bytes.byteOffset + GRADIENT_HEADER_BYTES + jobIdLength, senderLength).toString('latin1')
  if (!isPrintableAscii(jobId) || !isPrintableAscii(sender)) return reject('malformed', 'job id or sender is not printable ASCII')
  if (jobId !== expect.jobId) return reject('job-id', `message for job '${jobId}', expected '${expect.jobId}'`)
  const actualPayload = bytes.length - payloadStart
  if (actualPayload < payloadLength) return reject('truncated', `payload has ${actualPayload} of the ${payloadLength} bytes the header declares`)
  if (actualPayload > payloadLength) return reject('payload-length', `${actualPayload - payloadLength} bytes follow the declared ${payloadLength}-byte payload`)
  if (expect.parameterCount !== undefined && parameterCount !== expect.parameterCount) {
    return reject('parameter-count', `message has ${parameterCount} parameters, this job's model has ${expect.parameterCount}`)
  }
  if (expect.codec !== undefined && codec !== expect.codec) return reject('codec', `message uses codec '${codec}', this job uses '${expect.codec}'`)
  // a sliced payload's size depends on the slicing: its decoder checks every slice's length
  if (slices === undefined && expect.payloadBytes !== undefined && payloadLength !== expect.payloadBytes) {
    return reject('payload-length', `payload of ${payloadLength} bytes, this job's codec produces ${expect.payloadBytes}`)
  }
  return {
    ok: true,
    value: {
      jobId,
      step,
      ...((flags & FLAG_EPOCH) !== 0 ? { epoch } : {}),
      sender,
      codec,
      parameterCount,
      digest: bytes.subarray(28, 28 + DIGEST_BYTES),
      payload: bytes.subarray(payloadStart, payloadStart + payloadLength),
      ...(slices !== undefined ? { slices } : {})
    }
  }
}
