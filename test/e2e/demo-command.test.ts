import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseRunReport } from '../../daemon/report/report-schema.js'
import { watchChildOutput } from '../support/child-output.js'
import { ensureBuilt } from './support/build.js'

// the README's main command, as a user runs it (a short job): peers, result table, the
// single-process comparison and the stage table
describe('p2pmld demo', () => {
  let cli: string
  let home: string
  beforeAll(async () => {
    cli = await ensureBuilt()
    home = mkdtempSync(join(tmpdir(), 'p2pmld-demo-cli-'))
  }, 180_000)
  afterAll(() => rmSync(home, { recursive: true, force: true }))

  /** `p2pmld demo <args>` as a user runs it, in a fresh HOME */
  const runDemo = (args: readonly string[]): { child: ReturnType<typeof spawn>, output: ReturnType<typeof watchChildOutput> } => {
    const child = spawn(process.execPath, [cli, 'demo', ...args], { cwd: home, env: { PATH: process.env.PATH ?? '', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
    return { child, output: watchChildOutput('demo', child) }
  }

  it('trains 3 peers to identical parameters and reports its wall time beside one process on the same samples', async () => {
    const { output } = runDemo(['--peers', '3', '--epochs', '2', '--train-samples', '3072'])
    expect(await output.exited, output.stderr()).toBe(0)
    const out = output.stdout()

    const peers = [...out.matchAll(/^peer-(\d)\s+\S+\s+([\d.]+) %\s+epochs\s+64\s+([0-9a-f]{12})$/gm)]
    expect(peers.map((m) => m[1]), out).toEqual(['0', '1', '2'])
    expect(new Set(peers.map((m) => m[3])).size).toBe(1)
    // 64 steps of 3 x 32 digits: well past chance (10 %), not yet converged
    for (const m of peers) expect(Number(m[2])).toBeGreaterThan(70)
    expect(out).toContain('parameters identical on all peers: yes\n')

    const wall = out.match(/^wall time ([\d.]+) s; single process on the same samples ([\d.]+) s \(test acc ([\d.]+) %\)$/m)
    expect(wall, out).not.toBeNull()
    expect(Number(wall![1])).toBeGreaterThan(0)
    expect(Number(wall![2])).toBeGreaterThan(0)
    expect(Number(wall![3])).toBeGreaterThan(70)

    expect(out).toMatch(/^stage\s+count\s+mean ms\s+median ms\s+p95 ms\s+max ms\s+total s\s+CPU %\s+RSS MiB$/m)
    for (const stage of ['compute', 'compress', 'send', 'receive', 'aggregate', 'update']) expect(out).toMatch(new RegExp(`^${stage}\\s+64\\s`, 'm'))
    expect(out).toMatch(/^validate\s+2\s/m)
    // progress goes to stderr, one line per 10 % of an epoch off a terminal, for both runs; the
    // header says whose progress it is
    expect(output.stderr()).toMatch(/^demo: 3 peers on 127\.0\.0\.1 .*; the progress and epoch lines are peer-0's$/m)
    // the peers' lines with their pace (all peers' samples), as start's console shows it
    expect(output.stderr()).toMatch(/^epoch 2\/2: 90% \(29\/32 steps\) loss [\d.]+, \d+ samples\/s, epoch ~\d+(\.\d+)? ?m?s, ETA \d+(\.\d+)? ?m?s$/m)
    expect(output.stderr()).toContain('baseline: the same job in one process (global batch 96)')
    // the baseline's lines have a pace of their own: with the peers' reporter they repeated the
    // peers' last rate in every line (and an ETA three times the baseline's run)
    const baselineRates = output.stderr().split('baseline: the same job')[1].split('\n').flatMap((l) => /^epoch \d+\/2: .* (\d+) samples\/s, /.exec(l)?.[1] ?? [])
    expect(baselineRates.length).toBeGreaterThan(9)
    expect(new Set(baselineRates).size).toBeGreaterThan(1)

    // peer-0's run report, in the default data dir's reports/
    const written = out.match(/^run report: (\S+\.html)\n {2}\(JSON: (\S+\.json)\)$/m)
    expect(written, out).not.toBeNull()
    expect(written![1].startsWith(join(home, '.p2pmld', 'reports'))).toBe(true)
    expect(existsSync(written![1])).toBe(true)
    const report = parseRunReport(JSON.parse(readFileSync(written![2], 'utf8')), written![2])
    expect(report.source).toBe('demo')
    expect(report.epochs).toHaveLength(2)
    expect(report.membership.members).toHaveLength(3)
    expect(report.result?.digest.slice(0, 12)).toBe(peers[0][3])
  }, 120_000)
  it('a job that fails on the peers (diverged under a sign-flip attack with the plain mean) exits 1, each peer\'s reason printed', async () => {
    const { output } = runDemo(['--attack', 'sign-flip', '--aggregation', 'mean', '--epochs', '2', '--train-samples', '2000', '--no-baseline', '--no-report'])
    // it exited 0 with the table's 'stopped by' reading 'stopped' and 'identical: NO'
    expect(await output.exited, output.stdout()).toBe(1)
    const out = output.stdout()
    expect([...out.matchAll(/^peer-\d\s+\S+\s+-\s+failed\s/gm)]).toHaveLength(4)
    expect([...out.matchAll(/^peer-\d failed: .*training diverged/gm)]).toHaveLength(4)
    expect(out).toContain('parameters identical on all peers: - (no peer finished the job)\n')
  }, 120_000)

  // issue 20: Ctrl-C used to be ignored once the peers had started (they trained on for the
  // whole job, and a 16-peer demo could not be stopped at all)
  for (const [when, pattern, args, expected] of [
    ['while its peers start', /^demo: 4 peers/m, ['--no-baseline'], 'demo interrupted: every peer stopped'],
    ['while it trains', /^epoch 1\/10: \d+% /m, ['--no-baseline'], 'demo interrupted: every peer stopped'],
    ['during the single-process baseline', /^baseline: the same job/m, ['--epochs', '1'], 'baseline interrupted']
  ] as const) {
    it(`Ctrl-C stops it within seconds ${when}`, async () => {
      const { child, output } = runDemo(['--peers', '4', '--no-report', ...args])
      await output.waitFor(() => output.stderr(), pattern, 60_000, when)
      child.kill('SIGINT')
      const signalled = Date.now()
      const code = await Promise.race([output.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))])
      if (code === 'still running') child.kill('SIGKILL')
      expect(code, output.stderr()).toBe(130)
      console.log(`demo stopped ${Date.now() - signalled} ms after Ctrl-C ${when}`)
      expect(output.stderr()).toContain(expected)
      // interrupted in the baseline, the peers had finished: their results are printed
      if (when === 'during the single-process baseline') expect(output.stdout()).toContain('parameters identical on all peers: yes')
    }, 90_000)
  }
})
