/**
 * The report page as a person sees it: rendered by headless Chromium (Debian's `chromium`)
 * kept off the network, the DOM checked against the report's JSON, a screenshot kept in
 * test-artifacts/. .ci/run installs chromium and sets P2PMLD_REQUIRE_CHROMIUM, so there (and
 * with CI=true) a missing browser fails with the install hint; elsewhere the test skips with it.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CPU_PERCENT_MIN_MS } from '../../daemon/metrics/stage-figure-schema.js'
import { STAGE_COLUMNS } from '../../daemon/report/render-html.js'
import type { RunReport } from '../../daemon/report/report-schema.js'
import { lineChart } from '../../daemon/report/svg-chart.js'
import { writeRunReport, type WrittenReport } from '../../daemon/report/write-report.js'
import { trainForReport } from './support/trained-report.js'

const CHROMIUM = '/usr/bin/chromium'
const INSTALL_HINT = `headless Chromium is needed for the report page test: install it with 'apt-get install -y chromium' (expected at ${CHROMIUM})`
const required = process.env.CI === 'true' || process.env.P2PMLD_REQUIRE_CHROMIUM !== undefined
const installed = existsSync(CHROMIUM)
const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts')
/** launch flags that keep Chromium off the network (STACK-NOTES) */
const OFFLINE_FLAGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps', '--no-default-browser-check']

if (!installed && !required) console.warn(`test/report/report-chromium: skipped: ${INSTALL_HINT}`)

describe.runIf(installed || required)('the run report in headless Chromium', () => {
  let report: RunReport
  let written: WrittenReport
  let dir: string
  let context: BrowserContext
  const requests: string[] = []

  beforeAll(async () => {
    if (!installed) throw new Error(INSTALL_HINT)
    report = (await trainForReport(4)).report
    dir = mkdtempSync(join(tmpdir(), 'p2pmld-report-page-'))
    written = await writeRunReport(dir, report)
    // a fresh profile every run: nothing from an earlier start, no first-run network calls
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: OFFLINE_FLAGS,
      viewport: { width: 1280, height: 900 },
      offline: true
    })
    context.on('request', (r) => requests.push(r.url()))
  }, 180_000)
  afterAll(async () => {
    await context?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('draws every curve with one point per epoch, the stage table equal to the JSON, and asks the network for nothing', async () => {
    const page = await context.newPage()
    await page.goto(pathToFileURL(written.html).href)
    const epochs = report.epochs.length
    expect(epochs).toBe(4)

    const points = async (series: string): Promise<number> => await page.locator(`circle.pt[data-series="${series}"]`).count()
    expect(await points('train-loss')).toBe(report.epochs.filter((e) => e.trainLoss !== null).length)
    expect(await points('validation-loss')).toBe(epochs)
    expect(await points('validation-accuracy')).toBe(epochs)
    expect(await points('lr')).toBe(epochs)
    expect(await points('members')).toBe(report.membership.timeline.length)
    // the plotted values are the report's
    const plotted = await page.locator('circle.pt[data-series="validation-accuracy"]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-y'))))
    expect(plotted).toEqual(report.epochs.map((e) => e.validationAccuracy))
    for (const chart of ['loss', 'accuracy', 'lr', 'membership']) {
      const box = await page.locator(`svg[data-chart="${chart}"]`).boundingBox()
      expect(box?.width, chart).toBeGreaterThan(200)
      expect(box?.height, chart).toBeGreaterThan(100)
    }
    // the polylines span the plot: a curve, not a dot
    const line = await page.locator('polyline[data-series="validation-loss"]').boundingBox()
    expect(line?.width).toBeGreaterThan(300)

    const rows = page.locator('#stages tbody tr')
    expect(await rows.count()).toBe(report.stages.length)
    for (const stage of report.stages) {
      for (const column of STAGE_COLUMNS) {
        const cell = page.locator(`#stages tr[data-stage="${stage.stage}"] td[data-field="${column.field}"]`)
        const value = (stage as unknown as Record<string, number | null>)[column.field]
        // CPU % is null for a stage too short to measure it: an empty data-value and '-'
        expect(await cell.getAttribute('data-value'), `${stage.stage} ${column.field}`).toBe(value === null ? '' : String(value))
        expect(await cell.textContent(), `${stage.stage} ${column.field}`).toBe(value === null ? '-' : (column.format as (v: number) => string)(value))
      }
    }
    // this job's stages are short (a small model): CPU % not measured, and the note says why
    expect(report.stages.filter((s) => s.medianMs < CPU_PERCENT_MIN_MS).map((s) => s.cpuPercent)).toContain(null)
    for (const s of report.stages) expect(s.cpuPercent === null, s.stage).toBe(s.medianMs < CPU_PERCENT_MIN_MS)
    expect(await page.locator('#stages + p.muted').textContent()).toMatch(/^CPU % -: not measured for stages under 20 ms a call/)
    expect(await page.locator('[data-card="test-accuracy"] .v').textContent()).toBe(`${((report.result?.testAccuracy ?? 0) * 100).toFixed(2)} %`)

    mkdirSync(ARTIFACTS, { recursive: true })
    const shot = join(ARTIFACTS, 'run-report.png')
    await page.screenshot({ path: shot, fullPage: true })
    expect(statSync(shot).size).toBeGreaterThan(20_000)
    // file:// for the page itself, nothing else
    expect(requests.filter((u) => !u.startsWith('file://'))).toEqual([])
  }, 120_000)

  it('a learning rate halved down to 1e-6: its tick labels stay inside the chart, clear of the axis label', async () => {
    // 0.000391 read '.000391' and 0.0000061 '.0000061', run past the edge and under 'learning rate'
    const svg = lineChart({
      id: 'lr', title: 'Learning rate per epoch', xLabel: 'epoch', yLabel: 'learning rate', logY: true,
      series: [{ id: 'lr', label: 'learning rate', color: '#000', points: [[0, 0.05], [1, 0.0125], [2, 0.000391], [3, 0.0000061]], step: true }]
    })
    const file = join(dir, 'lr-chart.html')
    writeFileSync(file, `<!doctype html><html><body style="margin:0">${svg}</body></html>`)
    const page = await context.newPage()
    await page.goto(pathToFileURL(file).href)
    const chart = await page.locator('svg[data-chart="lr"]').boundingBox()
    const label = await page.locator('svg[data-chart="lr"] text.label[transform]').boundingBox()
    const ticks = await page.locator('svg[data-chart="lr"] text.tick').evaluateAll((els) => els.map((e) => { const b = (e as unknown as { getBBox(): { x: number, width: number } }).getBBox(); return { text: e.textContent ?? '', box: { x: b.x, width: b.width } } }))
    if (chart === null || label === null) throw new Error('the chart or its axis label was not drawn')
    const yTicks = ticks.filter((t) => t.text.includes('0.'))
    expect(yTicks.map((t) => t.text)).toEqual(expect.arrayContaining(['0.000391', '0.0000061']))
    for (const t of yTicks) {
      expect(t.box.x, t.text).toBeGreaterThanOrEqual(0)
      // the rotated label's right edge is left of every tick label
      expect(t.box.x, t.text).toBeGreaterThan(label.x - chart.x + label.width)
    }
    await page.close()
  }, 60_000)
})
