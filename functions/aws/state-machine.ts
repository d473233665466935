/**
 * The Amazon States Language definition of one step's gradients (https://states-language.net):
 * a Map state over the micro-batches (`$.tasks`, MaxConcurrency configurable) whose item
 * processor is one Task invoking the gradient Lambda, with a Retry (exponential backoff) and a
 * Catch that turns a micro-batch that keeps failing into `{ failed: true, index, error, cause }`
 * instead of failing the whole execution (the peer computes that micro-batch itself).
 * Unlike the paper's machine (fixed Parallel branches, no Retry), the Map takes any number of
 * micro-batches.
 */
import type { OffloadRetryConfig } from '../../config/offload-config.js'

export interface StateMachineDefinitionOptions {
  /** the gradient function's ARN (a placeholder such as ${GradientFunctionArn} for templates) */
  readonly functionArn: string
  readonly retry: OffloadRetryConfig
  /** one invocation's time limit, seconds */
  readonly timeoutSeconds: number
  /** Map MaxConcurrency (0: no limit) */
  readonly maxConcurrency: number
}

/** the Task state's name (the stand-in and tests look it up) */
export const GRADIENT_TASK_STATE = 'ComputeGradient'
export const GRADIENT_MAP_STATE = 'MicroBatches'
export const FAILED_STATE = 'MicroBatchFailed'

/** The definition as a JSON object (JSON.stringify it for the SDK). */
export function buildGradientStateMachine(options: StateMachineDefinitionOptions): Record<string, unknown> {
  const retries = options.retry.attempts - 1
  return {
    Comment: 'p2pmld: the gradients of one training step, one Lambda invocation per micro-batch',
    StartAt: GRADIENT_MAP_STATE,
    States: {
      [GRADIENT_MAP_STATE]: {
        Type: 'Map',
        ItemsPath: '$.tasks',
        MaxConcurrency: options.maxConcurrency,
        Iterator: {
          StartAt: GRADIENT_TASK_STATE,
          States: {
            [GRADIENT_TASK_STATE]: {
              Type: 'Task',
              Resource: options.functionArn,
              TimeoutSeconds: options.timeoutSeconds,
              ...(retries > 0
                ? { Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: options.retry.intervalSeconds, MaxAttempts: retries, BackoffRate: options.retry.backoffRate }] }
                : {}),
              Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: FAILED_STATE }],
              End: true
            },
            [FAILED_STATE]: {
              Type: 'Pass',
              Parameters: { 'failed': true, 'index.$': '$.index', 'error.$': '$.failure.Error', 'cause.$': '$.failure.Cause' },
              End: true
            }
          }
        },
        End: true
      }
    }
  }
}
