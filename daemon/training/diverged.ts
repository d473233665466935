/**
 * Training diverged: the parameters, or every gradient a step has, are not finite. The job fails
 * with this error; its message says at which step and what to lower. (A peer's non-finite
 * gradient alone is not this: the codec refuses it as a CodecError and the step goes on without it.)
 */
export class TrainingDivergedError extends Error {
  override readonly name = 'TrainingDivergedError'
  /** `step`: the step whose parameters or gradients were not finite */
  constructor(readonly step: number, message: string) {
    super(message)
  }
}
