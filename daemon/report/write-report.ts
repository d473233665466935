/** Writes a run report as `<dir>/<job>-<time>.json` and `.html` side by side (atomically). */
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { renderRunReportHtml } from './render-html.js'
import type { RunReport } from './report-schema.js'

export interface WrittenReport {
  readonly json: string
  readonly html: string
}

/** The reports directory inside a daemon's data dir. */
export const REPORTS_DIR = 'reports'

export async function writeRunReport(dir: string, report: RunReport): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true })
  const stamp = report.generatedAt.replace(/[:.]/g, '-')
  const base = join(dir, `${(report.job.id ?? 'job').replace(/[^A-Za-z0-9._-]/g, '_')}-${stamp}`)
  const json = `${base}.json`
  const html = `${base}.html`
  await writeAtomically(json, JSON.stringify(report, null, 2) + '\n')
  await writeAtomically(html, renderRunReportHtml(report))
  return { json, html }
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`
  await writeFile(temp, content, { mode: 0o644 })
  await rename(temp, path)
}
