/**
 * `p2pmld report`: the run report of the job a daemon runs (over its control socket), or of a
 * checkpoint (--checkpoint), written as JSON + a self-contained HTML page.
 */
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { defaultDataDir } from '../../config/daemon-config.js'
import type { RunReport } from '../../daemon/report/report-schema.js'
import { checkReportDir, REPORTS_DIR, writeRunReport, type WrittenReport } from '../../daemon/report/write-report.js'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { action } from '../support/output.js'

interface ReportFlags extends ClientOptions {
  readonly out: string
  readonly checkpoint?: string
}

export interface ReportDirFlags {
  readonly reportDir?: string
  /** commander's --no-report */
  readonly report?: boolean
}

/** Where `demo` / `train` write their report: --report-dir, else the default data dir's reports/; undefined with --no-report. */
export function reportDirOption(flags: ReportDirFlags): string | undefined {
  if (flags.report === false) return undefined
  return resolve(flags.reportDir ?? join(defaultDataDir(), REPORTS_DIR))
}

/** The lines `demo`, `train`, `start` and `report` print for a written report. */
export function describeWrittenReport(written: WrittenReport): string {
  return `run report: ${written.html}\n  (JSON: ${written.json})`
}

export function registerReportCommand(program: Command): void {
  addClientOptions(program.command('report').description("write the run report (JSON + HTML: curves, membership, Table I stages, bytes, digests) of a daemon's job or of a checkpoint"))
    .option('--out <dir>', 'directory to write the report to', '.')
    .option('--checkpoint <path>', "build it from a checkpoint (a data dir, its checkpoint/ dir or the file) instead of asking a daemon")
    .action(action(async (flags: ReportFlags) => {
      // before asking a daemon or reading a checkpoint
      if (flags.json !== true) await checkReportDir(resolve(flags.out), '--out')
      // loaded here: the checkpoint decoder and libp2p's peer ids, which the other commands skip
      const report: RunReport = flags.checkpoint !== undefined
        ? await (await import('../../daemon/report/checkpoint-report.js')).reportFromCheckpoint(resolve(flags.checkpoint))
        : await withClient(flags, async (client) => await client.report(), (dataDir) => `build the report of the job in its checkpoint with \`p2pmld report --checkpoint ${dataDir}\``)
      if (flags.json === true) {
        process.stdout.write(JSON.stringify(report, null, 2) + '\n')
        return
      }
      const written = await writeRunReport(resolve(flags.out), report)
      process.stdout.write(describeWrittenReport(written) + '\n')
    }))
}
