export { EarlyStopping, type EarlyStoppingState } from './early-stopping.js'
export { ReduceLROnPlateau, type PlateauState } from './reduce-lr-on-plateau.js'
export { ScheduleStateError } from './state-checks.js'
