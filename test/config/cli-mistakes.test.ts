/** `p2pmld` as a real child process: a bad flag value and a busy listen port are said in p2pmld's words, with the fix. */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_MAIN, ensureBuilt } from '../e2e/support/build.js'
import { watchChildOutput } from '../support/child-output.js'

const ROOT = resolve(import.meta.dirname, '../..')
// the CLI users get (dist/, bundled): built once by `npm test`'s pretest, or here when stale;
// from the sources through tsx each spawn cost ~0.8 s more
beforeAll(async () => { await ensureBuilt() }, 120_000)
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-mistakes-'))
const servers: Server[] = []

afterAll(() => {
  for (const s of servers) s.close()
  rmSync(dir, { recursive: true, force: true })
})

async function run(args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const output = watchChildOutput('p2pmld', child)
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000)
  const code = await output.exited
  clearTimeout(timer)
  return { code, stdout: output.stdout(), stderr: output.stderr() }
}

describe('config mistakes on the command line', () => {
  it('--bits 3 lists the allowed values; a misspelt --compression suggests the codec', async () => {
    const [bits, codec] = await Promise.all([
      run(['train', '--bits', '3']),
      run(['start', '--compression', 'qsdg', '--data-dir', join(dir, 'c')])
    ])
    expect(bits.code).toBe(1)
    expect(bits.stderr).toMatch(/--bits must be one of 2, 4, 8, got '3'/)
    expect(codec.code).toBe(1)
    expect(codec.stderr).toMatch(/--compression must be one of qsgd, fp16, none, got 'qsdg' \(did you mean qsgd\?\)/)
  }, 60_000)

  it('refuses flags the job\'s other settings leave without effect: --bits without qsgd, --max-staleness and --average-every in sync mode', async () => {
    const [fp16, staleness, both] = await Promise.all([
      run(['train', '--compression', 'fp16', '--bits', '2']),
      run(['start', '--max-staleness', '3', '--data-dir', join(dir, 's')]),
      run(['start', '--max-staleness', '3', '--average-every', '5', '--data-dir', join(dir, 'b')])
    ])
    for (const r of [fp16, staleness, both]) expect(r.code, r.stderr).toBe(1)
    expect(fp16.stderr.trim()).toBe("p2pmld: --bits sets qsgd's bits per value; this job's compression is fp16: drop --bits or use --compression qsgd")
    expect(staleness.stderr.trim()).toBe('p2pmld: --max-staleness applies only in async mode; this job runs in sync mode: drop it or add --mode async')
    expect(both.stderr.trim()).toBe('p2pmld: --max-staleness and --average-every apply only in async mode; this job runs in sync mode: drop them or add --mode async')
  }, 60_000)

  it('--optimizer takes every optimizer the job config has (adam too), and a misspelt one lists them all', async () => {
    const [adam, typo] = await Promise.all([
      run(['train', '--optimizer', 'adam', '--model', 'mlp', '--epochs', '1', '--train-samples', '256', '--batch-size', '64']),
      run(['train', '--optimizer', 'adma'])
    ])
    expect(adam.code, adam.stderr).toBe(0)
    expect(adam.stdout + adam.stderr).toMatch(/training mlp on mnist: 1 epoch, batch 64, adam lr/)
    expect(typo.code).toBe(1)
    expect(typo.stderr).toMatch(/--optimizer must be one of sgd, adam, got 'adma' \(did you mean adam\?\)/)
  }, 90_000)

  it('a job file with a misspelt key names the nearest valid one', async () => {
    const file = join(dir, 'job.yaml')
    const { writeFileSync } = await import('node:fs')
    writeFileSync(file, 'epoch: 2\nlr: 0.1\n')
    const result = await run(['train', '--config', file])
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain('epoch: unknown key: did you mean epochs?')
    expect(result.stderr).toContain('lr: unknown key: did you mean optimizer.lr?')
  }, 60_000)

  it('a busy listen port says so and suggests tcp/0, not libp2p\'s faultTolerance advice', async () => {
    const server = createServer()
    servers.push(server)
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
    const port = (server.address() as { port: number }).port
    const result = await run(['start', '--data-dir', join(dir, 'busy'), '--listen', `/ip4/127.0.0.1/tcp/${port}`])
    expect(result.code).toBe(1)
    const lines = result.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toBe(`p2pmld: cannot listen on /ip4/127.0.0.1/tcp/${port}: the port is already in use (another p2pmld daemon, or another program, listens there): ` +
      'stop the process that holds it, or listen elsewhere with --listen (--listen /ip4/127.0.0.1/tcp/0 lets the system pick a free port)')
    expect(result.stderr).not.toMatch(/faultTolerance/)
  }, 60_000)

  it('an address not of this machine, and a UDP one, say what is wrong with each (not libp2p\'s advice and a stack trace)', async () => {
    // 198.51.100.0/24 is a documentation range: no interface here has it
    const foreign = await run(['start', '--data-dir', join(dir, 'foreign'), '--listen', '/ip4/198.51.100.77/tcp/4791'])
    expect(foreign.code).toBe(1)
    expect(foreign.stderr.trim().split('\n')).toEqual(['p2pmld: cannot listen on /ip4/198.51.100.77/tcp/4791: 198.51.100.77 is not an address of this machine (listen on one of its own, which `ip addr` lists, or on /ip4/0.0.0.0/tcp/PORT for all of them)'])
    const udp = await run(['start', '--data-dir', join(dir, 'udp'), '--listen', '/ip4/127.0.0.1/udp/4791'])
    expect(udp.code).toBe(1)
    expect(udp.stderr.trim().split('\n')).toEqual(['p2pmld: cannot listen on /ip4/127.0.0.1/udp/4791: p2pmld listens over TCP only (e.g. /ip4/0.0.0.0/tcp/4001)'])
  }, 60_000)

  it('a --data-dir that is a file is named as one (it said to check the data directory\'s permissions)', async () => {
    const file = join(dir, 'a-file')
    writeFileSync(file, 'x')
    const result = await run(['start', '--data-dir', file])
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split('\n')).toEqual([`p2pmld: the data directory ${file} is a file, not a directory: give a directory (created if missing) with --data-dir`])
  }, 60_000)
})
