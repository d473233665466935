/** What `p2pmld models` prints: every zoo model with its parameter counts per dataset shape. */
import { bufferSpecs } from '../../ml/params.js'
import { createModel, followsDatasetShape, zooModelNames } from '../../ml/models/zoo.js'

export interface ZooModelEntry {
  readonly name: string
  /** the input shapes it is built for: the paper's models follow the dataset */
  readonly inputs: ReadonlyArray<{
    readonly dataset: 'mnist' | 'cifar-10'
    readonly sampleShape: readonly number[]
    /** trainable parameters */
    readonly parameters: number
    /** running statistics (BatchNorm) carried beside the parameters */
    readonly buffers: number
  }>
}

const SHAPES = [['mnist', [1, 28, 28]], ['cifar-10', [3, 32, 32]]] as const

/** The zoo, with counts from each model's layout (building a layout allocates no weights). */
export function listZooModels(): ZooModelEntry[] {
  return zooModelNames().map((name) => ({
    name,
    inputs: SHAPES.filter(([dataset]) => dataset === 'mnist' || followsDatasetShape(name)).map(([dataset, shape]) => {
      const { layout } = createModel(name, shape)
      const buffers = bufferSpecs(layout).reduce((a, s) => a + s.size, 0)
      return { dataset, sampleShape: shape, parameters: layout.totalSize - buffers, buffers }
    })
  }))
}
