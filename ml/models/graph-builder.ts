/**
 * A small builder for the zoo's forward graphs: layers append IR nodes and register their
 * parameters with PyTorch's default initialisation (kaiming_uniform with a = sqrt(5), which
 * is U(+-1/sqrt(fan_in)) for weights and biases alike).
 */
import type { ConstantTensor, ForwardGraph, IrNode } from '../autodiff/ir.js'
import { int, ints } from '../autodiff/ir.js'
import { createRng } from '../core/rng.js'
import { createLayout } from '../params.js'
import type { ModelDefinition } from './model-definition.js'

interface ParamInit {
  readonly name: string
  readonly shape: readonly number[]
  readonly bound: number
}

export class ForwardGraphBuilder {
  private readonly nodes: IrNode[] = []
  private readonly params: ParamInit[] = []
  private readonly constants = new Map<string, ConstantTensor>()
  private counter = 0

  constructor (readonly input = 'input') {}

  private next(prefix: string): string {
    return `${prefix}${this.counter++}`
  }

  private add(op: string, inputs: string[], attrs: IrNode['attrs'] = {}): string {
    const out = this.next(`${op.toLowerCase()}_`)
    this.nodes.push({ name: this.next(`node_${op}_`), op, inputs, outputs: [out], attrs })
    return out
  }

  private param(name: string, shape: number[], fanIn: number): string {
    this.params.push({ name, shape, bound: 1 / Math.sqrt(fanIn) })
    return name
  }

  linear(x: string, name: string, inFeatures: number, outFeatures: number): string {
    const w = this.param(`${name}.weight`, [outFeatures, inFeatures], inFeatures)
    const b = this.param(`${name}.bias`, [outFeatures], inFeatures)
    return this.add('Gemm', [x, w, b], { transB: int(1) })
  }

  conv(x: string, name: string, inChannels: number, outChannels: number, kernel: number, options: { stride?: number, pad?: number } = {}): string {
    const fanIn = inChannels * kernel * kernel
    const w = this.param(`${name}.weight`, [outChannels, inChannels, kernel, kernel], fanIn)
    const b = this.param(`${name}.bias`, [outChannels], fanIn)
    const s = options.stride ?? 1
    const p = options.pad ?? 0
    return this.add('Conv', [x, w, b], { kernel_shape: ints([kernel, kernel]), strides: ints([s, s]), pads: ints([p, p, p, p]) })
  }

  relu(x: string): string {
    return this.add('Relu', [x])
  }

  maxPool(x: string, kernel: number, stride = kernel): string {
    return this.add('MaxPool', [x], { kernel_shape: ints([kernel, kernel]), strides: ints([stride, stride]) })
  }

  averagePool(x: string, kernel: number, stride = kernel): string {
    return this.add('AveragePool', [x], { kernel_shape: ints([kernel, kernel]), strides: ints([stride, stride]) })
  }

  globalAveragePool(x: string): string {
    return this.add('GlobalAveragePool', [x])
  }

  flatten(x: string): string {
    return this.add('Flatten', [x], { axis: int(1) })
  }

  build(name: string, sampleShape: readonly number[], numClasses: number, output: string): ModelDefinition {
    const inits = [...this.params]
    const layout = createLayout(inits)
    const forward: ForwardGraph = {
      input: this.input,
      sampleShape,
      parameters: inits.map((p) => p.name),
      constants: this.constants,
      nodes: [...this.nodes],
      output
    }
    return {
      name,
      sampleShape,
      numClasses,
      layout,
      forward,
      initParameters(seed: number): Float32Array {
        const rng = createRng(seed)
        const params = new Float32Array(layout.totalSize)
        layout.specs.forEach((spec, i) => {
          const bound = inits[i].bound
          for (let k = 0; k < spec.size; k++) params[spec.offset + k] = (rng.nextFloat() * 2 - 1) * bound
        })
        return params
      }
    }
  }
}
