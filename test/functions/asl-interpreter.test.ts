/**
 * The Step Functions stand-in's ASL interpreter on p2pmld's own gradient state machine: the Map
 * keeps item order and its MaxConcurrency, Retry waits with backoff and counts retries after the
 * first attempt, Catch puts { Error, Cause } where the Pass state reads it, TimeoutSeconds raises
 * States.Timeout, and a definition using something the interpreter does not model is refused.
 */
import { describe, expect, it } from 'vitest'
import { buildGradientStateMachine } from '../../functions/aws/state-machine.js'
import { runStateMachine, StatesError } from '../support/aws-stand-ins/asl-interpreter.js'

const ARN = 'arn:aws:lambda:us-east-1:000000000000:function:grad'
const machine = (over: Partial<Parameters<typeof buildGradientStateMachine>[0]> = {}): Record<string, unknown> =>
  buildGradientStateMachine({ functionArn: ARN, retry: { attempts: 3, intervalSeconds: 0.05, backoffRate: 2 }, timeoutSeconds: 5, maxConcurrency: 2, ...over })
const tasks = (n: number): { tasks: Array<{ index: number }> } => ({ tasks: Array.from({ length: n }, (_, index) => ({ index })) })

describe('the stand-in ASL interpreter', () => {
  it('runs the Map in item order, never more than MaxConcurrency at once, passing each item to the Task', async () => {
    let running = 0
    let peak = 0
    const resources: string[] = []
    const out = await runStateMachine(machine(), tasks(5), async (resource, input) => {
      resources.push(resource)
      running++
      peak = Math.max(peak, running)
      const { index } = input as { index: number }
      await new Promise((resolve) => setTimeout(resolve, 30 - index * 5))
      running--
      return { index, doubled: index * 2 }
    })
    expect(out).toEqual([0, 1, 2, 3, 4].map((index) => ({ index, doubled: index * 2 })))
    expect(peak).toBe(2)
    expect(new Set(resources)).toEqual(new Set([ARN]))
  })

  it('retries with backoff (MaxAttempts = retries after the first attempt), then succeeds', async () => {
    const calls: number[] = []
    const started = performance.now()
    const out = await runStateMachine(machine(), tasks(1), async () => {
      calls.push(performance.now() - started)
      if (calls.length < 3) throw new StatesError('InjectedFailure', 'not yet')
      return 'ok'
    })
    expect(out).toEqual(['ok'])
    expect(calls).toHaveLength(3)
    // waits 50 ms, then 100 ms
    expect(calls[1] - calls[0]).toBeGreaterThanOrEqual(45)
    expect(calls[2] - calls[1]).toBeGreaterThanOrEqual(95)
  })

  it("turns an item that keeps failing into the Catch's { failed, index, error, cause }, the others unharmed", async () => {
    let attemptsOfItem1 = 0
    const out = await runStateMachine(machine(), tasks(3), async (_, input) => {
      const { index } = input as { index: number }
      if (index === 1) {
        attemptsOfItem1++
        throw new StatesError('Runtime.ExitError', '{"errorMessage":"the runtime exited"}')
      }
      return index
    })
    expect(out).toEqual([0, { failed: true, index: 1, error: 'Runtime.ExitError', cause: '{"errorMessage":"the runtime exited"}' }, 2])
    expect(attemptsOfItem1).toBe(3)
  })

  it('raises States.Timeout when a Task runs past TimeoutSeconds (and without a Catch the execution fails with it)', async () => {
    const definition = machine({ retry: { attempts: 1, intervalSeconds: 1, backoffRate: 1 }, timeoutSeconds: 0.05 })
    const map = (definition.States as Record<string, { Iterator: { States: Record<string, Record<string, unknown>> } }>).MicroBatches
    delete map.Iterator.States.ComputeGradient.Catch
    const slow = async (): Promise<unknown> => await new Promise((resolve) => setTimeout(resolve, 500))
    await expect(runStateMachine(definition, tasks(1), slow)).rejects.toMatchObject({ name: 'States.Timeout' })
  })

  it('neither retries nor catches States.Runtime, and fails on a state output over 256 KiB (States.DataLimitExceeded)', async () => {
    let calls = 0
    await expect(runStateMachine(machine(), tasks(1), async () => {
      calls++
      throw new StatesError('States.Runtime', 'a path matched nothing')
    })).rejects.toMatchObject({ name: 'States.Runtime' })
    expect(calls).toBe(1)
    calls = 0
    await expect(runStateMachine(machine(), tasks(1), async () => {
      calls++
      return 'x'.repeat(300 * 1024)
    })).rejects.toMatchObject({ name: 'States.DataLimitExceeded' })
    expect(calls).toBe(1)
  })

  it('refuses a definition that uses what it does not model, naming the state and the field', async () => {
    const parallel = { StartAt: 'P', States: { P: { Type: 'Parallel', Branches: [], End: true } } }
    await expect(runStateMachine(parallel, {}, async () => null)).rejects.toThrow(/States\.P: the stand-in does not interpret Parallel states/)
    const selector = { StartAt: 'M', States: { M: { Type: 'Map', ItemSelector: {}, Iterator: { StartAt: 'T', States: { T: { Type: 'Task', Resource: ARN, End: true } } }, End: true } } }
    await expect(runStateMachine(selector, { tasks: [] }, async () => null)).rejects.toThrow(/States\.M: the stand-in does not interpret ItemSelector/)
  })
})
