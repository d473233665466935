/** `p2pmld estimate` as a user runs it: from a run report's times, from a calibration run, with a price file. */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_MAIN, ensureBuilt } from '../e2e/support/build.js'
import { DEFAULT_PRICES, ec2PricePerSecond, loadPriceTable } from '../../config/prices.js'
import { batchesPerEpoch } from '../../daemon/report/cost-model.js'
import { writeRunReport } from '../../daemon/report/write-report.js'
import { estimateCosts, type Estimate } from '../../daemon/report/estimate.js'
import type { RunReport } from '../../daemon/report/report-schema.js'
import { trainForReport } from '../report/support/trained-report.js'

// the CLI users get (dist/, bundled): built once by `npm test`'s pretest, or here when stale;
// from the sources through tsx each spawn cost ~0.8 s more
beforeAll(async () => { await ensureBuilt() }, 120_000)

interface CliRun { code: number | null, stdout: string, stderr: string }

function runCli(args: string[], home: string): Promise<CliRun> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd: home, env: { PATH: process.env.PATH ?? '', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })
}

describe('p2pmld estimate', () => {
  let home: string
  let report: RunReport
  let reportFile: string
  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'p2pmld-estimate-'))
    report = (await trainForReport(2)).report
    reportFile = (await writeRunReport(home, report)).json
  }, 120_000)
  afterAll(() => rmSync(home, { recursive: true, force: true }))

  it('--from-report uses the report\'s compute time, batch size, samples and epochs', async () => {
    const run = await runCli(['estimate', '--from-report', reportFile, '--peers', '4', '--instance', 't2.large', '--lambda-memory', '2048', '--json'], home)
    expect(run.code, run.stderr).toBe(0)
    const e = JSON.parse(run.stdout) as Estimate
    const compute = report.stages.find((s) => s.stage === 'compute')!
    const batches = batchesPerEpoch(1024, 4, 64)
    expect(e.inputs.batchesPerEpoch).toBe(batches)
    expect(e.request.epochs).toBe(2)
    expect(e.request.model).toBe('mlp')
    expect(e.comparison.instanceBased.secondsPerEpoch).toBeCloseTo(compute.medianMs / 1000 * batches, 9)
    // 2048 MB is 1.16 vCPU: a batch takes its CPU time over that, never less than its wall time here
    const vcpus = 2048 / 1769
    // mlp's batch is too short for its CPU time to be measured (null): one core busy is assumed
    expect(compute.cpuPercent).toBeNull()
    expect(e.comparison.serverless.secondsPerEpoch).toBeCloseTo(compute.medianMs / 1000 * Math.max(1, 1 / vcpus), 9)
    expect(e.notes.join('\n')).toContain('with its CPU time not measured (too short a batch: one core busy assumed)')
    expect(e.comparison.instanceBased.costPerPeerPerEpoch).toBeCloseTo(0.0928 / 3600 * e.comparison.instanceBased.secondsPerEpoch, 12)
    expect(e.notes.join('\n')).toContain(`report ${reportFile}`)
    // the default Lambda memory from a report is the daemon's whole process, and says so (a
    // calibration's is a gradient computation's: a fresh user saw 320 against 128 MB unexplained)
    const sized = await runCli(['estimate', '--from-report', reportFile, '--json'], home)
    expect(sized.code, sized.stderr).toBe(0)
    expect((JSON.parse(sized.stdout) as Estimate).notes.join('\n')).toMatch(/^Lambda memory \d+ MB: the \d+ MiB measured \(the job's whole process, peer networking included: a gradient function needs less\), rounded up \(--lambda-memory sets it\)$/m)
  }, 120_000)

  it('refuses a report of an offloaded run, whose compute stage is the round trip to the workers', async () => {
    const offloaded = { ...report, stages: [...report.stages, { ...report.stages.find((s) => s.stage === 'compute')!, stage: 'offload.invoke' }] }
    const file = (await writeRunReport(join(home, 'offloaded'), offloaded)).json
    const run = await runCli(['estimate', '--from-report', file], home)
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(new RegExp(`^p2pmld: run report ${file.replace(/[.*+?^$()|[\]\\/]/g, '\\$&')} is of a run that offloaded its gradients: its 'compute' stage \\([\\d.]+ ms a batch\\) is the round trip to the workers, not a gradient's time on an instance; give the report of a run that computed in process, or leave out --from-report to measure one on this machine\n$`))
  }, 60_000)

  it('calibrates the model on this machine when there is no report, and says which is cheaper', async () => {
    const run = await runCli(['estimate', '--model', 'mlp', '--batch-size', '32', '--peers', '2', '--epochs', '3', '--train-samples', '6400', '--calibration-runs', '2', '--threads', '1'], home) // --compute-threads' old name
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/^calibrating: mlp, batch 32: one warm-up gradient run, then up to 2 timed ones/m)
    expect(run.stderr).toMatch(/^ {2}run 2\/2: [\d.]+ ms$/m)
    expect(run.stdout).toContain('estimate: mlp, batch 32 per peer, 2 peers, 3 epochs, 6400 training samples: 100 batches per peer per epoch')
    expect(run.stdout).toMatch(/calibration on this machine, 1 thread\)/)
    // the note's epoch time reads as the table's (formatSeconds: ms under 0.1 s, not '0.0 s')
    const noted = /instance-based epoch: 100 batches one after another at this machine's speed \(([\d.]+) m?s\)/.exec(run.stdout)
    expect(Number(noted?.[1]), run.stdout).toBeGreaterThan(0)
    // 100 batches of mlp take tens of ms: in ms, not '0.0 s'
    const perEpoch = /^time per epoch\s+([\d.]+) (m?s)\s+([\d.]+) (m?s)$/m.exec(run.stdout)
    expect(perEpoch, run.stdout).not.toBeNull()
    for (const value of [perEpoch![1], perEpoch![3]]) expect(Number(value), run.stdout).toBeGreaterThan(0)
    // the request fees name what they count (Step Functions transitions and S3 are no 'requests' of Lambda)
    expect(run.stdout).toMatch(/^cost per peer per epoch\s+\$[\d.e-]+\s+\$[\d.e-]+ \(Lambda \$[\d.e-]+, instance \$[\d.e-]+, Lambda \+ Step Functions \+ S3 requests \$[\d.e-]+\)$/m)
    expect(run.stdout).toMatch(/^cost per job \(2 peers\)\s+\$[\d.e-]+\s+\$[\d.e-]+$/m)
    expect(run.stdout).toMatch(/^cheaper: (instance-based|serverless offload) \(/m)
  }, 120_000)

  it('refuses an instance type without a price or a Lambda memory size out of range before it calibrates', async () => {
    // the calibration of vgg11 ran ~14 s before either error
    const runs = await Promise.all([
      runCli(['estimate', '--model', 'vgg11', '--instance', 't2.hugee'], home),
      runCli(['estimate', '--model', 'vgg11', '--offload-instance', 'x1.tiny'], home),
      runCli(['estimate', '--model', 'vgg11', '--lambda-memory', '50'], home)
    ])
    const expected = [/^p2pmld: no price for instance type 't2\.hugee': use one of t2\.micro, .*--prices file$/, /^p2pmld: no price for instance type 'x1\.tiny'/, /^p2pmld: --lambda-memory 50 is outside Lambda's 128-10240 MB$/]
    for (const [i, run] of runs.entries()) {
      expect(run.code).toBe(1)
      expect(run.stderr.trim()).toMatch(expected[i])
      expect(run.stderr).not.toContain('calibrating')
    }
  })

  it('a price file overrides the table; a bad one names the field', async () => {
    const prices = join(home, 'prices.yaml')
    writeFileSync(prices, 'ec2PerHour:\n  x9.huge: 36\n')
    // in process (the command's own functions): a CLI start costs seconds the two runs above already spend
    const e = estimateCosts({ model: 'mlp', batchSize: 100, peers: 2, epochs: 1, trainSamples: 600, instanceType: 'x9.huge', offloadInstanceType: 't2.small', lambdaMemoryMb: 1024, prices: loadPriceTable(prices), instanceSecondsPerEpoch: 100, offloadSecondsPerEpoch: 10 })
    // 36 $/h for 100 s; the defaults' other types are still there
    expect(e.comparison.instanceBased.costPerPeerPerEpoch).toBeCloseTo(1, 12)
    expect(e.inputs.serverless.instancePricePerSecond).toBeCloseTo(0.023 / 3600, 12)
    expect(e.inputs.batchesPerEpoch).toBe(3)
    // the errors, in process (the same functions the command calls)
    writeFileSync(prices, 'lambda:\n  perGbSecond: -1\n')
    expect(() => loadPriceTable(prices)).toThrow(/^invalid price file .*prices\.yaml \(it holds any of currency, region, ec2PerHour, lambda, stepFunctions, s3; prices in USD >= 0\):\n  lambda\.perGbSecond: /)
    writeFileSync(prices, 'ec2PerHour: { t2.large: 0.1 }\nlambda: { memoryMb: 3 }\n')
    expect(() => loadPriceTable(prices)).toThrow(/\n  lambda\.memoryMb: unknown key: valid keys here: /)
    // a misspelt key gets the one it was near
    writeFileSync(prices, 'ec2PerHr: { t2.large: 0.1 }\n')
    expect(() => loadPriceTable(prices)).toThrow(/\n  ec2PerHr: unknown key: did you mean ec2PerHour\?$/)
    expect(() => ec2PricePerSecond(DEFAULT_PRICES, 't9.nano')).toThrow(/no price for instance type 't9\.nano': use one of t2\.micro, .*or add it under ec2PerHour in a --prices file/)
    // a typo gets the type it was near
    expect(() => ec2PricePerSecond(DEFAULT_PRICES, 'c5.larg')).toThrow(/^no price for instance type 'c5\.larg' \(did you mean c5\.large\?\): use one of t2\.micro, /)
  })
})
