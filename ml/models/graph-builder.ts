/**
 * A small builder for the zoo's forward graphs: layers append IR nodes and register their
 * parameters with PyTorch's default initialisation (kaiming_uniform with a = sqrt(5), which
 * is U(+-1/sqrt(fan_in)) for weights and biases alike).
 */
import type { ConstantTensor, ForwardGraph, IrNode } from '../autodiff/ir.js'
import { float, int, ints } from '../autodiff/ir.js'
import { createRng } from '../core/rng.js'
import { createLayout } from '../params.js'
import type { ModelDefinition } from './model-definition.js'

interface ParamInit {
  readonly name: string
  readonly shape: readonly number[]
  /** U(-bound, bound), unless `fill` is given */
  readonly bound: number
  readonly fill?: number
  readonly kind?: 'parameter' | 'buffer'
  readonly momentum?: number
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

  private filled(name: string, shape: number[], fill: number, buffer?: { momentum: number }): string {
    this.params.push({ name, shape, bound: 0, fill, ...(buffer === undefined ? {} : { kind: 'buffer' as const, momentum: buffer.momentum }) })
    return name
  }

  private constant(hint: string, tensor: ConstantTensor): string {
    const name = this.next(`${hint}_`)
    this.constants.set(name, tensor)
    return name
  }

  linear(x: string, name: string, inFeatures: number, outFeatures: number): string {
    const w = this.param(`${name}.weight`, [outFeatures, inFeatures], inFeatures)
    const b = this.param(`${name}.bias`, [outFeatures], inFeatures)
    return this.add('Gemm', [x, w, b], { transB: int(1) })
  }

  conv(x: string, name: string, inChannels: number, outChannels: number, kernel: number, options: { stride?: number, pad?: number, groups?: number, bias?: boolean } = {}): string {
    const groups = options.groups ?? 1
    const fanIn = (inChannels / groups) * kernel * kernel
    const w = this.param(`${name}.weight`, [outChannels, inChannels / groups, kernel, kernel], fanIn)
    const inputs = [x, w]
    if (options.bias ?? true) inputs.push(this.param(`${name}.bias`, [outChannels], fanIn))
    const s = options.stride ?? 1
    const p = options.pad ?? 0
    return this.add('Conv', inputs, { kernel_shape: ints([kernel, kernel]), strides: ints([s, s]), pads: ints([p, p, p, p]), group: int(groups) })
  }

  /** BatchNorm2d: weight 1, bias 0, running mean 0 / var 1 as buffers (PyTorch's momentum convention). */
  batchNorm(x: string, name: string, channels: number, options: { eps?: number, momentum?: number } = {}): string {
    const momentum = options.momentum ?? 0.1
    const inputs = [
      this.filled(`${name}.weight`, [channels], 1),
      this.filled(`${name}.bias`, [channels], 0),
      this.filled(`${name}.running_mean`, [channels], 0, { momentum }),
      this.filled(`${name}.running_var`, [channels], 1, { momentum })
    ]
    return this.add('BatchNormalization', [x, ...inputs], { epsilon: float(options.eps ?? 1e-5), momentum: float(1 - momentum) })
  }

  hardSwish(x: string): string {
    return this.add('HardSwish', [x])
  }

  hardSigmoid(x: string): string {
    return this.add('HardSigmoid', [x], { alpha: float(1 / 6), beta: float(0.5) })
  }

  mul(a: string, b: string): string {
    return this.add('Mul', [a, b])
  }

  sum(a: string, b: string): string {
    return this.add('Add', [a, b])
  }

  concat(xs: string[], axis = 1): string {
    return this.add('Concat', xs, { axis: int(axis) })
  }

  dropout(x: string, ratio: number): string {
    return this.add('Dropout', [x, this.constant('ratio', { dims: [], data: Float32Array.of(ratio) })])
  }

  /** Broadcast x to `shape` (AdaptiveAvgPool2d to a larger size from 1x1 replicates). */
  expand(x: string, shape: readonly number[]): string {
    return this.add('Expand', [x, this.constant('shape', { dims: [shape.length], data: BigInt64Array.from(shape.map(BigInt)) })])
  }

  relu(x: string): string {
    return this.add('Relu', [x])
  }

  maxPool(x: string, kernel: number, stride = kernel, options: { ceil?: boolean, pad?: number } = {}): string {
    const p = options.pad ?? 0
    return this.add('MaxPool', [x], { kernel_shape: ints([kernel, kernel]), strides: ints([stride, stride]), pads: ints([p, p, p, p]), ceil_mode: int(options.ceil === true ? 1 : 0) })
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
    const layout = createLayout(inits.map((p) => ({ name: p.name, shape: p.shape, kind: p.kind, momentum: p.momentum })))
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
          const { bound, fill } = inits[i]
          if (fill !== undefined) params.fill(fill, spec.offset, spec.offset + spec.size)
          else for (let k = 0; k < spec.size; k++) params[spec.offset + k] = (rng.nextFloat() * 2 - 1) * bound
        })
        return params
      }
    }
  }
}
