/**
 * What a gradient function receives and returns, and the binary formats of the blobs it reads:
 * the training-graph bundle (ONNX bytes + the names and layout needed to run them) and a
 * micro-batch. Events and results are JSON (Lambda payloads, Step Functions state), checked with
 * zod at the function's boundary; blobs carry a magic and a version and are length-checked.
 */
import { z } from 'zod'
import type { Batch, ParameterSpec } from '../ml/core/types.js'
import type { GraphSignature, RunnableModel } from '../ml/engine/training-run.js'

const BlobKeySchema = z.string().min(1).max(900)

/** One micro-batch's gradient request. Keys are relative to the store the function was given. */
export const GradientEventSchema = z.object({
  version: z.literal(1),
  /** S3 bucket (Lambda); absent for the worker pool, whose store is a local directory */
  bucket: z.string().min(3).max(63).optional(),
  /** S3 key prefix (Lambda) */
  prefix: z.string().max(200).optional(),
  /** training-graph bundle, content-addressed: a warm function reuses its session for the same key */
  graph: BlobKeySchema,
  /** parameters (float32, little-endian), content-addressed: read once per step per function */
  params: BlobKeySchema,
  /** the micro-batch (encodeMicroBatch) */
  batch: BlobKeySchema,
  /** where to write the gradient (float32, little-endian) */
  gradient: BlobKeySchema,
  /** index of the micro-batch in the step (echoed back) */
  index: z.number().int().min(0),
  /**
   * What seeds the micro-batch's dropout masks (job seed, step, the samples' training-set indices:
   * one per sample, in the micro-batch's order), so a function draws the masks the peer would.
   * Absent for models without dropout.
   */
  dropout: z.object({
    seed: z.number().int(),
    step: z.number().int().min(0),
    sampleIndices: z.array(z.number().int().min(0)).max(1 << 20)
  }).strict().optional()
}).strict()
export type GradientEvent = z.infer<typeof GradientEventSchema>

export const GradientResultSchema = z.object({
  index: z.number().int().min(0),
  gradient: BlobKeySchema,
  /** sum over the micro-batch's samples of the loss (mean loss x count) */
  lossSum: z.number(),
  correct: z.number().int().min(0),
  count: z.number().int().positive(),
  /** time the function spent, ms: reading blobs, running the graph, writing the gradient */
  readMs: z.number().min(0),
  runMs: z.number().min(0),
  writeMs: z.number().min(0)
}).strict()
export type GradientTaskResult = z.infer<typeof GradientResultSchema>

/** Names, layout and shapes a function needs to run a training graph it did not build. */
export interface GraphManifest extends RunnableModel, GraphSignature {
  readonly version: 1
  readonly batchSize: number
}

const GraphManifestSchema = z.object({
  version: z.literal(1),
  name: z.string().min(1),
  batchSize: z.number().int().positive(),
  sampleShape: z.array(z.number().int().positive()).min(1),
  numClasses: z.number().int().min(2),
  inputName: z.string().min(1),
  logitsName: z.string().min(1),
  gradientNames: z.array(z.string().min(1)),
  /** the graph's Dropout mask inputs (absent or empty without Dropout) */
  dropoutMasks: z.array(z.object({ name: z.string().min(1), shape: z.array(z.number().int().positive()).min(1), ratio: z.number().min(0).lt(1) }).strict()).optional(),
  layout: z.object({
    totalSize: z.number().int().positive(),
    specs: z.array(z.object({ name: z.string().min(1), shape: z.array(z.number().int().min(0)), offset: z.number().int().min(0), size: z.number().int().min(0) }).strict())
  }).strict()
}).strict()

const GRAPH_MAGIC = 0x42473250 // 'P2GB'
const BATCH_MAGIC = 0x424d3250 // 'P2MB'
const FORMAT_VERSION = 1
const HEADER_BYTES = 16

export class BlobFormatError extends Error {
  override name = 'BlobFormatError'
}

/** Bundle layout: magic u32, version u32, manifest length u32, reserved u32, manifest JSON, ONNX bytes. */
export function encodeGraphBundle(manifest: GraphManifest, onnx: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(manifest))
  const out = new Uint8Array(HEADER_BYTES + json.length + onnx.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, GRAPH_MAGIC, true)
  view.setUint32(4, FORMAT_VERSION, true)
  view.setUint32(8, json.length, true)
  out.set(json, HEADER_BYTES)
  out.set(onnx, HEADER_BYTES + json.length)
  return out
}

/** @throws BlobFormatError on a wrong magic, version or length, or a manifest that does not parse */
export function decodeGraphBundle(bytes: Uint8Array): { manifest: GraphManifest, onnx: Uint8Array } {
  const view = header(bytes, GRAPH_MAGIC, 'training-graph bundle')
  const length = view.getUint32(8, true)
  if (HEADER_BYTES + length > bytes.length) throw new BlobFormatError(`training-graph bundle: manifest of ${length} bytes does not fit in ${bytes.length}`)
  const parsed = GraphManifestSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + length))))
  if (!parsed.success) throw new BlobFormatError(`training-graph bundle: bad manifest: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  const specs: ParameterSpec[] = parsed.data.layout.specs
  return { manifest: { ...parsed.data, layout: { totalSize: parsed.data.layout.totalSize, specs } }, onnx: bytes.subarray(HEADER_BYTES + length) }
}

/** Micro-batch layout: magic u32, version u32, count u32, values per sample u32, labels int32[count], inputs float32[count x values]. */
export function encodeMicroBatch(batch: Batch): Uint8Array {
  const sampleSize = batch.inputs.length / batch.size
  const out = new Uint8Array(HEADER_BYTES + 4 * batch.size + 4 * batch.inputs.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, BATCH_MAGIC, true)
  view.setUint32(4, FORMAT_VERSION, true)
  view.setUint32(8, batch.size, true)
  view.setUint32(12, sampleSize, true)
  out.set(new Uint8Array(batch.labels.buffer, batch.labels.byteOffset, batch.labels.byteLength), HEADER_BYTES)
  out.set(new Uint8Array(batch.inputs.buffer, batch.inputs.byteOffset, batch.inputs.byteLength), HEADER_BYTES + 4 * batch.size)
  return out
}

/** @throws BlobFormatError on a wrong magic, version, length, or a sample shape that does not match */
export function decodeMicroBatch(bytes: Uint8Array, sampleShape: readonly number[]): Batch {
  const view = header(bytes, BATCH_MAGIC, 'micro-batch')
  const size = view.getUint32(8, true)
  const sampleSize = view.getUint32(12, true)
  const expected = sampleShape.reduce((a, b) => a * b, 1)
  if (sampleSize !== expected) throw new BlobFormatError(`micro-batch has ${sampleSize} values per sample, the graph expects ${expected} (${sampleShape.join('x')})`)
  if (bytes.length !== HEADER_BYTES + 4 * size + 4 * size * sampleSize) throw new BlobFormatError(`micro-batch of ${size} samples should be ${HEADER_BYTES + 4 * size * (1 + sampleSize)} bytes, got ${bytes.length}`)
  const body = bytes.slice(HEADER_BYTES) // copy: aligned for the typed arrays
  return {
    size,
    sampleShape,
    labels: new Int32Array(body.buffer, 0, size),
    inputs: new Float32Array(body.buffer, 4 * size, size * sampleSize)
  }
}

/** A Float32Array from bytes read back from a store (copied when the bytes are not 4-aligned). */
export function float32View(bytes: Uint8Array, expectedLength: number, what: string): Float32Array {
  if (bytes.byteLength !== 4 * expectedLength) throw new BlobFormatError(`${what}: expected ${expectedLength} float32 values (${4 * expectedLength} bytes), got ${bytes.byteLength} bytes`)
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice()
  return new Float32Array(aligned.buffer, aligned.byteOffset, expectedLength)
}

/** The bytes of a Float32Array, without copying. */
export function float32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
}

function header(bytes: Uint8Array, magic: number, what: string): DataView {
  if (bytes.length < HEADER_BYTES) throw new BlobFormatError(`${what}: ${bytes.length} bytes is shorter than its ${HEADER_BYTES}-byte header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(0, true) !== magic) throw new BlobFormatError(`${what}: wrong magic (not a p2pmld ${what})`)
  const version = view.getUint32(4, true)
  if (version !== FORMAT_VERSION) throw new BlobFormatError(`${what}: format version ${version} is not supported (this build reads ${FORMAT_VERSION})`)
  return view
}
