/**
 * `status` while a step waits on members that do not send: a crash in a job's first steps used
 * to be waited out for the warm-up deadline (30 s), during which status said 'training' and
 * nothing else. A dead process is now found at once (its port refuses: refused-eviction.test.ts),
 * but a member alive and silent (hung, or behind a link that drops its packets) is still waited
 * for: status names the members the step waits for and what the step deadline then does (here:
 * nothing, the rule needs all three). The host drops every gradient it is sent from step 4 on.
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createControlHandlers } from '../../daemon/peer/control-handlers.js'
import { daemonStarter, startTrainingMembers, useLocalDaemons } from './support/local-daemons.js'

describe('status during a step\'s wait', () => {
  const local = useLocalDaemons('p2pmld-status-wait-')

  it('names the silent members a step waits for, and the time until its deadline', async () => {
    const job = parseJobConfig({
      id: `status-wait-${process.pid}`, model: 'mlp', epochs: 5, batchSize: 32, trainSamples: 3072, minPeers: 3,
      optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, aggregation: { rule: 'trimmed-mean', f: 1 }
    }, 'test job')
    const [host, a, b] = await startTrainingMembers(daemonStarter(local, job, { seed: 1, dropFraction: 1, steps: [4, 1_000_000] }), 3, 2)
    const status = createControlHandlers(host, () => {}).status
    const started = Date.now()
    let waiting: string | null = null
    while (Date.now() - started < 20_000) {
      waiting = (await status()).waiting
      if (waiting !== null && /^waiting \d+ s for/.test(waiting)) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    // trimmed mean with f = 1 needs all three: the deadline does not let the step go on without them
    const them = `(${a.peerId}, ${b.peerId}|${b.peerId}, ${a.peerId})`
    expect(waiting).toMatch(new RegExp(`^waiting [2-9]\\d* s for the gradients of ${them}: the step cannot go on without them \\(the rule needs 3 gradients\\); past the deadline \\(~\\d+ s\\) it waits on until they send or are evicted$`))
    expect((await status()).state).toBe('training')
  }, 60_000)
})
