/**
 * Issue 14: long-lived daemons that are idle (their job finished) join a job a connected peer
 * runs. Three daemons finish a job; a second job submitted to one of the joiners runs on all three.
 */
import { describe, expect, it } from 'vitest'
import { eventually } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('autojoin')

const SMALL = ['--model', 'mlp', '--train-samples', '1536', '--batch-size', '32', '--epochs', '1', '--lr', '0.05', '--min-peers', '3', '--f', '0']

describe('auto-join', () => {
  it('three daemons finish a job; a second job submitted to one of them runs on all three', async () => {
    const host = fleet.start('host', [...SMALL, '--seed', '1'])
    const bootstrap = await host.address()
    const peers = [host, ...[1, 2].map((i) => fleet.start(`peer${i}`, ['--bootstrap', bootstrap]))]
    await Promise.all(peers.map(async (p) => await p.waitForStdout(/job finished/, 120_000)))
    const clients = peers.map(clientFor)
    const first = await clients[0].status()
    const firstBytes = await Promise.all(clients.map(async (c) => (await c.metrics()).network))

    // the second job goes to a joiner of the first, which hosts it; the other two are idle
    const submitted = await clients[1].submitJob({ id: 'second', model: 'mlp', trainSamples: 1536, batchSize: 32, epochs: 1, minPeers: 3, seed: 2, aggregation: { rule: 'mean', f: 0 } })
    expect(submitted).toEqual({ jobId: 'second', state: 'waiting' })
    // the host's console says it hosts it (it printed nothing until the first epoch ended)
    await peers[1].waitForStdout(/^hosting job second \(job submit\): waiting for 3 peers \(minPeers, this one included\)$/m, 10_000)
    const statuses = await Promise.all(clients.map(async (c, i) => await eventually(async () => {
      const s = await c.status()
      return s.jobId === 'second' && s.state === 'finished' ? s : undefined
    }, 120_000, `${peers[i].name} finished the second job`)))
    const context = fleet.describe()
    // a job's bytes are its own: the second job (as many steps of the same model, hosted by
    // another member, which sends the others their start state) moved about what the first did
    // over the three, not the first's bytes again on top (each daemon's lifetime count)
    const secondBytes = await Promise.all(clients.map(async (c) => (await c.metrics()).network))
    for (const key of ['bytesSent', 'bytesReceived'] as const) {
      const [before, after] = [firstBytes, secondBytes].map((counts) => counts.reduce((sum, c) => sum + c[key], 0))
      expect(after / before, `${key}: first job ${before}, second ${after}`).toBeGreaterThan(0.8)
      expect(after / before, `${key}: first job ${before}, second ${after}`).toBeLessThan(1.25)
    }
    // three members shared the work: 1536 / (3 x 32) = 16 steps
    for (const s of statuses) expect(s.step, context).toBe(16)
    // status fields mean one thing on every member: validation accuracy, test accuracy, stop reason
    for (const s of statuses) {
      expect(s.stopReason).toBe('epochs')
      expect(s.accuracy).toBe(statuses[0].accuracy)
      expect(s.testAccuracy).toBe(statuses[0].testAccuracy)
    }
    const testLine = /job finished \(epochs\) at step 16: test accuracy ([\d.]+) %, validation accuracy ([\d.]+) %/.exec(peers[0].stdout().split('\n').filter((l) => l.startsWith('job finished')).at(-1) ?? '')
    expect(testLine, context).not.toBeNull()
    expect((statuses[0].testAccuracy! * 100).toFixed(2)).toBe(testLine![1])
    expect((statuses[0].accuracy! * 100).toFixed(2)).toBe(testLine![2])
    const digests = peers.map((p) => [...p.stdout().matchAll(/job finished \(\w+\) at step \d+: .* digest (\S+)/g)].map((m) => m[1]))
    for (const d of digests) expect(d, context).toHaveLength(2)
    expect(new Set(digests.map((d) => d[1])).size, context).toBe(1)
    expect(digests[0][1]).not.toBe(digests[0][0])
    expect(first.jobId).not.toBe('second')
    for (const p of [peers[0], peers[2]]) expect(p.logs().some((l) => l.msg === 'joining a job a connected peer runs (auto-join)' && l.job === 'second'), p.name).toBe(true)
    // a job that cannot start leaves the finished one as it was: its status, metrics and report
    // (it left the daemon with no job: export and report said there was none)
    const reportBefore = await clients[1].report()
    await expect(clients[1].submitJob({ model: 'mlp', dataset: 'mnst' })).rejects.toThrow(/unknown dataset 'mnst'/)
    expect(await clients[1].status()).toMatchObject({ jobId: 'second', state: 'finished', step: 16 })
    const { messagesSent, messagesReceived } = secondBytes[1]
    expect((await clients[1].metrics()).network).toMatchObject({ messagesSent, messagesReceived })
    const reportAfter = await clients[1].report()
    expect(reportAfter.job).toMatchObject({ id: 'second', state: 'finished', step: 16 })
    expect(reportAfter.result).toEqual(reportBefore.result)
    expect(reportAfter.epochs).toEqual(reportBefore.epochs)
    for (const p of peers) expect(p.problems(), p.name).toEqual([])
  }, 240_000)
  it('a member of a finished job restarted without --bootstrap does not replay it: it joins the job its members run now', async () => {
    const host = fleet.start('host2', [...SMALL, '--seed', '3'])
    const bootstrap = await host.address()
    const peers = [host, ...[1, 2].map((i) => fleet.start(`joiner${i}`, ['--bootstrap', bootstrap]))]
    await Promise.all(peers.map(async (p) => await p.waitForStdout(/job finished/, 120_000)))
    const stopped = peers[2]
    stopped.kill('SIGTERM')
    expect(await stopped.exited).toBe(0)
    // the next job needs all three members: it runs only if the restarted one takes it up
    const submitted = await clientFor(peers[1]).submitJob({ id: 'after-restart', model: 'mlp', trainSamples: 1536, batchSize: 32, epochs: 1, minPeers: 3, seed: 4, aggregation: { rule: 'mean', f: 0 } })
    expect(submitted.jobId).toBe('after-restart')
    const again = fleet.start('joiner2-again', [], { dataDir: stopped.dataDir })
    await again.waitForStdout(/job finished/, 120_000)
    const context = fleet.describe()
    expect(again.stdout().match(/job finished/g), context).toHaveLength(1)
    expect(again.logs().some((l) => l.msg === 'resumed job from checkpoint'), context).toBe(false)
    expect(again.logs().some((l) => l.msg === 'joining a job a connected peer runs (auto-join)' && l.job === 'after-restart'), context).toBe(true)
    // the two that carried on finished it too (their second 'job finished'), with its digest
    const digestsOf = (p: typeof again): string[] => [...p.stdout().matchAll(/job finished \(\w+\) at step \d+: .* digest (\S+)/g)].map((m) => m[1])
    for (const p of [peers[0], peers[1]]) await eventually(() => digestsOf(p).length === 2 ? true : undefined, 60_000, `${p.name} finished the second job`)
    const finalDigests = [peers[0], peers[1], again].map((p) => digestsOf(p).at(-1))
    expect(new Set(finalDigests).size, fleet.describe()).toBe(1)
  }, 240_000)
})
