/**
 * The paper's models, with torchvision's layer structure (torchvision 0.14), for any
 * C x H x W input (1x28x28 MNIST, 3x32x32 CIFAR-10) and 10 classes:
 * - SqueezeNet 1.1 (Iandola et al. 2016): Fire modules, ceil-mode max pooling, conv classifier.
 * - MobileNetV3-Small (Howard et al. 2019): inverted residuals with depthwise convs, BatchNorm
 *   (eps 1e-3, momentum 0.01 as torchvision), hardswish, squeeze-and-excitation.
 * - VGG-11 (Simonyan & Zisserman 2015, configuration A): AdaptiveAvgPool2d(7) then 3 Linear.
 * Weights use PyTorch's default uniform init; BatchNorm starts at weight 1, bias 0.
 */
import { ForwardGraphBuilder } from './graph-builder.js'
import type { ModelDefinition } from './model-definition.js'

const CLASSES = 10

/** Output size of a k/s/p window (floor, or ceil as ceil_mode pools do). */
function outSize(size: number, kernel: number, stride: number, pad: number, ceil = false): number {
  const span = size + 2 * pad - kernel
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1
  if (ceil && (out - 1) * stride >= size + pad) out--
  return out
}

export function squeezenet11(sampleShape: readonly number[]): ModelDefinition {
  const g = new ForwardGraphBuilder()
  const fire = (x: string, name: string, inC: number, squeeze: number, e1: number, e3: number): string => {
    const s = g.relu(g.conv(x, `${name}.squeeze`, inC, squeeze, 1))
    return g.concat([g.relu(g.conv(s, `${name}.expand1x1`, squeeze, e1, 1)), g.relu(g.conv(s, `${name}.expand3x3`, squeeze, e3, 3, { pad: 1 }))])
  }
  const pool = (x: string): string => g.maxPool(x, 3, 2, { ceil: true })
  let x = pool(g.relu(g.conv(g.input, 'features.0', sampleShape[0], 64, 3, { stride: 2 })))
  x = fire(x, 'features.3', 64, 16, 64, 64)
  x = pool(fire(x, 'features.4', 128, 16, 64, 64))
  x = fire(x, 'features.6', 128, 32, 128, 128)
  x = pool(fire(x, 'features.7', 256, 32, 128, 128))
  x = fire(x, 'features.9', 256, 48, 192, 192)
  x = fire(x, 'features.10', 384, 48, 192, 192)
  x = fire(x, 'features.11', 384, 64, 256, 256)
  x = fire(x, 'features.12', 512, 64, 256, 256)
  x = g.relu(g.conv(g.dropout(x, 0.5), 'classifier.1', 512, CLASSES, 1))
  return g.build('squeezenet1_1', sampleShape, CLASSES, g.flatten(g.globalAveragePool(x)))
}

/** torchvision's _make_divisible(v, 8) */
function divisible8(v: number): number {
  const out = Math.max(8, Math.floor((v + 4) / 8) * 8)
  return out < 0.9 * v ? out + 8 : out
}

// (input, kernel, expanded, output, squeeze-excite, hardswish, stride): torchvision's small config
const MOBILENET_V3_SMALL: ReadonlyArray<readonly [number, number, number, number, boolean, boolean, number]> = [
  [16, 3, 16, 16, true, false, 2],
  [16, 3, 72, 24, false, false, 2],
  [24, 3, 88, 24, false, false, 1],
  [24, 5, 96, 40, true, true, 2],
  [40, 5, 240, 40, true, true, 1],
  [40, 5, 240, 40, true, true, 1],
  [40, 5, 120, 48, true, true, 1],
  [48, 5, 144, 48, true, true, 1],
  [48, 5, 288, 96, true, true, 2],
  [96, 5, 576, 96, true, true, 1],
  [96, 5, 576, 96, true, true, 1]
]

export function mobilenetV3Small(sampleShape: readonly number[]): ModelDefinition {
  const g = new ForwardGraphBuilder()
  const bn = { eps: 1e-3, momentum: 0.01 }
  const convBn = (x: string, name: string, inC: number, outC: number, k: number, stride = 1, groups = 1): string =>
    g.batchNorm(g.conv(x, `${name}.0`, inC, outC, k, { stride, pad: (k - 1) / 2, groups, bias: false }), `${name}.1`, outC, bn)
  let x = g.hardSwish(convBn(g.input, 'features.0', sampleShape[0], 16, 3, 2))
  MOBILENET_V3_SMALL.forEach(([inC, k, exp, outC, se, hs, stride], i) => {
    const name = `features.${i + 1}.block`
    const act = (t: string): string => (hs ? g.hardSwish(t) : g.relu(t))
    let y = x
    let layer = 0
    if (exp !== inC) y = act(convBn(y, `${name}.${layer++}`, inC, exp, 1))
    y = act(convBn(y, `${name}.${layer++}`, exp, exp, k, stride, exp))
    if (se) {
      const squeeze = divisible8(Math.floor(exp / 4))
      const s = g.relu(g.conv(g.globalAveragePool(y), `${name}.${layer}.fc1`, exp, squeeze, 1))
      y = g.mul(y, g.hardSigmoid(g.conv(s, `${name}.${layer++}.fc2`, squeeze, exp, 1)))
    }
    y = convBn(y, `${name}.${layer}`, exp, outC, 1)
    x = stride === 1 && inC === outC ? g.sum(y, x) : y
  })
  x = g.hardSwish(convBn(x, 'features.12', 96, 576, 1))
  x = g.flatten(g.globalAveragePool(x))
  x = g.dropout(g.hardSwish(g.linear(x, 'classifier.0', 576, 1024)), 0.2)
  return g.build('mobilenet_v3_small', sampleShape, CLASSES, g.linear(x, 'classifier.3', 1024, CLASSES))
}

/**
 * VGG-11: eight 3x3 convs with ReLU and five 2x2 max pools, AdaptiveAvgPool2d(7), then
 * 25088-4096-4096-10 with Dropout(0.5). A pool that would shrink the map below 1x1 (the fifth,
 * on 28x28 MNIST) is left out; from 1x1 the adaptive pool replicates, as PyTorch's does.
 */
export function vgg11(sampleShape: readonly number[]): ModelDefinition {
  const g = new ForwardGraphBuilder()
  const cfg: Array<number | 'M'> = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']
  let x = g.input
  let channels = sampleShape[0]
  let size = sampleShape[1]
  cfg.forEach((v, i) => {
    if (v === 'M') {
      if (size >= 2) {
        x = g.maxPool(x, 2)
        size = outSize(size, 2, 2, 0)
      }
      return
    }
    x = g.relu(g.conv(x, `features.${i}`, channels, v, 3, { pad: 1 }))
    channels = v
  })
  if (size === 1) x = g.expand(x, [1, 512, 7, 7])
  else if (size % 7 === 0) x = g.averagePool(x, size / 7)
  else throw new RangeError(`vgg11 needs input sizes whose final feature map is 1x1 or a multiple of 7, got ${sampleShape.join('x')}`)
  x = g.flatten(x)
  x = g.dropout(g.relu(g.linear(x, 'classifier.0', 512 * 7 * 7, 4096)), 0.5)
  x = g.dropout(g.relu(g.linear(x, 'classifier.3', 4096, 4096)), 0.5)
  return g.build('vgg11', sampleShape, CLASSES, g.linear(x, 'classifier.6', 4096, CLASSES))
}
