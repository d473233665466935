import type { CompressionConfig } from '../../config/job-config.js'
import type { GradientCodec } from './codec.js'
import { createFp16Codec } from './fp16-codec.js'
import { createQsgdCodec } from './qsgd-codec.js'
import { createRawCodec } from './raw-codec.js'

/** the codec a job's `compression` section names (bits and bucketSize matter for qsgd only) */
export function createCodec (config: CompressionConfig): GradientCodec {
  switch (config.codec) {
    case 'qsgd': return createQsgdCodec({ bits: config.bits, bucketSize: config.bucketSize })
    case 'fp16': return createFp16Codec({ bucketSize: config.bucketSize })
    case 'none': return createRawCodec()
  }
}
