/**
 * The gradient message, v1, little-endian:
 *   'P2PG' | version u8 | codec u8 | jobId len u8 + utf8 | sender len u8 + utf8 |
 *   step u32 | epoch u32 | parameter count u32 | digest 16 bytes | payload len u32 | payload
 * Decoding untrusted bytes yields a typed message or a rejection with a reason code.
 */
import type { CodecId } from '../../ml/compress/index.js'

export const GRADIENT_MESSAGE_VERSION = 1
const MAGIC = [0x50, 0x32, 0x50, 0x47] // 'P2PG'
const CODEC_IDS: readonly CodecId[] = ['none', 'fp16', 'qsgd']
const DIGEST_BYTES = 16

export interface GradientMessage {
  readonly jobId: string
  readonly sender: string
  readonly step: number
  readonly epoch: number
  readonly codec: CodecId
  readonly parameterCount: number
  /** hex digest of the sender's parameters at the start of the step */
  readonly digest: string
  readonly payload: Uint8Array
}

export type RejectReason = 'magic' | 'version' | 'truncated' | 'codec' | 'job' | 'sender' | 'count' | 'length' | 'too-large' | 'digest' | 'payload' | 'not-member' | 'stale'

export class GradientMessageRejected extends Error {
  override name = 'GradientMessageRejected'
  constructor (readonly reason: RejectReason, message: string) {
    super(message)
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeGradientMessage(m: GradientMessage): Uint8Array {
  const job = encoder.encode(m.jobId)
  const sender = encoder.encode(m.sender)
  if (job.length > 255 || sender.length > 255) throw new RangeError('job id and sender must be under 256 bytes')
  if (!/^[0-9a-f]{32}$/.test(m.digest)) throw new RangeError(`digest must be ${DIGEST_BYTES} bytes of hex`)
  const headerLength = 4 + 1 + 1 + 1 + job.length + 1 + sender.length + 4 + 4 + 4 + DIGEST_BYTES + 4
  const out = new Uint8Array(headerLength + m.payload.length)
  const view = new DataView(out.buffer)
  out.set(MAGIC, 0)
  let o = 4
  out[o++] = GRADIENT_MESSAGE_VERSION
  out[o++] = CODEC_IDS.indexOf(m.codec)
  out[o++] = job.length
  out.set(job, o); o += job.length
  out[o++] = sender.length
  out.set(sender, o); o += sender.length
  view.setUint32(o, m.step, true); o += 4
  view.setUint32(o, m.epoch, true); o += 4
  view.setUint32(o, m.parameterCount, true); o += 4
  out.set(Buffer.from(m.digest, 'hex'), o); o += DIGEST_BYTES
  view.setUint32(o, m.payload.length, true); o += 4
  out.set(m.payload, o)
  return out
}

export interface DecodeExpectations {
  readonly jobId: string
  readonly parameterCount: number
  readonly codec: CodecId
  /** exact payload size for this codec and parameter count */
  readonly payloadBytes: number
}

export function decodeGradientMessage(bytes: Uint8Array, expect: DecodeExpectations): GradientMessage {
  const reject = (reason: RejectReason, message: string): never => {
    throw new GradientMessageRejected(reason, message)
  }
  const need = (o: number, n: number): void => {
    if (o + n > bytes.length) reject('truncated', `message truncated at byte ${o} (needs ${n} more, has ${bytes.length - o})`)
  }
  need(0, 7)
  for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) reject('magic', 'not a p2pmld gradient message (bad magic)')
  if (bytes[4] !== GRADIENT_MESSAGE_VERSION) reject('version', `unsupported gradient message version ${bytes[4]} (this peer speaks ${GRADIENT_MESSAGE_VERSION})`)
  const codec = CODEC_IDS[bytes[5]]
  if (codec === undefined) reject('codec', `unknown codec id ${bytes[5]}`)
  if (codec !== expect.codec) reject('codec', `codec ${codec} does not match the job's ${expect.codec}`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let o = 6
  const text = (what: string): string => {
    need(o, 1)
    const len = bytes[o++]
    need(o, len)
    try {
      const s = decoder.decode(bytes.subarray(o, o + len))
      o += len
      return s
    } catch {
      return reject('truncated', `${what} is not valid UTF-8`)
    }
  }
  const jobId = text('job id')
  if (jobId !== expect.jobId) reject('job', `message for job '${jobId.slice(0, 64)}', this peer runs '${expect.jobId}'`)
  const sender = text('sender')
  need(o, 12 + DIGEST_BYTES + 4)
  const step = view.getUint32(o, true); o += 4
  const epoch = view.getUint32(o, true); o += 4
  const parameterCount = view.getUint32(o, true); o += 4
  if (parameterCount !== expect.parameterCount) reject('count', `message carries ${parameterCount} parameters, the model has ${expect.parameterCount}`)
  const digest = Buffer.from(bytes.subarray(o, o + DIGEST_BYTES)).toString('hex'); o += DIGEST_BYTES
  const payloadLength = view.getUint32(o, true); o += 4
  if (payloadLength !== expect.payloadBytes) reject('length', `payload of ${payloadLength} bytes, expected ${expect.payloadBytes} for ${codec} with ${parameterCount} parameters`)
  if (o + payloadLength !== bytes.length) reject(o + payloadLength > bytes.length ? 'truncated' : 'length', `payload length ${payloadLength} does not match the ${bytes.length - o} bytes that follow the header`)
  return { jobId, sender, step, epoch, codec: codec as CodecId, parameterCount, digest, payload: bytes.subarray(o) }
}
