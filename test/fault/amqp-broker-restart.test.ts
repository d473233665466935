/**
 * The broker's application is stopped and started again while four peers train over it
 * (issue 18): the peers notice, reconnect with backoff, declare their queues again, re-send
 * what was not confirmed, and the job finishes with every step run, identical parameters and
 * the accuracy of an undisturbed run.
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { runDemo } from '../../daemon/demo/run-demo.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { brokerNames } from '../amqp/broker-names.js'
import { ensureBrokerRunning, restartBrokerApp, type BrokerRestart } from '../amqp/broker-control.js'

afterAll(async () => { await ensureBrokerRunning() }, 120_000)

describe('a broker restart during training', () => {
  it('the job finishes with every step, identical parameters, nothing lost', async () => {
    const lines: Array<Record<string, unknown>> = []
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>); done() } })
    const job = parseJobConfig({
      id: `amqp-restart-${process.pid}`, transport: 'amqp', model: 'mlp', epochs: 4, batchSize: 64, trainSamples: 4096,
      optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 }, evictAfterMissedSteps: 1000,
      // a step waits for every member's gradient through the restart (the derived deadline could
      // let a step go on without a late one, which would hide a lost one)
      stepDeadlineMs: 30_000
    })
    const reports: StepReport[] = []
    let restart: Promise<BrokerRestart> | undefined
    const restartRecord: BrokerRestart = {}
    let restartedAtStep = -1
    // a run that hangs says where, before the test's timeout (which would cut it off without a word)
    const abort = new AbortController()
    const stuck = setTimeout(() => abort.abort(new Error(`the job did not finish in 200 s: last step ${reports.at(-1)?.step ?? 'none'}, broker restart ${JSON.stringify(restartRecord)}, ` +
      `last warnings: ${JSON.stringify(lines.filter((l) => Number(l.level) >= 40).slice(-8).map((l) => `${String(l.peer)}: ${String(l.msg)}`))}`)), 200_000)
    try {
      const result = await runDemo({
        peers: 4,
        job,
        signal: abort.signal,
        log: pino({ level: 'info' }, sink),
        events: {
          onStep: (r) => {
            reports.push(r)
            // early: on a loaded machine rabbitmqctl takes seconds to stop the broker, and a stop
            // begun at step 15 of 48 once landed after the job had ended (no peer reconnected)
            if (r.step === 5 && restart === undefined) {
              restartedAtStep = r.step
              restart = restartBrokerApp(2000, restartRecord)
            }
          }
        }
      }).catch((error: unknown) => { throw abort.signal.aborted ? abort.signal.reason as Error : error })
      if (abort.signal.aborted) throw abort.signal.reason as Error
      await restart
      expect(restartedAtStep).toBe(5)
      expect(restartRecord.stopError, 'rabbitmqctl stop_app').toBeUndefined()
      expect(result.peers.every((p) => p.result !== undefined)).toBe(true)
      expect(result.identicalParameters).toBe(true)
      for (const p of result.peers) expect(p.result!.test.accuracy).toBeGreaterThan(0.85)
      // every step of the job ran (none skipped or doubled): peer-0 reports each step it ran; a
      // step it missed (its gradient past the deadline after the restart: a CI run, step 22) the
      // others ran without it, and it took their state after it, which it logs as a catch-up
      const steps = reports.map((r) => r.step)
      const caughtUp = lines.filter((l) => l.peer === 'peer-0' && l.msg === 'members finished this step without this peer: re-syncing to catch up').map((l) => Number(l.step))
      expect([...steps, ...caughtUp].sort((a, b) => a - b), `caught up at ${caughtUp.join(', ')}`).toEqual([...Array(steps.length + caughtUp.length).keys()])
      expect(result.peers[0].result!.step).toBe(steps.length + caughtUp.length)
      // every peer lost its connection and came back
      const reconnected = new Set(lines.filter((l) => l.msg === 'reconnected to the broker').map((l) => l.peer))
      expect(reconnected.size).toBe(4)
      // a gradient in flight is retried (a publish waits for the broker to come back) or skipped
      // by the rules of a missing peer: a step short of one waited out the full step deadline.
      // (3 runs here: no step short; one CI run had one, at step 38, well after the restart: see
      // the session note.) A gradient re-sent because its confirm died with the connection may
      // arrive twice: the second copy is dropped as a duplicate
      const partial = reports.filter((r) => r.contributors.length < 4)
      console.log(`broker restart: ${reports.length} steps (peer-0 caught up at ${caughtUp.length === 0 ? 'none' : caughtUp.join(', ')}), ${partial.length} aggregated fewer than 4 gradients (${partial.map((r) => `step ${r.step} after ${r.waitedMs.toFixed(0)} ms`).join(', ')}), longest wait ${Math.max(...reports.map((r) => r.waitedMs)).toFixed(0)} ms, ${result.rejected} duplicate/late copies dropped`)
      for (const r of partial) expect(r.waitedMs, `step ${r.step}`).toBeGreaterThanOrEqual(29_900)
      // and a gradient that missed such a step's deadline may still arrive after it, where it is
      // dropped as stale (a CI run: step 17 short of one after 30 s, then 1 stale copy): at most
      // once at each of the other three peers per gradient missing from a short step
      const { duplicate = 0, stale = 0, ...refused } = result.rejectedByReason
      expect(refused, `duplicates ${duplicate}, stale ${stale}`).toEqual({})
      expect(stale).toBeLessThanOrEqual(3 * partial.reduce((missing, r) => missing + 4 - r.contributors.length, 0))
      expect(brokerNames('queues', job.id!)).toEqual([])
    } finally {
      clearTimeout(stuck)
      await restart?.catch(() => {})
      await ensureBrokerRunning()
    }
  }, 240_000)
})
