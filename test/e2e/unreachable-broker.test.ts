/**
 * A daemon whose RabbitMQ broker cannot be reached stops when told to (a fresh user's daemons
 * never exited: `p2pmld stop` was acted on only after a start-up that retried the broker for
 * ever, and an idle daemon's discovery connection outlived its stop and swallowed Ctrl-C).
 */
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { addressInAdvance, eventually } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('unreachable-broker')
// nothing listens on port 1: every connection attempt is refused
const NO_BROKER = 'amqp://guest:guest@127.0.0.1:1'

describe('a daemon whose broker cannot be reached', () => {
  it('hosting an amqp job: `p2pmld stop` ends it while it retries the broker', async () => {
    const host = fleet.start('amqp-host', ['--model', 'mlp', '--transport', 'amqp', '--amqp-url', NO_BROKER, '--min-peers', '1', '--f', '0', '--aggregation', 'mean'])
    await host.waitForLog(/cannot reach the broker; retrying/, 90_000)
    await eventually(() => existsSync(host.socketPath) ? true : undefined, 30_000, 'the control socket')
    // its console says it is up and what holds the job (it printed nothing until the broker answered)
    await host.waitForStdout(/^control socket \S+$/m, 10_000)
    await host.waitForStdout(/^the job cannot start yet: cannot reach the broker at 127\.0\.0\.1:1 \(\d+ tr(y|ies) failed, the last: [^)]*ECONNREFUSED[^)]*\): retrying; check --amqp-url .*\(p2pmld status says how it stands\)$/m, 10_000)
    expect(host.stdout()).toMatch(/^p2pmld daemon \S+\nlistening on /)
    // with the job it hosts (it named no job until the broker answered)
    expect(host.stdout()).toMatch(/^hosting job job-[0-9a-f]+: minPeers 1: this peer alone\nthe job cannot start yet: /m)
    // status says what the job waits on (it said 'waiting' with no reason)
    const status = await clientFor(host).status()
    expect(status.state).toBe('waiting')
    expect(status.waiting).toMatch(/^cannot reach the broker at 127\.0\.0\.1:1 \(\d+ tr(y|ies) failed, the last: [^)]*ECONNREFUSED[^)]*\): retrying; check --amqp-url \(host, port, user and password\) and that the broker runs$/)
    expect(await clientFor(host).shutdown()).toEqual({ stopping: true, pid: host.child.pid })
    const asked = Date.now()
    expect(await fleet.exits([host], 15_000), fleet.describe()).toEqual([0])
    expect(Date.now() - asked).toBeLessThan(5_000)
  }, 120_000)

  it('idle, looking for a job on the broker: SIGINT ends it', async () => {
    const idle = fleet.start('amqp-idle', ['--amqp-url', NO_BROKER])
    await idle.waitForStdout(/control socket /, 90_000)
    await idle.waitForLog(/cannot reach the broker; retrying/, 30_000)
    idle.kill('SIGINT')
    const asked = Date.now()
    expect(await fleet.exits([idle], 15_000), fleet.describe()).toEqual([0])
    expect(Date.now() - asked).toBeLessThan(5_000)
  }, 120_000)
  it('joining through a bootstrap peer not up yet: the broker is asked for a bounded time, the bootstrap peer again', async () => {
    // the joiner's tries ask the bootstrap peers, then the broker: unbounded, the first try that
    // reached the broker's retries never ended, and the host started later was never asked again
    const { listen, address, dataDir } = await addressInAdvance(fleet, 'late-host')
    const joiner = fleet.start('joiner', ['--bootstrap', address, '--amqp-url', NO_BROKER, '--exit-when-done'])
    await joiner.waitForLog(/cannot reach the broker; retrying/, 60_000)
    // the same identity and port, now hosting a job
    const host = fleet.start('late-host-job', ['--model', 'mlp', '--train-samples', '1024', '--epochs', '1', '--min-peers', '2', '--f', '0', '--aggregation', 'mean', '--exit-when-done', ...listen], { dataDir })
    expect(await fleet.exits([host, joiner], 90_000), fleet.describe()).toEqual([0, 0])
    expect(joiner.logs().some((l) => l.msg === 'joined job'), fleet.describe()).toBe(true)
  }, 120_000)
})
