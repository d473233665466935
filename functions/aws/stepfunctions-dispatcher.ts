/**
 * The `stepfunctions` dispatcher: one execution per step of a state machine that maps the
 * gradient Lambda over the micro-batches (functions/aws/state-machine.ts). EXPRESS machines run
 * with StartSyncExecution (the call returns with the results); STANDARD ones with StartExecution
 * and DescribeExecution polling. Retries happen inside the machine (the ASL's Retry); a
 * micro-batch caught after its retries, or every micro-batch of a failed execution, comes back
 * failed (the offload computer computes it locally).
 */
import { DescribeExecutionCommand, StartExecutionCommand, StartSyncExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import type { GradientObserver } from '../../ml/core/types.js'
import { GradientResultSchema, type GradientEvent } from '../gradient-task.js'
import { describeError, type DispatchOutcome, type GradientDispatcher } from '../offload/dispatcher.js'

export interface StepFunctionsDispatcherOptions {
  readonly client: SFNClient
  /** resolves the state machine to run (created or updated at start, or given) */
  readonly stateMachineArn: () => Promise<string>
  readonly type: 'EXPRESS' | 'STANDARD'
  /** STANDARD: DescribeExecution polling interval, ms */
  readonly pollIntervalMs: number
  /** the whole execution's time limit, ms */
  readonly timeoutMs: number
}

/** One Map item's output: the handler's result, or the Catch's `{ failed, index, error, cause }`. */
export function parseExecutionOutput(output: string | undefined, count: number): DispatchOutcome[] {
  const items = JSON.parse(output ?? 'null') as unknown
  if (!Array.isArray(items) || items.length !== count) throw new Error(`the execution returned ${Array.isArray(items) ? items.length : 'no'} results for ${count} micro-batches`)
  return items.map((item: unknown, index): DispatchOutcome => {
    const parsed = GradientResultSchema.safeParse(item)
    if (parsed.success && parsed.data.index === index) return { ok: true, result: parsed.data }
    const failure = item as { failed?: boolean, error?: string, cause?: string }
    if (failure?.failed === true) return { ok: false, error: `micro-batch ${index} failed after its retries: ${failure.error ?? ''} ${failure.cause ?? ''}`.trim() }
    return { ok: false, error: `micro-batch ${index}: unexpected result ${JSON.stringify(item).slice(0, 200)}` }
  })
}

export function createStepFunctionsDispatcher(options: StepFunctionsDispatcherOptions): GradientDispatcher {
  let executions = 0
  let arn: Promise<string> | undefined
  const controller = new AbortController()
  const machine = (): Promise<string> => {
    arn ??= options.stateMachineArn()
    arn.catch(() => { arn = undefined })
    return arn
  }

  const runExpress = async (stateMachineArn: string, input: string, name: string, observer: GradientObserver): Promise<{ status?: string, output?: string, error?: string, cause?: string }> => {
    // a timer of its own: AbortSignal.timeout under AbortSignal.any is collected before it fires
    // once a GC runs (Node 20), and an execution that never answers then waits for ever
    const timeout = new AbortController()
    const timer = setTimeout(() => { timeout.abort(new Error(`no answer within the timeout (${options.timeoutMs} ms)`)) }, options.timeoutMs)
    try {
      return await observer.time('invoke', async () => await options.client.send(new StartSyncExecutionCommand({ stateMachineArn, input, name }), { abortSignal: AbortSignal.any([controller.signal, timeout.signal]) }))
    } finally {
      clearTimeout(timer)
    }
  }

  const runStandard = async (stateMachineArn: string, input: string, name: string, observer: GradientObserver): Promise<{ status?: string, output?: string, error?: string, cause?: string }> => {
    const started = await observer.time('invoke', async () => await options.client.send(new StartExecutionCommand({ stateMachineArn, input, name }), { abortSignal: controller.signal }))
    return await observer.time('wait', async () => {
      const deadline = performance.now() + options.timeoutMs
      for (;;) {
        const described = await options.client.send(new DescribeExecutionCommand({ executionArn: started.executionArn }), { abortSignal: controller.signal })
        if (described.status !== 'RUNNING' && described.status !== 'PENDING_REDRIVE') return described
        if (performance.now() > deadline) throw new Error(`execution ${started.executionArn} still running after ${options.timeoutMs} ms`)
        await sleep(options.pollIntervalMs, undefined, { signal: controller.signal })
      }
    })
  }

  return {
    kind: 'stepfunctions',
    async dispatch(events: readonly GradientEvent[], observer: GradientObserver): Promise<DispatchOutcome[]> {
      const name = `p2pmld-${Date.now()}-${randomBytes(4).toString('hex')}`
      try {
        const stateMachineArn = await machine()
        executions++
        const input = JSON.stringify({ tasks: events })
        const done = options.type === 'EXPRESS' ? await runExpress(stateMachineArn, input, name, observer) : await runStandard(stateMachineArn, input, name, observer)
        if (done.status !== 'SUCCEEDED') {
          const error = `execution ${name} ended ${done.status ?? 'without a status'}: ${done.error ?? ''} ${done.cause ?? ''}`.trim()
          return events.map(() => ({ ok: false, error }))
        }
        return parseExecutionOutput(done.output, events.length)
      } catch (error) {
        return events.map(() => ({ ok: false, error: describeError(error) }))
      }
    },
    invocations: () => executions,
    async close() {
      controller.abort()
      options.client.destroy()
    }
  }
}
