export { createAdam, createOptimizer, createSgd, OptimizerConfigError, OptimizerStateError, type Optimizer } from './optimizer.js'
