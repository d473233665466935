/**
 * Exporters compute some constants with small subgraphs (PyTorch's F.pad builds its pads with
 * ConstantOfShape/Concat/Slice/Transpose/Cast). Nodes whose inputs are all constants are
 * evaluated once here, with ONNX Runtime itself, so the autodiff only sees the ops that touch
 * the batch or the parameters.
 */
import ort from 'onnxruntime-node'
import type { ConstantTensor, IrNode } from '../autodiff/ir.js'
import { GraphEmitter } from './graph-emitter.js'

export class ConstantFoldingError extends Error {
  override name = 'ConstantFoldingError'
}

/** Returns the nodes left after folding; folded outputs are added to `constants`. */
export async function foldConstants(nodes: readonly IrNode[], constants: Map<string, ConstantTensor>): Promise<IrNode[]> {
  const known = new Set(constants.keys())
  const folded: IrNode[] = []
  const kept: IrNode[] = []
  for (const node of nodes) {
    const inputs = node.inputs.filter((i) => i !== '')
    // nodes without inputs (random generators) are left alone: folding must not change results
    if (inputs.length > 0 && inputs.every((i) => known.has(i))) {
      folded.push(node)
      node.outputs.forEach((o) => known.add(o))
    } else {
      kept.push(node)
    }
  }
  if (folded.length === 0) return kept

  const needed = new Set(kept.flatMap((n) => n.inputs))
  const outputs = folded.flatMap((n) => n.outputs).filter((o) => needed.has(o))
  if (outputs.length === 0) return kept
  const emit = new GraphEmitter()
  const used = new Set(folded.flatMap((n) => n.inputs))
  for (const [name, tensor] of constants) if (used.has(name)) emit.initializer(name, tensor)
  for (const node of folded) emit.node(node.op, node.inputs, node.attrs, node.outputs)

  let session: ort.InferenceSession | undefined
  try {
    session = await ort.InferenceSession.create(emit.serialize([], outputs.map((name) => ({ name })), 'fold-constants'), { logSeverityLevel: 3 })
    const results = await session.run({})
    for (const name of outputs) {
      const t = results[name]
      if (t.type === 'float32') constants.set(name, { dims: [...t.dims], data: (t.data as Float32Array).slice() })
      else if (t.type === 'int64') constants.set(name, { dims: [...t.dims], data: (t.data as BigInt64Array).slice() })
      else throw new ConstantFoldingError(`constant '${name}' has type ${t.type}; only float32 and int64 constants can feed the trained graph`)
    }
  } catch (err) {
    if (err instanceof ConstantFoldingError) throw err
    throw new ConstantFoldingError(`evaluating the model's constant subgraph (${folded.map((n) => `${n.op} '${n.name}'`).join(', ')}) failed: ${(err as Error).message}`)
  } finally {
    await session?.release()
  }
  return kept
}
