/**
 * --announce between real hosts: host A sits behind a port mapping (its public side
 * 10.77.0.101:5001 forwards to its listen address 10.77.0.1:4001, as a NAT gateway or EC2's public
 * IP does) and announces the public side. The bootstrap address it prints is the announced one;
 * host B, given only that, joins the job, and every byte between them crosses the mapping.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createControlClient } from '../../daemon/control/client.js'
import { ensureBuilt, snapshotDist } from '../e2e/support/build.js'
import { parseFinished } from '../e2e/support/daemon-process.js'
import { createNetnsFleet, type NetnsFleet } from './support/netns-daemon.js'
import { canUseNetns, createNetnsTopology, sweepStale, type NetnsTopology } from './support/netns-topology.js'
import { startPortForward, type PortForward } from './support/port-forward.js'

const netnsAllowed = canUseNetns()
if (!netnsAllowed) console.warn('test/netns/announce skipped: this process may not create network namespaces (run as root or with CAP_NET_ADMIN + CAP_SYS_ADMIN)')

const PUBLIC = '10.77.0.101'

describe.runIf(netnsAllowed)('a host behind a port mapping announces its public address', () => {
  let topology: NetnsTopology | undefined
  let fleet: NetnsFleet | undefined
  let forward: PortForward | undefined

  beforeAll(async () => {
    sweepStale()
    await ensureBuilt()
    topology = await createNetnsTopology({ hosts: 2 })
    fleet = createNetnsFleet(topology, snapshotDist)
  }, 120_000)

  afterAll(async () => {
    await forward?.stop().catch(() => undefined)
    await fleet?.cleanup()
    await topology?.destroy()
  }, 30_000)

  it('prints the announced address as the bootstrap address, and the other host joins through it', async () => {
    const [a, b] = topology!.hosts
    await topology!.addAddress(a, PUBLIC)
    forward = startPortForward(topology!, a, { host: PUBLIC, port: 5001 }, { host: a.address, port: 4001 })
    await forward.ready

    const host = fleet!.start('a', a, [
      '--announce', `/ip4/${PUBLIC}/tcp/5001`,
      '--model', 'mlp', '--train-samples', '1024', '--batch-size', '32', '--epochs', '1', '--seed', '3',
      '--min-peers', '2', '--aggregation', 'mean', '--f', '0', '--deadline-ms', '3000'
    ])
    const bootstrap = (await host.waitForStdout(/^bootstrap address (\S+) \(announced\)$/m, 30_000))[1]
    const id = (await host.waitForStdout(/p2pmld daemon (\S+)/, 5_000))[1]
    expect(bootstrap).toBe(`/ip4/${PUBLIC}/tcp/5001/p2p/${id}`)
    // it listens where it was told; that address is not what it hands out
    expect(host.stdout()).toContain(`listening on /ip4/${a.address}/tcp/4001\n`)
    expect(host.stdout()).not.toMatch(/^bootstrap address \/ip4\/10\.77\.0\.1\//m)
    const client = createControlClient(host.socketPath, { timeoutMs: 5_000 })
    try {
      expect((await client.status()).addresses).toEqual([bootstrap])
    } finally {
      await client.close()
    }

    const joiner = fleet!.start('b', b, ['--bootstrap', bootstrap])
    const [hostCode, joinerCode] = await Promise.all([host.exited, joiner.exited])
    const context = fleet!.describe()
    expect(hostCode, context).toBe(0)
    expect(joinerCode, context).toBe(0)
    const finishedA = parseFinished(host.stdout())
    const finishedB = parseFinished(joiner.stdout())
    expect(finishedA?.step, context).toBe(16)
    expect(finishedB?.digest, context).toBe(finishedA?.digest)

    // every gradient went through the mapping: 16 steps of 101,770 8-bit values each way at least
    const relayed = await forward.stop()
    forward = undefined
    expect(relayed.connections).toBeGreaterThanOrEqual(1)
    expect(relayed.bytesIn).toBeGreaterThan(16 * 101_770 * 0.25)
    expect(relayed.bytesOut).toBeGreaterThan(16 * 101_770 * 0.25)
  }, 180_000)
})
