/** The p2pmld client commands as real child processes against a live control server. */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_MAIN, ensureBuilt } from '../e2e/support/build.js'
import { createControlServer, type ControlServer } from '../../daemon/control/index.js'
import { createMemoryDaemon, PEER_ID, type MemoryDaemon } from './memory-handlers.js'

const ROOT = resolve(import.meta.dirname, '../..')
// the CLI users get (dist/, bundled): built once by `npm test`'s pretest, or here when stale;
// from the sources through tsx each spawn cost ~0.8 s more
beforeAll(async () => { await ensureBuilt() }, 120_000)

interface CliRun { code: number | null, stdout: string, stderr: string }

/** async spawn: the server under test lives in this process and must keep answering */
function runCli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Promise<CliRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolveRun({ code, stdout, stderr })
    })
  })
}

let dir: string
let socketPath: string
let daemon: MemoryDaemon
let server: ControlServer

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'p2pmld-cli-'))
  socketPath = join(dir, 'p2pmld.sock')
  daemon = createMemoryDaemon()
  server = createControlServer({ socketPath, handlers: daemon })
  await server.start()
})

afterAll(async () => {
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
})

function expectOneLineFailure(run: CliRun): string {
  expect(run.code).toBe(1)
  expect(run.stdout).toBe('')
  const lines = run.stderr.split('\n').filter((line) => line !== '')
  expect(lines).toHaveLength(1)
  return lines[0]
}

describe('p2pmld client commands', () => {
  it('status prints aligned fields, or JSON, found by --socket or --data-dir', async () => {
    const [human, json] = await Promise.all([
      runCli(['status', '--socket', socketPath]),
      runCli(['status', '--data-dir', dir, '--json'])
    ])
    expect(human.stderr).toBe('')
    expect(human.code).toBe(0)
    const lines = human.stdout.trimEnd().split('\n')
    // keys padded to the longest one ('validation accuracy'), two spaces after it
    const field = (key: string, value: string): string => `${key.padEnd('validation accuracy'.length + 2)}${value}`
    expect(lines[0]).toBe(field('peer', PEER_ID))
    expect(lines).toContain(field('job', '- (idle)'))
    expect(lines).toContain(field('members', '1'))
    expect(lines).toContain(field('loss', '-'))
    expect(lines).toContain(field('validation accuracy', '-'))
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ peerId: PEER_ID, state: 'idle', jobId: null, liveMembers: 1 })
  })

  it('peers prints a table with aligned columns, the daemon found by P2PMLD_DATA_DIR', async () => {
    const run = await runCli(['peers'], { P2PMLD_DATA_DIR: dir })
    expect(run.code).toBe(0)
    const [header, ...rows] = run.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^PEER\s+CONNECTED\s+MEMBER\s+SUSPECTED\s+LAST SEEN\s+ADDRESSES$/)
    expect(rows).toHaveLength(2)
    const column = header.indexOf('CONNECTED')
    expect(rows[0].slice(column, column + 3)).toBe('yes')
    expect(rows[1].slice(column, column + 2)).toBe('no')
    expect(rows[1].slice(header.indexOf('SUSPECTED'), header.indexOf('SUSPECTED') + 3)).toBe('yes')
    expect(rows[1].slice(header.indexOf('LAST SEEN'))).toMatch(/^never\s+-$/)
  })

  it('job submit / pause / resume / stop drive the job, checkpoint and metrics report it', async () => {
    const file = join(dir, 'job.yaml')
    writeFileSync(file, 'id: run-7\nmodel: mlp\nepochs: 2\ntrainSamples: 512\n')
    const submit = await runCli(['job', 'submit', file, '--socket', socketPath])
    expect(submit.stderr).toBe('')
    expect(submit.stdout).toBe('submitted job run-7 (training)\n')
    expect(daemon.submitted.at(-1)).toMatchObject({ id: 'run-7', model: 'mlp', epochs: 2, trainSamples: 512, batchSize: 64 })

    const pause = await runCli(['job', 'pause', '--socket', socketPath, '--json'])
    expect(JSON.parse(pause.stdout)).toEqual({ jobId: 'run-7', state: 'paused' })
    const resume = await runCli(['job', 'resume', '--socket', socketPath, '--job', 'run-7'])
    expect(resume.stdout).toBe('job run-7 resumed (training)\n')

    const [metrics, checkpoint, intoDir] = await Promise.all([
      runCli(['metrics', '--socket', socketPath]),
      runCli(['checkpoint', '--socket', socketPath, '--path', 'ckpt/a.ckpt'], {}, dir),
      // a path ending in '/' is a directory (the daemon wrote a file of its name)
      runCli(['checkpoint', '--socket', socketPath, '--path', 'ckdir/'], {}, dir)
    ])
    expect(intoDir.stdout).toMatch(new RegExp(`^checkpoint of step \\d+ written to ${join(dir, 'ckdir', 'state.p2ckpt')} \\(4\\.0 KiB\\)\\n$`))
    const metricLines = metrics.stdout.split('\n')
    expect(metricLines[0]).toMatch(/^stage\s+count\s+mean ms\s+median ms\s+p95 ms\s+max ms\s+total s\s+CPU %\s+RSS MiB$/)
    expect(metricLines[1]).toMatch(/^compute\s+10\s+50\.00\s+48\.00\s+75\.00\s+91\.00\s+0\.50\s+180\s+210$/)
    // a stage too short for its CPU % to mean anything (0.2 ms a call) shows '-', and a line says why
    expect(metricLines[2]).toMatch(/^aggregate\s+10\s+0\.20\s+0\.20\s+0\.40\s+0\.50\s+0\.00\s+-\s+211$/)
    expect(metricLines[3]).toBe("CPU % -: not measured for stages under 20 ms a call (Linux credits other threads' CPU time in scheduler ticks)")
    expect(metrics.stdout).toContain('\nsent          120.6 KiB; 10 gradients published (one a step, to every member)\n')
    expect(metrics.stdout).toContain('\ncontributors  last 3, mean 2.90, min 2, max 3\n')
    expect(checkpoint.stdout).toMatch(new RegExp(`^checkpoint of step \\d+ written to ${join(dir, 'ckpt/a.ckpt')} \\(4\\.0 KiB\\)\\n$`))

    const wrong = await runCli(['job', 'stop', '--socket', socketPath, '--job', 'other'])
    expect(expectOneLineFailure(wrong)).toBe('p2pmld: job other not found: this daemon\'s job is run-7')
    // under --json the failure is a JSON document on stdout too (a script parsing stdout gets one)
    const wrongJson = await runCli(['job', 'stop', '--socket', socketPath, '--job', 'other', '--json'])
    expect(wrongJson.code).toBe(1)
    expect(wrongJson.stderr).toBe('p2pmld: job other not found: this daemon\'s job is run-7\n')
    expect(JSON.parse(wrongJson.stdout)).toEqual({ error: { message: 'job other not found: this daemon\'s job is run-7' } })
    const stop = await runCli(['job', 'stop', '--socket', socketPath])
    // the state is not repeated after the verb ('stopped (stopped)')
    expect(stop.stdout).toBe('job run-7 stopped\n')

    // the job flags start takes, without a file (it read "unknown option '--model'"), and over a file
    const byFlags = await runCli(['job', 'submit', '--model', 'lenet5', '--epochs', '3', '--min-peers', '3', '--socket', socketPath])
    expect(byFlags.stderr).toBe('')
    expect(byFlags.stdout).toMatch(/^submitted job job-\d+ \(training\)\n$/)
    expect(daemon.submitted.at(-1)).toMatchObject({ model: 'lenet5', epochs: 3, minPeers: 3 })
    await runCli(['job', 'stop', '--socket', socketPath])
    const overFile = await runCli(['job', 'submit', file, '--epochs', '5', '--socket', socketPath])
    expect(overFile.stdout).toBe('submitted job run-7 (training)\n')
    expect(daemon.submitted.at(-1)).toMatchObject({ id: 'run-7', model: 'mlp', epochs: 5, trainSamples: 512 })
    await runCli(['job', 'stop', '--socket', socketPath])

    // a setting known to train badly is said to the submitter (the daemon only logged it)
    const asyncMomentum = await runCli(['job', 'submit', '--model', 'mlp', '--mode', 'async', '--momentum', '0.9', '--min-peers', '3', '--socket', socketPath])
    expect(asyncMomentum.stdout).toMatch(/^submitted job job-\d+ \(training\)\n$/)
    expect(asyncMomentum.stderr).toMatch(/^warning: mode async with optimizer\.momentum 0\.9: momentum on stale gradients oscillates and often diverges; set optimizer\.momentum to 0 and optimizer\.lr to about \S+ \(lr \/ \(1 - momentum\) \/ 2\)\n$/)
    await runCli(['job', 'stop', '--socket', socketPath])
    const asJson = await runCli(['job', 'submit', '--model', 'mlp', '--mode', 'async', '--momentum', '0.9', '--min-peers', '3', '--socket', socketPath, '--json'])
    expect(asJson.stderr).toBe('')
    expect(JSON.parse(asJson.stdout).warnings).toHaveLength(1)
  })

  it('stop --no-wait returns once the daemon was asked', async () => {
    const before = daemon.shutdownCalls
    const run = await runCli(['stop', '--socket', socketPath, '--no-wait'])
    expect(run.stdout).toBe(`daemon at ${socketPath} is stopping\n`)
    expect(daemon.shutdownCalls).toBe(before + 1)
  })

  it('stop returns once the daemon has stopped: its socket closed, then the process its reply named exited', async () => {
    const stoppingSocket = join(dir, 'stopping.sock')
    // stands for the daemon's process: it exits 400 ms after the socket closed, which is 400 ms after the reply
    const process_ = spawn('sleep', ['60'], { stdio: 'ignore' })
    const pid = process_.pid
    if (pid === undefined) throw new Error('sleep did not start')
    const exited = new Promise<void>((resolveExit) => process_.once('exit', () => { resolveExit() }))
    const events: string[] = []
    const memory = createMemoryDaemon()
    const stopping: ControlServer = createControlServer({
      socketPath: stoppingSocket,
      handlers: {
        ...memory,
        shutdown() {
          setTimeout(() => {
            void stopping.stop().then(() => {
              events.push('socket closed')
              setTimeout(() => { events.push('process exits'); process_.kill() }, 400)
            })
          }, 400)
          return { stopping: true as const, pid }
        }
      }
    })
    await stopping.start()
    const run = await runCli(['stop', '--socket', stoppingSocket]).then((r) => { events.push('stop returned'); return r })
    await exited
    expect(run.stderr).toBe('')
    expect(run.stdout).toBe(`daemon at ${stoppingSocket} stopped (process ${pid} exited)\n`)
    expect(events).toEqual(['socket closed', 'process exits', 'stop returned'])
  })

  it('a --socket that is a file or a directory is named as such, not as a daemon to start there', async () => {
    const jobFile = join(dir, 'job-as-socket.yaml')
    writeFileSync(jobFile, 'model: mlp\n')
    const [file, directory] = await Promise.all([runCli(['status', '--socket', jobFile]), runCli(['status', '--socket', dir])])
    expect(expectOneLineFailure(file)).toBe(`p2pmld: ${jobFile} is not a control socket (it is a file): give the daemon's socket with --socket, or its data dir with --data-dir`)
    expect(expectOneLineFailure(directory)).toBe(`p2pmld: ${dir} is not a control socket (it is a directory): give the daemon's socket with --socket, or its data dir with --data-dir`)
  })

  it('stop with no daemon running says there is nothing to stop and succeeds', async () => {
    const nowhere = join(dir, 'not-running')
    const [run, json] = await Promise.all([
      runCli(['stop', '--data-dir', nowhere]),
      runCli(['stop', '--data-dir', nowhere, '--json'])
    ])
    expect(run).toMatchObject({ code: 0, stderr: '', stdout: `no daemon is running at ${join(nowhere, 'p2pmld.sock')}: nothing to stop\n` })
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual({ stopped: true, running: false })
  })

  it('stop fails naming what still runs when the daemon outlasts --timeout', async () => {
    // the memory daemon answers but never closes its socket
    const [run, json] = await Promise.all([
      runCli(['stop', '--socket', socketPath, '--timeout', '600']),
      runCli(['stop', '--socket', socketPath, '--timeout', '600', '--json'])
    ])
    expect(expectOneLineFailure(run)).toBe(`p2pmld: the daemon at ${socketPath} was asked to stop but its control socket still answers after 600 ms (it finishes its step and saves its state first): wait longer with --timeout <ms>`)
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toEqual({ error: { message: expect.stringMatching(/^the daemon at .* was asked to stop but its control socket still answers after 600 ms/) } })
  })

  it('stop whose answer outlasts --timeout says the daemon may still stop', async () => {
    const slowSocket = join(dir, 'slow.sock')
    // a daemon busy past the client's timeout before it answers
    const slow = createControlServer({ socketPath: slowSocket, handlers: { ...createMemoryDaemon(), shutdown: async () => await new Promise((resolveLater) => setTimeout(() => { resolveLater({ stopping: true as const }) }, 3000)) } })
    await slow.start()
    try {
      const run = await runCli(['stop', '--socket', slowSocket, '--timeout', '500'])
      expect(expectOneLineFailure(run)).toBe(`p2pmld: the daemon at ${slowSocket} did not answer shutdown within 500 ms: it may still stop (it finishes its step and saves its state first); see whether it runs with 'p2pmld status', or wait longer with --timeout <ms>`)
    } finally {
      await slow.stop()
    }
  })

  it('fails with one line and exit code 1', async () => {
    const badJob = join(dir, 'bad-job.yaml')
    writeFileSync(badJob, 'model: mlp\noptimizer:\n  type: sgd\n  lr: 0\nepochs: -1\n')
    // a stopped daemon's data dir: its checkpoint is what report and export can do without it
    mkdirSync(join(dir, 'stopped', 'checkpoint'), { recursive: true })
    writeFileSync(join(dir, 'stopped', 'checkpoint', 'state.p2ckpt'), '')
    const [noDaemon, invalid, usage, typo, command, usageJson, noDaemonReport, noDaemonExport, emptyReport, noJob, badFlag] = await Promise.all([
      runCli(['status', '--data-dir', join(dir, 'elsewhere')]),
      runCli(['job', 'submit', badJob, '--socket', socketPath]),
      runCli(['status', '--socket', socketPath, '--bogus']),
      runCli(['status', '--socket', socketPath, '--jsn']),
      runCli(['stauts']),
      runCli(['status', '--socket', socketPath, '--json', '--bogus']),
      runCli(['report', '--data-dir', join(dir, 'stopped')]),
      runCli(['export', '--data-dir', join(dir, 'stopped'), '--out', join(dir, 'm.onnx')]),
      // no checkpoint there: no checkpoint to suggest (it named one that did not exist)
      runCli(['report', '--data-dir', join(dir, 'elsewhere')]),
      runCli(['job', 'submit', '--socket', socketPath]),
      runCli(['job', 'submit', '--model', 'mlp', '--epochs', '0', '--socket', socketPath])
    ])
    // neither a job file nor job flags: what to give (it read "missing required argument 'file'")
    expect(expectOneLineFailure(noJob)).toBe('p2pmld: job submit needs a job: a job file (p2pmld job submit job.yaml) or job flags (p2pmld job submit --model mlp --epochs 3 --min-peers 3), or both')
    expect(expectOneLineFailure(badFlag)).toMatch(/--epochs must be a whole number >= 1, got '0'/)
    expect(expectOneLineFailure(usage)).toBe("error: unknown option '--bogus'")
    // a usage error under --json is a JSON document on stdout too, as a failed command's is
    expect(usageJson.code).toBe(1)
    expect(usageJson.stderr).toBe("error: unknown option '--bogus'\n")
    expect(JSON.parse(usageJson.stdout)).toEqual({ error: { message: "error: unknown option '--bogus'" } })
    // commander's suggestion is on the same line, not cut off
    expect(expectOneLineFailure(typo)).toBe("error: unknown option '--jsn' (Did you mean --json?)")
    expect(expectOneLineFailure(command)).toBe("error: unknown command 'stauts' (Did you mean status?)")
    expect(expectOneLineFailure(noDaemon)).toBe(`p2pmld: no daemon is running at ${join(dir, 'elsewhere', 'p2pmld.sock')}: start one with \`p2pmld start --data-dir ${join(dir, 'elsewhere')}\``)
    // report and export can do without the daemon: they say how
    expect(expectOneLineFailure(noDaemonReport)).toBe(`p2pmld: no daemon is running at ${join(dir, 'stopped', 'p2pmld.sock')}: start one with \`p2pmld start --data-dir ${join(dir, 'stopped')}\`, or build the report of the job in its checkpoint with \`p2pmld report --checkpoint ${join(dir, 'stopped')}\``)
    expect(expectOneLineFailure(noDaemonExport)).toBe(`p2pmld: no daemon is running at ${join(dir, 'stopped', 'p2pmld.sock')}: start one with \`p2pmld start --data-dir ${join(dir, 'stopped')}\`, or export the model of the job in its checkpoint with \`p2pmld export --checkpoint ${join(dir, 'stopped', 'checkpoint')}\``)
    expect(expectOneLineFailure(emptyReport)).toBe(`p2pmld: no daemon is running at ${join(dir, 'elsewhere', 'p2pmld.sock')}: start one with \`p2pmld start --data-dir ${join(dir, 'elsewhere')}\``)
    const invalidLine = expectOneLineFailure(invalid)
    expect(invalidLine).toContain(`p2pmld: invalid job file ${badJob}:`)
    expect(invalidLine).toContain('optimizer.lr:')
    expect(invalidLine).toContain('epochs:')
  })
})
