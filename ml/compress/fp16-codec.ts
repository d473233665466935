/** codec 'fp16': IEEE half precision, little-endian, 2 bytes per value. */
import { CodecError, checkCount, checkFiniteInput, checkLength, type GradientCodec } from './codec.js'
import { FLOAT16_TABLE, float32ToFloat16Bits } from './float16.js'

export function createFp16Codec (): GradientCodec {
  return {
    id: 'fp16',
    encodedSize (count) {
      checkCount('fp16', count)
      return count * 2
    },
    encode (values) {
      checkFiniteInput('fp16', values)
      const out = new Uint8Array(values.length * 2)
      for (let i = 0; i < values.length; i++) {
        const h = float32ToFloat16Bits(values[i])
        if ((h & 0x7c00) === 0x7c00) {
          throw new CodecError('overflow', `fp16: value ${values[i]} at index ${i} is beyond the half-precision range (|x| < 65520 rounds to at most 65504); use codec 'qsgd' or 'none'`)
        }
        out[2 * i] = h & 0xff
        out[2 * i + 1] = h >>> 8
      }
      return out
    },
    decode (bytes, count) {
      checkCount('fp16', count)
      checkLength('fp16', bytes, count * 2, count)
      const table = FLOAT16_TABLE
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) {
        const h = bytes[2 * i] | (bytes[2 * i + 1] << 8)
        if ((h & 0x7c00) === 0x7c00) {
          throw new CodecError('non-finite', `fp16: value ${i} is ${(h & 0x3ff) === 0 ? 'Inf' : 'NaN'} (bits 0x${h.toString(16)}); the sender's gradient is not finite`)
        }
        out[i] = table[h]
      }
      return out
    }
  }
}
