/**
 * A real session core hosting a small mlp job as peer 'host', with a wire that goes nowhere
 * (nobody else runs the job): for tests of what the coordinator decides on its own (admissions,
 * leaves). Cores are stopped after each test.
 */
import { afterEach } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createSessionCore, type JobWire, type SessionCore } from '../../daemon/peer/session-core.js'

const nowhere: JobWire = {
  publishGradient: async () => ({ missed: [] }),
  broadcast: async () => {},
  request: async () => await Promise.reject(new Error('no requests in this test')),
  fetchSnapshot: async () => await Promise.reject(new Error('no state transfer in this test'))
}

/**
 * call at a test file's top level; the returned function starts a host core for job `jobId`
 * needing `minPeers`, over `wire` (default: one that goes nowhere)
 */
export function useHostSessionCores(jobId: string): (minPeers: number, wire?: JobWire) => Promise<SessionCore> {
  const cores: SessionCore[] = []
  afterEach(async () => {
    for (const c of cores.splice(0)) {
      await c.stopRunner(false)
      await c.close()
    }
  })
  return async (minPeers, wire = nowhere) => {
    const config = parseJobConfig({ id: jobId, model: 'mlp', epochs: 1, batchSize: 16, trainSamples: 128, minPeers, stepDeadlineMs: 60_000, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const core = createSessionCore({ jobId, config, log: silentLogger(), computeThreads: 1, host: true, selfId: 'host' })
    cores.push(core)
    await core.startRuntime()
    core.attach(wire)
    core.startIfOwned()
    return core
  }
}
