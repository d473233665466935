export { createAdam, createOptimizer, createSgd, OptimizerStateError, type Optimizer } from './optimizer.js'
