/**
 * The training state on disk: the snapshot codec's bytes in one file, replaced atomically
 * (write a temp file, fsync, rename) so a crash mid-write leaves the previous checkpoint intact.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeSnapshot, encodeSnapshot, type TrainingSnapshot } from '../../protocols/snapshot/index.js'

export const CHECKPOINT_FILE = 'state.ckpt'

export class CheckpointError extends Error {
  override name = 'CheckpointError'
}

export async function writeCheckpoint(dir: string, snapshot: TrainingSnapshot): Promise<{ path: string, bytes: number }> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, CHECKPOINT_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  const encoded = encodeSnapshot(snapshot)
  const file = await open(tmp, 'w', 0o600)
  let bytes = 0
  try {
    for (const chunk of encoded.chunks) {
      await file.write(chunk)
      bytes += chunk.byteLength
    }
    await file.sync()
  } catch (error) {
    await file.close()
    await unlink(tmp).catch(() => {})
    throw error
  }
  await file.close()
  await rename(tmp, path)
  return { path, bytes }
}

export async function readCheckpoint(dir: string): Promise<TrainingSnapshot | undefined> {
  const path = join(dir, CHECKPOINT_FILE)
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    return await decodeSnapshot([bytes])
  } catch (error) {
    throw new CheckpointError(`checkpoint ${path} is damaged (${(error as Error).message}): move it away to start fresh`)
  }
}
