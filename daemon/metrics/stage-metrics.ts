import { OFFLOAD_STAGES, type GradientObserver, type OffloadStage } from '../../ml/core/types.js'
import { CPU_PERCENT_MIN_MS } from './stage-figure-schema.js'

/**
 * Per-stage time, CPU and memory of training, as in Table I of the paper:
 * compute gradients, compress, send, receive, aggregate, update, validate.
 * A peer that offloads its gradients (functions/) also records compute's sub-stages
 * `offload.upload`, `offload.invoke`, `offload.wait`, `offload.download`, `offload.combine`
 * (their time is inside `compute`'s).
 * CPU is process CPU time over wall time (200 % = both cores busy), and memory the resident set,
 * both read on every CPU_SAMPLE_EVERY-th call of a stage only (CPU % leaves out the first call, a
 * start-up one, once a later call was read): right after an ONNX Runtime run
 * (its threads still spinning) process.cpuUsage() cost ~16 us and the RSS read ~12 us, which at
 * 3 reads per stage was a fifth of a small model's step.
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
  /**
   * process CPU time / wall time over the stage's sampled calls, in percent; null for a stage whose
   * median call is under CPU_PERCENT_MIN_MS (stage-figure-schema.ts: not measurable so)
   */
  readonly cpuPercent: number | null
  /** mean resident set size at the end of the stage's sampled calls, MiB */
  readonly rssMiB: number
}

export interface StageRecorder {
  time<T>(stage: TrainingStage, work: () => Promise<T> | T): Promise<T>
  /** one call of a stage; `cpuMs` undefined: its CPU time was not read (see CPU_SAMPLE_EVERY) */
  record(stage: TrainingStage, wallMs: number, cpuMs?: number): void
  summary(): StageSummary[]
  reset(): void
  /**
   * call `listener` with every recorded stage (wall and CPU ms) from now on; returns the
   * unsubscribe. `replay`: first with the calls recorded before (their wall ms, CPU undefined; the
   * last SAMPLE_WINDOW of each stage), for a listener that subscribes once the first step is done
   */
  onRecord(listener: StageListener, replay?: boolean): () => void
}

export type StageListener = (stage: TrainingStage, wallMs: number, cpuMs: number | undefined) => void

const SAMPLE_WINDOW = 2048
/** CPU time and RSS are read on the first call of a stage and every this many after */
export const CPU_SAMPLE_EVERY = 8

interface StageAccumulator {
  count: number
  totalMs: number
  /** wall and CPU time of the calls after the first whose CPU time was read */
  sampledMs: number
  cpuMs: number
  /** the first call's (start-up: graph load, warm-up): used only while no later call was read */
  firstMs: number
  firstCpuMs: number
  rssSum: number
  rssCount: number
  maxMs: number
  recent: number[]
}

export interface StageRecorderOptions {
  /** read CPU time and RSS on every this-many-th call of a stage (default CPU_SAMPLE_EVERY; 1: every call, for a few timed calls) */
  readonly cpuSampleEvery?: number
}

export function createStageRecorder(options: StageRecorderOptions = {}): StageRecorder {
  const sampleEvery = Math.max(1, Math.floor(options.cpuSampleEvery ?? CPU_SAMPLE_EVERY))
  const stages = new Map<TrainingStage, StageAccumulator>()
  const listeners = new Set<StageListener>()
  const accumulator = (stage: TrainingStage): StageAccumulator => {
    let acc = stages.get(stage)
    if (acc === undefined) {
      acc = { count: 0, totalMs: 0, sampledMs: 0, cpuMs: 0, firstMs: 0, firstCpuMs: 0, rssSum: 0, rssCount: 0, maxMs: 0, recent: [] }
      stages.set(stage, acc)
    }
    return acc
  }
  const record = (stage: TrainingStage, wallMs: number, cpuMs?: number): void => {
    const acc = accumulator(stage)
    const first = acc.count === 0
    acc.count++
    acc.totalMs += wallMs
    acc.maxMs = Math.max(acc.maxMs, wallMs)
    if (cpuMs !== undefined) {
      if (first) {
        acc.firstMs = wallMs
        acc.firstCpuMs = cpuMs
      } else {
        acc.sampledMs += wallMs
        acc.cpuMs += cpuMs
      }
      acc.rssSum += process.memoryUsage.rss() / (1024 * 1024)
      acc.rssCount++
    }
    acc.recent.push(wallMs)
    if (acc.recent.length > SAMPLE_WINDOW) acc.recent.shift()
    for (const listener of listeners) listener(stage, wallMs, cpuMs)
  }
  return {
    async time<T>(stage: TrainingStage, work: () => Promise<T> | T): Promise<T> {
      const cpuStart = (stages.get(stage)?.count ?? 0) % sampleEvery === 0 ? process.cpuUsage() : undefined
      const start = performance.now()
      try {
        return await work()
      } finally {
        const wallMs = performance.now() - start
        if (cpuStart === undefined) record(stage, wallMs)
        else {
          const cpu = process.cpuUsage(cpuStart)
          record(stage, wallMs, (cpu.user + cpu.system) / 1000)
        }
      }
    },
    record,
    summary(): StageSummary[] {
      return TRAINING_STAGES.filter((stage) => stages.has(stage)).map((stage) => {
        const acc = accumulator(stage)
        const sorted = [...acc.recent].sort((a, b) => a - b)
        const quantile = (q: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]
        // the middle call, or the mean of the middle two (nearest rank gave the larger of two calls:
        // a validate stage of 2 calls read median 14.2 ms beside a mean of 9.1)
        const half = sorted.length >> 1
        const median = sorted.length === 0 ? 0 : sorted.length % 2 === 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2
        return {
          stage,
          count: acc.count,
          totalMs: acc.totalMs,
          meanMs: acc.count === 0 ? 0 : acc.totalMs / acc.count,
          medianMs: median,
          p95Ms: quantile(0.95),
          maxMs: acc.maxMs,
          cpuPercent: median < CPU_PERCENT_MIN_MS ? null : acc.sampledMs > 0 ? (100 * acc.cpuMs) / acc.sampledMs : acc.firstMs > 0 ? (100 * acc.firstCpuMs) / acc.firstMs : 0,
          rssMiB: acc.rssCount === 0 ? 0 : acc.rssSum / acc.rssCount
        }
      })
    },
    reset(): void {
      stages.clear()
    },
    onRecord(listener: StageListener, replay = false): () => void {
      if (replay) for (const [stage, acc] of stages) for (const wallMs of acc.recent) listener(stage, wallMs, undefined)
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
}

/** The observer a GradientComputer reports its offload sub-stages to: `offload.<stage>` in `stages`. */
export function offloadObserver(stages: StageRecorder): GradientObserver {
  return { time: async (stage: OffloadStage, work) => await stages.time(`offload.${stage}`, work) }
}
