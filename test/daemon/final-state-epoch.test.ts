/**
 * The end-of-job agreement re-syncs a peer whose last aggregate differed to the majority's state.
 * A donor can serve that state between its last step and that epoch's close (it awaits its
 * checkpoint write there): the adopted state then has no validation record for the last epoch
 * and an epoch counter one short. The runner that adopts it must close the epoch itself, so it
 * finishes with reason 'epochs' and the same history as the donor, not 'early-stopping'.
 *
 * Two real runners (real ONNX Runtime, the mlp on 256 MNIST samples) on an in-memory network:
 * the other peer's gradient of the last step never reaches the host, which aggregates that step
 * alone (half of the members, the most senior among them: step-quorum.ts), so the other peer,
 * which aggregated both, differs from the host at the end and re-syncs from it. (The other way
 * round, the junior alone, no longer steps: it waits for the host's gradient.) The host answers the fetch with
 * its state as it stood right after its last step (captured in onStep), the window the race hits.
 * The peer had closed that epoch on its own parameters before the agreement: it reports each epoch
 * (onEpoch: console, metrics, run report) once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createJobRunner, type JobNetwork, type JobResult, type JobRunner, type JobSnapshot } from '../../daemon/job/job-runner.js'
import { createJobRuntime, type JobRuntime } from '../../daemon/training/job-runtime.js'

const HOST = 'host'
const OTHER = 'other'

describe('end-of-job re-sync to a state served before its epoch closed', () => {
  const runtimes: JobRuntime[] = []
  const runners: JobRunner[] = []
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop()
    for (const rt of runtimes.splice(0)) await rt.close()
  })

  it('closes the last epoch on the peer that adopted it: same history, reason epochs', async () => {
    // 256 samples, 2 members of batch 64: 2 steps an epoch, 2 epochs, 4 steps
    const config = parseJobConfig({
      id: 'final-epoch', model: 'mlp', dataset: 'mnist', trainSamples: 256, batchSize: 64, epochs: 2,
      minPeers: 2, stepDeadlineMs: 400, checkpointEverySteps: 0, compression: { codec: 'none' },
      aggregation: { rule: 'mean', f: 0 }, earlyStopping: { patience: 50 }
    })
    const lastStep = 3
    const byId = new Map<string, JobRunner>()
    /** the host's state right after its last step, before its epoch close */
    let hostBeforeClose: JobSnapshot | undefined
    let droppedLastGradient = false
    /** the epochs the re-synced peer reported (console, metrics, run report): each once */
    const otherEpochEvents: number[] = []

    const networkFor = (selfId: string, runtime: JobRuntime): JobNetwork => ({
      sendGradient: async (message, recipients) => {
        for (const peer of recipients) {
          if (selfId === OTHER && peer === HOST && message.step === lastStep) {
            droppedLastGradient = true
            continue
          }
          byId.get(peer)?.offerGradient({
            step: message.step, sender: selfId, digest: message.digest,
            gradient: runtime.codec.decode(message.payload, runtime.model.layout.totalSize)
          })
        }
      },
      announceMembership: async (membership) => {
        for (const [id, r] of byId) if (id !== selfId && r.mayDecideForJob(selfId)) r.adoptMembership(membership)
      },
      fetchSnapshot: async (peer, minStep) => {
        if (peer === HOST && hostBeforeClose !== undefined && hostBeforeClose.step >= minStep) return hostBeforeClose
        const donor = byId.get(peer)
        if (donor === undefined) throw new Error(`no peer ${peer}`)
        return await donor.snapshotAt(minStep, undefined, selfId)
      },
      queryDigest: async (peer, minStep, signal) => {
        const donor = byId.get(peer)
        if (donor === undefined) throw new Error(`no peer ${peer}`)
        return await donor.digestAt(minStep, signal)
      }
    })

    const hostRuntime = await createJobRuntime(config)
    runtimes.push(hostRuntime)
    const host = createJobRunner({
      selfId: HOST, runtime: hostRuntime, network: networkFor(HOST, hostRuntime), log: silentLogger(), host: true,
      events: {
        onStep: (report) => {
          if (report.step === lastStep) hostBeforeClose = host.currentSnapshot()
        }
      }
    })
    byId.set(HOST, host)
    runners.push(host)
    host.start()
    await host.admit(OTHER)

    const otherRuntime = await createJobRuntime(config)
    runtimes.push(otherRuntime)
    const other = createJobRunner({
      selfId: OTHER, runtime: otherRuntime, network: networkFor(OTHER, otherRuntime), log: silentLogger(), host: false,
      snapshot: host.currentSnapshot(),
      events: { onEpoch: (record) => { otherEpochEvents.push(record.epoch) } }
    })
    byId.set(OTHER, other)
    runners.push(other)
    other.start()

    const [hostResult, otherResult] = await Promise.all([host.done(), other.done()]) as [JobResult, JobResult]
    expect(droppedLastGradient).toBe(true)
    // the captured state is the race's window: the last step done, its epoch not closed
    expect(hostBeforeClose?.epoch).toBe(1)
    expect(hostBeforeClose?.cursor).toBeGreaterThan(0)
    expect(hostResult.reason).toBe('epochs')
    expect(otherResult.reason).toBe('epochs')
    expect(otherResult.epoch).toBe(2)
    expect(otherResult.step).toBe(hostResult.step)
    expect(otherResult.digest).toBe(hostResult.digest)
    expect(otherResult.history.map((r) => [r.epoch, r.step, r.validationLoss]))
      .toEqual(hostResult.history.map((r) => [r.epoch, r.step, r.validationLoss]))
    expect(otherResult.history.at(-1)?.step).toBe(otherResult.step)
    // it closed the last epoch on its own parameters before re-syncing, and reported it then only
    expect(otherEpochEvents).toEqual([0, 1])
  }, 60_000)
})
