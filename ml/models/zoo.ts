import { ForwardGraphBuilder } from './graph-builder.js'
import { UnknownModelError, type ModelDefinition } from './model-definition.js'
import { mobilenetV3Small, squeezenet11, vgg11 } from './paper-models.js'

const MNIST_SHAPE = [1, 28, 28] as const

function mlp(name: string, hidden: readonly number[]): ModelDefinition {
  const g = new ForwardGraphBuilder()
  let x = g.flatten(g.input)
  let width = 784
  hidden.forEach((h, i) => {
    x = g.relu(g.linear(x, `fc${i + 1}`, width, h))
    width = h
  })
  const logits = g.linear(x, `fc${hidden.length + 1}`, width, 10)
  return g.build(name, MNIST_SHAPE, 10, logits)
}

/** LeNet-5 for 28x28 inputs: the first conv pads by 2, as is usual for MNIST. */
function lenet5(): ModelDefinition {
  const g = new ForwardGraphBuilder()
  let x = g.maxPool(g.relu(g.conv(g.input, 'conv1', 1, 6, 5, { pad: 2 })), 2)
  x = g.maxPool(g.relu(g.conv(x, 'conv2', 6, 16, 5)), 2)
  x = g.flatten(x)
  x = g.relu(g.linear(x, 'fc1', 16 * 5 * 5, 120))
  x = g.relu(g.linear(x, 'fc2', 120, 84))
  return g.build('lenet5', MNIST_SHAPE, 10, g.linear(x, 'fc3', 84, 10))
}

/** A small CNN that exercises stride-2 padded conv, overlapping max pooling and average pooling. */
function convTest(): ModelDefinition {
  const g = new ForwardGraphBuilder()
  let x = g.relu(g.conv(g.input, 'conv1', 1, 4, 3, { stride: 2, pad: 1 }))
  x = g.maxPool(x, 3, 2)
  x = g.relu(g.conv(x, 'conv2', 4, 6, 3, { pad: 1 }))
  x = g.averagePool(x, 2)
  x = g.flatten(x)
  return g.build('convnet-test', MNIST_SHAPE, 10, g.linear(x, 'fc', 6 * 3 * 3, 10))
}

/** Zoo builders; the paper's models take the dataset's sample shape, the MNIST-only ones ignore it. */
const ZOO: Record<string, (sampleShape: readonly number[]) => ModelDefinition> = {
  mlp: () => mlp('mlp', [128]),
  'mlp-large': () => mlp('mlp-large', [1024, 1024]),
  lenet5,
  squeezenet1_1: squeezenet11,
  mobilenet_v3_small: mobilenetV3Small,
  vgg11
}

/** Models the engine's tests use, resolved by name but not listed to users */
const TEST_MODELS: Record<string, (sampleShape: readonly number[]) => ModelDefinition> = {
  'convnet-test': convTest
}

/** Zoo models whose input shape follows the dataset (1x28x28 MNIST, 3x32x32 CIFAR-10). */
const SHAPE_FOLLOWS_DATASET = new Set(['squeezenet1_1', 'mobilenet_v3_small', 'vgg11'])

export function zooModelNames(): string[] {
  return Object.keys(ZOO)
}

/** Whether the zoo model takes its input shape from the dataset. */
export function followsDatasetShape(name: string): boolean {
  return SHAPE_FOLLOWS_DATASET.has(name)
}

/**
 * A zoo model by name. `sampleShape` (C x H x W, default MNIST's 1x28x28) sizes the paper's
 * models for the dataset; the MNIST-only models ignore it.
 */
export function createModel(name: string, sampleShape: readonly number[] = MNIST_SHAPE): ModelDefinition {
  // own keys only: 'constructor' or 'toString' are not models
  const make = Object.hasOwn(ZOO, name) ? ZOO[name] : Object.hasOwn(TEST_MODELS, name) ? TEST_MODELS[name] : undefined
  if (make === undefined) {
    throw new UnknownModelError(`unknown model '${name}': choose one of ${zooModelNames().join(', ')}, or give the path of a forward .onnx file`)
  }
  return make(sampleShape)
}
