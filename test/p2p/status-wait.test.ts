/**
 * `status` while a step waits on a member that crashed: every step waits a little, and a crash
 * in a job's first steps is waited out for the warm-up deadline (30 s), during which status said
 * 'training' and nothing else. It now names the member the step waits for and what the step
 * deadline then does (here: nothing, the rule needs all three).
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createControlHandlers } from '../../daemon/peer/control-handlers.js'
import { daemonStarter, startTrainingMembers, useLocalDaemons } from './support/local-daemons.js'

describe('status during a step\'s wait', () => {
  const local = useLocalDaemons('p2pmld-status-wait-')

  it('names the crashed member a step waits for, and the time until its deadline', async () => {
    const job = parseJobConfig({
      id: `status-wait-${process.pid}`, model: 'mlp', epochs: 5, batchSize: 32, trainSamples: 3072, minPeers: 3,
      optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, aggregation: { rule: 'trimmed-mean', f: 1 }
    }, 'test job')
    const [host, , crashed] = await startTrainingMembers(daemonStarter(local, job), 3, 2)
    const status = createControlHandlers(host, () => {}).status
    // crashed: gone without a word (no leave)
    await crashed.stop({ leave: false })
    const started = Date.now()
    let waiting: string | null = null
    while (Date.now() - started < 20_000) {
      waiting = (await status()).waiting
      if (waiting !== null && /^waiting \d+ s for/.test(waiting)) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    // trimmed mean with f = 1 needs all three: the deadline does not let the step go on without it
    expect(waiting).toMatch(new RegExp(`^waiting [2-9]\\d* s for the gradients of ${crashed.peerId}: the step cannot go on without it \\(the rule needs 3 gradients\\); past the deadline \\(~\\d+ s\\) it waits on until it sends or is evicted$`))
    expect((await status()).state).toBe('training')
  }, 60_000)
})
