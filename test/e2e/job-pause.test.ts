/**
 * Issue 14: `job pause` / `job resume` are job-wide. A member that is not the coordinator asks;
 * the coordinator decides the step; all three daemons pause before that very step (status says
 * paused on each) and stay there; another member resumes; the job finishes with one digest and
 * nobody was evicted. A member stopped (`job stop`) while paused leaves at the paused step: the
 * others resume without it instead of waiting on it until they evict it. A peer that joins a paused
 * job is admitted at the paused step (the state every member holds) and waits paused with them.
 */
import { describe, expect, it } from 'vitest'
import { addressInAdvance, eventually, parseFinished, sleep } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('pause')

/**
 * A host and two members (one epoch of mlp, f = 0) training past step 4, then paused by the host:
 * the daemons, their clients, the paused step and the host's address. `extra`: flags for all three
 */
async function pausedTrio (prefix: string, extra: readonly string[]) {
  const host = fleet.start(`${prefix}-host`, [
    '--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '1',
    '--lr', '0.02', '--momentum', '0.9', '--min-peers', '3', '--f', '0', ...extra
  ])
  const bootstrap = await host.address()
  const members = [host, ...[1, 2].map((i) => fleet.start(`${prefix}-peer${i}`, ['--bootstrap', bootstrap, ...extra]))]
  const clients = members.map(clientFor)
  await eventually(async () => {
    const s = await clients[0].status()
    return s.state === 'training' && s.step >= 4 ? s : undefined
  }, 90_000, 'three members training past step 4')
  const at = (await clients[0].pauseJob({})).effectiveStep!
  await Promise.all(clients.map(async (c, i) => await eventually(async () => {
    const s = await c.status()
    return s.state === 'paused' ? s : undefined
  }, 30_000, `${members[i].name} paused`)))
  return { members, clients, at, bootstrap }
}

describe('job-wide pause and resume', () => {
  it('any member pauses every member at the coordinator\'s step; any member resumes them', async () => {
    const host = fleet.start('host', [
      '--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '2',
      '--lr', '0.02', '--momentum', '0.9', '--min-peers', '3', '--seed', '12', '--f', '0', '--exit-when-done'
    ])
    const bootstrap = await host.address()
    const peers = [host, ...[1, 2].map((i) => fleet.start(`peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))]
    const clients = peers.map(clientFor)
    const training = await eventually(async () => {
      const s = await clients[0].status()
      return s.state === 'training' && s.step >= 8 ? s : undefined
    }, 90_000, 'three members training past step 8')
    // its progress: 3072 samples in steps of 3 x 32, the pace of all three members' samples
    expect(training).toMatchObject({ epochs: 2, stepsInEpoch: 32, earlyStopping: true })
    expect(training.stepInEpoch).toBeGreaterThanOrEqual(1)
    expect(training.stepInEpoch).toBeLessThanOrEqual(32)
    expect(training.samplesPerSecond, fleet.describe()).toBeGreaterThan(0)
    expect(training.etaMs, fleet.describe()).toBeGreaterThan(0)

    // a joiner (not the coordinator) asks
    const paused = await clients[2].pauseJob({})
    expect(paused.state).toBe('paused')
    const at = paused.effectiveStep!
    expect(at).toBeGreaterThan(8)
    const statuses = await Promise.all(clients.map(async (c, i) => await eventually(async () => {
      const s = await c.status()
      return s.state === 'paused' ? s : undefined
    }, 30_000, `${peers[i].name} paused`)))
    for (const s of statuses) expect(s.step, fleet.describe()).toBe(at)
    // status says why it does not train, and how to go on; no pace while paused
    for (const s of statuses) {
      expect(s).toMatchObject({ waiting: `paused job-wide before step ${at}: p2pmld job resume (on any member) goes on`, samplesPerSecond: null, etaMs: null })
    }
    // a second pause is refused, naming the state
    await expect(clients[1].pauseJob({})).rejects.toThrow(/it is paused/)
    // they stay there
    await sleep(3000)
    for (const c of clients) expect(await c.status()).toMatchObject({ state: 'paused', step: at })

    const resumed = await clients[1].resumeJob({})
    expect(resumed.state).toBe('training')
    await Promise.all(clients.map(async (c, i) => await eventually(async () => {
      const s = await c.status()
      return s.step > at || s.state === 'finished' ? s : undefined
    }, 30_000, `${peers[i].name} past step ${at}`)))

    const codes = await Promise.all(peers.map(async (p) => await p.exited))
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    const finished = peers.map((p) => parseFinished(p.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    for (const f of finished) expect(f!.step).toBe(64)
    for (const p of peers) {
      expect(p.logs().filter((l) => l.msg === 'evicting a member that missed too many steps'), p.name).toEqual([])
      expect(p.logs().some((l) => l.msg === 'job pauses before step' && l.effectiveStep === at), p.name).toBe(true)
      expect(p.problems(), p.name).toEqual([])
    }
  }, 240_000)
  it('`job stop` on a paused member: it leaves at the paused step and the others resume without it', async () => {
    // f = 0: two members are enough to go on
    const { members: peers, clients, at } = await pausedTrio('stop', [])

    expect(await clients[2].stopJob()).toMatchObject({ state: 'stopped' })
    const leftAt = /^left the job at step (\d+): 2 other members carry it on$/m.exec(peers[2].stdout())
    expect(leftAt?.[1], fleet.describe()).toBe(String(at))
    // the member that left cannot resume the job: it is stopped (it answered 'resumed ... (training)')
    await expect(clients[2].resumeJob({})).rejects.toThrow(/^cannot resume job \S+: it is stopped/)
    await clients[0].resumeJob({})
    await Promise.all(peers.slice(0, 2).map(async (d) => await d.waitForStdout(/job finished/, 60_000)))
    const context = fleet.describe()
    for (const d of peers.slice(0, 2)) {
      expect(d.stdout(), `${d.name}\n${context}`).toMatch(new RegExp(`^peer \\S+ left at step ${at}: 2 members$`, 'm'))
      expect(d.stdout(), context).not.toMatch(/was evicted/)
      expect(d.logs().filter((l) => /step deadline passed/.test(String(l.msg))), `${d.name}\n${context}`).toEqual([])
    }
    expect(new Set(peers.slice(0, 2).map((d) => parseFinished(d.stdout())?.digest)).size, context).toBe(1)
    for (const d of peers) expect(d.problems(), d.name).toEqual([])
  }, 180_000)

  it('a job paused, then stopped on every daemon, is still paused when they start again; a resume goes on', async () => {
    // the host restarts where it listened, so the member's record of it still dials it
    const { listen, dataDir } = await addressInAdvance(fleet, 'restart-host')
    const job = ['--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '1', '--lr', '0.02', '--momentum', '0.9', '--min-peers', '2', '--f', '0']
    const host = fleet.start('restart-host', [...listen, ...job], { dataDir })
    const member = fleet.start('restart-member', ['--bootstrap', await host.address()])
    await eventually(async () => {
      const s = await clientFor(host).status()
      return s.state === 'training' && s.step >= 4 ? s : undefined
    }, 90_000, 'two members training past step 4')
    const at = (await clientFor(member).pauseJob({})).effectiveStep!
    for (const d of [host, member]) {
      await eventually(async () => {
        const s = await clientFor(d).status()
        return s.state === 'paused' ? s : undefined
      }, 30_000, `${d.name} paused`)
    }
    host.kill('SIGTERM')
    member.kill('SIGTERM')
    expect(await fleet.exits([host, member], 30_000)).toEqual([0, 0])

    // before: both came back training, the pause gone with the processes
    const host2 = fleet.start('restart-host', [...listen, ...job], { dataDir })
    const member2 = fleet.start('restart-member', [], { dataDir: member.dataDir })
    const again = [host2, member2]
    for (const d of again) {
      await eventually(async () => {
        const s = await clientFor(d).status()
        return s.state === 'paused' && s.liveMembers === 2 ? s : undefined
      }, 60_000, `${d.name} back, paused with both members`)
    }
    await sleep(1500)
    for (const d of again) expect(await clientFor(d).status(), fleet.describe()).toMatchObject({ state: 'paused', step: at })
    expect(host2.stdout()).toMatch(new RegExp(`^job paused before step ${at}; p2pmld job resume goes on$`, 'm'))

    await clientFor(host2).resumeJob({})
    await Promise.all(again.map(async (d) => await d.waitForStdout(/^job finished /m, 60_000)))
    const context = fleet.describe()
    expect(new Set(again.map((d) => parseFinished(d.stdout())?.digest)).size, context).toBe(1)
    for (const d of again) expect(d.problems(), `${d.name}\n${context}`).toEqual([])
    host2.kill('SIGTERM')
    member2.kill('SIGTERM')
    expect(await fleet.exits(again, 30_000)).toEqual([0, 0])
  }, 240_000)

  it('a peer joining a paused job is admitted at the paused step, waits paused with the members, and all four finish identical', async () => {
    const { members, clients, at, bootstrap } = await pausedTrio('join', ['--exit-when-done'])

    // before: admitted two steps on, it waited for a state the members reach only after a resume
    const joiner = fleet.start('join-late', ['--bootstrap', bootstrap, '--exit-when-done'])
    const joined = await joiner.waitForStdout(/^joined job \S+ at step (\d+) /m, 30_000)
    expect(Number(joined[1]), fleet.describe()).toBe(at)
    const all = [...members, joiner]
    const allClients = [...clients, clientFor(joiner)]
    await Promise.all(allClients.map(async (c, i) => await eventually(async () => {
      const s = await c.status()
      return s.state === 'paused' && s.liveMembers === 4 ? s : undefined
    }, 30_000, `${all[i].name} paused with four members`)))
    // they stay there
    await sleep(2000)
    // the joiner too, paused before the step (the coordinator's decision came with its admission):
    // it ran the step and waited in it, 'paused' yet waiting on the members' gradients
    // (its reason the pause, not the gradients it waits on)
    for (const c of allClients) expect(await c.status()).toMatchObject({ state: 'paused', step: at, liveMembers: 4, waiting: `paused job-wide before step ${at}: p2pmld job resume (on any member) goes on` })
    expect(joiner.logs().filter((l) => /short of the gradients/.test(String(l.msg))), fleet.describe()).toEqual([])

    await clients[1].resumeJob({})
    const codes = await Promise.all(all.map(async (p) => await p.exited))
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0, 0])
    const finished = all.map((p) => parseFinished(p.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    expect(new Set(finished.map((f) => f!.step)).size, context).toBe(1)
    for (const p of all) {
      expect(p.logs().filter((l) => l.msg === 'evicting a member that missed too many steps'), p.name).toEqual([])
      expect(p.problems(), p.name).toEqual([])
    }
  }, 180_000)
})
