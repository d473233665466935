/**
 * The `pool` dispatcher: N worker threads, each running the gradient handler with its own ONNX
 * Runtime session on a local-files blob store. Micro-batches go to idle workers in order; a
 * worker that dies fails its micro-batch (the caller computes it locally) and is replaced.
 */
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { GradientObserver } from '../../ml/core/types.js'
import type { GradientEvent, GradientTaskResult } from '../gradient-task.js'
import { describeError, type DispatchOutcome, type GradientDispatcher } from '../offload/dispatcher.js'

export interface WorkerPoolOptions {
  /** the local-files store's directory (the workers read and write blobs there) */
  readonly root: string
  /** worker threads (default: cores - 1, at least 1) */
  readonly workers?: number
  /** ORT intra-op threads per worker (default 1) */
  readonly threadsPerWorker?: number
}

/** cores - 1 (the peer's main thread keeps one), at least 1. */
export function defaultPoolWorkers(): number {
  return Math.max(1, availableParallelism() - 1)
}

interface Job {
  readonly id: number
  readonly event: GradientEvent
  resolve(outcome: DispatchOutcome): void
}

interface PoolWorker {
  readonly worker: Worker
  job: Job | undefined
}

/**
 * The worker's entry: the compiled worker-entry.js beside this file, or, when running from source
 * (tests, `tsx bench/...`), ts-worker-bootstrap.mjs, which registers tsx's hooks in the worker and
 * imports worker-entry.ts (execArgv `--import` does not reach worker threads on Node 20).
 */
function workerEntry(): URL {
  const js = new URL('./worker-entry.js', import.meta.url)
  return existsSync(fileURLToPath(js)) ? js : new URL('./ts-worker-bootstrap.mjs', import.meta.url)
}

export function createWorkerPool(options: WorkerPoolOptions): GradientDispatcher {
  const size = options.workers ?? defaultPoolWorkers()
  const entry = workerEntry()
  const workers: PoolWorker[] = []
  const queue: Job[] = []
  let nextId = 0
  let invocations = 0
  let closed = false

  const spawn = (): PoolWorker => {
    const worker = new Worker(entry, {
      workerData: { root: options.root, intraOpThreads: options.threadsPerWorker ?? 1 }
    })
    const slot: PoolWorker = { worker, job: undefined }
    worker.on('message', (message: { id: number, ok: boolean, result?: GradientTaskResult, error?: string }) => {
      const job = slot.job
      if (job === undefined || job.id !== message.id) return
      slot.job = undefined
      job.resolve(message.ok ? { ok: true, result: message.result! } : { ok: false, error: message.error ?? 'unknown worker error' })
      pump()
    })
    const fail = (error: unknown): void => {
      const job = slot.job
      slot.job = undefined
      const index = workers.indexOf(slot)
      if (index >= 0) workers.splice(index, 1)
      job?.resolve({ ok: false, error: `pool worker died: ${describeError(error)}` })
      if (!closed) {
        workers.push(spawn())
        pump()
      }
    }
    worker.on('error', fail)
    worker.on('exit', (code) => { if (!closed) fail(new Error(`exit code ${code}`)) })
    return slot
  }

  const pump = (): void => {
    for (const slot of workers) {
      if (queue.length === 0) return
      if (slot.job !== undefined) continue
      const job = queue.shift()!
      slot.job = job
      invocations++
      slot.worker.postMessage({ id: job.id, event: job.event })
    }
  }

  for (let i = 0; i < size; i++) workers.push(spawn())

  return {
    kind: 'pool',
    async dispatch(events: readonly GradientEvent[], observer: GradientObserver): Promise<DispatchOutcome[]> {
      if (closed) throw new Error('the worker pool is closed')
      const pending = await observer.time('invoke', () => events.map((event) => new Promise<DispatchOutcome>((resolve) => {
        queue.push({ id: nextId++, event, resolve })
        pump()
      })))
      return await observer.time('wait', async () => await Promise.all(pending))
    },
    invocations: () => invocations,
    async close() {
      if (closed) return
      closed = true
      for (const job of queue.splice(0)) job.resolve({ ok: false, error: 'the worker pool closed' })
      await Promise.all(workers.splice(0).map(async (slot) => {
        slot.job?.resolve({ ok: false, error: 'the worker pool closed' })
        await slot.worker.terminate()
      }))
    }
  }
}
