/**
 * Issue 4: a peer that starts while a job is training joins it: admitted by the coordinator,
 * fetches the state, trains in step with the others and contributes gradients to the end.
 */
import { describe, expect, it } from 'vitest'
import { eventually, parseFinished, sleep, type DaemonProcess } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('join')

describe('a daemon started mid-training', () => {
  it('joins the running job, keeps step with the others (the job paused while it starts), contributes its gradients and ends with the same parameters', async () => {
    const started = Date.now()
    const first = fleet.start('first', [])
    const bootstrap = await first.address()
    const others = [2, 3].map((i) => fleet.start(`peer${i}`, ['--bootstrap', bootstrap]))
    await Promise.all(others.map((d) => d.address()))
    const firstClient = clientFor(first)
    expect((await firstClient.status()).state).toBe('idle')

    const submitted = await firstClient.submitJob({
      id: 'join-mid', model: 'mlp', trainSamples: 4096, batchSize: 32, epochs: 4, seed: 11,
      optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 }, minPeers: 3, checkpointEverySteps: 0
    })
    expect(submitted.jobId).toBe('join-mid')

    // a few steps into training with three members
    await eventually(async () => {
      const s = await firstClient.status()
      return s.state === 'training' && s.step >= 5 && s.liveMembers === 3 ? s : undefined
    }, 45_000, 'three members training past step 5')
    // The job is paused while the late daemon starts: a node process starts in 1-3 s on a busy
    // 2-core machine, and this job's 168 steps can run in less, so without the pause the daemon
    // arrived as the job ended (that case is test/p2p/late-arrival.test.ts). Its join request
    // reaches the paused job and is admitted at a step after the pause; the resume lets it in.
    const paused = await firstClient.pauseJob({})
    const stepAtLaunch = paused.effectiveStep!
    const launchedAt = Date.now()
    const late = fleet.start('late', ['--bootstrap', bootstrap])
    await late.address()
    const lateClient = clientFor(late)
    await late.waitForLog(/"msg":"admitted to job: fetching its state"/, 60_000)
    expect((await firstClient.status()).state).toBe('paused')
    await firstClient.resumeJob({})
    await late.waitForLog(/"msg":"joined job"/, 60_000)
    const joinedAfterMs = Date.now() - launchedAt
    // it and the others name one step for its join: the first it contributes to (it printed the
    // step of the state it took, a step before, where the others printed its admission's)
    const lateId = (await late.address()).split('/p2p/')[1]
    const joinedAt = Number((await late.waitForStdout(/^joined job join-mid at step (\d+) \(epoch \d+\)$/m, 30_000))[1])
    const seen = await first.waitForStdout(new RegExp(`^peer ${lateId} joined at step (\\d+): 4 members$`, 'm'), 30_000)
    expect(joinedAt, late.stdout()).toBe(Number(seen[1]))

    // once joined, its step is the others' step (within the few steps a status round trip and
    // the membership margin allow), and it counts four members
    const [lateStatus, firstStatus] = await eventually(async () => {
      const pair = await Promise.all([lateClient.status(), firstClient.status()])
      return pair[0].liveMembers === 4 && pair[0].state === 'training' ? pair : undefined
    }, 20_000, 'the late peer training as one of four members')
    expect(lateStatus.jobId).toBe('join-mid')
    expect(lateStatus.step).toBeGreaterThan(stepAtLaunch)
    expect(Math.abs(lateStatus.step - firstStatus.step)).toBeLessThanOrEqual(3)

    const all = [first, ...others, late]
    const finished = await Promise.all(all.map(async (d) => parseFinished((await d.waitForStdout(/job finished .*\n/, 90_000)).input!)))
    const context = fleet.describe()
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    expect(new Set(finished.map((f) => f!.step)).size).toBe(1)
    for (const f of finished) expect(f!.accuracy).toBeGreaterThan(80)

    // the others aggregated the late peer's gradient: four contributors at the last step
    for (const d of [first, ...others]) {
      const m = await clientFor(d).metrics()
      expect(m.contributors.max, d.name).toBe(4)
      expect(m.contributors.last, d.name).toBe(4)
      expect(m.contributors.min, d.name).toBe(3)
    }
    const lateMetrics = await lateClient.metrics()
    expect(lateMetrics.contributors.last).toBe(4)
    // it trained from its join step to the end, not from 0
    expect(lateMetrics.step).toBe(finished[0]!.step)

    await Promise.all(all.map(async (d) => await clientFor(d).shutdown().catch(() => undefined)))
    const codes = await Promise.all(all.map((d) => d.exited))
    expect(codes, fleet.describe()).toEqual([0, 0, 0, 0])
    for (const d of all) expect(d.problems(), d.name).toEqual([])
    console.log(`e2e join-mid-training: late peer launched at step ${stepAtLaunch}, trained from step ${lateStatus.step} (joined ${joinedAfterMs} ms after launch); ${finished[0]!.step} steps, accuracy ${finished.map((f) => f!.accuracy).join('/')} %, ${Date.now() - started} ms`)
  }, 150_000)
})
