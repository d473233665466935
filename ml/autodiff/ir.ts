/**
 * The forward-graph IR the autodiff works on: ONNX-like nodes over named tensors, with
 * attributes typed so they serialise back to ONNX exactly.
 */
export type Attribute =
  | { readonly kind: 'int', readonly value: number }
  | { readonly kind: 'float', readonly value: number }
  | { readonly kind: 'ints', readonly value: readonly number[] }
  | { readonly kind: 'floats', readonly value: readonly number[] }
  | { readonly kind: 'string', readonly value: string }
  | { readonly kind: 'tensor', readonly value: ConstantTensor }

export interface ConstantTensor {
  readonly dims: readonly number[]
  readonly data: Float32Array | BigInt64Array
}

export interface IrNode {
  readonly name: string
  readonly op: string
  readonly inputs: readonly string[]
  readonly outputs: readonly string[]
  readonly attrs: Readonly<Record<string, Attribute>>
}

export interface ForwardGraph {
  /** name of the batch input; its shape is [N, ...sampleShape] */
  readonly input: string
  readonly sampleShape: readonly number[]
  /** names of trainable parameters, in layout order */
  readonly parameters: readonly string[]
  /** non-trainable constants (reshape targets, frozen tensors) */
  readonly constants: ReadonlyMap<string, ConstantTensor>
  readonly nodes: readonly IrNode[]
  /** name of the logits tensor [N, classes] */
  readonly output: string
}

export type Shape = readonly number[]

export const ints = (value: readonly number[]): Attribute => ({ kind: 'ints', value })
export const int = (value: number): Attribute => ({ kind: 'int', value })
export const float = (value: number): Attribute => ({ kind: 'float', value })

export function attrInt(node: IrNode, key: string, fallback: number): number {
  const a = node.attrs[key]
  return a !== undefined && a.kind === 'int' ? a.value : fallback
}

export function attrFloat(node: IrNode, key: string, fallback: number): number {
  const a = node.attrs[key]
  return a !== undefined && a.kind === 'float' ? a.value : fallback
}

export function attrInts(node: IrNode, key: string, fallback: readonly number[]): readonly number[] {
  const a = node.attrs[key]
  return a !== undefined && a.kind === 'ints' ? a.value : fallback
}

export function attrString(node: IrNode, key: string, fallback: string): string {
  const a = node.attrs[key]
  return a !== undefined && a.kind === 'string' ? a.value : fallback
}

export const product = (shape: Shape): number => shape.reduce((a, b) => a * b, 1)

export class ShapeError extends Error {
  override name = 'ShapeError'
}

/**
 * Names for the nodes and tensors a graph rewrite adds: `hint` itself, else `hint_1`, `hint_2`, ...,
 * never one the graph (its tensors in `shapes`, constants, node names) or an earlier call used.
 */
export function freshNames(graph: ForwardGraph, shapes: ReadonlyMap<string, Shape>): (hint: string) => string {
  const taken = new Set<string>([...shapes.keys(), ...graph.constants.keys(), ...graph.nodes.map((n) => n.name)])
  return (hint) => {
    let name = hint
    for (let k = 1; taken.has(name); k++) name = `${hint}_${k}`
    taken.add(name)
    return name
  }
}
