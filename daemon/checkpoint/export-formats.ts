/**
 * The formats `p2pmld export` writes, apart from the exporter itself, so the CLI can list and
 * check them without loading ONNX Runtime and the model zoo.
 */
export const EXPORT_FORMATS = ['onnx'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]
