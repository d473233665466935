/**
 * The NCHWc block size of this machine's ONNX Runtime (MLAS: 16 with AVX-512, 8 with AVX2), for
 * training graphs that run here (TrainingGraphOptions.nchwcBlock).
 */
import ort from 'onnxruntime-node'
import { NCHWC_DOMAIN } from '../autodiff/ops/nchwc.js'
import { GraphEmitter } from '../onnx/graph-emitter.js'

/**
 * Runs ReorderInput on a [1, 4, 1, 1] tensor: it pads the channels to one block, so the output's
 * channel count is the block size. Returns 0 (graphs keep plain ONNX Conv) where this ONNX Runtime
 * has no NCHWc kernels (the run fails) or a block of one value (MLAS without NCHWc support).
 */
export async function detectNchwcBlock(): Promise<number> {
  const emit = new GraphEmitter()
  emit.reserve('x')
  emit.node(`${NCHWC_DOMAIN}:ReorderInput`, ['x'], {}, ['y'])
  const bytes = emit.serialize([{ name: 'x', elementType: 'float32', shape: [1, 4, 1, 1] }], [{ name: 'y' }], 'p2pmld-nchwc-probe')
  let session: ort.InferenceSession | undefined
  try {
    session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 })
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) })
    const block = out.y.dims[1]
    return block > 1 ? block : 0
  } catch {
    return 0
  } finally {
    await session?.release()
  }
}
