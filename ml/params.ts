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

/**
 * Whether every value is finite (no NaN, no +-Infinity), by summing them in float64: a sum of
 * finite float32 values cannot overflow there (it would take ~5e269 of them at float32's maximum),
 * and one NaN or infinity makes the sum NaN or infinite for good (+Inf and -Inf give NaN). Eight
 * values an iteration into four accumulators: 0.34 ns a value here against 0.55-0.59 for the
 * float32 exponent-bit test it replaces (mlp's 101,770-value gradient: 35 against 56 us, ~6 % of
 * its one-process step; mlp-large's 1.86 M: 0.64 against 1.06 ms).
 */
export function allFinite(values: Float32Array): boolean {
  const n = values.length
  const whole = n & ~7
  let a = 0
  let b = 0
  let c = 0
  let d = 0
  let i = 0
  for (; i < whole; i += 8) {
    a += values[i] + values[i + 4]
    b += values[i + 1] + values[i + 5]
    c += values[i + 2] + values[i + 6]
    d += values[i + 3] + values[i + 7]
  }
  for (; i < n; i++) a += values[i]
  return Number.isFinite(a + b + c + d)
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
