/**
 * A daemon a job names by its peer id in a test-only attack ignores it (training/test-attack.ts)
 * and says so where its operator reads, on the console's notices, not only in its log (a walk's
 * daemon named so printed nothing). A real daemon, one-member job, submitted after the start.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'

const dir = mkdtempSync(join(tmpdir(), 'p2pmld-attack-notice-'))
const daemons: PeerDaemon[] = []
afterAll(async () => {
  for (const d of daemons) await d.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('a job naming this daemon in a test-only attack', () => {
  it('is run honestly, and the daemon says on its console that it ignores the attack', async () => {
    const notices: string[] = []
    const dataDir = join(dir, 'd')
    const daemon = await createPeerDaemon({
      config: { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], socketPath: join(dataDir, 'p2pmld.sock'), logLevel: 'silent', computeThreads: 1 },
      log: silentLogger(),
      controlSocket: false,
      onNotice: (text) => notices.push(text)
    })
    daemons.push(daemon)
    await daemon.start()
    const base = { model: 'mlp', epochs: 1, batchSize: 32, trainSamples: 256, minPeers: 1, aggregation: { rule: 'mean', f: 0 }, checkpointEverySteps: 0 }
    const jobId = await daemon.submitJob(parseJobConfig({ ...base, attack: { peers: [daemon.peerId], kind: 'scale', magnitude: 1e30 } }))
    const result = await daemon.jobDone()
    // a scale attack of 1e30 would have diverged it at its first step
    expect(result?.test.accuracy).toBeGreaterThan(0.3)
    expect(notices).toContain(`job ${jobId} names this peer in its test-only attack (scale): ignored, only the demo's and the tests' in-process peers run attacks; this peer stays honest`)
    // a job that names someone else says nothing
    const other = await daemon.submitJob(parseJobConfig({ ...base, attack: { peers: ['peer-9'], kind: 'scale', magnitude: 1e30 } }))
    await daemon.jobDone()
    expect(notices.filter((n) => n.includes('test-only attack'))).toHaveLength(1)
    expect(notices.some((n) => n.includes(other) && n.includes('attack'))).toBe(false)
  }, 60_000)
})
