// onnx-proto is CommonJS: re-export its namespace with types for ESM callers.
import onnxProto from 'onnx-proto'

export const onnx = onnxProto.onnx
export type OnnxModelProto = onnxProto.onnx.ModelProto
export type OnnxNodeProto = onnxProto.onnx.INodeProto
export type OnnxTensorProto = onnxProto.onnx.ITensorProto
export type OnnxAttributeProto = onnxProto.onnx.IAttributeProto
export type OnnxValueInfoProto = onnxProto.onnx.IValueInfoProto
