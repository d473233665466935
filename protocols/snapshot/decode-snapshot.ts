/**
 * Incremental snapshot decoder: bytes arrive in chunks of any size and are copied once, straight
 * into Float32Arrays allocated from the (limit-checked) header. The sha256 trailer, when the
 * header announces one, is checked at the end; any inconsistency is a SnapshotError with a reason.
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { SNAPSHOT_CHECKSUM_BYTES, SNAPSHOT_HEADER_BYTES, readSnapshotHeader, snapshotByteLength, type SnapshotHeader } from './snapshot-format.js'
import { SnapshotError, type TrainingSnapshot } from './snapshot-types.js'

/** 4 GiB: above VGG-sized models (~532 MB) with room, below what one ArrayBuffer may hold */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024 * 1024
export const DEFAULT_MAX_JSON_BYTES = 16 * 1024 * 1024

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

const JsonPartSchema = z.object({
  jobConfig: z.unknown(),
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  cursor: z.number().int().nonnegative(),
  meta: z.record(z.string(), z.unknown())
})

/** the JSON part of a snapshot: everything but the float blocks */
export type SnapshotJsonPart = z.infer<typeof JsonPartSchema>

export interface SnapshotDecoderOptions {
  readonly maxBytes?: number
  readonly maxJsonBytes?: number
  /** refuse an encoding without the sha256 trailer (files: nothing else guards their bytes) */
  readonly requireChecksum?: boolean
}

export type SnapshotChunk = Uint8Array | Iterable<Uint8Array>

export interface SnapshotDecoder {
  /** Feed the next bytes; throws SnapshotError as soon as the data is known to be bad. */
  push(chunk: SnapshotChunk): void
  /** Check completeness and the checksum; returns the snapshot. */
  finish(): TrainingSnapshot
  /** bytes accepted so far */
  readonly received: number
  /** total size announced by the header, once the header has arrived */
  readonly expectedBytes: number | undefined
}

interface Body {
  readonly header: SnapshotHeader
  readonly total: number
  readonly json: Uint8Array
  readonly params: Float32Array
  readonly optimizerState: Float32Array
  readonly paramBytes: Uint8Array
  readonly optimizerBytes: Uint8Array
  readonly trailer: Uint8Array
  jsonPart?: z.infer<typeof JsonPartSchema>
}

function allocateBody (header: SnapshotHeader): Body {
  let params: Float32Array
  let optimizerState: Float32Array
  try {
    params = new Float32Array(header.paramCount)
    optimizerState = new Float32Array(header.optimizerCount)
  } catch (error) {
    throw new SnapshotError('too-large', `cannot allocate ${header.paramCount} + ${header.optimizerCount} floats for the snapshot: ${(error as Error).message}`)
  }
  return {
    header,
    total: snapshotByteLength(header),
    json: new Uint8Array(header.jsonLength),
    params,
    optimizerState,
    paramBytes: new Uint8Array(params.buffer),
    optimizerBytes: new Uint8Array(optimizerState.buffer),
    trailer: new Uint8Array(header.checksum ? SNAPSHOT_CHECKSUM_BYTES : 0)
  }
}

/** Parse and check a snapshot's JSON part; SnapshotError('bad-json') names the bad field. */
export function parseJsonPart (bytes: Uint8Array): SnapshotJsonPart {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (error) {
    throw new SnapshotError('bad-json', `snapshot JSON part is not valid UTF-8 JSON: ${(error as Error).message}`)
  }
  const parsed = JsonPartSchema.safeParse(raw)
  if (!parsed.success) {
    throw new SnapshotError('bad-json', `snapshot JSON part is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  }
  return parsed.data
}

function swapFloat32InPlace (bytes: Uint8Array): void {
  for (let i = 0; i + 3 < bytes.byteLength; i += 4) {
    const a = bytes[i]; const b = bytes[i + 1]
    bytes[i] = bytes[i + 3]; bytes[i + 1] = bytes[i + 2]; bytes[i + 2] = b; bytes[i + 3] = a
  }
}

export function createSnapshotDecoder (options: SnapshotDecoderOptions = {}): SnapshotDecoder {
  const limits = {
    maxBytes: options.maxBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES,
    maxJsonBytes: options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES
  }
  const hash = createHash('sha256')
  const headerBytes = new Uint8Array(SNAPSHOT_HEADER_BYTES)
  let body: Body | undefined
  let received = 0
  let failure: SnapshotError | undefined
  let finished = false
  /** the header announced a trailer (the header itself is hashed before it is read) */
  let hashing = true

  /** The buffer that receives the byte at absolute position `pos`, and where in it. */
  function region (pos: number): { target: Uint8Array, offset: number, hashed: boolean } | undefined {
    if (pos < SNAPSHOT_HEADER_BYTES) return { target: headerBytes, offset: pos, hashed: true }
    if (body === undefined) return undefined
    let start = SNAPSHOT_HEADER_BYTES
    for (const target of [body.json, body.paramBytes, body.optimizerBytes]) {
      if (pos < start + target.byteLength) return { target, offset: pos - start, hashed: true }
      start += target.byteLength
    }
    if (pos < start + body.trailer.byteLength) return { target: body.trailer, offset: pos - start, hashed: false }
    return undefined
  }

  function afterRegionFilled (pos: number): void {
    if (pos === SNAPSHOT_HEADER_BYTES && body === undefined) {
      const header = readSnapshotHeader(headerBytes, limits)
      if (!header.checksum && options.requireChecksum === true) {
        throw new SnapshotError('bad-header', 'snapshot has no sha256 trailer, which a file must carry: it was not written as a checkpoint, or its header is damaged')
      }
      hashing = header.checksum
      body = allocateBody(header)
    }
    if (body !== undefined && body.jsonPart === undefined && pos === SNAPSHOT_HEADER_BYTES + body.json.byteLength) {
      body.jsonPart = parseJsonPart(body.json)
    }
  }

  function pushBytes (bytes: Uint8Array): void {
    let consumed = 0
    while (consumed < bytes.byteLength) {
      const where = region(received)
      if (where === undefined) {
        throw new SnapshotError('trailing-bytes', `snapshot data continues past its announced end of ${body?.total ?? SNAPSHOT_HEADER_BYTES} bytes`)
      }
      const n = Math.min(where.target.byteLength - where.offset, bytes.byteLength - consumed)
      const piece = bytes.subarray(consumed, consumed + n)
      where.target.set(piece, where.offset)
      if (where.hashed && hashing) hash.update(piece)
      consumed += n
      received += n
      if (where.offset + n === where.target.byteLength) afterRegionFilled(received)
    }
  }

  return {
    get received () { return received },
    get expectedBytes () { return body?.total },
    push (chunk) {
      if (failure !== undefined) throw failure
      if (finished) throw new SnapshotError('trailing-bytes', 'snapshot decoder already finished')
      try {
        if (chunk instanceof Uint8Array) {
          pushBytes(chunk)
        } else {
          for (const part of chunk) pushBytes(part)
        }
      } catch (error) {
        failure = error instanceof SnapshotError ? error : new SnapshotError('bad-header', (error as Error).message)
        throw failure
      }
    },
    finish () {
      if (failure !== undefined) throw failure
      if (body === undefined || received < body.total) {
        failure = new SnapshotError('truncated', `snapshot ended after ${received} bytes, expected ${body?.total ?? `at least ${SNAPSHOT_HEADER_BYTES}`}`)
        throw failure
      }
      if (finished) throw new SnapshotError('invalid-snapshot', 'snapshot decoder already finished')
      finished = true
      const digest = body.header.checksum ? new Uint8Array(hash.digest()) : undefined
      if (digest !== undefined && !digest.every((byte, i) => byte === body?.trailer[i])) {
        failure = new SnapshotError('checksum-mismatch', 'snapshot sha256 checksum does not match its content: the data was corrupted in transit or on disk')
        throw failure
      }
      if (!LITTLE_ENDIAN_HOST) {
        swapFloat32InPlace(body.paramBytes)
        swapFloat32InPlace(body.optimizerBytes)
      }
      const part = body.jsonPart
      if (part === undefined) throw new SnapshotError('bad-json', 'snapshot JSON part was never parsed')
      return {
        jobConfig: part.jobConfig,
        step: part.step,
        epoch: part.epoch,
        cursor: part.cursor,
        meta: part.meta,
        params: body.params,
        optimizerState: body.optimizerState
      }
    }
  }
}

/** Decode a whole chunk stream (sync or async iterable). */
export async function decodeSnapshot (
  source: AsyncIterable<SnapshotChunk> | Iterable<SnapshotChunk>,
  options: SnapshotDecoderOptions = {}
): Promise<TrainingSnapshot> {
  const decoder = createSnapshotDecoder(options)
  for await (const chunk of source) decoder.push(chunk)
  return decoder.finish()
}
