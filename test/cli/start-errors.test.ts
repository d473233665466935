/** `p2pmld start` and `train` as real child processes: bad input gets a one-line error, a dead bootstrap peer does not kill the daemon. */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_MAIN, ensureBuilt } from '../e2e/support/build.js'
import { eventually } from '../e2e/support/daemon-process.js'

const ROOT = resolve(import.meta.dirname, '../..')
// the CLI users get (dist/, bundled): built once by `npm test`'s pretest, or here when stale;
// from the sources through tsx each spawn cost ~0.8 s more
beforeAll(async () => { await ensureBuilt() }, 120_000)
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-start-'))
const children = new Set<ChildProcess>()

function startCli(args: string[]): { child: ChildProcess, output: () => { stdout: string, stderr: string }, exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((res) => child.on('close', (code) => {
    children.delete(child)
    res(code)
  }))
  return { child, output: () => ({ stdout, stderr }), exited }
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

describe('p2pmld start and train with bad input', () => {
  it('names a bootstrap address that is not a multiaddr and exits 1', async () => {
    const run = startCli(['start', '--data-dir', join(dir, 'a'), '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', 'not-a-multiaddr'])
    expect(await run.exited).toBe(1)
    const { stderr } = run.output()
    expect(stderr).toMatch(/not-a-multiaddr/)
    expect(stderr.trim().split('\n')).toHaveLength(1)
  })

  it('refuses --join-job on a daemon that hosts a job, naming both, and exits 1', async () => {
    const run = startCli(['start', '--data-dir', join(dir, 'j'), '--listen', '/ip4/127.0.0.1/tcp/0', '--model', 'mlp', '--join-job', 'other-job'])
    expect(await run.exited).toBe(1)
    const { stderr } = run.output()
    expect(stderr).toMatch(/--join-job is for a daemon that joins a job; this one hosts job \S+ .*drop --join-job or the job flags/)
    expect(stderr.trim().split('\n')).toHaveLength(1)
  })

  it('fails on an unknown model or a missing model file before the peer or the control socket start, with one line', async () => {
    const runs = [
      startCli(['start', '--data-dir', join(dir, 'm1'), '--listen', '/ip4/127.0.0.1/tcp/0', '--model', 'resnet9000', '--log-level', 'info']),
      startCli(['start', '--data-dir', join(dir, 'm2'), '--listen', '/ip4/127.0.0.1/tcp/0', '--model', join(dir, 'missing.onnx'), '--log-level', 'info'])
    ]
    const expected = [/^p2pmld: unknown model 'resnet9000': choose one of mlp, .*or give the path of a forward \.onnx file$/, /^p2pmld: ONNX model file '.*missing\.onnx' does not exist: check the path, or use a zoo model name$/]
    for (let i = 0; i < runs.length; i++) {
      expect(await runs[i].exited).toBe(1)
      const { stdout, stderr } = runs[i].output()
      // the daemon logged 'libp2p node started' and 'control socket listening' (and their stops) first
      expect(stderr.trim()).toMatch(expected[i])
      expect(stdout).toBe('')
    }
  })

  it('refuses a data dir another daemon runs from with one line, before its peer starts', async () => {
    const first = startCli(['start', '--data-dir', join(dir, 'busy'), '--listen', '/ip4/127.0.0.1/tcp/0'])
    try {
      await eventually(() => /control socket /.test(first.output().stdout) ? true : undefined, 30_000, 'the first daemon\'s control socket')
      const second = startCli(['start', '--data-dir', join(dir, 'busy'), '--listen', '/ip4/127.0.0.1/tcp/0', '--log-level', 'info'])
      expect(await second.exited).toBe(1)
      const socket = join(dir, 'busy', 'p2pmld.sock')
      // 'libp2p node started' and 'libp2p node stopped' were logged before the error
      // named by the flag the user gave (it suggested --socket to a --data-dir user)
      expect(second.output().stderr).toBe(`p2pmld: a daemon is already running at ${socket}: stop it with \`p2pmld stop --data-dir ${join(dir, 'busy')}\` or use another --data-dir\n`)
      expect(first.child.exitCode).toBeNull()
    } finally {
      first.child.kill('SIGTERM')
      await first.exited
    }
  }, 60_000)

  it('keeps running and retries with backoff when the bootstrap peer cannot be reached', async () => {
    const unreachable = '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWAFiUckVDWpFbxDY2HzCQjo7EBhNLz6tT16jduKuqcaAd'
    const run = startCli(['start', '--data-dir', join(dir, 'b'), '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', unreachable, '--log-level', 'info'])
    const deadline = Date.now() + 20_000
    const retries = (): number[] => run.output().stderr.split('\n')
      .filter((line) => line.includes('could not join a job yet'))
      .map((line) => Number(/"retryInMs":(\d+)/.exec(line)?.[1]))
    while (Date.now() < deadline && retries().length < 3) await new Promise((r) => setTimeout(r, 200))
    const { stdout } = run.output()
    expect(stdout).toMatch(/listening on \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3Koo/)
    const seen = retries()
    expect(seen.length).toBeGreaterThanOrEqual(3)
    expect(seen[1]).toBeGreaterThan(seen[0])
    expect(seen[2]).toBeGreaterThan(seen[1])
    expect(run.child.exitCode).toBeNull()
    run.child.kill('SIGTERM')
    expect(await run.exited).toBe(0)
  }, 40_000)

  it('rejects a batch size of 0, a learning rate that is not a number, an unknown model, a missing ONNX file and flags that need peers', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--batch-size', '0'], /--batch-size must be a whole number >= 1, got '0'/],
      [['--epochs', '1.5'], /--epochs must be a whole number >= 1, got '1.5'/],
      [['--momentum', '2'], /--momentum must be between 0 and 1, got '2'/],
      [['--lr', 'fast'], /--lr must be a number, got 'fast'/],
      // it parses, to Infinity: it read 'must be a number'
      [['--lr', '1e400'], /--lr must be a finite number, got '1e400' \(beyond the largest double, ~1\.8e308\)/],
      [['--model', 'resnet9000'], /unknown model 'resnet9000': choose one of mlp/],
      // a typo of a zoo name gets the name it was near
      [['--model', 'lenett5'], /^p2pmld: unknown model 'lenett5' \(did you mean lenet5\?\): choose one of mlp, /m],
      [['--model', join(dir, 'missing.onnx')], /missing\.onnx/],
      // peer-only flags would be ignored in one process: refused by name, not listed in train --help
      [['--transport', 'amqp', '--min-peers', '2'], /^p2pmld: --min-peers, --transport have no effect in p2pmld train \(one process, no peers\): drop them, or run the job with p2pmld start$/m],
      // no peers to use fewer of: the fix names the two flags
      [['--model', 'mlp', '--train-samples', '10'], /^p2pmld: the training set \(10 samples\) is smaller than one batch \(64\): lower the batch size \(--batch-size; batchSize in a job file\) or use more samples \(--train-samples; trainSamples\)$/m],
      // a rule one gradient cannot meet: the fix is train's own (it named --min-peers, which train refuses)
      [['--aggregation', 'krum'], /^p2pmld: --aggregation krum with f=0 needs 3 gradients a step and train has one: set --aggregation to mean \(krum needs 3 gradients even with f=0\)$/m],
      // f > 0: every rule refused it (naming --min-peers) and mean ignored it; without a rule it was ignored too
      [['--aggregation', 'trimmed-mean', '--f', '2'], /^p2pmld: --f 2: p2pmld train aggregates one gradient a step, of which no rule can leave out a faulty one: drop --f \(f > 0 needs peers: run the job with p2pmld start\)$/m],
      [['--f', '1'], /^p2pmld: --f 1: p2pmld train aggregates one gradient/m],
      // a report directory that is a file: EEXIST after the whole training, its result never printed
      [['--model', 'mlp', '--report-dir', join(dir, 'not-a-dir.json')], /^p2pmld: --report-dir \S+not-a-dir\.json is a file, not a directory: give the directory to write the report into \(created if missing\)$/m],
      // more samples than the bundled split holds: it trained on 8000 without a word
      [['--model', 'mlp', '--train-samples', '48000'], /^p2pmld: trainSamples 48000 is more than the training split of mnist holds \(8000 samples; the validation samples are set apart first\): use at most 8000, or leave out trainSamples \(--train-samples\) to train on all of them$/m],
      // a misspelt dataset name gets the name it was near, as a model's does
      [['--model', 'mlp', '--dataset', 'fashion-mnis'], /^p2pmld: unknown dataset 'fashion-mnis' \(did you mean fashion-mnist\?\): use 'mnist' \(bundled\)/m]
    ]
    writeFileSync(join(dir, 'not-a-dir.json'), '{}')
    const runs = cases.map(([args]) => startCli(['train', '--epochs', '1', ...args]))
    for (let i = 0; i < cases.length; i++) {
      expect(await runs[i].exited).toBe(1)
      expect(runs[i].output().stderr).toMatch(cases[i][1])
      // the error is the run's only line: no 'training ...' header before a model or a rule that
      // cannot run, nor a dataset it cannot find (the data's size is known once it loaded, after the header)
      if (!cases[i][0].includes('--train-samples')) expect(runs[i].output().stderr.trim().split('\n'), cases[i][0].join(' ')).toHaveLength(1)
    }
    const help = startCli(['train', '--help'])
    expect(await help.exited).toBe(0)
    expect(help.output().stdout).toContain('--aggregation')
    expect(help.output().stdout).not.toMatch(/--(min-peers|transport|exchange|deadline-ms|mode|max-staleness|average-every)\b/)
  }, 60_000)

  it('demo refuses attack flags it would ignore, with one line', async () => {
    const cases: Array<[string[], string]> = [
      // a peer the demo does not run: it ran a clean demo without a word
      [['--attack', 'sign-flip', '--attack-peer', 'peer-9'], "p2pmld: --attack-peer peer-9 is not one of this demo's peers (peer-0, peer-1, peer-2, peer-3): name one of them"],
      [['--peers', '1', '--f', '0', '--aggregation', 'mean', '--attack', 'scale'], "p2pmld: --attack-peer peer-1 is not one of this demo's peers (peer-0; peer-1 is the default): name one of them, or run more peers with --peers"],
      [['--attack-peer', 'peer-2'], 'p2pmld: --attack-peer has no effect without --attack: add --attack <kind> (sign-flip, gaussian, scale, collude, equivocate) or drop it'],
      [['--attack', 'sign-flip', '--attack-magnitude', 'abc'], "p2pmld: --attack-magnitude must be a number, got 'abc'"],
      [['--attack', 'sign-flip', '--attack-magnitude', '1e400'], "p2pmld: --attack-magnitude must be a finite number, got '1e400' (beyond the largest double, ~1.8e308)"]
    ]
    const runs = cases.map(([args]) => startCli(['demo', '--epochs', '1', '--no-report', ...args]))
    for (const [i, [args, expected]] of cases.entries()) {
      expect(await runs[i].exited, args.join(' ')).toBe(1)
      expect(runs[i].output().stderr.trim(), args.join(' ')).toBe(expected)
    }
  }, 60_000)

  it('a job file in async mode trains in sync mode in train, and says so (its exchange stages ran on one gradient)', async () => {
    const file = join(dir, 'async-job.yaml')
    writeFileSync(file, 'model: mlp\nepochs: 1\ntrainSamples: 512\nmode: async\naggregation: {rule: mean, f: 0}\n')
    const run = startCli(['train', '--config', file, '--no-report'])
    expect(await run.exited).toBe(0)
    const { stdout, stderr } = run.output()
    expect(stderr).toContain(`note: ${file} sets mode: async; p2pmld train runs one process, in sync mode`)
    expect(stdout).toMatch(/^compute /m)
    expect(stdout).not.toMatch(/^(compress|send|receive|aggregate) /m)
  }, 60_000)

  it('a job file written for peers (trimmed-mean f=1, qsgd) trains in train, which says it applies its one gradient as computed', async () => {
    const file = join(dir, 'peer-job.yaml')
    writeFileSync(file, 'model: mlp\nepochs: 1\ntrainSamples: 512\nminPeers: 3\naggregation: {rule: trimmed-mean, f: 1}\ncompression: {codec: qsgd, bits: 8}\n')
    const run = startCli(['train', '--config', file, '--no-report', '--json'])
    expect(await run.exited).toBe(0)
    const { stdout, stderr } = run.output()
    expect(stderr).toContain(`note: ${file} sets compression and aggregation for peers; p2pmld train applies its one gradient as computed (give --compression or --aggregation to run them on it)`)
    const result = JSON.parse(stdout) as { steps: number, stages: Array<{ stage: string }> }
    expect(result.steps).toBe(512 / 64)
    expect(result.stages.map((s) => s.stage)).not.toContain('compress')
    // a file that leaves them out gets the schema's trimmed-mean f=1 too: no note, and it trains
    const bare = join(dir, 'bare-job.yaml')
    writeFileSync(bare, 'model: mlp\nepochs: 1\ntrainSamples: 256\n')
    const plain = startCli(['train', '--config', bare, '--no-report'])
    expect(await plain.exited).toBe(0)
    expect(plain.output().stderr).not.toContain('note:')
    // a peers' file without the minPeers its rule needs: refused with the fix --min-peers, which
    // train refuses; train uses no minPeers, so it trains with the note
    const robust = join(dir, 'robust-job.yaml')
    writeFileSync(robust, 'model: mlp\nepochs: 1\ntrainSamples: 256\naggregation: {rule: trimmed-mean, f: 2}\n')
    const robustRun = startCli(['train', '--config', robust, '--no-report'])
    expect(await robustRun.exited, robustRun.output().stderr).toBe(0)
    expect(robustRun.output().stderr).toContain(`note: ${robust} sets aggregation for peers; p2pmld train applies its one gradient as computed`)
  }, 60_000)

  it('a diverged train run ends with exit code 1 and one line saying why, not a logged stack before it', async () => {
    const run = startCli(['train', '--model', 'mlp', '--epochs', '1', '--train-samples', '512', '--lr', '1e30', '--no-report'])
    expect(await run.exited).toBe(1)
    const { stderr } = run.output()
    const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('training mlp on mnist'))
    // the progress line may precede it, overwritten with \r
    expect(lines.at(-1)).toMatch(/p2pmld: the gradient of step \d+ is not finite \(loss NaN\) and it is the step's only gradient: training diverged \(lower the learning rate\)$/)
    expect(stderr).not.toContain('training failed')
    expect(stderr).not.toContain('"stack"')
  }, 60_000)
})
