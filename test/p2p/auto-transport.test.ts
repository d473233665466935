/**
 * `transport: auto` (issue 18): a job over libp2p in which one pair of members cannot connect.
 * Peer D's connection gater refuses peer C (an allowlist without it), in both directions, as a
 * firewall between two hosts would. C and D must reach each other through the RabbitMQ broker,
 * everybody else over libp2p, and the job must run as if nothing were in the way: every
 * gradient every step, identical parameters, the queues gone after the job. And daemons that live
 * on after a job (over auto and over the broker alone) delete its gradient queues when it ends.
 */
import { pino } from 'pino'
import { silentLogger } from '../../daemon/logger.js'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { BROKER_URL, brokerNames } from '../amqp/broker-names.js'
import { useLocalDaemons } from './support/local-daemons.js'

describe('transport auto', () => {
  const { daemons, configFor } = useLocalDaemons('p2pmld-auto-')

  it('carries the gradients between two members that cannot connect through the broker, and only theirs', async () => {
    const job = parseJobConfig({
      id: `auto-${process.pid}`,
      transport: 'auto',
      model: 'mlp',
      epochs: 2,
      batchSize: 32,
      trainSamples: 4096,
      minPeers: 4,
      compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 },
      // every gradient of every step is asserted: no step may go on without one
      stepDeadlineMs: 30_000
    }, 'test job')
    const loadDatasets = createCachedDatasetLoader()
    const reports: StepReport[] = []
    const lines: Array<{ level: number, msg: string, peer?: string, name?: string, agreeing?: number, unanswered?: string[] }> = []
    const logFor = (name: string) => pino({ level: 'info' }, { write: (line: string) => { lines.push({ ...JSON.parse(line), name }) } })
    const start = async (name: string, extra: { allowlist?: string[] } = {}, withJob = false): Promise<PeerDaemon> => {
      const config = { ...configFor(name, daemons[0]?.addresses() ?? []), amqpUrl: BROKER_URL, ...extra }
      const d = await createPeerDaemon({
        config,
        log: logFor(name),
        controlSocket: false,
        reportsDir: null,
        loadDatasets,
        ...(withJob ? { job, events: { onStep: (r: StepReport) => reports.push(r) } } : {})
      })
      daemons.push(d)
      await d.start()
      return d
    }
    const host = await start('host', {}, true)
    const b = await start('b')
    const c = await start('c')
    // D's gater refuses C, inbound and outbound
    const d = await start('d', { allowlist: [host.peerId, b.peerId] })

    const results = await Promise.all(daemons.map(async (daemon) => await daemon.jobDone()))
    const warnings = lines.filter((l) => l.level >= 40).map((l) => `${l.name}: ${l.msg}`)
    expect(results.every((r) => r !== undefined), warnings.join(' | ')).toBe(true)
    expect(new Set(results.map((r) => r!.digest)).size).toBe(1)
    for (const r of results) expect(r!.test.accuracy).toBeGreaterThan(0.85)
    const steps = 2 * Math.floor(4096 / (4 * 32))
    expect(reports).toHaveLength(steps)
    console.log(reports.filter((r) => r.contributors.length < 4).map((r) => `step ${r.step} missing ${r.missing.join(',')}`).join('\n'), { c: c.peerId, d: d.peerId }, lines.filter((l) => l.level >= 30).map((l) => `${l.name}: ${l.msg} ${l.peer ?? ''}`).join('\n'))
    const short = reports.filter((r) => r.contributors.length !== 4 || r.missing.length > 0).map((r) => `step ${r.step}: ${r.contributors.length} contributors, missing ${r.missing.join(',')}`)
    expect(short, warnings.join(' | ')).toEqual([])

    // C and D never connected: D refused C's dials, and each sent the other every gradient through the broker
    // (C's side may see a dial to D open for a moment before D's gater closes it: D's side never does)
    expect(d.node().connectedPeers()).not.toContain(c.peerId)
    expect(d.node().refusedConnections()['not-allowlisted'] ?? 0).toBeGreaterThan(0)
    const viaBroker = (daemon: PeerDaemon): Readonly<Record<string, number>> | undefined => daemon.session()?.gradientsThroughBroker?.()
    expect(Object.keys(viaBroker(c) ?? {})).toEqual([d.peerId])
    expect(Object.keys(viaBroker(d) ?? {})).toEqual([c.peerId])
    expect(viaBroker(c)![d.peerId]).toBeGreaterThanOrEqual(steps)
    expect(viaBroker(d)![c.peerId]).toBeGreaterThanOrEqual(steps)
    // the members that can connect use libp2p alone
    expect(viaBroker(host), warnings.join(' | ')).toEqual({})
    expect(viaBroker(b), warnings.join(' | ')).toEqual({})
    const told = lines.filter((l) => l.msg.startsWith('transport auto: member not reachable over libp2p'))
    expect(told.map((l) => `${l.name}->${l.peer === c.peerId ? 'c' : l.peer === d.peerId ? 'd' : l.peer}`).sort()).toEqual(['c->d', 'd->c'])
    for (const daemon of daemons) expect(daemon.session()?.rejectionCounts(), warnings.join(' | ')).toEqual({})
    // the end-of-job agreement asks every member for its digest: C and D asked each other through the broker
    for (const name of ['c', 'd']) {
      const agreed = lines.find((l) => l.name === name && l.msg === 'final parameters agree with the majority')
      expect(agreed, name).toMatchObject({ agreeing: 4, unanswered: [] })
    }
    // no divergence, no short round, no re-sync: the only warnings are about the blocked pair
    const unexpected = lines.filter((l) => l.level >= 40 && !(
      (l.msg === 'could not push gradient to peer' && ['c', 'd'].includes(l.name ?? '')) ||
      (l.msg.startsWith('refused a connection from a peer not on the allowlist') && l.name === 'd')))
    expect(unexpected.map((l) => `${l.name}: ${l.msg}`)).toEqual([])

    // the job is over, the daemons live on: no gradient queue is left, the control queues wait
    // for late questions (BROKER_LINGER_AFTER_JOB_MS) or the daemons' stop
    await expectGradientQueuesGone(job.id!)
    await Promise.all(daemons.map(async (daemon) => await daemon.stop()))
    expect(brokerNames('queues', job.id!)).toEqual([])
    expect(brokerNames('exchanges', job.id!)).toEqual([])
  }, 180_000)
})

describe('transport amqp, daemons that live on after the job', () => {
  const { daemons, configFor } = useLocalDaemons('p2pmld-amqp-after-')

  it('delete their gradient queues when the job ends and the rest when they stop', async () => {
    const job = parseJobConfig({ id: `amqp-after-${process.pid}`, transport: 'amqp', model: 'mlp', epochs: 1, batchSize: 32, trainSamples: 1024, minPeers: 3 }, 'test job')
    const loadDatasets = createCachedDatasetLoader()
    for (const name of ['host', 'b', 'c']) {
      const d = await createPeerDaemon({
        config: { ...configFor(name, []), amqpUrl: BROKER_URL },
        log: silentLogger(),
        controlSocket: false,
        reportsDir: null,
        loadDatasets,
        ...(name === 'host' ? { job } : { joinJobId: job.id })
      })
      daemons.push(d)
      await d.start()
    }
    const results = await Promise.all(daemons.map(async (d) => await d.jobDone()))
    expect(new Set(results.map((r) => r?.digest)).size).toBe(1)
    await expectGradientQueuesGone(job.id!)
    expect(brokerNames('queues', `${job.id!}.`).filter((q) => q.endsWith('.ctl'))).toHaveLength(3)
    await Promise.all(daemons.map(async (d) => await d.stop()))
    expect(brokerNames('queues', job.id!)).toEqual([])
    expect(brokerNames('exchanges', job.id!)).toEqual([])
  }, 120_000)
})

/** within a few seconds of every member's end, no queue of the job holds gradients */
async function expectGradientQueuesGone(jobId: string): Promise<void> {
  const gradientQueues = (): string[] => brokerNames('queues', `${jobId}.`).filter((q) => q.includes('.g.'))
  const until = Date.now() + 10_000
  while (gradientQueues().length > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 250))
  expect(gradientQueues()).toEqual([])
}
