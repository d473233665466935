/**
 * `p2pmld start --exit-when-done` as a real child process: once its job finished and the daemon
 * stopped, the process exits at once. Timers libp2p's address manager and gossipsub set while
 * they stop used to hold it ~1 s longer (1.1-1.2 s from "libp2p node stopped" to the exit, every
 * run); the bound below is a fraction of that.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '../..')
const MAIN = join(ROOT, 'cli/main.ts')
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-exit-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

describe('p2pmld start --exit-when-done', () => {
  it('exits 0 right after the daemon stopped, with the job\'s result printed', async () => {
    const child = spawn(process.execPath, ['--import', TSX, MAIN, 'start', '--data-dir', join(dir, 'd'), '--listen', '/ip4/127.0.0.1/tcp/0',
      '--model', 'mlp', '--train-samples', '512', '--batch-size', '64', '--epochs', '1', '--min-peers', '1', '--f', '0', '--aggregation', 'mean',
      '--exit-when-done', '--log-format', 'json'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<{ code: number | null, at: number }>((res) => child.on('exit', (code) => { res({ code, at: Date.now() }) }))
    // 'close' (all output read) can come in the same tick as 'exit': listened for from the start
    const closed = new Promise((res) => child.on('close', res))
    const exit = await exited
    await closed
    expect(exit.code, stderr).toBe(0)
    expect(stdout).toMatch(/^job finished \(epochs\) at step 8: /m)
    const logs = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string, time: number })
    const stopped = logs.find((l) => l.msg === 'libp2p node stopped')
    expect(stopped, stderr).toBeDefined()
    expect(exit.at - stopped!.time).toBeLessThan(600)
  }, 60_000)
})
