/**
 * BlobStore on S3 (@aws-sdk/client-s3): what the Lambda functions and a peer offloading to them
 * share. Region, credentials and endpoint come from the SDK's default chain (AWS_REGION,
 * AWS_ENDPOINT_URL_S3, ...), so tests point the same code at a local S3-compatible server.
 */
import { DeleteObjectsCommand, GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import { BlobNotFoundError, checkBlobKey, type BlobStore } from './blob-store.js'

export interface S3BlobStoreOptions {
  readonly bucket: string
  /** prepended to every key, e.g. 'p2pmld/' */
  readonly prefix?: string
  /** extra client settings (region, credentials, endpoint); absent: the SDK's defaults and environment */
  readonly client?: S3ClientConfig
}

/** S3 DeleteObjects takes at most 1,000 keys per request. */
const DELETE_BATCH = 1000

/**
 * The client every S3 use in p2pmld goes through. Checksums only where S3 requires them: with
 * the SDK's default (a CRC32 trailer on every upload) S3-compatible servers such as s3rver stored
 * corrupted objects (see STACK-NOTES); S3 itself does not need them. Path-style addressing when
 * a custom endpoint is set (a local server has no per-bucket host names).
 */
export function createS3Client(config: S3ClientConfig = {}): S3Client {
  const customEndpoint = config.endpoint !== undefined || (process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL) !== undefined
  return new S3Client({
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    forcePathStyle: customEndpoint,
    ...config
  })
}

export function createS3BlobStore(options: S3BlobStoreOptions): BlobStore {
  const client = createS3Client(options.client)
  const prefix = options.prefix ?? ''
  const keyOf = (key: string): string => prefix + checkBlobKey(key)
  return {
    async put(key, bytes) {
      await client.send(new PutObjectCommand({ Bucket: options.bucket, Key: keyOf(key), Body: bytes, ContentLength: bytes.byteLength }))
    },
    async get(key) {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: options.bucket, Key: keyOf(key) }))
        if (out.Body === undefined) throw new BlobNotFoundError(`s3://${options.bucket}/${keyOf(key)} has no body`)
        return await out.Body.transformToByteArray()
      } catch (error) {
        if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') {
          throw new BlobNotFoundError(`s3://${options.bucket}/${keyOf(key)} does not exist`)
        }
        throw error
      }
    },
    async delete(keys) {
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        const objects = keys.slice(i, i + DELETE_BATCH).map((key) => ({ Key: keyOf(key) }))
        await client.send(new DeleteObjectsCommand({ Bucket: options.bucket, Delete: { Objects: objects, Quiet: true } }))
      }
    },
    async close() {
      client.destroy()
    }
  }
}
