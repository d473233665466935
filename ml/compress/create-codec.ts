import type { CompressionConfig } from '../../config/job-config.js'
import type { GradientCodec } from './codec.js'
import { withExactRanges, type ExactRange, type ExactRangesCodec } from './exact-ranges.js'
import { createFp16Codec } from './fp16-codec.js'
import { createQsgdCodec } from './qsgd-codec.js'
import { createRawCodec } from './raw-codec.js'

/**
 * The codec a job's `compression` section names (bits and bucketSize matter for qsgd only).
 * `exact`: ranges of the vector sent as float32 whatever the codec, the model's running
 * statistics (`bufferSpecs(layout)`); every member must pass the same ones.
 */
export function createCodec (config: CompressionConfig, exact: readonly ExactRange[] = []): ExactRangesCodec {
  return withExactRanges(innerCodec(config), exact)
}

function innerCodec (config: CompressionConfig): GradientCodec {
  switch (config.codec) {
    case 'qsgd': return createQsgdCodec({ bits: config.bits, bucketSize: config.bucketSize })
    case 'fp16': return createFp16Codec({ bucketSize: config.bucketSize })
    case 'none': return createRawCodec()
  }
}
