/**
 * A pool worker thread: the gradient handler on the pool's local-files store. Messages in:
 * `{ id, event }`; out: `{ id, ok: true, result }` or `{ id, ok: false, error }`.
 */
import '../../polyfill.js'
import { parentPort, workerData } from 'node:worker_threads'
import { createGradientHandler } from '../gradient-handler.js'
import { createLocalFileBlobStore } from '../local-file-blob-store.js'

interface PoolWorkerData {
  readonly root: string
  readonly intraOpThreads: number
}

const data = workerData as PoolWorkerData
const store = createLocalFileBlobStore(data.root)
const handler = createGradientHandler(() => store, { intraOpThreads: data.intraOpThreads })

parentPort?.on('message', (message: { id: number, event?: unknown, close?: boolean }) => {
  if (message.close === true) {
    void handler.close().finally(() => parentPort?.close())
    return
  }
  handler.handle(message.event).then(
    (result) => parentPort?.postMessage({ id: message.id, ok: true, result }),
    (error: unknown) => parentPort?.postMessage({ id: message.id, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
  )
})
