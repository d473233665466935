/**
 * Checkpoints on disk: one snapshot file per directory, replaced atomically (temp file in the same
 * directory, fsync, rename, fsync of the directory), so a crash at any moment leaves either the
 * previous checkpoint or the new one, never a torn file under the checkpoint's name.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { SnapshotError, decodeSnapshot, encodeSnapshot, type TrainingSnapshot } from '../../protocols/snapshot/index.js'

export const CHECKPOINT_FILE = 'state.p2ckpt'
/** the directory of a daemon's data dir its checkpoint is kept in */
export const CHECKPOINT_DIR = 'checkpoint'
const TEMP_PREFIX = `${CHECKPOINT_FILE}.tmp-`
const READ_CHUNK_BYTES = 1024 * 1024

export class CheckpointError extends Error {
  override name = 'CheckpointError'
  readonly path: string

  constructor (path: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.path = path
  }
}

export function checkpointPath (dir: string): string {
  return join(dir, CHECKPOINT_FILE)
}

export interface PreparedCheckpoint {
  /** the fully written, fsynced temp file */
  readonly tempPath: string
  /** where commit() puts it */
  readonly path: string
  /** atomically replace the checkpoint with the temp file; returns the checkpoint path */
  commit(): Promise<string>
  /** delete the temp file instead */
  discard(): Promise<void>
}

async function syncDirectory (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * First half of a checkpoint write: encode `snapshot` into a temp file next to the checkpoint and
 * fsync it. The current checkpoint is untouched until commit(). The snapshot's arrays are written
 * without copying: do not change them until this resolves.
 */
export async function prepareCheckpoint (dir: string, snapshot: TrainingSnapshot, fileName = CHECKPOINT_FILE): Promise<PreparedCheckpoint> {
  const path = join(dir, fileName)
  const tempPath = join(dir, `${fileName}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`)
  let encoded
  try {
    encoded = encodeSnapshot(snapshot)
  } catch (error) {
    throw new CheckpointError(path, `cannot write checkpoint ${path}: ${(error as Error).message}`, { cause: error })
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const handle = await open(tempPath, 'wx', 0o600)
    try {
      for (const chunk of encoded.chunks) {
        let written = 0
        while (written < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, written, chunk.byteLength - written)
          written += bytesWritten
        }
      }
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch (error) {
    await rm(tempPath, { force: true })
    throw new CheckpointError(path, `cannot write checkpoint ${path} (via ${tempPath}): ${(error as Error).message}; check free space and permissions of ${dir}`, { cause: error })
  }
  let settled = false
  return {
    tempPath,
    path,
    async commit () {
      if (settled) throw new CheckpointError(path, `checkpoint temp file ${tempPath} was already committed or discarded`)
      settled = true
      try {
        await rename(tempPath, path)
        await syncDirectory(dir)
      } catch (error) {
        await rm(tempPath, { force: true })
        throw new CheckpointError(path, `cannot move ${tempPath} to ${path}: ${(error as Error).message}`, { cause: error })
      }
      return path
    },
    async discard () {
      if (settled) return
      settled = true
      await rm(tempPath, { force: true })
    }
  }
}

/** Remove temp files left by writers that crashed before their rename. */
async function removeStaleTempFiles (dir: string, keep: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  await Promise.all(names
    .filter((name) => name.startsWith(TEMP_PREFIX) && join(dir, name) !== keep)
    .map(async (name) => await rm(join(dir, name), { force: true })))
}

/**
 * Write `snapshot` as the checkpoint of `dir` (created with mode 0700 if missing; the file is
 * 0600). Returns the checkpoint's path. Not safe for two writers on one directory at once.
 */
export async function writeCheckpoint (dir: string, snapshot: TrainingSnapshot): Promise<string> {
  const prepared = await prepareCheckpoint(dir, snapshot)
  await removeStaleTempFiles(dir, prepared.tempPath)
  return await prepared.commit()
}

/**
 * Write `snapshot` to the file `path` (atomically, as writeCheckpoint; parent directories are
 * created). An existing directory at `path` gets its checkpoint file inside, as writeCheckpoint.
 * Returns the path of the file written.
 */
export async function writeCheckpointFile (path: string, snapshot: TrainingSnapshot): Promise<string> {
  const existing = await stat(path).catch(() => undefined)
  if (existing?.isDirectory() === true) return await writeCheckpoint(path, snapshot)
  const prepared = await prepareCheckpoint(dirname(path), snapshot, basename(path))
  return await prepared.commit()
}

/**
 * The checkpoint file `path` names: a file (any name), a directory holding state.p2ckpt, or a
 * daemon's data dir (its checkpoint/ directory's). Undefined when `path` does not exist.
 */
export async function checkpointFileAt (path: string): Promise<string | undefined> {
  const existing = await stat(path).catch(() => undefined)
  if (existing === undefined) return undefined
  if (!existing.isDirectory()) return path
  const inDataDir = checkpointPath(join(path, CHECKPOINT_DIR))
  const own = checkpointPath(path)
  return await stat(own).then(() => own, async () => await stat(inDataDir).then(() => inDataDir, () => own))
}

/**
 * Read a checkpoint file written by writeCheckpointFile, given the file, its directory or a
 * daemon's data dir (checkpointFileAt). A CheckpointError naming the path when there is none.
 */
export async function readCheckpointFile (path: string, options: { maxBytes?: number } = {}): Promise<TrainingSnapshot> {
  const file = await checkpointFileAt(path)
  if (file === undefined) throw new CheckpointError(path, `checkpoint ${path} does not exist`)
  const snapshot = await readSnapshotFile(file, options)
  if (snapshot === undefined) throw new CheckpointError(file, `no checkpoint in ${path} (looked for ${file}): pass a checkpoint file, its directory or a daemon's data dir`)
  return snapshot
}

/**
 * Read the checkpoint of `dir`: undefined if there is none, a CheckpointError naming the file if it
 * is unreadable or corrupt.
 */
export async function readCheckpoint (dir: string, options: { maxBytes?: number } = {}): Promise<TrainingSnapshot | undefined> {
  return await readSnapshotFile(checkpointPath(dir), options)
}

async function readSnapshotFile (path: string, options: { maxBytes?: number }): Promise<TrainingSnapshot | undefined> {
  const source = createReadStream(path, { highWaterMark: READ_CHUNK_BYTES })
  try {
    return await decodeSnapshot(source as AsyncIterable<Uint8Array>, { maxBytes: options.maxBytes, requireChecksum: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if (error instanceof SnapshotError) {
      throw new CheckpointError(path, `checkpoint ${path} is corrupt (${error.reason}): ${error.message}; move it away to start fresh or restore it from a peer`, { cause: error })
    }
    throw new CheckpointError(path, `cannot read checkpoint ${path}: ${(error as Error).message}`, { cause: error })
  } finally {
    source.destroy()
  }
}
