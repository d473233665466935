import type { StageFigure } from '../../daemon/control/methods.js'
import { formatTable } from './format.js'

/** Per-stage time, CPU and memory, like Table I of the paper. */
export function formatStageTable(stages: readonly StageFigure[]): string {
  return formatTable(
    ['stage', 'count', 'mean ms', 'median ms', 'p95 ms', 'max ms', 'total s', 'CPU %', 'RSS MiB'],
    stages.map((s) => [
      s.stage,
      String(s.count),
      s.meanMs.toFixed(2),
      s.medianMs.toFixed(2),
      s.p95Ms.toFixed(2),
      s.maxMs.toFixed(2),
      (s.totalMs / 1000).toFixed(2),
      s.cpuPercent.toFixed(0),
      s.rssMiB.toFixed(0)
    ])
  )
}
