/**
 * The `lambda` dispatcher: one synchronous Invoke (RequestResponse) per micro-batch, in parallel
 * up to `concurrency`, each retried with backoff up to `retry.attempts` in all and bounded by
 * `timeoutSeconds`; no state machine. A micro-batch that still fails is reported failed (the
 * offload computer then computes it locally).
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda'
import { setTimeout as sleep } from 'node:timers/promises'
import type { OffloadRetryConfig } from '../../config/offload-config.js'
import type { GradientObserver } from '../../ml/core/types.js'
import { GradientResultSchema, type GradientEvent, type GradientTaskResult } from '../gradient-task.js'
import { describeError, type DispatchOutcome, type GradientDispatcher } from '../offload/dispatcher.js'
import { retryDelayMs } from './retry.js'

export interface LambdaDispatcherOptions {
  readonly client: LambdaClient
  readonly functionName: string
  readonly retry: OffloadRetryConfig
  readonly timeoutSeconds: number
  /** invocations in flight at once (default: all) */
  readonly concurrency?: number
}

export class FunctionError extends Error {
  override name = 'FunctionError'
}

/** Parses a function's response payload (the handler's result, or Lambda's error object). */
export function parseInvokeResponse(payload: Uint8Array | undefined, functionError: string | undefined): GradientTaskResult {
  const text = payload === undefined ? '' : new TextDecoder().decode(payload)
  if (functionError !== undefined) {
    let detail = text
    try {
      const body = JSON.parse(text) as { errorType?: string, errorMessage?: string }
      detail = `${body.errorType ?? functionError}: ${body.errorMessage ?? ''}`
    } catch {}
    throw new FunctionError(`the function failed (${functionError}): ${detail}`)
  }
  const parsed = GradientResultSchema.safeParse(JSON.parse(text))
  if (!parsed.success) throw new FunctionError(`the function returned something that is not a gradient result: ${text.slice(0, 200)}`)
  return parsed.data
}

export function createLambdaDispatcher(options: LambdaDispatcherOptions): GradientDispatcher {
  let invocations = 0
  const controller = new AbortController()

  const invokeOnce = async (event: GradientEvent): Promise<GradientTaskResult> => {
    invocations++
    // a timer of its own: AbortSignal.timeout under AbortSignal.any is collected before it fires
    // once a GC runs (Node 20), and an invocation that never answers then waits for ever
    const timeout = new AbortController()
    const timer = setTimeout(() => { timeout.abort(new FunctionError(`no answer within timeoutSeconds (${options.timeoutSeconds} s)`)) }, options.timeoutSeconds * 1000)
    try {
      const out = await options.client.send(new InvokeCommand({
        FunctionName: options.functionName,
        InvocationType: 'RequestResponse',
        Payload: new TextEncoder().encode(JSON.stringify(event))
      }), { abortSignal: AbortSignal.any([controller.signal, timeout.signal]) })
      return parseInvokeResponse(out.Payload, out.FunctionError)
    } finally {
      clearTimeout(timer)
    }
  }

  const invokeWithRetry = async (event: GradientEvent): Promise<DispatchOutcome> => {
    let lastError: unknown
    for (let attempt = 1; attempt <= options.retry.attempts; attempt++) {
      if (controller.signal.aborted) break
      try {
        return { ok: true, result: await invokeOnce(event) }
      } catch (error) {
        lastError = error
        if (attempt < options.retry.attempts) await sleep(retryDelayMs(options.retry, attempt), undefined, { signal: controller.signal }).catch(() => {})
      }
    }
    return { ok: false, error: `micro-batch ${event.index} failed ${options.retry.attempts} time(s): ${describeError(lastError)}` }
  }

  return {
    kind: 'lambda',
    async dispatch(events: readonly GradientEvent[], observer: GradientObserver): Promise<DispatchOutcome[]> {
      // RequestResponse returns with the result: the functions' run time is inside `invoke`
      return await observer.time('invoke', async () => {
        const outcomes: DispatchOutcome[] = new Array(events.length)
        let next = 0
        const lane = async (): Promise<void> => {
          while (next < events.length) {
            const index = next++
            outcomes[index] = await invokeWithRetry(events[index])
          }
        }
        await Promise.all(Array.from({ length: Math.min(events.length, options.concurrency ?? events.length) }, lane))
        return outcomes
      })
    },
    invocations: () => invocations,
    async close() {
      controller.abort()
      options.client.destroy()
    }
  }
}
