/** codec 'none': raw little-endian float32, 4 bytes per value. */
import { CodecError, checkCount, checkFiniteInput, checkLength, encodeOutput, type GradientCodec } from './codec.js'

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

export function createRawCodec (): GradientCodec {
  return {
    id: 'none',
    encodedSize (count) {
      checkCount('none', count)
      return count * 4
    },
    encode (values, _rng, into) {
      checkFiniteInput('none', values)
      const out = encodeOutput('none', values.length * 4, into, false)
      if (HOST_IS_LITTLE_ENDIAN && out.byteOffset % 4 === 0) {
        new Float32Array(out.buffer, out.byteOffset, values.length).set(values)
      } else {
        const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
        for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true)
      }
      return out
    },
    decode (bytes, count) {
      checkCount('none', count)
      checkLength('none', bytes, count * 4, count)
      let out: Float32Array
      if (HOST_IS_LITTLE_ENDIAN) {
        // copying the bytes also fixes alignment (a view needs byteOffset % 4 === 0)
        out = new Float32Array(bytes.slice().buffer)
      } else {
        out = new Float32Array(count)
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true)
      }
      for (let i = 0; i < count; i++) {
        const v = out[i]
        if (v - v !== 0) throw new CodecError('non-finite', `none: value ${i} is ${v}; the sender's gradient is not finite`)
      }
      return out
    }
  }
}
