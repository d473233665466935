/**
 * Issue 14: the trained model out as a forward ONNX file, from a running daemon (control socket),
 * from a checkpoint file and from `train --out`; onnxruntime-node runs each file on the job's test
 * set to the very accuracy the daemon (or train) reported.
 */
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { describe, expect, it } from 'vitest'
import { loadJobDatasets } from '../../ml/data/job-datasets.js'
import { INPUT_NORMALIZATION_KEY } from '../../ml/data/normalize.js'
import { onnx } from '../../ml/onnx/onnx-proto.js'
import { CLI_MAIN } from './support/build.js'
import { parseFinished } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('export')

const SEED = 17
const TRAIN_SAMPLES = 2048

/** % of the job's test split the ONNX file classifies correctly, as the CLI prints it */
async function accuracyOf(file: string, seed: number, trainSamples: number): Promise<string> {
  const { test } = await loadJobDatasets('mnist', { seed, trainSamples })
  const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3 })
  try {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', test.inputs, [test.size, ...test.sampleShape]) })
    const logits = out[session.outputNames[0]].data as Float32Array
    const classes = logits.length / test.size
    let correct = 0
    for (let i = 0; i < test.size; i++) {
      let best = 0
      for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c
      if (best === test.labels[i]) correct++
    }
    return (correct / test.size * 100).toFixed(2)
  } finally {
    await session.release()
  }
}

/** the bundled MNIST's statistics, which every export of an mnist job records */
const MNIST_NORMALIZATION = { mean: [0.1307], std: [0.3081] }

/** how the file says its inputs are normalised (its metadata_props) */
function normalizationIn(file: string): unknown {
  const props = onnx.ModelProto.decode(readFileSync(file)).metadataProps
  const value = props.find((p) => p.key === INPUT_NORMALIZATION_KEY)?.value
  return value === undefined || value === null ? undefined : JSON.parse(value)
}

function runCli(args: string[], cwd: string): Promise<{ code: number | null, stdout: string, stderr: string, pid: number | undefined }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd, env: { PATH: process.env.PATH ?? '', HOME: cwd }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid }))
  })
}

describe('p2pmld export and train --out', () => {
  it('a running daemon exports its model over the socket, and its checkpoint exports the same; both score the reported test accuracy', async () => {
    const daemon = fleet.start('exporter', [
      '--model', 'mlp', '--train-samples', String(TRAIN_SAMPLES), '--batch-size', '32', '--epochs', '1', '--seed', String(SEED),
      '--min-peers', '1', '--f', '0', '--aggregation', 'mean', '--lr', '0.05'
    ])
    await daemon.waitForStdout(/job finished/, 120_000)
    const finished = parseFinished(daemon.stdout())
    expect(finished, fleet.describe()).toBeDefined()

    const client = clientFor(daemon)
    const file = join(daemon.dataDir, 'out', 'model.onnx')
    const written = await client.exportModel({ path: file })
    expect(written).toMatchObject({ path: file, step: finished!.step, format: 'onnx', normalization: MNIST_NORMALIZATION })
    expect(await accuracyOf(file, SEED, TRAIN_SAMPLES)).toBe(finished!.accuracy.toFixed(2))
    expect(normalizationIn(file)).toEqual(MNIST_NORMALIZATION)

    // the CLI, from the checkpoint the daemon wrote at the end of the job
    const fromCheckpoint = join(daemon.dataDir, 'from-checkpoint.onnx')
    const cli = await runCli(['export', '--format', 'onnx', '--out', 'from-checkpoint.onnx', '--checkpoint', join(daemon.dataDir, 'checkpoint', 'state.p2ckpt')], daemon.dataDir)
    expect(cli.stderr).toBe('')
    expect(cli.code).toBe(0)
    expect(cli.stdout).toBe(`model at step ${finished!.step} written to ${fromCheckpoint} (${(written.bytes / 1024).toFixed(1)} KiB, ONNX)\n` +
      `inputs normalised per channel as (v - mean) / std, v the pixel intensity in [0, 1]: mean [0.1307], std [0.3081] (in the file's metadata_props as ${INPUT_NORMALIZATION_KEY})\n`)
    expect(normalizationIn(fromCheckpoint)).toEqual(MNIST_NORMALIZATION)
    expect(await accuracyOf(fromCheckpoint, SEED, TRAIN_SAMPLES)).toBe(finished!.accuracy.toFixed(2))
    // the data dir names the same checkpoint (as for `report --checkpoint`): the same bytes out
    const fromDataDir = await runCli(['export', '--out', 'from-data-dir.onnx', '--checkpoint', daemon.dataDir], daemon.dataDir)
    expect(fromDataDir.code, fromDataDir.stderr).toBe(0)
    expect(readFileSync(join(daemon.dataDir, 'from-data-dir.onnx')).equals(readFileSync(fromCheckpoint))).toBe(true)
    // a copy of the checkpoint under another name is a checkpoint file too, for export and report
    const copy = join(daemon.dataDir, 'saved-run.ckpt')
    copyFileSync(join(daemon.dataDir, 'checkpoint', 'state.p2ckpt'), copy)
    const report = await runCli(['report', '--checkpoint', copy, '--json'], daemon.dataDir)
    expect(report.code, report.stderr).toBe(0)
    const fromCopy = JSON.parse(report.stdout) as { source: string, job: { step: number }, digests: { own: string }, result: { testAccuracy: number, step: number, reason: string } | null }
    expect(fromCopy).toMatchObject({ source: 'checkpoint', job: { step: finished!.step } })
    // the finished job's result, as its own report had it (it read "result": null, "test accuracy -")
    expect(fromCopy.result, report.stdout).toMatchObject({ step: finished!.step, reason: 'epochs' })
    expect((fromCopy.result!.testAccuracy * 100).toFixed(2)).toBe(finished!.accuracy.toFixed(2))
    // the finished line prints the digest the checkpoint's parameters hash to (or its prefix)
    expect(fromCopy.digests.own.startsWith(finished!.digest)).toBe(true)

    // and through the socket with the CLI
    const viaSocket = await runCli(['export', '--out', 'via-socket.onnx', '--data-dir', daemon.dataDir, '--json'], daemon.dataDir)
    expect(viaSocket.code, viaSocket.stderr).toBe(0)
    expect(JSON.parse(viaSocket.stdout)).toMatchObject({ path: join(daemon.dataDir, 'via-socket.onnx'), step: finished!.step, normalization: MNIST_NORMALIZATION })
    daemon.kill('SIGTERM')
    expect(await daemon.exited).toBe(0)
  }, 180_000)

  it('`train --out model.onnx` writes the trained model; it scores the test accuracy train printed', async () => {
    const dir = fleet.dataDir('train-out')
    mkdirSync(dir, { recursive: true })
    const run = await runCli(['train', '--model', 'mlp', '--train-samples', '1024', '--epochs', '1', '--batch-size', '32', '--seed', '4', '--compute-threads', '1', '--out', 'model.onnx', '--json'], dir)
    expect(run.code, run.stderr).toBe(0)
    const result = JSON.parse(run.stdout) as { test: { accuracy: number }, out: string, normalization: unknown }
    expect(result.out).toBe(join(dir, 'model.onnx'))
    expect(result.normalization).toEqual(MNIST_NORMALIZATION)
    expect(normalizationIn(result.out)).toEqual(MNIST_NORMALIZATION)
    expect(await accuracyOf(result.out, 4, 1024)).toBe((result.test.accuracy * 100).toFixed(2))
    // ONNX Runtime's telemetry is off (polyfill.ts): it left an empty log per process in /tmp (the child has no TMPDIR)
    expect(run.pid).toBeDefined()
    expect(existsSync(`/tmp/mat-debug-${run.pid}.log`)).toBe(false)
  }, 120_000)

  it('`train --out` that cannot be written fails before the training; a directory is named as one', async () => {
    const dir = fleet.dataDir('train-out-bad')
    mkdirSync(join(dir, 'models'), { recursive: true })
    writeFileSync(join(dir, 'job.yaml'), 'model: mlp\n')
    // under a file: it trained both epochs, then died on ENOTDIR with the result, model and report lost
    const under = await runCli(['train', '--model', 'mlp', '--epochs', '1', '--train-samples', '256', '--out', 'job.yaml/model.onnx'], dir)
    expect(under.code).toBe(1)
    expect(under.stderr).toBe(`p2pmld: --out ${join(dir, 'job.yaml', 'model.onnx')} cannot be written: ${join(dir, 'job.yaml')} is a file, not a directory\n`)
    const intoDir = await runCli(['train', '--model', 'mlp', '--epochs', '1', '--train-samples', '256', '--out', 'models'], dir)
    expect(intoDir.stderr).toBe(`p2pmld: --out ${join(dir, 'models')} is a directory: give the ONNX file to write, e.g. ${join(dir, 'models', 'model.onnx')}\n`)
    // /sys: its permission bits let root through, its file system refuses new files (it trained, then lost the model)
    const sys = await runCli(['train', '--model', 'mlp', '--epochs', '1', '--train-samples', '256', '--out', '/sys/model.onnx'], dir)
    expect(sys.code).toBe(1)
    expect(sys.stderr).toMatch(/^p2pmld: --out \/sys\/model\.onnx cannot be written: /)
    expect(sys.stderr).not.toMatch(/^training /m)
    // export names it too, before asking for the checkpoint (it leaked the temp file's name)
    const exported = await runCli(['export', '--out', 'models', '--checkpoint', join(dir, 'missing')], dir)
    expect(exported.stderr).toContain(`--out ${join(dir, 'models')} is a directory`)
  }, 60_000)

  it('`train --out` whose directory became a file during the training writes the model to the temp directory instead, exit 1', async () => {
    const dir = fleet.dataDir('train-out-gone')
    mkdirSync(join(dir, 'models'), { recursive: true })
    const child = spawn(process.execPath, [CLI_MAIN, 'train', '--model', 'mlp', '--epochs', '3', '--train-samples', '2048', '--batch-size', '32', '--compute-threads', '1', '--out', 'models/model.onnx'], { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString()
        if (/^training mlp /m.test(stderr)) resolve()
      })
    })
    // checked before the training; gone by its end
    rmSync(join(dir, 'models'), { recursive: true })
    writeFileSync(join(dir, 'models'), 'a file now\n')
    expect(await exited).toBe(1)
    const moved = /^could not write --out (\S+): .*\nthe trained model was written to (\S+) instead$/m.exec(stderr)
    expect(moved, stderr).not.toBeNull()
    expect(moved![1]).toBe(join(dir, 'models', 'model.onnx'))
    try {
      expect(stdout).toContain(`model written to ${moved![2]} (ONNX, `)
      expect(Number(await accuracyOf(moved![2], 4, 2048))).toBeGreaterThan(50)
    } finally {
      rmSync(moved![2], { force: true })
    }
  }, 120_000)

  it('`train --out` stopped with Ctrl-C writes the model trained so far', async () => {
    const dir = fleet.dataDir('train-out-sigint')
    mkdirSync(dir, { recursive: true })
    const child = spawn(process.execPath, [CLI_MAIN, 'train', '--model', 'mlp', '--epochs', '50', '--train-samples', '2048', '--batch-size', '32', '--compute-threads', '1', '--out', 'partial.onnx'], { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString()
        if (/^epoch 1\/50 /m.test(stderr)) resolve()
      })
    })
    child.kill('SIGINT')
    expect(await exited).toBe(130)
    const stopped = /^stopped at step (\d+) \(epoch \d+ of 50\): the model at that step written to (\S+) \(ONNX, \d+ bytes\)$/m.exec(stderr)
    expect(stopped, stderr).not.toBeNull()
    expect(stopped![2]).toBe(join(dir, 'partial.onnx'))
    expect(Number(stopped![1])).toBeGreaterThan(0)
    expect(stderr).toMatch(/^training stopped before it finished$/m)
    // a model that classifies: better than chance after an epoch
    expect(Number(await accuracyOf(join(dir, 'partial.onnx'), 4, 2048))).toBeGreaterThan(50)
  }, 120_000)
})
