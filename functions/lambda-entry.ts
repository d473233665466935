/**
 * The AWS Lambda entry of the gradient function (Node.js runtime, handler `handler.handler` in
 * the deployment zip): the same handler as the pool's workers, on S3 (the event names the bucket
 * and prefix). Sessions, parameters and S3 clients stay cached across warm invocations.
 */
import '../polyfill.js'
import { availableParallelism } from 'node:os'
import type { BlobStore } from './blob-store.js'
import { createGradientHandler, GradientEventError } from './gradient-handler.js'
import type { GradientEvent, GradientTaskResult } from './gradient-task.js'
import { createS3BlobStore } from './s3-blob-store.js'

const stores = new Map<string, BlobStore>()

function storeFor(event: GradientEvent): BlobStore {
  if (event.bucket === undefined) throw new GradientEventError('bad gradient event: bucket: required when the function runs on Lambda (the S3 bucket holding the blobs)')
  const id = `${event.bucket}/${event.prefix ?? ''}`
  let store = stores.get(id)
  if (store === undefined) {
    store = createS3BlobStore({ bucket: event.bucket, prefix: event.prefix })
    stores.set(id, store)
  }
  return store
}

// a Lambda function gets vCPUs in proportion to its memory (1 per 1,769 MB)
const gradients = createGradientHandler(storeFor, { intraOpThreads: Math.max(1, availableParallelism()) })

export async function handler(event: unknown): Promise<GradientTaskResult> {
  return await gradients.handle(event)
}
