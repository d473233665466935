/**
 * Membership/control messages (heartbeat, join, leave): small, so zod-validated JSON with a
 * hard byte cap before parsing.
 */
import { z } from 'zod'
import { reject, MessageEncodeError, type Decoded } from './rejection.js'

export const MEMBERSHIP_VERSION = 1
export const MAX_MEMBERSHIP_BYTES = 8 * 1024

export const MemberStateSchema = z.enum(['joining', 'syncing', 'training', 'idle', 'leaving'])
export type MemberState = z.infer<typeof MemberStateSchema>

export const MembershipMessageSchema = z.object({
  v: z.literal(MEMBERSHIP_VERSION),
  type: z.enum(['heartbeat', 'join', 'leave']),
  jobId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  peerId: z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/),
  /** dialable multiaddrs with /p2p/<peerId> */
  addrs: z.array(z.string().min(1).max(512)).max(16),
  step: z.number().int().min(0).max(2 ** 32 - 1),
  /** hex sha256 of the member's parameters (parameterDigest) */
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  state: MemberStateSchema,
  /** for join: the step from which the member counts as live */
  effectiveStep: z.number().int().min(0).max(2 ** 32 - 1).optional()
}).strict()

export type MembershipMessage = z.infer<typeof MembershipMessageSchema>
export type MembershipMessageInput = Omit<MembershipMessage, 'v'>

export function encodeMembershipMessage (message: MembershipMessageInput): Uint8Array {
  const parsed = MembershipMessageSchema.safeParse({ v: MEMBERSHIP_VERSION, ...message })
  if (!parsed.success) throw new MessageEncodeError(`invalid membership message: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  const bytes = Buffer.from(JSON.stringify(parsed.data), 'utf8')
  if (bytes.length > MAX_MEMBERSHIP_BYTES) throw new MessageEncodeError(`membership message of ${bytes.length} bytes exceeds ${MAX_MEMBERSHIP_BYTES}`)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
}

export function decodeMembershipMessage (bytes: Uint8Array, expectJobId: string): Decoded<MembershipMessage> {
  if (bytes.length > MAX_MEMBERSHIP_BYTES) return reject('too-large', `membership message of ${bytes.length} bytes exceeds ${MAX_MEMBERSHIP_BYTES}`)
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'))
  } catch (error) {
    return reject('schema', `membership message is not JSON: ${(error as Error).message}`)
  }
  if (typeof json === 'object' && json !== null && 'v' in json && json.v !== MEMBERSHIP_VERSION) {
    return reject('version', `membership message version ${String(json.v)} is not supported (this peer speaks ${MEMBERSHIP_VERSION})`)
  }
  const parsed = MembershipMessageSchema.safeParse(json)
  if (!parsed.success) return reject('schema', parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '))
  if (parsed.data.jobId !== expectJobId) return reject('job-id', `membership message for job '${parsed.data.jobId}', expected '${expectJobId}'`)
  return { ok: true, value: parsed.data }
}
