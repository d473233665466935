import type { StageFigure } from '../../daemon/control/methods.js'
import { CPU_PERCENT_MIN_MS } from '../../daemon/metrics/stage-figure-schema.js'
import { formatTable } from './format.js'

/**
 * Per-stage time, CPU and memory, like Table I of the paper; CPU % as '-' for stages too short to
 * measure it (its cpuPercent null), with a line saying so.
 */
export function formatStageTable(stages: readonly StageFigure[]): string {
  const table = formatTable(
    ['stage', 'count', 'mean ms', 'median ms', 'p95 ms', 'max ms', 'total s', 'CPU %', 'RSS MiB'],
    stages.map((s) => [
      s.stage,
      String(s.count),
      s.meanMs.toFixed(2),
      s.medianMs.toFixed(2),
      s.p95Ms.toFixed(2),
      s.maxMs.toFixed(2),
      (s.totalMs / 1000).toFixed(2),
      s.cpuPercent?.toFixed(0) ?? '-',
      s.rssMiB.toFixed(0)
    ])
  )
  return stages.some((s) => s.cpuPercent === null)
    ? `${table}\nCPU % -: not measured for stages under ${CPU_PERCENT_MIN_MS} ms a call (Linux credits other threads' CPU time in scheduler ticks)`
    : table
}
