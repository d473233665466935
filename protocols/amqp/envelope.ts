/**
 * The signed envelope every message on the broker travels in. The broker is not trusted to say
 * who sent what: the sender signs the whole envelope with its libp2p key (Ed25519), and the
 * receiver checks the signature against the public key its peer id embeds.
 *
 *   0  magic 'P2AM'   4  version u8 (1)   5  reserved u8 x3 (0)
 *   8  header length u32 (big-endian)    12  body length u32
 *  16  header (UTF-8 JSON: kind, job, from, and the kind's fields)  then body (bytes)
 *  end signature (64 bytes, Ed25519 over every byte before it)
 */
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'

export const ENVELOPE_MAGIC = new Uint8Array([0x50, 0x32, 0x41, 0x4d]) // 'P2AM'
export const ENVELOPE_VERSION = 1
const PREFIX_BYTES = 16
const SIGNATURE_BYTES = 64
/** headers are small JSON objects; a larger one is not ours */
export const MAX_HEADER_BYTES = 64 * 1024

export const EnvelopeHeaderSchema = z.object({
  kind: z.string().min(1).max(32),
  /** the job this message belongs to ('' for discovery) */
  job: z.string().max(64),
  from: z.string().min(1).max(128)
}).passthrough()
export type EnvelopeHeader = z.infer<typeof EnvelopeHeaderSchema>

export interface Envelope {
  readonly header: EnvelopeHeader
  readonly body: Uint8Array
}

export class EnvelopeError extends Error {
  override name = 'EnvelopeError'
}

/** Encode and sign; `header.from` must be the key's peer id (the receiver checks it). */
export async function sealEnvelope(key: PrivateKey, header: EnvelopeHeader, body: Uint8Array = new Uint8Array(0)): Promise<Buffer> {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  if (json.byteLength > MAX_HEADER_BYTES) throw new EnvelopeError(`envelope header of ${json.byteLength} bytes exceeds ${MAX_HEADER_BYTES}`)
  const out = Buffer.allocUnsafe(PREFIX_BYTES + json.byteLength + body.byteLength + SIGNATURE_BYTES)
  out.set(ENVELOPE_MAGIC, 0)
  out.writeUInt8(ENVELOPE_VERSION, 4)
  out.fill(0, 5, 8)
  out.writeUInt32BE(json.byteLength, 8)
  out.writeUInt32BE(body.byteLength, 12)
  json.copy(out, PREFIX_BYTES)
  out.set(body, PREFIX_BYTES + json.byteLength)
  const signed = out.subarray(0, out.byteLength - SIGNATURE_BYTES)
  const signature = await key.sign(signed)
  if (signature.byteLength !== SIGNATURE_BYTES) throw new EnvelopeError(`the peer key gave a ${signature.byteLength}-byte signature: only Ed25519 peer keys can sign broker messages`)
  out.set(signature, signed.byteLength)
  return out
}

/**
 * Parse and verify. Throws EnvelopeError naming what is wrong (framing, header, unknown key
 * type, bad signature); the returned header's `from` is authenticated.
 */
export async function openEnvelope(bytes: Uint8Array): Promise<Envelope> {
  if (bytes.byteLength < PREFIX_BYTES + SIGNATURE_BYTES) throw new EnvelopeError(`envelope of ${bytes.byteLength} bytes is shorter than its fixed parts`)
  for (let i = 0; i < 4; i++) if (bytes[i] !== ENVELOPE_MAGIC[i]) throw new EnvelopeError('not a p2pmld broker envelope (bad magic)')
  if (bytes[4] !== ENVELOPE_VERSION) throw new EnvelopeError(`envelope version ${bytes[4]} is not supported (expected ${ENVELOPE_VERSION})`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerBytes = view.getUint32(8)
  const bodyBytes = view.getUint32(12)
  if (headerBytes > MAX_HEADER_BYTES) throw new EnvelopeError(`envelope header of ${headerBytes} bytes exceeds ${MAX_HEADER_BYTES}`)
  if (PREFIX_BYTES + headerBytes + bodyBytes + SIGNATURE_BYTES !== bytes.byteLength) throw new EnvelopeError('envelope lengths do not add up to its size')
  let header: EnvelopeHeader
  try {
    const parsed = EnvelopeHeaderSchema.safeParse(JSON.parse(Buffer.from(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes)).toString('utf8')))
    if (!parsed.success) throw new EnvelopeError(`invalid envelope header: ${parsed.error.issues[0]?.message}`)
    header = parsed.data
  } catch (error) {
    if (error instanceof EnvelopeError) throw error
    throw new EnvelopeError('envelope header is not JSON')
  }
  let publicKey
  try {
    publicKey = peerIdFromString(header.from).publicKey
  } catch {
    throw new EnvelopeError(`sender '${header.from}' is not a peer id`)
  }
  if (publicKey === undefined) throw new EnvelopeError(`peer id ${header.from} does not embed its public key (use an Ed25519 peer key)`)
  const signedEnd = bytes.byteLength - SIGNATURE_BYTES
  const ok = await publicKey.verify(bytes.subarray(0, signedEnd), bytes.subarray(signedEnd))
  if (!ok) throw new EnvelopeError(`bad signature on a message claiming to come from ${header.from}`)
  const body = bytes.subarray(PREFIX_BYTES + headerBytes, signedEnd)
  return { header, body }
}
