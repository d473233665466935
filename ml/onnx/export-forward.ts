/**
 * The trained model as a standalone forward ONNX graph: the model's forward nodes as they are
 * (standard ONNX ops, shape arithmetic included, so any batch size runs), the parameters as
 * initializers, one input `[batch, ...sampleShape]` and the logits `[batch, classes]` as output
 * (named `logits`).
 * This is what onnxruntime (or PyTorch's ONNX import) runs for inference; it computes the same
 * logits as the inference graph the daemon evaluates with (training-graph.ts).
 */
import { specializeGraph } from '../autodiff/training-graph.js'
import { describeInputNormalization, INPUT_NORMALIZATION_KEY, type InputNormalization } from '../data/normalize.js'
import type { ModelDefinition } from '../models/model-definition.js'
import { GraphEmitter } from './graph-emitter.js'

/** The name of the exported graph's batch dimension. */
export const EXPORT_BATCH_DIM = 'batch'
/** The exported graph's output (unless the model itself uses the name for something else). */
export const EXPORT_OUTPUT = 'logits'

export interface ForwardExport {
  readonly bytes: Uint8Array
  readonly inputName: string
  readonly outputName: string
}

/**
 * Serialise `model` with `params` (flat, in the model's layout order) as a forward ONNX model
 * (opset 17, IR 8). `inputNormalization`: how the training data was normalised, recorded in the
 * file's metadata_props (INPUT_NORMALIZATION_KEY) and doc_string, so whoever runs the file knows
 * what its inputs must be. Throws if `params` does not have the layout's size, or (ShapeError /
 * UnsupportedOpError) if the forward graph does not check out for a concrete batch.
 */
export function exportForwardOnnx(model: ModelDefinition, params: Float32Array, inputNormalization?: InputNormalization): ForwardExport {
  const { forward, layout } = model
  if (params.length !== layout.totalSize) {
    throw new Error(`model '${model.name}' has ${layout.totalSize} parameters, got ${params.length}`)
  }
  // every op and shape is checked (and the output's width known) as for training
  const { shapes } = specializeGraph(forward, layout, 1)
  const logits = shapes.get(forward.output)
  if (logits === undefined || logits.length !== 2) throw new Error(`the model output '${forward.output}' must be logits of shape [batch, classes]`)
  const emit = new GraphEmitter()
  emit.reserve(forward.input)
  for (const spec of layout.specs) {
    emit.initializer(spec.name, { dims: [...spec.shape], data: params.slice(spec.offset, spec.offset + spec.size) })
  }
  for (const [name, constant] of forward.constants) emit.initializer(name, constant)
  for (const node of forward.nodes) emit.node(node.op, node.inputs, node.attrs, node.outputs)
  // the output is called `logits` whatever the graph's last node is named (zoo models: e.g. gemm_22)
  const taken = forward.input === EXPORT_OUTPUT || forward.nodes.some((n) => n.outputs.includes(EXPORT_OUTPUT)) || layout.specs.some((p) => p.name === EXPORT_OUTPUT)
  const outputName = forward.output === EXPORT_OUTPUT || taken ? forward.output : EXPORT_OUTPUT
  if (outputName !== forward.output) emit.node('Identity', [forward.output], {}, [outputName])
  const bytes = emit.serialize(
    [{ name: forward.input, elementType: 'float32', shape: [EXPORT_BATCH_DIM, ...forward.sampleShape] }],
    [{ name: outputName, elementType: 'float32', shape: [EXPORT_BATCH_DIM, logits[1]] }],
    `p2pmld-${model.name}`,
    inputNormalization === undefined
      ? {}
      : {
          docString: `p2pmld ${model.name}; ${describeInputNormalization(inputNormalization)}`,
          metadata: { [INPUT_NORMALIZATION_KEY]: JSON.stringify({ mean: inputNormalization.mean, std: inputNormalization.std }) }
        }
  )
  return { bytes, inputName: forward.input, outputName }
}
