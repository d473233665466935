import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  CHECKPOINT_DIR, CHECKPOINT_FILE, CheckpointError, checkpointFileAt, checkpointPath, prepareCheckpoint, readCheckpoint, readCheckpointFile, writeCheckpoint, writeCheckpointFile
} from '../../daemon/checkpoint/index.js'
import type { TrainingSnapshot } from '../../protocols/snapshot/index.js'
import { patternFloats, sameBits } from '../protocols/state-sync-helpers.js'

function snapshotAt (step: number, paramCount = 100_000, optimizerCount = 200_000): TrainingSnapshot {
  return {
    jobConfig: { id: 'job-c', epochs: 4 },
    step,
    epoch: Math.floor(step / 10),
    cursor: step * 32,
    meta: { lr: 0.1 / (step + 1), history: [1, 2, 3] },
    params: patternFloats(paramCount, step + 1),
    optimizerState: patternFloats(optimizerCount, step + 1000)
  }
}

function expectSame (actual: TrainingSnapshot | undefined, expected: TrainingSnapshot): void {
  expect(actual).toBeDefined()
  expect(actual?.step).toBe(expected.step)
  expect(actual?.epoch).toBe(expected.epoch)
  expect(actual?.cursor).toBe(expected.cursor)
  expect(actual?.meta).toEqual(expected.meta)
  expect(actual?.jobConfig).toEqual(expected.jobConfig)
  expect(sameBits(actual!.params, expected.params)).toBe(true)
  expect(sameBits(actual!.optimizerState, expected.optimizerState)).toBe(true)
}

describe('checkpoints', () => {
  let dir: string

  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'p2pmld-ckpt-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('returns undefined when there is no checkpoint (or no directory)', async () => {
    expect(await readCheckpoint(dir)).toBeUndefined()
    expect(await readCheckpoint(join(dir, 'missing', 'deeper'))).toBeUndefined()
  })

  it('round-trips bit-exactly into a 0600 file, replacing the previous one, leaving no temp files', async () => {
    const first = snapshotAt(1)
    const path = await writeCheckpoint(join(dir, 'job'), first)
    expect(path).toBe(checkpointPath(join(dir, 'job')))
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expectSame(await readCheckpoint(join(dir, 'job')), first)
    const second = snapshotAt(2, 50, 0)
    await writeCheckpoint(join(dir, 'job'), second)
    expectSame(await readCheckpoint(join(dir, 'job')), second)
    expect(await readdir(join(dir, 'job'))).toEqual([CHECKPOINT_FILE])
  })

  it('keeps the old checkpoint readable when a writer crashes between write and rename', async () => {
    const old = snapshotAt(5)
    await writeCheckpoint(dir, old)
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./crash-writer.ts', import.meta.url)), dir, '2000000'], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const tempPath = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (data: Buffer) => {
          out += data.toString()
          const match = /prepared (\S+)\n/.exec(out)
          if (match !== null) resolve(match[1])
        })
        child.on('exit', (code) => reject(new Error(`crash writer exited early with ${code}`)))
      })
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
      // the crashed writer's complete temp file is there, the checkpoint is still the old one
      expect((await stat(tempPath)).size).toBeGreaterThan(8_000_000)
      expectSame(await readCheckpoint(dir), old)
      // a torn temp file (crash mid-write) does not matter either
      await truncate(tempPath, 12345)
      expectSame(await readCheckpoint(dir), old)
      // the next successful write cleans up the leftovers
      const next = snapshotAt(6)
      await writeCheckpoint(dir, next)
      expectSame(await readCheckpoint(dir), next)
      expect(await readdir(dir)).toEqual([CHECKPOINT_FILE])
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('commits or discards a prepared checkpoint explicitly', async () => {
    const old = snapshotAt(3)
    await writeCheckpoint(dir, old)
    const pending = await prepareCheckpoint(dir, snapshotAt(4))
    expectSame(await readCheckpoint(dir), old)
    await pending.discard()
    expect(await readdir(dir)).toEqual([CHECKPOINT_FILE])
    expectSame(await readCheckpoint(dir), old)
    const newer = snapshotAt(7)
    const committed = await prepareCheckpoint(dir, newer)
    await committed.commit()
    await expect(committed.commit()).rejects.toBeInstanceOf(CheckpointError)
    expectSame(await readCheckpoint(dir), newer)
  })

  it('a failed write leaves the previous checkpoint and no temp file', async () => {
    const old = snapshotAt(8)
    await writeCheckpoint(dir, old)
    await expect(writeCheckpoint(dir, { ...snapshotAt(9), step: -1 })).rejects.toBeInstanceOf(CheckpointError)
    const cyclic: Record<string, unknown> = {}
    cyclic.loop = cyclic
    await expect(writeCheckpoint(dir, { ...snapshotAt(9), meta: cyclic })).rejects.toThrow(/JSON/)
    expect(await readdir(dir)).toEqual([CHECKPOINT_FILE])
    expectSame(await readCheckpoint(dir), old)
  })

  it('reports a corrupt or truncated checkpoint as a CheckpointError naming the file', async () => {
    const path = await writeCheckpoint(dir, snapshotAt(1))
    const bytes = await readFile(path)
    bytes[bytes.length - 5000] ^= 0x40
    await writeFile(path, bytes)
    const corrupt = await readCheckpoint(dir).then(() => undefined, (e: unknown) => e)
    expect(corrupt).toBeInstanceOf(CheckpointError)
    expect((corrupt as CheckpointError).path).toBe(path)
    expect((corrupt as Error).message).toContain(path)
    expect((corrupt as Error).message).toMatch(/checksum/)

    await truncate(path, 1000)
    await expect(readCheckpoint(dir)).rejects.toThrow(/truncated/)
    await writeFile(path, 'not a checkpoint at all, just text')
    await expect(readCheckpoint(dir)).rejects.toThrow(new RegExp(`${CHECKPOINT_FILE}.*bad-magic`))
  })

  it('writes a named file (not a directory of that name), creating its parent; a directory gets its checkpoint inside', async () => {
    const file = join(dir, 'exports', 'run-1.p2ckpt')
    const snap = snapshotAt(4, 300, 600)
    expect(await writeCheckpointFile(file, snap)).toBe(file)
    expect((await stat(file)).isFile()).toBe(true)
    expect(await readdir(join(dir, 'exports'))).toEqual(['run-1.p2ckpt'])
    expectSame(await readCheckpointFile(file), snap)
    // replaced atomically like a directory's checkpoint
    const next = snapshotAt(5, 300, 600)
    await writeCheckpointFile(file, next)
    expectSame(await readCheckpointFile(file), next)
    expect(await readdir(join(dir, 'exports'))).toEqual(['run-1.p2ckpt'])
    // an existing directory keeps the old meaning
    expect(await writeCheckpointFile(join(dir, 'exports'), snap)).toBe(checkpointPath(join(dir, 'exports')))
    expectSame(await readCheckpointFile(join(dir, 'exports')), snap)
    await expect(readCheckpointFile(join(dir, 'nothing.p2ckpt'))).rejects.toThrow(/nothing\.p2ckpt does not exist/)
  })

  it('reads a checkpoint given its file, its directory or a daemon data dir, and names what it looked for', async () => {
    const dataDir = join(dir, 'data')
    const snap = snapshotAt(6, 300, 600)
    await writeCheckpoint(join(dataDir, CHECKPOINT_DIR), snap)
    const file = join(dataDir, CHECKPOINT_DIR, CHECKPOINT_FILE)
    for (const path of [file, join(dataDir, CHECKPOINT_DIR), dataDir]) {
      expect(await checkpointFileAt(path)).toBe(file)
      expectSame(await readCheckpointFile(path), snap)
    }
    // a directory with neither: the error names the directory and the file looked for
    await expect(readCheckpointFile(dir)).rejects.toThrow(`no checkpoint in ${dir} (looked for ${checkpointPath(dir)})`)
    expect(await checkpointFileAt(join(dir, 'absent'))).toBeUndefined()
  })
})
