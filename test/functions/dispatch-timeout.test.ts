/**
 * The Lambda and Step Functions (EXPRESS) dispatchers give up on a call that never answers after
 * their timeout, also once a garbage collection ran meanwhile: with AbortSignal.timeout under
 * AbortSignal.any the timeout signal is collected by the first GC and never fires (Node 20), and
 * the micro-batch waited for ever instead of being computed locally. The client here is the
 * network that never answers: it only honours the abort signal, as the SDK's HTTP handler does.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { LambdaClient } from '@aws-sdk/client-lambda'
import type { SFNClient } from '@aws-sdk/client-sfn'
import { describe, expect, it } from 'vitest'
import { createLambdaDispatcher } from '../../functions/aws/lambda-dispatcher.js'
import { createStepFunctionsDispatcher } from '../../functions/aws/stepfunctions-dispatcher.js'
import type { GradientEvent } from '../../functions/gradient-task.js'
import type { GradientObserver } from '../../ml/core/types.js'

setFlagsFromString('--expose_gc')
const gc = runInNewContext('gc') as () => void

/** a client whose calls never answer; each rejects when its abort signal fires */
function silentClient<T>(): T {
  const send = async (_command: unknown, options: { abortSignal?: AbortSignal }): Promise<never> => await new Promise((_resolve, reject) => {
    options.abortSignal?.addEventListener('abort', () => { reject(options.abortSignal?.reason ?? new Error('aborted')) }, { once: true })
  })
  return { send, destroy: () => {} } as T
}

const observer: GradientObserver = { time: async (_stage, work) => await work() }
const event = { index: 0 } as unknown as GradientEvent

async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('offload dispatchers time out a call that never answers', () => {
  it('lambda: the micro-batch fails after timeoutSeconds, a GC notwithstanding', async () => {
    const dispatcher = createLambdaDispatcher({ client: silentClient<LambdaClient>(), functionName: 'f', retry: { attempts: 1, intervalSeconds: 0, backoffRate: 1 }, timeoutSeconds: 0.4 })
    const started = performance.now()
    const outcome = dispatcher.dispatch([event], observer)
    await collectGarbage()
    const [result] = await Promise.race([outcome, new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('still waiting after 5 s')) }, 5_000))])
    expect(result.ok).toBe(false)
    expect(result.ok ? '' : result.error).toMatch(/no answer within timeoutSeconds \(0\.4 s\)/)
    expect(performance.now() - started).toBeGreaterThanOrEqual(390)
    await dispatcher.close()
  })

  it('stepfunctions EXPRESS: the execution fails after timeoutMs, a GC notwithstanding', async () => {
    const dispatcher = createStepFunctionsDispatcher({ client: silentClient<SFNClient>(), stateMachineArn: async () => 'arn:aws:states:us-east-1:000000000000:stateMachine:m', type: 'EXPRESS', pollIntervalMs: 100, timeoutMs: 400 })
    const outcome = dispatcher.dispatch([event], observer)
    await collectGarbage()
    const [result] = await Promise.race([outcome, new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('still waiting after 5 s')) }, 5_000))])
    expect(result.ok).toBe(false)
    expect(result.ok ? '' : result.error).toMatch(/no answer within the timeout \(400 ms\)/)
    await dispatcher.close()
  })
})
