import { OFFLOAD_STAGES, type GradientObserver, type OffloadStage } from '../../ml/core/types.js'

/**
 * Per-stage time, CPU and memory of training, as in Table I of the paper:
 * compute gradients, compress, send, receive, aggregate, update, validate.
 * A peer that offloads its gradients (functions/) also records compute's sub-stages
 * `offload.upload`, `offload.invoke`, `offload.wait`, `offload.download`, `offload.combine`
 * (their time is inside `compute`'s).
 * CPU is process CPU time over wall time (200 % = both cores busy).
 */
export const TRAINING_STAGES = ['compute', ...OFFLOAD_STAGES.map((s) => `offload.${s}` as const), 'compress', 'send', 'receive', 'aggregate', 'update', 'validate'] as const
export type TrainingStage = typeof TRAINING_STAGES[number]

export interface StageSummary {
  readonly stage: TrainingStage
  readonly count: number
  readonly totalMs: number
  readonly meanMs: number
  /** median over the last 2048 (a start-up step skews the mean, not this) */
  readonly medianMs: number
  readonly p95Ms: number
  /** the longest one since the start (or the last reset) */
  readonly maxMs: number
  /** process CPU time / wall time over this stage, in percent */
  readonly cpuPercent: number
  /** mean resident set size at the end of the stage, MiB */
  readonly rssMiB: number
}

export interface StageRecorder {
  time<T>(stage: TrainingStage, work: () => Promise<T> | T): Promise<T>
  record(stage: TrainingStage, wallMs: number, cpuMs: number): void
  summary(): StageSummary[]
  reset(): void
  /** call `listener` with every recorded stage (wall and CPU ms) from now on; returns the unsubscribe */
  onRecord(listener: StageListener): () => void
}

export type StageListener = (stage: TrainingStage, wallMs: number, cpuMs: number) => void

const SAMPLE_WINDOW = 2048

interface StageAccumulator {
  count: number
  totalMs: number
  cpuMs: number
  rssSum: number
  maxMs: number
  recent: number[]
}

export function createStageRecorder(): StageRecorder {
  const stages = new Map<TrainingStage, StageAccumulator>()
  const listeners = new Set<StageListener>()
  const accumulator = (stage: TrainingStage): StageAccumulator => {
    let acc = stages.get(stage)
    if (acc === undefined) {
      acc = { count: 0, totalMs: 0, cpuMs: 0, rssSum: 0, maxMs: 0, recent: [] }
      stages.set(stage, acc)
    }
    return acc
  }
  const record = (stage: TrainingStage, wallMs: number, cpuMs: number): void => {
    const acc = accumulator(stage)
    acc.count++
    acc.totalMs += wallMs
    acc.maxMs = Math.max(acc.maxMs, wallMs)
    acc.cpuMs += cpuMs
    acc.rssSum += process.memoryUsage.rss() / (1024 * 1024)
    acc.recent.push(wallMs)
    if (acc.recent.length > SAMPLE_WINDOW) acc.recent.shift()
    for (const listener of listeners) listener(stage, wallMs, cpuMs)
  }
  return {
    async time<T>(stage: TrainingStage, work: () => Promise<T> | T): Promise<T> {
      const cpuStart = process.cpuUsage()
      const start = performance.now()
      try {
        return await work()
      } finally {
        const cpu = process.cpuUsage(cpuStart)
        record(stage, performance.now() - start, (cpu.user + cpu.system) / 1000)
      }
    },
    record,
    summary(): StageSummary[] {
      return TRAINING_STAGES.filter((stage) => stages.has(stage)).map((stage) => {
        const acc = accumulator(stage)
        const sorted = [...acc.recent].sort((a, b) => a - b)
        const quantile = (q: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]
        return {
          stage,
          count: acc.count,
          totalMs: acc.totalMs,
          meanMs: acc.count === 0 ? 0 : acc.totalMs / acc.count,
          medianMs: quantile(0.5),
          p95Ms: quantile(0.95),
          maxMs: acc.maxMs,
          cpuPercent: acc.totalMs === 0 ? 0 : (100 * acc.cpuMs) / acc.totalMs,
          rssMiB: acc.count === 0 ? 0 : acc.rssSum / acc.count
        }
      })
    },
    reset(): void {
      stages.clear()
    },
    onRecord(listener: StageListener): () => void {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
}

/** The observer a GradientComputer reports its offload sub-stages to: `offload.<stage>` in `stages`. */
export function offloadObserver(stages: StageRecorder): GradientObserver {
  return { time: async (stage: OffloadStage, work) => await stages.time(`offload.${stage}`, work) }
}
