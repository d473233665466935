import type { ParameterLayout, ParameterSpec } from './core/types.js'

/** Lay named tensors out one after another in a single flat vector. */
export function createLayout(tensors: ReadonlyArray<{ name: string, shape: readonly number[], kind?: 'parameter' | 'buffer', momentum?: number }>): ParameterLayout {
  let offset = 0
  const specs: ParameterSpec[] = tensors.map(({ name, shape, kind, momentum }) => {
    const size = shape.reduce((a, b) => a * b, 1)
    const spec: ParameterSpec = kind === 'buffer' ? { name, shape: [...shape], offset, size, kind, momentum: momentum ?? 0.1 } : { name, shape: [...shape], offset, size }
    offset += size
    return spec
  })
  return { specs, totalSize: offset }
}

export function parameterView(params: Float32Array, spec: ParameterSpec): Float32Array {
  return params.subarray(spec.offset, spec.offset + spec.size)
}

export function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) return false
  }
  return true
}

export function l2Norm(values: Float32Array): number {
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i]
  return Math.sqrt(sum)
}

/** The buffers (running statistics) of a layout: entries the optimizer averages instead of training. */
export function bufferSpecs(layout: ParameterLayout): ParameterSpec[] {
  return layout.specs.filter((s) => s.kind === 'buffer')
}
