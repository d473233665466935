/** Writes a run report as `<dir>/<job>-<time>.json` and `.html` side by side (atomically). */
import { mkdir, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { renderRunReportHtml } from './render-html.js'
import type { RunReport } from './report-schema.js'

export interface WrittenReport {
  readonly json: string
  readonly html: string
}

/** The reports directory inside a daemon's data dir. */
export const REPORTS_DIR = 'reports'

/**
 * Fails when `dir` exists and is not a directory (a report directory named as a file), naming
 * `flag` (how the user gave it) and the fix; a directory that does not exist yet is fine (it is
 * created). For commands that should fail before their work, not after it.
 */
export async function checkReportDir(dir: string, flag: string): Promise<void> {
  const found = await stat(dir).catch(() => undefined)
  if (found !== undefined && !found.isDirectory()) throw new Error(`${flag} ${dir} is a file, not a directory: give the directory to write the report into (created if missing)`)
}

/**
 * Writes `report` into `dir` (created if missing) as JSON and HTML; resolves with their paths.
 * @throws when `dir` is a file (checkReportDir's message, flag `report directory`) or cannot be written
 */
export async function writeRunReport(dir: string, report: RunReport): Promise<WrittenReport> {
  await checkReportDir(dir, 'report directory')
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
