/**
 * A daemon stopped with SIGTERM mid-training checkpoints; started again on the same data dir
 * the same way (its --config) it resumes from that checkpoint and finishes with the parameters an
 * uninterrupted run of the same job reaches; another job is refused there meanwhile; started
 * again once the job finished (with no job flags) it stays idle.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { CHECKPOINT_FILE, readCheckpoint } from '../../daemon/checkpoint/index.js'
import { CLI_MAIN } from './support/build.js'
import { eventually, parseFinished } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const execFileAsync = promisify(execFile)

const { fleet, clientFor } = useDaemonFleet('restart')

// 3072 samples / 32 = 96 steps per epoch, 2 epochs
const JOB = {
  id: 'restart-job', model: 'mlp', trainSamples: 3072, batchSize: 32, epochs: 2, seed: 5,
  optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 }, minPeers: 1, aggregation: { rule: 'mean', f: 0 }, checkpointEverySteps: 10
}
const TOTAL_STEPS = 192

describe('a daemon restarted on its data dir', () => {
  it('checkpoints on SIGTERM, resumes from the checkpoint and finishes like an uninterrupted run', async () => {
    const dataDir = fleet.dataDir('resumer')
    mkdirSync(dataDir, { recursive: true })
    const jobFile = join(dataDir, '..', 'restart-job.json')
    writeFileSync(jobFile, JSON.stringify(JOB))
    // the same job without interruption, side by side, for the reference digest
    const reference = fleet.start('reference', ['--config', jobFile, '--exit-when-done'])

    const first = fleet.start('first-run', ['--config', jobFile], { dataDir })
    await first.address()
    const client = clientFor(first)
    await eventually(async () => {
      const s = await client.status()
      return s.state === 'training' && s.step >= 35 ? s : undefined
    }, 40_000, 'the job past step 35', 20)
    first.kill('SIGTERM')
    expect(await first.exited, fleet.describe()).toBe(0)
    expect(first.stdout()).not.toMatch(/job finished/)
    expect(first.stderr()).toMatch(/"why":"SIGTERM".*"msg":"stopping"/)

    const checkpointFile = join(dataDir, 'checkpoint', CHECKPOINT_FILE)
    expect(existsSync(checkpointFile)).toBe(true)
    const saved = await readCheckpoint(join(dataDir, 'checkpoint'))
    expect(saved).toBeDefined()
    const reached = saved!.step
    // the checkpoint written at stop holds the step it was at, not only the last periodic one
    expect(reached).toBeGreaterThanOrEqual(35)
    expect(reached).toBeLessThan(TOTAL_STEPS)

    // another job on this data dir would overwrite the unfinished one: refused before its peer
    // starts, the checkpoint as it was (a different job silently trained over it)
    const other = fleet.start('other-job', ['--model', 'lenet5', '--exit-when-done'], { dataDir })
    expect(await other.exited, fleet.describe()).toBe(1)
    expect(other.stderr()).toMatch(new RegExp(`^p2pmld: the data dir \\S+ holds the checkpoint of job restart-job at step ${reached}, unfinished, and this start was given a job whose [^\\n]*model[^\\n]* differ from it, which would overwrite it: start without job flags \\(or with that job's own\\) to resume job restart-job, or run the new job on another --data-dir$`, 'm'))
    expect(other.stdout()).toBe('')
    expect((await readCheckpoint(join(dataDir, 'checkpoint')))?.step).toBe(reached)

    // started again the same way, its --config included: it goes on from the checkpoint (the job
    // file's job started over at step 0 before, throwing the progress away without a word)
    const second = fleet.start('second-run', ['--config', jobFile, '--exit-when-done'], { dataDir })
    await second.waitForStdout(/control socket /)
    const client2 = clientFor(second)
    const resumed = await client2.status()
    expect(resumed.jobId).toBe('restart-job')
    expect(resumed.step).toBeGreaterThanOrEqual(reached)
    const log = await second.waitForLog(/\{[^\n]*"msg":"resumed job from checkpoint"[^\n]*\}/)
    expect(JSON.parse(log)).toMatchObject({ job: 'restart-job', model: 'mlp' })
    expect(second.stdout()).not.toMatch(/hosting job/)
    await second.waitForStdout(new RegExp(`^resumed job restart-job from the checkpoint at step ${reached}`, 'm'))

    expect(await second.exited, fleet.describe()).toBe(0)
    expect(await reference.exited, fleet.describe()).toBe(0)
    const done = parseFinished(second.stdout())
    const expected = parseFinished(reference.stdout())
    expect(done, fleet.describe()).toBeDefined()
    expect(expected, fleet.describe()).toBeDefined()
    expect(done!.step).toBe(TOTAL_STEPS)
    expect(done!.accuracy).toBeGreaterThan(80)
    // nothing lost, nothing repeated: bit-identical to the run that was never stopped
    expect(done!.digest).toBe(expected!.digest)
    for (const d of [first, second, reference]) expect(d.problems(), d.name).toEqual([])
    // the second run trained only the rest: it validated only the epochs it closed itself
    // (epoch-end lines; the console prints progress lines within an epoch too)
    const lines = second.stdout().split('\n').filter((l) => /^epoch \d+\/\d+ done/.test(l))
    expect(lines.length).toBe(reached >= 96 ? 1 : 2)
    console.log(`e2e restart: SIGTERM at step ${reached} of ${TOTAL_STEPS}, resumed at ${resumed.step}, digest ${done!.digest.slice(0, 12)} = reference`)

    // started again once its job (its own, no other member) had finished: idle, the job not
    // replayed (a second 'job finished' line and a second run report, before)
    const reports = (): string[] => readdirSync(join(dataDir, 'reports')).sort()
    const reportsBefore = reports()
    expect(reportsBefore.length).toBeGreaterThan(0)
    const third = fleet.start('third-run', [], { dataDir })
    await third.waitForStdout(new RegExp(`^job restart-job had finished \\(step ${TOTAL_STEPS}, in the checkpoint\\) before this start: idle; p2pmld job submit gives it a new job, p2pmld export --checkpoint \\S+/checkpoint writes the finished model$`, 'm'))
    const idle = await clientFor(third).status()
    expect(idle.state, fleet.describe()).toBe('idle')
    // export and report ask the idle daemon, which has no job: they name the checkpoint that holds it
    for (const [args, hint] of [
      [['export', '--out', join(dataDir, 'model.onnx')], `export the model of the job in its checkpoint with \`p2pmld export --checkpoint ${join(dataDir, 'checkpoint')}\``],
      [['report', '--out', dataDir], `build the report of the job in its checkpoint with \`p2pmld report --checkpoint ${dataDir}\``]
    ] as const) {
      const failed = await execFileAsync(process.execPath, [CLI_MAIN, ...args, '--data-dir', dataDir], { env: { PATH: process.env.PATH ?? '', HOME: dataDir } }).then(() => undefined, (error: { code: number, stderr: string }) => error)
      expect(failed?.code).toBe(1)
      expect(failed?.stderr).toBe(`p2pmld: no job running: submit one with \`p2pmld job submit <file>\`, or ${hint}\n`)
    }
    third.kill('SIGTERM')
    expect(await third.exited, fleet.describe()).toBe(0)
    expect(third.stdout()).not.toMatch(/job finished/)
    expect(reports()).toEqual(reportsBefore)
    expect(third.problems(), third.name).toEqual([])
    // with --exit-when-done it says so and exits at once
    const fourth = fleet.start('fourth-run', ['--exit-when-done'], { dataDir })
    expect(await fourth.exited, fleet.describe()).toBe(0)
    expect(fourth.stdout()).toMatch(new RegExp(`^job restart-job had finished \\(step ${TOTAL_STEPS}, in the checkpoint\\) before this start: nothing to run; exiting \\(--exit-when-done\\)$`, 'm'))
    expect(fourth.stdout()).not.toMatch(/job finished/)
    expect(reports()).toEqual(reportsBefore)
    // and started with its --config again: the finished job is not run again either (it ran a second time)
    const fifth = fleet.start('fifth-run', ['--config', jobFile, '--exit-when-done'], { dataDir })
    expect(await fifth.exited, fleet.describe()).toBe(0)
    expect(fifth.stdout()).toMatch(new RegExp(`^job restart-job had finished \\(step ${TOTAL_STEPS}, in the checkpoint\\) before this start: nothing to run; exiting \\(--exit-when-done\\)$`, 'm'))
    expect(fifth.stdout()).not.toMatch(/hosting job|job finished/)
    expect(fifth.stderr()).toMatch(/"msg":"the job given is the one in the checkpoint, which finished: not run again"/)
    expect(reports()).toEqual(reportsBefore)
  }, 90_000)
})
