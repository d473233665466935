/**
 * Issue 14, what a person and an operator see: three real `p2pmld start` processes on
 * 127.0.0.1. The host prints progress (loss, samples/s, epoch length, ETA), each epoch from 1,
 * and membership changes as plain lines (a join, a clean leave, an eviction after kill -9); its
 * Prometheus endpoint, scraped mid-job, holds the stage histograms, bytes by peer and the
 * membership; every log line is JSON (stderr is not a terminal) with one `component`.
 */
import { describe, expect, it } from 'vitest'
import { sampleValue, scrape } from '../support/prometheus-text.js'
import { eventually, type DaemonProcess } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet } = useDaemonFleet('metrics')

const METRICS = ['--metrics-port', '0', '--metrics-host', '127.0.0.1']
const metricsUrl = async (d: DaemonProcess): Promise<string> => (await d.waitForStdout(/metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1]
const peerIdOf = (address: string): string => address.split('/p2p/')[1]

describe('p2pmld start: progress, membership lines, logs and Prometheus metrics', () => {
  it('shows a job as it trains and serves its metrics', async () => {
    const host = fleet.start('host', [...METRICS, '--model', 'mlp', '--train-samples', '4096', '--batch-size', '32', '--epochs', '30',
      '--min-peers', '2', '--aggregation', 'mean', '--f', '0', '--seed', '3'])
    const bootstrap = await host.address()
    const b = fleet.start('b', [...METRICS, '--bootstrap', bootstrap])
    const bId = peerIdOf(await b.address())
    const context = (): string => fleet.describe()

    // progress within an epoch, with the pace, then a finished epoch counted from 1
    // durations as formatDuration writes them: '819 ms' on a fast machine, '31s', '4m 40s'
    const duration = String.raw`(?:\d+ ms|\d+[dhm](?: \d+[hms])?|\d+s)`
    const progress = await host.waitForStdout(new RegExp(String.raw`^epoch 1\/30: \d+% \(\d+\/(\d+) steps\) loss [\d.]+, (\d+) samples\/s, epoch ~${duration}, ETA ${duration}$`, 'm'), 60_000)
    expect(Number(progress[1])).toBe(64) // 4096 samples / (2 peers x 32)
    expect(Number(progress[2])).toBeGreaterThan(0)
    await host.waitForStdout(/^epoch 1\/30 done in [^:]+: train loss [\d.]+, val loss [\d.]+, val acc [\d.]+ %, lr 0\.05$/m, 60_000)

    const c = fleet.start('c', [...METRICS, '--bootstrap', bootstrap])
    const cId = peerIdOf(await c.address())
    await host.waitForStdout(new RegExp(`^peer ${cId} joined at step \\d+: 3 members$`, 'm'), 60_000)

    // mid-job, three members: the host's metrics
    const url = await metricsUrl(host)
    // a step's gradient (QSGD 8-bit of ~100k parameters) is ~100 KB: wait until gradients went each
    // way with both (the first bytes to the new member are its state transfer, before it sends any)
    const flowed = (f: Awaited<ReturnType<typeof scrape>>, peer: string): boolean =>
      (sampleValue(f, 'p2pmld_sent_bytes_total', { peer }) ?? 0) > 100_000 && (sampleValue(f, 'p2pmld_received_bytes_total', { peer }) ?? 0) > 100_000
    const families = await eventually(async () => {
      const f = await scrape(url)
      return sampleValue(f, 'p2pmld_membership_size') === 3 && flowed(f, bId) && flowed(f, cId) ? f : undefined
    }, 30_000, 'the host counting three members and gradients each way with both others')
    for (const stage of ['compute', 'compress', 'send', 'receive', 'aggregate', 'update', 'validate']) {
      expect(sampleValue(families, 'p2pmld_stage_duration_seconds_count', { stage }), stage).toBeGreaterThan(0)
    }
    expect(sampleValue(families, 'p2pmld_step_duration_seconds_count')).toBe(sampleValue(families, 'p2pmld_steps_total'))
    expect(sampleValue(families, 'p2pmld_membership_changes_total', { kind: 'joined' })).toBe(1)
    // the rate in force: the one the host printed with its last finished epoch, or half of it when
    // that epoch's end reduced it (ReduceLROnPlateau, factor 0.5: when it fires depends on the
    // trajectory); stdout is read after the scrape, so an epoch may have ended in between
    const printed = [...host.stdout().matchAll(/^epoch \d+\/30 done in .*, lr ([\d.e-]+)$/gm)].map((m) => Number(m[1]))
    const last = printed[printed.length - 1]
    expect([last, last / 2, printed[printed.length - 2]], context()).toContain(sampleValue(families, 'p2pmld_learning_rate'))
    expect(sampleValue(families, 'p2pmld_validation_accuracy')).toBeGreaterThan(0.5)
    // a joined peer serves its own
    const bMetrics = await scrape(await metricsUrl(b))
    expect(sampleValue(bMetrics, 'p2pmld_membership_size')).toBe(3)
    expect(sampleValue(bMetrics, 'p2pmld_training_loss')).toBeGreaterThan(0)

    // a clean leave, then a crash
    c.kill('SIGTERM')
    await host.waitForStdout(new RegExp(`^peer ${cId} left at step \\d+: 2 members$`, 'm'), 60_000)
    b.kill('SIGKILL')
    await host.waitForStdout(new RegExp(`^peer ${bId} was evicted \\(it missed too many steps\\) at step \\d+: 1 member$`, 'm'), 90_000)
    const end = await scrape(url)
    expect(sampleValue(end, 'p2pmld_evictions_total'), context()).toBe(1)
    expect(sampleValue(end, 'p2pmld_membership_changes_total', { kind: 'left' }), context()).toBe(1)
    expect(sampleValue(end, 'p2pmld_membership_changes_total', { kind: 'evicted' }), context()).toBe(1)
    expect(sampleValue(end, 'p2pmld_membership_size'), context()).toBe(1)

    host.kill('SIGTERM')
    expect(await host.exited).toBe(0)
    await c.exited
    for (const d of [host, b, c]) {
      const lines = d.stderr().split('\n').filter((l) => l.trim() !== '')
      expect(lines.length, d.name).toBeGreaterThan(0)
      for (const line of lines) {
        expect(() => JSON.parse(line) as unknown, `${d.name}: ${line}`).not.toThrow()
        expect(line.match(/"component":/g), `${d.name}: ${line}`).toHaveLength(1)
      }
    }
  }, 240_000)
})
