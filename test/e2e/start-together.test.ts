/**
 * A host and its joiners started together: the job starts on one membership. With minPeers 2
 * and two joiners, the first joiner was answered with the membership of its admission (itself
 * and the host: minPeers) and started step 0 on it, while the host, at its next look (every
 * 250 ms), started on one holding the second joiner too; the members diverged at step 0 and each
 * side lost two step deadlines (65 s instead of 6, 4 runs in 8 here). The coordinator now answers
 * a joiner admitted before the start once the job starts (admission-reply.ts).
 */
import { describe, expect, it } from 'vitest'
import { parseFinished } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet } = useDaemonFleet('start-together')

describe('a host and two joiners started together, minPeers 2', () => {
  it('start on one membership: no divergence, no step deadline, one digest', async () => {
    const host = fleet.start('together-host', ['--model', 'mlp', '--train-samples', '1536', '--batch-size', '32', '--epochs', '1', '--lr', '0.02', '--min-peers', '2', '--f', '0', '--seed', '41', '--exit-when-done'])
    const bootstrap = await host.address()
    const joiners = [1, 2].map((i) => fleet.start(`together-peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))
    const daemons = [host, ...joiners]
    const codes = await fleet.exits(daemons, 180_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    const trouble = daemons.flatMap((d) => d.logs().filter((l) => /diverged|deadline passed/.test(String(l.msg))).map((l) => `${d.name}: ${String(l.msg)}`))
    expect(trouble, context).toEqual([])
    const finished = daemons.map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    for (const d of daemons) expect(d.problems(), d.name).toEqual([])
  }, 200_000)
})
