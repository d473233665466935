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
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_MAIN, ensureBuilt } from '../e2e/support/build.js'
import { createControlClient } from '../../daemon/control/client.js'

const ROOT = resolve(import.meta.dirname, '../..')
// the CLI users get (dist/, bundled): built once by `npm test`'s pretest, or here when stale;
// from the sources through tsx each spawn cost ~0.8 s more
beforeAll(async () => { await ensureBuilt() }, 120_000)
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-exit-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

/**
 * `p2pmld start` hosting a one-member mlp job (one epoch of 8 steps unless `extra` flags say
 * otherwise) with --exit-when-done; `exit` resolves once it exited and its output is read
 */
function startDaemon(dataDir: string, extra: readonly string[] = []): { stdout: () => string, exit: Promise<{ code: number | null, at: number, stdout: string, stderr: string }> } {
  const child = spawn(process.execPath, [CLI_MAIN, 'start', '--data-dir', join(dir, dataDir), '--listen', '/ip4/127.0.0.1/tcp/0',
    '--model', 'mlp', '--train-samples', '512', '--batch-size', '64', '--epochs', '1', '--min-peers', '1', '--f', '0', '--aggregation', 'mean',
    ...extra, '--exit-when-done', '--log-format', 'json'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<{ code: number | null, at: number }>((res) => child.on('exit', (code) => { res({ code, at: Date.now() }) }))
  // 'close' (all output read) can come in the same tick as 'exit': listened for from the start
  const closed = new Promise((res) => child.on('close', res))
  return { stdout: () => stdout, exit: Promise.all([exited, closed]).then(([e]) => ({ ...e, stdout, stderr })) }
}

async function startToExit(dataDir: string, extra: readonly string[] = []): Promise<{ code: number | null, at: number, stdout: string, stderr: string }> {
  return await startDaemon(dataDir, extra).exit
}

describe('p2pmld start --exit-when-done', () => {
  it('exits 0 right after the daemon stopped, with the job\'s result printed', async () => {
    const { stdout, stderr, ...exit } = await startToExit('d')
    expect(exit.code, stderr).toBe(0)
    expect(stdout).toMatch(/^job finished \(epochs\) at step 8: /m)
    const logs = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string, time: number })
    const stopped = logs.find((l) => l.msg === 'libp2p node stopped')
    expect(stopped, stderr).toBeDefined()
    expect(exit.at - stopped!.time).toBeLessThan(600)
  }, 60_000)

  it('exits 1 when the job fails here, saying why (a job that diverged exited 0 after its NaN epochs)', async () => {
    const { code, stdout, stderr } = await startToExit('diverged', ['--lr', '1e30'])
    expect(code, stderr).toBe(1)
    expect(stdout).toMatch(/^the job did not finish on this peer: training failed: the gradient of step \d+ is not finite \(loss NaN\) and it is the step's only gradient: training diverged \(lower the learning rate\); exiting with code 1 \(--exit-when-done\)$/m)
    expect(stdout).not.toMatch(/^job finished/m)
  }, 60_000)

  it('exits 0 when the job is stopped with p2pmld job stop (it waited for a result for ever)', async () => {
    const daemon = startDaemon('stopped', ['--epochs', '200', '--socket', join(dir, 'stopped.sock')])
    const end = Date.now() + 30_000
    while (!/^epoch 1\/200/m.test(daemon.stdout()) && Date.now() < end) await new Promise((r) => setTimeout(r, 100))
    const client = createControlClient(join(dir, 'stopped.sock'), { timeoutMs: 10_000 })
    try {
      await client.stopJob()
    } finally {
      await client.close()
    }
    const { code, stdout, stderr } = await Promise.race([daemon.exit, new Promise<never>((_, reject) => setTimeout(() => { reject(new Error(`still running 15 s after job stop:\n${daemon.stdout()}`)) }, 15_000))])
    expect(code, stderr).toBe(0)
    expect(stdout).toMatch(/^the job was stopped before it finished \(p2pmld job stop\): exiting \(--exit-when-done\)$/m)
  }, 60_000)
})
