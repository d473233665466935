/**
 * A peer that arrives as a job ends (issue 20): admitted at a step the job never reaches, it used
 * to wait for that step's state for ever ("no state-sync data", "could not join a job yet;
 * retrying" in a loop). It is given the finished job's final state instead: it ends with the
 * members' digest and stop reason, says why, and stops trying to join.
 */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createPeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { useLocalDaemons } from './support/local-daemons.js'

describe('a peer arriving as the job ends', () => {
  const { daemons, configFor, root } = useLocalDaemons('p2pmld-late-arrival-')

  it('takes the finished job\'s final state, ends with the members\' digest and stops retrying', async () => {
    const job = parseJobConfig({ id: 'late-arrival', model: 'mlp', epochs: 1, batchSize: 32, trainSamples: 512, minPeers: 2, stepDeadlineMs: 3000, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const loadDatasets = createCachedDatasetLoader()
    const host = await createPeerDaemon({ config: configFor('host', []), log: silentLogger(), job, controlSocket: false, reportsDir: null, loadDatasets })
    daemons.push(host)
    await host.start()
    const member = await createPeerDaemon({ config: configFor('member', host.addresses()), log: silentLogger(), controlSocket: false, reportsDir: null, loadDatasets })
    daemons.push(member)
    await member.start()
    const [hostResult, memberResult] = await Promise.all([host.jobDone(), member.jobDone()])
    expect(hostResult?.digest).toBeDefined()
    expect(memberResult?.digest).toBe(hostResult?.digest)

    // the job is over; a third daemon asks to join it: admitted at a step past the end
    const lines: Array<{ level: number, msg: string, admittedAt?: number, step?: number }> = []
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
    const reportsDir = join(root, 'late-reports')
    const late = await createPeerDaemon({ config: configFor('late', host.addresses()), log, controlSocket: false, reportsDir, loadDatasets })
    daemons.push(late)
    const started = Date.now()
    await late.start()
    const lateResult = await Promise.race([
      late.jobDone(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the late peer did not finish within 30 s; its log: ${lines.map((l) => l.msg + String((l as { err?: unknown }).err ?? "")).join(' | ')}`)), 30_000))
    ])
    console.log(`late arrival: finished ${Date.now() - started} ms after start, at step ${lateResult?.step} (members ${hostResult?.step})`)
    expect(lateResult?.digest).toBe(hostResult?.digest)
    expect(lateResult?.reason).toBe(hostResult?.reason)
    expect(lateResult?.step).toBe(hostResult?.step)
    const told = lines.find((l) => l.msg.startsWith('the job finished before this peer\'s admission took effect'))
    expect(told, lines.map((l) => l.msg).join(' | ')).toBeDefined()
    expect(told!.admittedAt).toBeGreaterThan(told!.step!)
    // one join, no retry loop: a few seconds later still no retry
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([])
    expect(late.session()?.runner()?.state()).toBe('finished')
    // no run report of a job it trained no step of (its membership read 'joined at step N' past the end)
    await late.stop()
    expect(existsSync(reportsDir) ? readdirSync(reportsDir) : []).toEqual([])
    expect(lines.map((l) => l.msg)).toContain('no run report: this peer was admitted as the job ended and trained no step of it')
  }, 120_000)
})
