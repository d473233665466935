/**
 * A crowd of joiners (issue 20): six daemons started at the same moment ask to join a running
 * 4-peer job. The coordinator admits them in batches (the first to ask at once, those asking
 * within 500 ms of an admission together at the end of that window: two re-shards for the crowd,
 * not six) and names the members that hold the state (an earlier joiner that trains already
 * included) as its donors, a different one first for each; each joiner takes one range of the
 * state from every donor and checks the whole against the digest they announce, so the transfers
 * spread over the members instead of queueing at the coordinator (a donor serves two transfers at
 * once and queues the rest, telling them their place: test/protocols/state-sync.test.ts), and
 * every one of them trains: within a bounded time all ten are members taking steps, and the job
 * ends with one parameter digest on all ten.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import type { PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { daemonStarter, startTrainingMembers, useLocalDaemons } from './support/local-daemons.js'

const JOINERS = 6
/** from the joiners' start until every one of them has taken steps as a member */
const BOUND_MS = 60_000

describe('six joiners at once into a running 4-peer job', () => {
  const local = useLocalDaemons('p2pmld-joiner-crowd-')

  it('all train within a bounded time and finish with the members\' digest', async () => {
    const job = parseJobConfig({
      id: 'joiner-crowd', model: 'mlp', epochs: 4, batchSize: 16, trainSamples: 4096, minPeers: 4, stepDeadlineMs: 5000,
      aggregation: { rule: 'mean', f: 0 }, earlyStopping: { patience: 0 }
    }, 'test job')
    const start = daemonStarter(local, job)
    const members = await startTrainingMembers(start, 4, 10)
    const host = members[0]
    const stepOf = (d: PeerDaemon): number => d.session()?.runner()?.progress().step ?? -1

    const queued: number[] = []
    const donors: string[] = []
    const fetches: Array<{ from: string[], verified: boolean }> = []
    const warnings: string[] = []
    const crowdLog = pino({ level: 'info' }, {
      write: (line: string) => {
        const l = JSON.parse(line) as { level: number, msg: string, position?: number, err?: string, donor?: string, from?: string[], verified?: boolean }
        if (l.msg.startsWith('waiting for the state transfer')) queued.push(l.position ?? 0)
        if (l.msg.startsWith('fetched the state')) fetches.push({ from: l.from ?? [], verified: l.verified === true })
        if (l.msg.startsWith('admitted to job') && l.donor !== undefined) donors.push(l.donor)
        if (l.level >= 40) warnings.push(`${l.msg} ${l.err ?? ''}`)
      }
    })
    const started = Date.now()
    const joiners = await Promise.all(Array.from({ length: JOINERS }, async (_, i) => await start(`joiner-${i}`, host.addresses(), false, crowdLog)))
    // each joiner is a member that has run steps of its own
    const joinedAt = new Map<PeerDaemon, number>()
    while (joinedAt.size < JOINERS) {
      for (const j of joiners) {
        const runner = j.session()?.runner()
        if (!joinedAt.has(j) && runner !== undefined && runner.state() === 'training') joinedAt.set(j, stepOf(j))
      }
      if (Date.now() - started > BOUND_MS) throw new Error(`after ${BOUND_MS} ms only ${joinedAt.size} of ${JOINERS} joiners train`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    while (joiners.some((j) => stepOf(j) < (joinedAt.get(j) as number) + 3)) {
      if (Date.now() - started > BOUND_MS) throw new Error(`after ${BOUND_MS} ms joiners at steps ${joiners.map(stepOf).join(', ')}, joined at ${[...joinedAt.values()].join(', ')}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const trainingAfter = Date.now() - started
    // admitted in batches: the first at once, the rest (asking within the window) together
    const joinSteps = new Set(joiners.map((j) => host.session()?.runner()?.membership().record(j.peerId)?.joinStep))
    expect(joinSteps.size).toBeLessThanOrEqual(2)
    const results = await Promise.all([...members, ...joiners].map(async (d) => await d.jobDone()))
    console.log(`joiner crowd: all ${JOINERS} joiners training ${trainingAfter} ms after they started (admitted at steps ${[...joinSteps].join(', ')}; training from steps ${[...joinedAt.values()].join(', ')}); donors ${donors.map((d) => members.findIndex((m) => m.peerId === d)).join(', ')} (0: the host, -1: a joiner), ranges per fetch ${fetches.map((f) => f.from.length).join(', ')}, queue positions logged ${JSON.stringify(queued)}; job ended at step ${results[0]?.step}`)
    // six fetches spread over the members in turn (one joiner can be the next batch's donor);
    // none was refused and sent back to retry ('could not join a job yet')
    expect(donors).toHaveLength(JOINERS)
    expect(new Set(donors).size).toBeGreaterThanOrEqual(3)
    for (const d of donors) expect([...members, ...joiners].map((m) => m.peerId)).toContain(d)
    // each joiner took its state in ranges, one from each member holding it (the four members at
    // least), checked against the digest they all announced: no member carried a whole transfer
    expect(fetches).toHaveLength(JOINERS)
    for (const f of fetches) {
      expect(f.verified).toBe(true)
      expect(f.from.length).toBeGreaterThanOrEqual(4)
      for (const m of members) expect(f.from).toContain(m.peerId)
    }
    expect(warnings).toEqual([])
    expect(results.every((r) => r?.reason === 'epochs')).toBe(true)
    expect(new Set(results.map((r) => r?.digest)).size).toBe(1)
    expect(host.session()?.runner()?.progress().step).toBe(results[0]?.step)
  }, 240_000)
})
