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
  /**
   * process CPU time / wall time during the stage, percent (200 = two cores busy); null where it
   * cannot be measured, a stage whose median call is under CPU_PERCENT_MIN_MS (tables print '-')
   */
  cpuPercent: z.number().min(0).nullable(),
  /** mean resident set size at the end of the stage */
  rssMiB: z.number().min(0)
})
export type StageFigure = z.infer<typeof StageFigureSchema>

/**
 * Shortest median call (ms) of a stage whose CPU % is measured (StageFigure.cpuPercent). Linux
 * credits the CPU time of a thread running on another core at its scheduler tick (4 ms at the
 * common 250 Hz) or when it sleeps, so a short window reads time spent before it: ONNX Runtime's
 * threads spin-wait between runs, and their spin lands in whichever short stage reads it (an mlp
 * job read compute 325 % and update 426 % on two cores). Over 20 ms a call, one late tick per
 * thread is at most ~20 %.
 */
export const CPU_PERCENT_MIN_MS = 20

