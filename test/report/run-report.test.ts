/** The run report: what it records of a job, its schema, and the self-contained HTML page. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { buildRunReport } from '../../daemon/report/build-report.js'
import { createReportRecorder } from '../../daemon/report/report-recorder.js'
import { parseRunReport, RunReportSchema } from '../../daemon/report/report-schema.js'
import { renderRunReportHtml } from '../../daemon/report/render-html.js'
import { writeRunReport } from '../../daemon/report/write-report.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { trainForReport, type TrainedReport } from './support/trained-report.js'

const A = 'peer-a'
const B = 'peer-b'
const C = 'peer-c'
const D = 'peer-d'

function step(step: number, members: string[], digest: string, peerDigests: Record<string, string>): StepReport {
  return { step, epoch: 0, members, contributors: members, samples: 32 * members.length, missing: [], digest, fullDigest: true, peerDigests: new Map(Object.entries(peerDigests)), loss: 1, waitedMs: 1, stepMs: 2, epochEnded: false, stepInEpoch: 1, stepsInEpoch: 10 }
}

describe('buildRunReport', () => {
  // A hosts from step 0 with B and C; D joins at 12; C is evicted at 20; B leaves cleanly at 25
  const membership = { version: 5, snapshot: { members: [
    { peerId: A, joinStep: 0, leaveStep: null },
    { peerId: B, joinStep: 0, leaveStep: 25 },
    { peerId: C, joinStep: 0, leaveStep: 20 },
    { peerId: D, joinStep: 12, leaveStep: null }
  ] } }
  let clock = 0
  const recorder = createReportRecorder(() => clock)
  recorder.events.onStep(step(14, [A, B, C, D], 'd14', { [B]: 'd14', [C]: 'd14', [D]: 'd14' }))
  clock = 1500
  recorder.events.onEpoch({ epoch: 0, step: 15, trainLoss: 0.9, validationLoss: 0.7, validationAccuracy: 0.8, lr: 0.1, durationMs: 30 })
  recorder.events.onStep(step(29, [A, D], 'd29', { [D]: 'dXX' }))
  clock = 3000
  recorder.events.onEpoch({ epoch: 1, step: 30, trainLoss: NaN, validationLoss: 0.5, validationAccuracy: 0.9, lr: 0.05, durationMs: 25 })
  const report = buildRunReport({
    source: 'job-end',
    peerId: A,
    jobId: 'j1',
    config: parseJobConfig({ id: 'j1', epochs: 2 }, 'test'),
    state: 'finished',
    progress: { step: 30, epoch: 2, lr: 0.05 },
    result: { reason: 'epochs', test: { loss: 0.4, accuracy: 0.91, count: 100 }, step: 30, epoch: 2, history: [], digest: 'final' },
    history: [
      { epoch: 0, step: 15, trainLoss: 0.9, validationLoss: 0.7, validationAccuracy: 0.8, lr: 0.1, durationMs: 30 },
      { epoch: 1, step: 30, trainLoss: NaN, validationLoss: 0.5, validationAccuracy: 0.9, lr: 0.05, durationMs: 25 }
    ],
    epochMarks: recorder.epochMarks(),
    membership,
    leaves: new Map([[B, 25]]),
    stages: [],
    network: { bytesSent: 1000, bytesReceived: 2000, messagesSent: 3, messagesReceived: 4 },
    bytesByPeer: [{ peer: D, bytesSent: 10, bytesReceived: 20 }, { peer: B, bytesSent: 1, bytesReceived: 2 }],
    lastStep: recorder.lastStep(),
    wallMs: recorder.elapsedMs()
  })

  it('passes its own schema (JSON has no NaN: a missing train loss is null)', () => {
    const roundTripped = parseRunReport(JSON.parse(JSON.stringify(report)), 'test report')
    expect(roundTripped).toEqual(report)
    expect(report.epochs[1].trainLoss).toBeNull()
  })

  it('tells joins, evictions and clean leaves apart', () => {
    expect(report.membership.members.map((m) => [m.peerId, m.exit])).toEqual([[A, null], [B, 'left'], [C, 'evicted'], [D, null]])
    expect(report.membership.joins).toEqual([{ peerId: A, step: 0 }, { peerId: B, step: 0 }, { peerId: C, step: 0 }, { peerId: D, step: 12 }])
    expect(report.membership.evictions).toEqual([{ peerId: C, step: 20 }])
    expect(report.membership.leaves).toEqual([{ peerId: B, step: 25 }])
  })

  it('lists the earlier exit of a member admitted again (its record holds the latest membership)', () => {
    // C evicted at 20 and re-admitted at 20 (the record keeps join step 0); B left at 5, back at 9
    const readmitted = buildRunReport({
      source: 'job-end', peerId: A, config: parseJobConfig({ id: 'j2' }, 'test'), state: 'finished', progress: { step: 30, epoch: 1, lr: 0.1 }, history: [], stages: [],
      membership: { version: 9, snapshot: { members: [
        { peerId: A, joinStep: 0, leaveStep: null },
        { peerId: B, joinStep: 9, leaveStep: null, readmissions: 1, previousLeaveStep: 5 },
        { peerId: C, joinStep: 0, leaveStep: null, readmissions: 1, previousLeaveStep: 20 }
      ] } },
      leaves: new Map([[B, 5]])
    })
    expect(readmitted.membership.evictions).toEqual([{ peerId: C, step: 20 }])
    expect(readmitted.membership.leaves).toEqual([{ peerId: B, step: 5 }])
    expect(readmitted.membership.joins).toEqual([{ peerId: A, step: 0 }, { peerId: C, step: 0 }, { peerId: B, step: 9 }, { peerId: C, step: 20 }])
    expect(readmitted.membership.members.map((m) => m.exit)).toEqual([null, null, null])
    // the page's members table says it too (its rows read '0 - member' of C, whom the summary counted as evicted)
    const html = renderRunReportHtml(readmitted)
    const row = (peer: string): string => html.match(new RegExp(`<tr data-peer="${peer}">(.*?)</tr>`))![1]
    expect(row(C)).toMatch(/<td>0<\/td><td>-<\/td><td><span class="muted">member<\/span>; evicted at 20, back at 20<\/td>$/)
    expect(row(B)).toMatch(/<td>9<\/td><td>-<\/td><td><span class="muted">member<\/span>; left at 5, back at 9<\/td>$/)
    expect(row(A)).toMatch(/<span class="muted">member<\/span><\/td>$/)
  })

  it('draws membership over steps from every change', () => {
    expect(report.membership.timeline).toEqual([
      { step: 0, members: 3 }, { step: 12, members: 4 }, { step: 20, members: 3 }, { step: 25, members: 2 }, { step: 29, members: 2 }
    ])
  })

  it('marks each epoch with its time, digest and members, and compares the last step\'s digests', () => {
    expect(report.epochs.map((e) => [e.atMs, e.digest, e.members])).toEqual([[1500, 'd14', 4], [3000, 'd29', 2]])
    expect(report.digests).toEqual({ own: 'final', lastStep: 'd29', peers: { [D]: 'dXX' }, agree: false })
    // the page tells the final digest from the last step's, which the members' are compared with
    const html = renderRunReportHtml(report)
    expect(html).toContain('<p>this peer\'s final parameters: <code id="own-digest">final</code></p>')
    expect(html).toContain('<p>at the start of the last step: this peer <code>d29</code>; the digests the members sent with its gradients: <span class="bad">differ</span></p>')
    // reports written before the field read as they are
    const { lastStep: _lastStep, ...older } = report.digests
    expect(parseRunReport(JSON.parse(JSON.stringify({ ...report, digests: older })), 'older report').digests.lastStep).toBeUndefined()
    expect(report.network.byPeer.map((p) => p.peer)).toEqual([B, D])
    expect(report.wallMs).toBe(3000)
  })

  it('a schema error names the field', () => {
    expect(() => parseRunReport({ ...report, stages: [{ stage: 'compute' }] }, 'file x.json')).toThrow(/file x\.json is not a p2pmld run report.*field 'stages\.0\.count'/)
  })

  it('prints a small loss in significant digits and the learning rate without float noise in the page\'s epoch table', () => {
    const tiny = buildRunReport({
      source: 'demo', peerId: A, config: parseJobConfig({}, 't'), state: 'training', progress: { step: 9, epoch: 1, lr: 0.1 * 0.1 * 0.1 }, stages: [],
      history: [{ epoch: 0, step: 9, trainLoss: 0.0000123, validationLoss: 0.25, validationAccuracy: 1, lr: 0.1 * 0.1 * 0.1, durationMs: 1 }]
    })
    const html = renderRunReportHtml(tiny)
    expect(html).toContain('<tr><td>1</td><td>9</td><td>0.0000123</td><td>0.2500</td><td>100.00 %</td><td>0.001</td>')
    expect(html).not.toContain('0.0010000000000000002</')
  })

  it('renders HTML that needs nothing from outside and escapes what it prints', () => {
    const hostile = buildRunReport({ source: 'demo', peerId: '<img src=x onerror=alert(1)>', config: parseJobConfig({ model: 'a</script><script>alert(1)</script>.onnx' }, 't'), state: 'training', progress: { step: 0, epoch: 0, lr: 0.1 }, history: [], stages: [] })
    for (const html of [renderRunReportHtml(report), renderRunReportHtml(hostile)]) {
      expect(html).not.toMatch(/<(script|img|link|iframe)[^>]*\ssrc=/i)
      expect(html).not.toMatch(/<link\b/i)
      expect(html).not.toMatch(/url\(/i)
      expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/)
      expect(html).not.toContain('<img src=x')
      expect(html).not.toContain('</script><script>alert(1)')
      // the only script element is the embedded JSON, and it parses back to the report
      expect(html.match(/<script\b/g)).toHaveLength(1)
      const data = html.match(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/)
      expect(RunReportSchema.parse(JSON.parse(data![1]))).toBeTruthy()
    }
  })
})

describe('the report of a real training run', () => {
  let trained: TrainedReport
  let dir: string
  beforeAll(async () => {
    trained = await trainForReport(3)
    dir = mkdtempSync(join(tmpdir(), 'p2pmld-report-'))
  }, 120_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('holds every epoch, the runner\'s stage figures and the result', () => {
    const { report, result } = trained
    expect(report.epochs).toHaveLength(result.history.length)
    expect(report.epochs.map((e) => e.validationAccuracy)).toEqual(result.history.map((h) => h.validationAccuracy))
    expect(report.stages).toEqual(result.stages)
    expect(report.stages.find((s) => s.stage === 'compute')?.count).toBe(result.step)
    expect(report.result?.testAccuracy).toBe(result.test.accuracy)
    expect(report.result?.digest).toBe(result.digest)
    expect(report.job.trainSamples).toBe(1024)
    expect(report.job.parameterCount).toBe(784 * 128 + 128 + 128 * 10 + 10)
    // recorded live: each epoch knows when it ended and the digest of its last step
    for (const e of report.epochs) {
      expect(e.atMs).toBeGreaterThan(0)
      expect(e.digest).toMatch(/^[0-9a-f]{64}$/)
    }
  })

  it('is written as JSON and HTML side by side', async () => {
    const written = await writeRunReport(dir, trained.report)
    expect(written.json.endsWith('.json') && written.html.endsWith('.html')).toBe(true)
    expect(written.html.slice(0, -5)).toBe(written.json.slice(0, -5))
    expect(parseRunReport(JSON.parse(readFileSync(written.json, 'utf8')), written.json)).toEqual(trained.report)
    const html = readFileSync(written.html, 'utf8')
    expect(html.startsWith('<!doctype html>')).toBe(true)
    expect(html).toContain('data-chart="loss"')
  })
})
