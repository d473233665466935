/**
 * `--metrics-port`: a daemon training a real job (one peer on 127.0.0.1, real ONNX Runtime)
 * serves Prometheus metrics; the exposition is scraped mid-job and parsed strictly.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { silentLogger } from '../../daemon/logger.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { sampleValue, scrape, type Family } from '../support/prometheus-text.js'

const dir = mkdtempSync(join(tmpdir(), 'p2pmld-metrics-'))
const daemons: PeerDaemon[] = []
afterAll(async () => {
  for (const d of daemons) await d.stop()
  rmSync(dir, { recursive: true, force: true })
})

// 128 steps an epoch: epochs 2-3 are the window a scrape (every 50 ms) must land in. With 1024
// samples (32 steps) that window was ~100 ms of mlp steps plus validation, and a CI run's scrapes
// missed it altogether (the loop then ran out its 60 s)
const job = parseJobConfig({ model: 'mlp', epochs: 3, batchSize: 32, trainSamples: 4096, minPeers: 1, aggregation: { rule: 'mean', f: 0 }, checkpointEverySteps: 0 })

async function startDaemon(name: string, metricsPort: number | undefined): Promise<PeerDaemon> {
  const dataDir = join(dir, name)
  const daemon = await createPeerDaemon({
    config: { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], socketPath: join(dataDir, 'p2pmld.sock'), logLevel: 'silent', computeThreads: 1, metricsPort, metricsHost: '127.0.0.1' },
    log: silentLogger(),
    job,
    controlSocket: false
  })
  daemons.push(daemon)
  await daemon.start()
  return daemon
}

const portAnswers = (port: number): Promise<boolean> => new Promise((resolve) => {
  const socket = connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => resolve(false))
})

describe('Prometheus metrics', () => {
  it('are off by default', async () => {
    const daemon = await startDaemon('off', undefined)
    expect(daemon.metrics()).toBeUndefined()
    await daemon.stop()
  })

  it('serve step, stage, loss, accuracy, learning-rate and membership metrics during a job, and stop cleanly', async () => {
    const daemon = await startDaemon('on', 0)
    const address = daemon.metrics()?.address()
    expect(address?.host).toBe('127.0.0.1')
    const url = `http://127.0.0.1:${address!.port}/metrics`

    // mid-job: after the first epoch ended, before the job finished
    let mid: Map<string, Family> | undefined
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const families = await scrape(url)
      if ((sampleValue(families, 'p2pmld_epochs_total') ?? 0) >= 1 && sampleValue(families, 'p2pmld_test_accuracy') === undefined) {
        mid = families
        break
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(mid, 'a scrape between the first epoch end and the job end').toBeDefined()
    const families = mid!
    const type = (name: string): string | undefined => families.get(name)?.type
    expect(type('p2pmld_step_duration_seconds')).toBe('histogram')
    expect(type('p2pmld_stage_duration_seconds')).toBe('histogram')
    const steps = sampleValue(families, 'p2pmld_steps_total')!
    expect(steps).toBeGreaterThanOrEqual(32)
    expect(sampleValue(families, 'p2pmld_step_duration_seconds_count')).toBe(steps)
    // one peer: no gradient goes out or comes in, and a step run alone applies its gradient as
    // computed (no codec, no aggregate); every stage it runs has observations
    for (const stage of ['compute', 'update', 'validate']) {
      expect(sampleValue(families, 'p2pmld_stage_duration_seconds_count', { stage }), stage).toBeGreaterThan(0)
    }
    for (const stage of ['compress', 'aggregate']) expect(sampleValue(families, 'p2pmld_stage_duration_seconds_count', { stage }) ?? 0, stage).toBe(0)
    // once a step, the first step's too (it read one below steps_total: the metrics followed the
    // stages from the first step report on); the step in progress may have computed already
    for (const stage of ['compute', 'update']) {
      const calls = sampleValue(families, 'p2pmld_stage_duration_seconds_count', { stage })!
      expect(calls, stage).toBeGreaterThanOrEqual(steps)
      expect(calls, stage).toBeLessThanOrEqual(steps + 1)
    }
    expect(sampleValue(families, 'p2pmld_stage_duration_seconds_count', { stage: 'validate' })).toBe(sampleValue(families, 'p2pmld_epochs_total'))
    expect(sampleValue(families, 'p2pmld_membership_size')).toBe(1)
    // a state set: 1 for the state it is in, 0 for the others
    expect(sampleValue(families, 'p2pmld_job_state', { state: 'training' })).toBe(1)
    for (const state of ['waiting', 'syncing', 'paused', 'finished', 'failed']) expect(sampleValue(families, 'p2pmld_job_state', { state }), state).toBe(0)
    expect(sampleValue(families, 'p2pmld_learning_rate')).toBe(0.05)
    expect(sampleValue(families, 'p2pmld_training_loss')).toBeGreaterThan(0)
    // the pace as status shows it (32 samples a step alone) and an epoch or two still to run
    expect(sampleValue(families, 'p2pmld_samples_per_second')).toBeGreaterThan(0)
    expect(sampleValue(families, 'p2pmld_time_left_seconds')).toBeGreaterThan(0)
    const accuracy = sampleValue(families, 'p2pmld_validation_accuracy')!
    expect(accuracy).toBeGreaterThan(0.5)
    expect(accuracy).toBeLessThanOrEqual(1)
    expect(sampleValue(families, 'p2pmld_validation_loss')).toBeGreaterThan(0)
    expect(sampleValue(families, 'p2pmld_step')).toBeGreaterThanOrEqual(steps)

    // refused connections are counted through the sink the node gets
    daemon.metrics()!.sink.connectionRefused('allowlist')
    daemon.metrics()!.sink.connectionRefused('allowlist')
    daemon.metrics()!.sink.connectionRefused('psk')
    const after = await scrape(url)
    expect(sampleValue(after, 'p2pmld_refused_connections_total', { reason: 'allowlist' })).toBe(2)
    expect(sampleValue(after, 'p2pmld_refused_connections_total', { reason: 'psk' })).toBe(1)

    const result = await daemon.jobDone()
    const end = await scrape(url)
    expect(sampleValue(end, 'p2pmld_test_accuracy')).toBeCloseTo(result!.test.accuracy, 10)
    expect(sampleValue(end, 'p2pmld_job_state', { state: 'finished' })).toBe(1)
    expect(sampleValue(end, 'p2pmld_job_state', { state: 'training' })).toBe(0)

    const other = await fetch(`http://127.0.0.1:${address!.port}/`)
    expect(other.status).toBe(404)
    // HEAD (an HTTP probe, curl -I) as GET without the body; it read 404
    const head = await fetch(`http://127.0.0.1:${address!.port}/metrics`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-type')).toContain('text/plain')
    expect(await head.text()).toBe('')
    // another method on /metrics: 405 with the methods it takes (it read 404, as if not there)
    const post = await fetch(`http://127.0.0.1:${address!.port}/metrics`, { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, HEAD')

    await daemon.stop()
    expect(daemon.metrics()?.address()).toBeUndefined()
    expect(await portAnswers(address!.port)).toBe(false)
  }, 120_000)

  it('say so when the port is taken', async () => {
    const first = await startDaemon('first', 0)
    const port = first.metrics()!.address()!.port
    await expect(startDaemon('second', port)).rejects.toThrow(`cannot serve metrics on 127.0.0.1:${port}: the port is already in use: pick another --metrics-port (0 lets the system choose)`)
  }, 60_000)
})
