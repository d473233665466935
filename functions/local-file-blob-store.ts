/** BlobStore on a local directory: one file per key (the worker pool's store). */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { BlobNotFoundError, checkBlobKey, type BlobStore } from './blob-store.js'

/** Objects live under `root` (created on first write). Writes go to a temp name and are renamed, so a reader never sees half an object. */
export function createLocalFileBlobStore(root: string): BlobStore {
  let sequence = 0
  const pathOf = (key: string): string => join(root, checkBlobKey(key))
  return {
    async put(key, bytes) {
      const path = pathOf(key)
      await mkdir(dirname(path), { recursive: true })
      const temp = `${path}.${process.pid}.${sequence++}.partial`
      await writeFile(temp, bytes)
      await rename(temp, path)
    },
    async get(key) {
      try {
        const buffer = await readFile(pathOf(key))
        return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(`blob '${key}' does not exist under ${root}`)
        throw error
      }
    },
    async delete(keys) {
      await Promise.all(keys.map(async (key) => { await rm(pathOf(key), { force: true }) }))
    },
    async close() {}
  }
}
