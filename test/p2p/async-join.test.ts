/**
 * A peer joining an asynchronous job mid-run: between averaging rounds each member's parameters
 * drift by its own steps, so the state a member serves is the one the members agreed at the last
 * round (SyncTrainer.agreedParams). A joiner that took a member's drifted parameters instead held
 * an anchor no other member held: every later round flagged it as diverged, and its re-syncs were
 * refused (no f+1 members hold one member's drift) until the job's end, a full state fetched for
 * nothing at every round.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { createPeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { startTrainingMembers, useLocalDaemons, type StartDaemon } from './support/local-daemons.js'

describe('a peer joining an async job', () => {
  const local = useLocalDaemons('p2pmld-async-join-')

  it('holds the members\' agreed parameters from its first round: never diverged, and all four end identical', async () => {
    const job = parseJobConfig({
      id: `async-join-${process.pid}`, model: 'lenet5', epochs: 6, batchSize: 32, trainSamples: 4096, minPeers: 3,
      mode: 'async', maxStaleness: 4, averageEvery: 8, optimizer: { type: 'sgd', lr: 0.1, momentum: 0 }, aggregation: { rule: 'trimmed-mean', f: 1 }
    }, 'test job')
    const lines: Array<{ name: string, level: number, msg: string }> = []
    const lateReports: StepReport[] = []
    const loadDatasets = createCachedDatasetLoader()
    const start: StartDaemon = async (name, bootstrap, host = false) => {
      const daemon = await createPeerDaemon({
        config: local.configFor(name, bootstrap),
        log: pino({ level: 'info' }, { write: (l: string) => { lines.push({ ...JSON.parse(l) as { level: number, msg: string }, name }) } }),
        ...(host ? { job } : {}),
        ...(name === 'late' ? { events: { onStep: (r: StepReport) => lateReports.push(r) } } : {}),
        controlSocket: false,
        reportsDir: null,
        loadDatasets
      })
      local.daemons.push(daemon)
      await daemon.start()
      return daemon
    }
    const members = await startTrainingMembers(start, 3, 20)
    const late = await start('late', members[0].addresses().map(String))
    const results = await Promise.all([...members, late].map(async (d) => await d.jobDone()))
    const context = lines.filter((l) => l.level >= 40).map((l) => `${l.name}: ${l.msg}`).join('\n')

    expect(results.every((r) => r !== undefined), context).toBe(true)
    expect(new Set(results.map((r) => r?.digest)).size, context).toBe(1)
    for (const r of results) expect(r!.test.accuracy, context).toBeGreaterThan(0.85)
    // it joined mid-run (past the host's step 20), not at the start
    expect(lateReports[0]?.step, context).toBeGreaterThan(20)
    // every round it ran heard the other three, each holding the anchor it holds
    const rounds = lateReports.filter((r) => r.fullDigest)
    expect(rounds.length, context).toBeGreaterThan(5)
    for (const r of rounds) expect([...r.peerDigests.values()], `step ${r.step}\n${context}`).toEqual([r.digest, r.digest, r.digest])
    // so nobody ever saw a divergence, nor fetched a state it then refused
    expect(lines.filter((l) => l.level >= 40 && /diverged|vouch|differ|reconcil/.test(l.msg)).map((l) => `${l.name}: ${l.msg}`)).toEqual([])
  }, 120_000)
})
