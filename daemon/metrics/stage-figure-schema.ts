/** The wire/JSON form of a stage summary (stage-metrics.ts), shared by `metrics` and the run report. */
import { z } from 'zod'

const count = z.number().int().min(0)

export const StageFigureSchema = z.object({
  stage: z.string(),
  count,
  totalMs: z.number().min(0),
  meanMs: z.number().min(0),
  medianMs: z.number().min(0),
  p95Ms: z.number().min(0),
  maxMs: z.number().min(0),
  /** process CPU time / wall time during the stage, percent (200 = two cores busy) */
  cpuPercent: z.number().min(0),
  /** mean resident set size at the end of the stage */
  rssMiB: z.number().min(0)
})
export type StageFigure = z.infer<typeof StageFigureSchema>
