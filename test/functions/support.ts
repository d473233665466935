/** Helpers shared by the functions/ tests. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** max |a - b| / max |b| over the whole vector */
export function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) throw new RangeError(`lengths differ: ${actual.length} vs ${expected.length}`)
  let maxDiff = 0
  let maxRef = 0
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]))
    maxRef = Math.max(maxRef, Math.abs(expected[i]))
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef
}

const scratch: string[] = []
/** a temporary directory, removed after the test file (the file must call removeScratchDirs in afterAll) */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `p2pmld-${prefix}`))
  scratch.push(dir)
  return dir
}

export async function removeScratchDirs(): Promise<void> {
  await Promise.all(scratch.splice(0).map(async (dir) => await rm(dir, { recursive: true, force: true })))
}
