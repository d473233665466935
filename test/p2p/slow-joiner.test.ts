/**
 * A joiner whose first gradient comes after the step deadline. A joiner's state transfer can only
 * start once the donors reach its join step, so its first gradient is late by construction: on a
 * busy machine (ten in-process peers, test/p2p/joiner-crowd.test.ts) it missed the 5 s deadline,
 * the members aggregated that step without it, it aggregated with its own gradient, and it
 * diverged and re-synced its whole state. The members now wait up to JOINER_GRACE_ROUNDS more
 * deadline rounds for a member at its first step (decided from the membership alone, so every
 * member waits alike). Here every member delays the joiner's first gradient past one deadline
 * (test-only fault injection, the same delay a slow transfer gives): the step waits for it, all
 * four aggregate it, nobody diverges.
 */
import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { generateKeyPairFromSeed, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { JOINER_GRACE_ROUNDS } from '../../daemon/training/deadline-round.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { peerKeyPath } from '../../protocols/node/index.js'
import { useLocalDaemons } from './support/local-daemons.js'

const DEADLINE_MS = 1500
/** past one deadline, within the grace rounds' */
const DELAY_MS = 3000

describe('a joiner whose first gradient comes after the step deadline', () => {
  const local = useLocalDaemons('p2pmld-slow-joiner-')

  it('is waited for at its first step: every member aggregates it and nobody diverges', async () => {
    expect(DELAY_MS).toBeGreaterThan(DEADLINE_MS)
    expect(DELAY_MS).toBeLessThan((1 + JOINER_GRACE_ROUNDS) * DEADLINE_MS)
    const job = parseJobConfig({
      id: 'slow-joiner', model: 'mlp', epochs: 2, batchSize: 32, trainSamples: 6144, minPeers: 3, stepDeadlineMs: DEADLINE_MS,
      aggregation: { rule: 'mean', f: 0 }, earlyStopping: { patience: 0 }
    }, 'test job')
    // the joiner's key first, so the members' fault injection can name it
    const joinerConfig = local.configFor('joiner', [])
    await mkdir(joinerConfig.dataDir, { recursive: true, mode: 0o700 })
    const key = await generateKeyPairFromSeed('Ed25519', createHash('sha256').update('p2pmld-slow-joiner').digest())
    await writeFile(peerKeyPath(joinerConfig.dataDir), privateKeyToProtobuf(key), { mode: 0o600 })
    const joinerId = peerIdFromPrivateKey(key).toString()

    const loadDatasets = createCachedDatasetLoader()
    const reports = new Map<string, StepReport[]>()
    const warnings: string[] = []
    const start = async (name: string, bootstrap: string[], host: boolean): Promise<PeerDaemon> => {
      const own: StepReport[] = []
      reports.set(name, own)
      const log = pino({ level: 'warn' }, { write: (line: string) => { const l = JSON.parse(line) as { msg: string, step?: number }; warnings.push(`${name} at step ${l.step}: ${l.msg}`) } })
      const daemon = await createPeerDaemon({
        config: name === 'joiner' ? { ...joinerConfig, bootstrap } : local.configFor(name, bootstrap),
        log: name === 'joiner' || host ? log : silentLogger(),
        ...(host ? { job } : {}),
        controlSocket: false,
        reportsDir: null,
        loadDatasets,
        events: { onStep: (r) => own.push(r) },
        // each member gets the joiner's first gradient DELAY_MS late
        ...(name === 'joiner' ? {} : { faults: { seed: 1, delayFraction: 1, delayMs: DELAY_MS, senders: [joinerId], count: 1 } })
      })
      local.daemons.push(daemon)
      await daemon.start()
      return daemon
    }
    const host = await start('host', [], true)
    const members = [host, ...await Promise.all(['member-1', 'member-2'].map(async (name) => await start(name, host.addresses(), false)))]
    const stepOf = (d: PeerDaemon): number => d.session()?.runner()?.progress().step ?? -1
    while (stepOf(host) < 3) await new Promise((resolve) => setTimeout(resolve, 20))

    const joiner = await start('joiner', host.addresses(), false)
    expect(joiner.peerId).toBe(joinerId)
    const results = await Promise.all([...members, joiner].map(async (d) => await d.jobDone()))
    const joinStep = host.session()?.runner()?.membership().record(joinerId)?.joinStep as number
    expect(joinStep).toBeGreaterThan(3)
    const at = (name: string, step: number): StepReport | undefined => reports.get(name)?.find((r) => r.step === step)
    const everyone = [...members.map((m) => m.peerId), joinerId].sort()
    for (const name of ['host', 'member-1', 'member-2']) {
      const first = at(name, joinStep)
      // the delay was in effect: the step waited past its first deadline for the joiner, and took it
      expect(first?.waitedMs, name).toBeGreaterThan(DEADLINE_MS)
      expect(first?.contributors, name).toEqual(everyone)
    }
    // the joiner's first step took everyone's gradients too: one state, no re-sync
    expect(at('joiner', joinStep)?.contributors).toEqual(everyone)
    // nothing refused, diverged or re-synced. The one warning allowed: the joiner, not late itself
    // here (its gradient is held up on the way), waits at the next step for the members, which
    // were waiting for it
    expect(warnings.filter((w) => w !== `joiner at step ${joinStep + 1}: step deadline passed short of the gradients the step needs; waiting on`)).toEqual([])
    expect(new Set(results.map((r) => r?.digest)).size).toBe(1)
    expect(results[0]?.step).toBeGreaterThan(joinStep)
  }, 120_000)
})
