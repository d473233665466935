/**
 * The results phase of a reduce-scatter step (daemon/training/reduce-scatter-results.ts) with a
 * real gradient collector, no network: a replica that sent its parts and then died sends no
 * results. Known gone (its port refuses connections), it is not waited for past what the slices
 * need (f+1 of each slice's 2f+1 replicas); not known gone, it is waited for until the deadline.
 */
import { describe, expect, it } from 'vitest'
import { CompressionConfigSchema } from '../../config/job-config.js'
import { createGradientCollector } from '../../daemon/membership/gradient-collector.js'
import { collectResults } from '../../daemon/training/reduce-scatter-results.js'
import { encodeResults } from '../../daemon/training/reduce-scatter-step.js'
import { createSlicePlan } from '../../daemon/training/slice-plan.js'
import type { InboundGradient } from '../../daemon/training/step-types.js'

const STEP = 7
const DEADLINE_MS = 1500
const members = ['a', 'b', 'c', 'd', 'e']
const plan = createSlicePlan(2000, members.length, 1, CompressionConfigSchema.parse({ codec: 'qsgd', bits: 8, bucketSize: 256 }), [])
const resultsOf = (index: number): ReturnType<typeof encodeResults> => {
  const run = plan.replicaRun(index)
  return encodeResults(plan, run, plan.slicesOf(run).map((s) => new Float32Array(plan.ranges[s].end - plan.ranges[s].start).fill(index)), 1, STEP)
}

/** collectResults for member 'a' with every other member's results in but `dead`'s */
async function collectWithout(dead: string, unreachable?: (peer: string) => boolean): Promise<{ ms: number, replicas: number[] | string }> {
  const results = createGradientCollector<InboundGradient>()
  for (const [index, sender] of members.entries()) {
    if (sender === 'a' || sender === dead) continue
    const r = resultsOf(index)
    results.offer({ step: STEP, sender, digest: 'd', gradient: new Float32Array(0), sliced: { header: r.slices, parts: r.decoded } })
  }
  const warnings: string[] = []
  const started = performance.now()
  const outcome = await collectResults({
    step: STEP, plan, members, selfId: 'a', own: resultsOf(0).decoded, f: 1, results,
    parts: { sendersAhead: () => [] },
    membership: { isMemberAt: (id) => members.includes(id), membersAt: () => members },
    deadlineMs: () => DEADLINE_MS,
    resend: () => {},
    log: { warn: (_obj, msg) => { warnings.push(msg) } },
    ...(unreachable === undefined ? {} : { unreachable })
  })
  const ms = performance.now() - started
  expect(warnings).toEqual([])
  return { ms, replicas: outcome instanceof Map ? [...outcome.keys()].sort() : JSON.stringify(outcome) }
}

describe('reduce-scatter results phase', () => {
  it('does not wait out the deadline for a replica whose port refuses connections', async () => {
    const gone = await collectWithout('e', (peer) => peer === 'e')
    expect(gone.replicas).toEqual([0, 1, 2, 3])
    // the collector looks at `unreachable` every 250 ms
    expect(gone.ms).toBeLessThan(DEADLINE_MS / 2)

    // a replica that is silent but not known gone (a cut link, a hung process) is waited for
    const silent = await collectWithout('e', (peer) => peer === 'nobody')
    expect(silent.replicas).toEqual([0, 1, 2, 3])
    expect(silent.ms).toBeGreaterThanOrEqual(DEADLINE_MS - 50)
  })
})
