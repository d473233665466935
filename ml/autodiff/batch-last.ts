/**
 * Batch-last twins: for a 4-D tensor in the graph's NCHW layout, a copy of it as [C, H, W, N]
 * (batch innermost), the layout the Gemm convolutions read and write (ops/conv-gemm.ts).
 *
 * Each gemm conv used to transpose its input from NCHW, and its output (and, in the backward, dY
 * and dX) back: four Transposes of a whole activation per conv, ~0.1-0.2 ms each on resnet18's
 * 8x8 maps at batch 64, ~4-5 ms of a ~65 ms step in all (bench/op-profile.ts). With twins, ops
 * that do not care about the layout (Relu, an Add of two tensors of one shape, a Sum of gradients)
 * run on the twins when their inputs have them and give their output a twin, so a chain of gemm
 * convs (resnet's blocks) stays batch-last; the NCHW tensor is emitted as a Transpose of its twin
 * and left out of the graph if nothing reads it (GraphEmitter.serialize keeps only what the
 * outputs depend on).
 *
 * One registry per graph build, shared by the forward and the backward (a Relu's backward reads
 * its forward output's twin).
 */
import type { GraphEmitter } from '../onnx/graph-emitter.js'
import { ints } from './ir.js'

/** NCHW -> [C, H, W, N] */
export const TO_BATCH_LAST = [1, 2, 3, 0] as const
/** [C, H, W, N] -> NCHW */
export const FROM_BATCH_LAST = [3, 0, 1, 2] as const

export class BatchLastTwins {
  private readonly twins = new Map<string, string>()

  /** The twin of an NCHW tensor, if one was emitted. */
  get(nchw: string): string | undefined {
    return this.twins.get(nchw)
  }

  /** The twin of an NCHW tensor, emitting it (a Transpose) if there is none yet. */
  of(emit: GraphEmitter, nchw: string): string {
    let twin = this.twins.get(nchw)
    if (twin === undefined) {
      twin = emit.op('Transpose', [nchw], { perm: ints([...TO_BATCH_LAST]) })
      this.twins.set(nchw, twin)
    }
    return twin
  }

  /**
   * Emits the NCHW tensor of a batch-last `twin` (a Transpose, named `nchw` or fresh) and records
   * the pair; returns the NCHW name.
   */
  fromTwin(emit: GraphEmitter, twin: string, nchw?: string): string {
    const [name] = emit.node('Transpose', [twin], { perm: ints([...FROM_BATCH_LAST]) }, nchw === undefined ? undefined : [nchw])
    this.twins.set(name, twin)
    return name
  }
}
