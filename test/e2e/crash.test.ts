/**
 * Issue 5: four daemons train a job; one non-host peer is SIGKILLed mid-training. The other
 * three evict it after the configured missed steps, finish with identical parameters and about
 * the accuracy of a fault-free run of the same job. Its port refuses connections once its process
 * is gone: no step waits out the deadline for it (each did before, ~EVICT_AFTER deadlines in all).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { MetricsResult } from '../../daemon/control/methods.js'
import { eventually, parseFinished, sleep, type DaemonProcess, type FinishedLine } from './support/daemon-process.js'
import { heldOutAccuracy, SETTLED_MLP_JOB } from '../support/settled-job.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('crash', { clientTimeoutMs: 5_000 })

const DEADLINE_MS = 3000
const EVICT_AFTER = 3
// after the eviction the global batch is 192 instead of 256 and the shards are re-cut: another
// trajectory, so the runs are compared on a settled job and 2,000 held-out digits (SETTLED_MLP_JOB;
// a 3-epoch job compared at its end differed by -0.1 to 1.3 points and needed a 1.5-point bound)
const MAX_ACCURACY_GAP = 1
const JOB = { ...SETTLED_MLP_JOB, trainSamples: 6144, seed: 21, minPeers: 4, stepDeadlineMs: DEADLINE_MS }

/** % of the held-out digits, at the final parameters */
function heldOutOf (f: FinishedLine): number {
  if (f.validationAccuracy === undefined) throw new Error(`no validation at the final step ${f.step}`)
  return heldOutAccuracy(f.accuracy, f.validationAccuracy)
}

interface Run {
  readonly peers: DaemonProcess[]
  readonly finished: Array<FinishedLine | undefined>
  /** the last metrics each peer answered before it exited */
  readonly metrics: Array<MetricsResult | undefined>
  readonly ms: number
}

/** host + 3 joiners; `during` runs once the job is training past `atStep` */
async function runJob(tag: string, atStep: number, during?: (peers: DaemonProcess[]) => Promise<void>): Promise<Run> {
  const started = Date.now()
  const jobDir = fleet.dataDir(`${tag}-job`)
  mkdirSync(jobDir, { recursive: true })
  writeFileSync(join(jobDir, 'job.json'), JSON.stringify(JOB))
  const host = fleet.start(`${tag}-host`, ['--config', join(jobDir, 'job.json'), '--exit-when-done'])
  const bootstrap = await host.address()
  const peers = [host, ...[1, 2, 3].map((i) => fleet.start(`${tag}-peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))]
  await Promise.all(peers.map((p) => p.address()))
  const metrics: Array<MetricsResult | undefined> = peers.map(() => undefined)
  let polling = true
  const poller = (async () => {
    const cs = peers.map(clientFor)
    while (polling) {
      await Promise.all(cs.map(async (c, i) => {
        if (peers[i].exitCode() !== null) return
        try {
          metrics[i] = await c.metrics()
        } catch {}
      }))
      await sleep(250)
    }
  })()
  const hostClient = clientFor(host)
  await eventually(async () => {
    const s = await hostClient.status()
    return s.state === 'training' && s.step >= atStep ? s : undefined
  }, 60_000, `${tag}: training past step ${atStep}`)
  await during?.(peers)
  await Promise.all(peers.map((p) => p.exited))
  polling = false
  await poller
  return { peers, finished: peers.map((p) => parseFinished(p.stdout())), metrics, ms: Date.now() - started }
}

describe('a peer killed mid-training', () => {
  it('the others evict it within the deadline budget and finish like a fault-free run', async () => {
    // the fault-free reference and the crash run are separate jobs of separate daemons: they run
    // side by side (one after the other, the file took ~34 s of the suite's wall time)
    let killedAt = 0
    const [clean, crashed] = await Promise.all([
      runJob('clean', 0),
      runJob('crash', 60, async (peers) => {
        killedAt = Date.now()
        peers[2].kill('SIGKILL')
      })
    ])
    expect(clean.peers.map((p) => p.exitCode()), fleet.describe()).toEqual([0, 0, 0, 0])
    for (const f of clean.finished) expect(f, fleet.describe()).toBeDefined()
    expect(new Set(clean.finished.map((f) => f!.digest)).size).toBe(1)

    const context = fleet.describe()
    const survivors = [0, 1, 3]
    expect(crashed.peers[2].exitCode()).toBe(-1)
    expect(survivors.map((i) => crashed.peers[i].exitCode()), context).toEqual([0, 0, 0])
    const finished = survivors.map((i) => crashed.finished[i])
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    expect(new Set(finished.map((f) => f!.step)).size).toBe(1)
    const accuracy = heldOutOf(finished[0]!)
    const cleanAccuracy = heldOutOf(clean.finished[0]!)
    expect(accuracy).toBeGreaterThan(80)
    // (on 2,000 digits: the epsilon only absorbs float rounding of the difference)
    expect(Math.abs(accuracy - cleanAccuracy)).toBeLessThanOrEqual(MAX_ACCURACY_GAP + 1e-9)

    // the coordinator (the host) evicted the dead peer after the configured number of missed steps
    const evictions = crashed.peers[0].logs().filter((l) => l.msg === 'evicting a member that missed too many steps')
    expect(evictions, context).toHaveLength(1)
    expect(evictions[0].peer).toBe(crashed.peers[2].stderr().match(/"peerId":"(\w+)"/)?.[1])
    expect(evictions[0].missedSteps).toBe(EVICT_AFTER)
    // three of four is a quorum: nobody ever waited past a deadline for more
    for (const i of survivors) expect(crashed.peers[i].stderr()).not.toContain('step deadline passed without a quorum')
    // a dead peer is a warning (failed pushes, eviction), never an error
    for (const d of [...clean.peers, ...survivors.map((i) => crashed.peers[i])]) expect(d.problems(), d.name).toEqual([])

    // the killed process's port refuses connections: no step waited out a deadline for it, the
    // EVICT_AFTER misses came as fast as the steps (they took (EVICT_AFTER - 1) deadlines and more
    // while every miss waited one)
    const evictedAfterMs = Number(evictions[0].time) - killedAt
    expect(evictedAfterMs, context).toBeLessThan(DEADLINE_MS)
    for (const i of survivors) {
      const m = crashed.metrics[i]
      expect(m, crashed.peers[i].name).toBeDefined()
      const receive = m!.stages.find((s) => s.stage === 'receive')!
      expect(m!.contributors.max).toBe(4)
      expect(m!.contributors.min).toBe(3)
      expect(m!.contributors.last).toBe(3)
      expect(receive.p95Ms).toBeLessThan(DEADLINE_MS + 500)
    }
    const afterKillMs = Date.now() - killedAt
    console.log(`e2e crash: clean run ${clean.ms} ms, held-out accuracy ${cleanAccuracy} % (test ${clean.finished[0]!.accuracy} %); crash run ${crashed.ms} ms (${afterKillMs} ms after the kill), held-out accuracy ${accuracy} % (test ${finished[0]!.accuracy} %; diff ${(accuracy - cleanAccuracy).toFixed(2)} points); evicted ${evictedAfterMs} ms after the kill; receive stage on survivors: ${survivors.map((i) => { const r = crashed.metrics[i]!.stages.find((s) => s.stage === 'receive')!; return `p95 ${r.p95Ms.toFixed(0)} ms total ${r.totalMs.toFixed(0)} ms over ${r.count}` }).join('; ')}`)
  }, 240_000)
})
