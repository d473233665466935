/**
 * The host of a job killed and restarted plain, then the member coordinating in its place killed
 * and restarted with --bootstrap <host> (a systemd unit with Restart=on-failure and
 * P2PMLD_BOOTSTRAP in its environment, the README's EC2 recipe): the job goes on with all three.
 * It waited for good, all three members 'waiting' with two live members each, in 2 runs of 3:
 * - the restarted host told only the member it asked that its previous process left; the third
 *   member, still counting that process (alive again under its peer id, so never suspected) as
 *   its coordinator, refused every membership the new coordinator announced. It now asks the
 *   peer it counts as coordinator for the membership that one holds (membership-pull.ts);
 * - the restarted coordinator told the host it asked that its previous process left, and the
 *   host dropped it at a step the third member had completed with that process's gradient; the
 *   coordinator then admitted the new process without a new version (in its view it had never
 *   left), so the host's view stayed short of a member, below the aggregation floor. Such an
 *   admission is now announced as a new version (job-membership.ts).
 */
import { describe, expect, it } from 'vitest'
import { eventually, freePort, parseFinished, sleep, type DaemonProcess } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('coordinator-restart')

async function trainingPast(daemon: DaemonProcess, step: number): Promise<number> {
  const client = clientFor(daemon)
  const s = await eventually(async () => {
    const status = await client.status()
    return status.state === 'training' && status.step >= step ? status : undefined
  }, 120_000, `${daemon.name} training past step ${step}`)
  return s.step
}

const peerIdOf = (address: string): string => address.split('/p2p/')[1]

describe('a coordinator killed and restarted with --bootstrap', () => {
  it('re-joins the job the others carry on, and all three finish it with one digest', async () => {
    const ports = await Promise.all([0, 1, 2].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    // f = 1 with three members: two live members are below trimmed mean's floor (3 gradients),
    // so the job can only go on once the restarted daemon is back in it
    const job = ['--model', 'lenet5', '--train-samples', '3072', '--batch-size', '32', '--epochs', '25', '--min-peers', '3', '--aggregation', 'trimmed-mean', '--f', '1', '--deadline-ms', '3000', '--seed', '41', '--compute-threads', '1']
    const p0 = fleet.start('p0', [...job, '--exit-when-done', ...listen(0)])
    const p0Address = await p0.address()
    const p1 = fleet.start('p1', ['--bootstrap', p0Address, '--exit-when-done', '--compute-threads', '1', ...listen(1)])
    await p1.address()
    await sleep(500)
    const p2 = fleet.start('p2', ['--bootstrap', p0Address, '--exit-when-done', '--compute-threads', '1', ...listen(2)])
    await trainingPast(p0, 20)
    // the host killed and restarted plain: p1, next in seniority, coordinates the job now
    p0.kill('SIGKILL')
    expect(await p0.exited).toBe(-1)
    const p0Again = fleet.start('p0-again', ['--exit-when-done', '--compute-threads', '1', ...listen(0)], { dataDir: p0.dataDir })
    const at = await trainingPast(p1, 46)
    await eventually(async () => {
      const s = await clientFor(p0Again).status()
      return s.state === 'training' && s.step >= at ? s : undefined
    }, 120_000, 'p0 back in the job')
    // the coordinator killed and restarted with --bootstrap p0
    p1.kill('SIGKILL')
    expect(await p1.exited).toBe(-1)
    await sleep(1500)
    const p1Again = fleet.start('p1-again', ['--bootstrap', p0Address, '--exit-when-done', '--compute-threads', '1', ...listen(1)], { dataDir: p1.dataDir })
    const codes = await fleet.exits([p0Again, p1Again, p2], 180_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    const finished = [p0Again, p1Again, p2].map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    for (const d of [p0Again, p1Again, p2]) expect(d.problems(), `${d.name}\n${context}`).toEqual([])
    // a member told to send the join to the restarted daemon itself (it counts its previous
    // process as coordinator) is the normal course of such a restart: not a warning
    const p1Id = peerIdOf(await p1Again.address())
    for (const d of [p0Again, p2]) {
      expect(d.logs().filter((l) => Number(l.level) >= 40 && String(l.msg).includes(`send the join request to ${p1Id}`)), d.name).toEqual([])
    }
  }, 360_000)
})
