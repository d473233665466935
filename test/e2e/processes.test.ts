/** Three `p2pmld start` processes, one hosting a job and two joining through it, train it to the end. */
import { describe, expect, it } from 'vitest'
import { eventually, parseFinished } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('procs')

describe('daemons as separate processes', () => {
  it('three peers train a job to completion, exit 0 and agree on the parameters', async () => {
    const started = Date.now()
    const host = fleet.start('host', [
      '--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '2',
      '--lr', '0.02', '--momentum', '0.9', '--min-peers', '3', '--seed', '7', '--exit-when-done'
    ])
    const bootstrap = await host.address()
    await host.waitForStdout(/hosting job job-[0-9a-f]+: waiting for 3 peers \(minPeers, this one included\)/)
    // one joiner, then the other: the first gets in while the host still waits for a third
    // member, the second's admission is the one that starts the job
    const first = fleet.start('peer1', ['--bootstrap', bootstrap, '--exit-when-done'])
    await first.waitForStdout(/^joined job /m)
    const joiners = [first, fleet.start('peer2', ['--bootstrap', bootstrap, '--exit-when-done'])]
    const all = [host, ...joiners]

    const codes = await Promise.all(all.map((d) => d.exited))
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    const finished = all.map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    // 3072 samples / (3 peers x 32) = 32 steps per epoch, 2 epochs
    for (const f of finished) expect(f!.step).toBe(64)
    expect(new Set(finished.map((f) => f!.digest)).size).toBe(1)
    for (const f of finished) expect(f!.accuracy).toBeGreaterThan(80)
    // every peer printed both epochs, with the same validation figures
    // (the epoch-end lines: 'epoch 1/2 done in 4s: train loss ..., val loss X, val acc Y %, lr Z';
    // the training loss is each peer's own shard's, the validation figures are the job's)
    const epochLines = all.map((d) => d.stdout().split('\n').filter((l) => /^epoch \d+\/\d+ done/.test(l)).map((l) => /^(epoch \d+\/\d+) .*(val loss [\d.]+, val acc [\d.]+ %)/.exec(l)?.slice(1).join(' ')))
    expect(epochLines[0]).toHaveLength(2)
    expect(epochLines[1]).toEqual(epochLines[0])
    expect(epochLines[2]).toEqual(epochLines[0])
    // the joiners really joined over the network (state fetched from the host)
    for (const j of joiners) expect(j.stderr()).toContain('joined job')
    // and said so on stdout, once, not only in the JSON log (the host says it hosts the job)
    const hostId = bootstrap.split('/p2p/')[1]
    for (const j of joiners) expect(j.stdout().split('\n').filter((l) => l.startsWith('joining job')), j.name).toEqual([expect.stringMatching(new RegExp(`^joining job job-[0-9a-f]+: asked its coordinator ${hostId} for admission`))])
    // and where it got in: the first while the job still waited for its start (not 'at step 0',
    // which read as training), the second at the start, which it completed
    expect(first.stdout()).toMatch(/^joined job job-[0-9a-f]+: it waits for its host to start it, at 3 members \(minPeers\); 2 have joined, this one included$/m)
    expect(joiners[1]!.stdout()).toMatch(/^joined job job-[0-9a-f]+ at step 0 \(epoch 1\)$/m)
    for (const j of joiners) expect(j.stdout(), j.name).toMatch(/^training at step 0 with 3 members: this peer, /m)
    for (const d of all) expect(d.problems(), d.name).toEqual([])
    console.log(`e2e processes: 3 daemons, 64 steps, ${Date.now() - started} ms, accuracy ${finished[0]!.accuracy} %`)
  }, 90_000)

  it('a peer stopped with SIGTERM mid-training leaves cleanly: the other two finish without evicting it', async () => {
    const host = fleet.start('leave-host', [
      '--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '2',
      '--lr', '0.02', '--momentum', '0.9', '--min-peers', '3', '--seed', '8', '--f', '0', '--deadline-ms', '20000', '--exit-when-done'
    ])
    const bootstrap = await host.address()
    const [stays, leaves] = [1, 2].map((i) => fleet.start(`leave-peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))
    const client = clientFor(host)
    try {
      await eventually(async () => {
        const s = await client.status()
        return s.state === 'training' && s.step >= 10 ? s : undefined
      }, 60_000, 'three members training past step 10')
      const stoppedAt = Date.now()
      leaves.kill('SIGTERM')
      expect(await leaves.exited).toBe(0)
      const codes = await Promise.all([host.exited, stays.exited])
      const afterLeaveMs = Date.now() - stoppedAt
      const context = fleet.describe()
      expect(codes, context).toEqual([0, 0])
      const finished = [host, stays].map((d) => parseFinished(d.stdout()))
      for (const f of finished) expect(f, context).toBeDefined()
      expect(finished[0]!.digest, context).toBe(finished[1]!.digest)
      expect(finished[0]!.accuracy).toBeGreaterThan(80)
      // the leave announcement did it: no missed-step eviction, and no 20 s deadline was waited out
      expect(host.logs().some((l) => l.msg === 'a member is leaving'), context).toBe(true)
      expect(host.logs().filter((l) => l.msg === 'evicting a member that missed too many steps')).toEqual([])
      expect(afterLeaveMs).toBeLessThan(20_000)
      // and the stopped peer's console says so (it printed only a run report before)
      expect(leaves.stdout()).toMatch(/^left the job at step \d+: 2 other members carry it on$/m)
      // at the step the leaver names, on the members that stay too (they said one step later)
      const leftAt = /^left the job at step (\d+)/m.exec(leaves.stdout())![1]
      const leaverId = (await leaves.address()).split('/p2p/')[1]
      for (const d of [host, stays]) expect(d.stdout(), d.name).toMatch(new RegExp(`^peer ${leaverId} left at step ${leftAt}: 2 members$`, 'm'))
      for (const d of [host, stays, leaves]) expect(d.problems(), d.name).toEqual([])
    } finally {
      await client.close()
    }
  }, 90_000)

  it('a joiner stopped with SIGINT while the host waits for minPeers leaves: the job starts with the next joiners, no deadline waited out', async () => {
    const host = fleet.start('early-host', [
      '--model', 'mlp', '--train-samples', '1536', '--batch-size', '32', '--epochs', '1',
      '--lr', '0.02', '--min-peers', '3', '--seed', '12', '--f', '0', '--exit-when-done'
    ])
    const bootstrap = await host.address()
    const early = fleet.start('early-joiner', ['--bootstrap', bootstrap])
    await early.waitForLog(/"msg":"joined job"/, 60_000)
    early.kill('SIGINT')
    expect(await early.exited).toBe(0)
    // it told the host (it stayed a member: the job started with it and waited on it for a
    // deadline and three misses, ~90 s, before evicting it)
    expect(early.stdout()).toMatch(/^left the job before its start: its host waits for 3 members \(minPeers\) without this one$/m)
    const client = clientFor(host)
    try {
      await eventually(async () => {
        const s = await client.status()
        return s.waiting === 'waiting for members: 1 of the 3 members it needs (minPeers, the host included) have joined' ? s : undefined
      }, 15_000, 'the host counting itself alone again')
    } finally {
      await client.close()
    }
    const joiners = [1, 2].map((i) => fleet.start(`early-peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))
    const codes = await fleet.exits([host, ...joiners], 120_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    const finished = [host, ...joiners].map((d) => parseFinished(d.stdout()))
    expect(new Set(finished.map((f) => f?.digest)).size, context).toBe(1)
    expect(host.logs().filter((l) => /evicting a member|deadline passed/.test(String(l.msg))), context).toEqual([])
    for (const d of [host, ...joiners, early]) expect(d.problems(), d.name).toEqual([])
  }, 200_000)

  it('the host stopped with SIGTERM mid-training leaves cleanly: the two joiners finish the job without it', async () => {
    const host = fleet.start('gone-host', [
      '--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '2',
      '--lr', '0.02', '--momentum', '0.9', '--min-peers', '3', '--seed', '9', '--f', '0', '--deadline-ms', '20000', '--exit-when-done'
    ])
    const bootstrap = await host.address()
    const joiners = [1, 2].map((i) => fleet.start(`gone-peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))
    const client = clientFor(host)
    try {
      await eventually(async () => {
        const s = await client.status()
        return s.state === 'training' && s.step >= 10 ? s : undefined
      }, 60_000, 'three members training past step 10')
      await client.close()
      const stoppedAt = Date.now()
      host.kill('SIGTERM')
      expect(await host.exited).toBe(0)
      const codes = await Promise.all(joiners.map((d) => d.exited))
      const afterLeaveMs = Date.now() - stoppedAt
      const context = fleet.describe()
      expect(codes, context).toEqual([0, 0])
      const finished = joiners.map((d) => parseFinished(d.stdout()))
      for (const f of finished) expect(f, context).toBeDefined()
      expect(finished[0]!.digest, context).toBe(finished[1]!.digest)
      expect(finished[0]!.accuracy).toBeGreaterThan(80)
      expect(afterLeaveMs).toBeLessThan(20_000)
      for (const d of [host, ...joiners]) expect(d.problems(), d.name).toEqual([])
    } finally {
      await client.close()
    }
  }, 90_000)
})
