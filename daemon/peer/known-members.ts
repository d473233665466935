/**
 * The members of the job a daemon runs, with their addresses, kept in its data dir
 * (`members.json`, replaced atomically). A daemon restarted from its checkpoint without
 * --bootstrap dials them to re-join the job they carry on, instead of resuming it alone as a
 * second, separate job. Members are kept in admission order (the host first): the order that
 * decides which restarted member resumes the job when none runs it any more.
 */
import { randomBytes } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'

export const KNOWN_MEMBERS_FILE = 'members.json'

const KnownMembersSchema = z.object({
  v: z.literal(1),
  jobId: z.string().min(1),
  /** admission order, this daemon included */
  members: z.array(z.object({ peerId: z.string().min(1).max(128), addrs: z.array(z.string().max(512)).max(32) }).strict()).max(4096)
}).strict()
export type KnownMembers = z.infer<typeof KnownMembersSchema>

export function knownMembersPath(dataDir: string): string {
  return join(dataDir, KNOWN_MEMBERS_FILE)
}

/** Replace the data dir's members file (temp file + rename: never torn). */
export async function saveKnownMembers(dataDir: string, members: KnownMembers): Promise<void> {
  const path = knownMembersPath(dataDir)
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    await writeFile(temp, JSON.stringify(members), { mode: 0o600 })
    await rename(temp, path)
  } catch (error) {
    await rm(temp, { force: true })
    throw error
  }
}

/** The members file of `dataDir`, or undefined when there is none or it does not parse (a warning is the caller's). */
export async function loadKnownMembers(dataDir: string): Promise<KnownMembers | undefined> {
  let text: string
  try {
    text = await readFile(knownMembersPath(dataDir), 'utf8')
  } catch {
    return undefined
  }
  try {
    const parsed = KnownMembersSchema.safeParse(JSON.parse(text))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}
