/**
 * The gradient codec seam: what a peer publishes is `codec.encode(gradient)`, what it
 * aggregates is `codec.decode(bytes, count)`. Decoding is deterministic (every peer turns the
 * same bytes into the same floats) and strict (anything malformed is a CodecError).
 */
import type { Rng } from '../core/rng.js'

export type CodecId = 'qsgd' | 'fp16' | 'none'

export interface GradientCodec {
  readonly id: CodecId
  /**
   * Compress a finite vector; `rng` drives stochastic rounding (ignored by deterministic codecs).
   * `into`: a buffer of at least encodedSize(values.length) bytes to write into instead of a new
   * one; the result is then a view of its start, valid until the caller reuses it.
   */
  encode(values: Float32Array, rng: Rng, into?: Uint8Array): Uint8Array
  /** decompress exactly `count` values; throws CodecError on any malformed input */
  decode(bytes: Uint8Array, count: number): Float32Array
  /** the exact byte length `encode` produces for `count` values */
  encodedSize(count: number): number
}

export type CodecErrorReason =
  | 'length'
  | 'non-finite'
  | 'overflow'
  | 'non-canonical'
  | 'count'
  | 'version'

export class CodecError extends Error {
  override name = 'CodecError'
  constructor (readonly reason: CodecErrorReason, message: string) {
    super(message)
  }
}

export function checkCount (codec: CodecId, count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new CodecError('count', `${codec}: value count must be a non-negative integer, got ${count}`)
  }
}

export function checkLength (codec: CodecId, bytes: Uint8Array, expected: number, count: number): void {
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? 'truncated' : 'too long'
    throw new CodecError('length', `${codec}: payload ${what}: ${bytes.length} bytes, expected ${expected} for ${count} values (check the sender's codec settings and the parameter count)`)
  }
}

/**
 * An encoder's output of `size` bytes: the start of `into` when given (zeroed if `zero`: codecs
 * that leave some bytes unwritten, e.g. all-zero buckets, or OR bits in), else a new zeroed buffer.
 * Throws CodecError 'length' when `into` is too small.
 */
export function encodeOutput (codec: CodecId, size: number, into: Uint8Array | undefined, zero: boolean): Uint8Array {
  if (into === undefined) return new Uint8Array(size)
  if (into.length < size) throw new CodecError('length', `${codec}: output buffer of ${into.length} bytes is smaller than the ${size} the encoding needs`)
  const out = into.subarray(0, size)
  if (zero) out.fill(0)
  return out
}

/** Encoders refuse NaN/Inf: a non-finite gradient is a bug upstream, not something to transmit. */
export function checkFiniteInput (codec: CodecId, values: Float32Array, firstIndex = 0): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    // v - v is NaN exactly when v is NaN or +-Inf
    if (v - v !== 0) {
      throw new CodecError('non-finite', `${codec}: cannot encode non-finite value ${v} at index ${firstIndex + i}; the gradient diverged (lower the learning rate or check the data)`)
    }
  }
}
